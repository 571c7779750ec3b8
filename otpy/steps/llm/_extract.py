"""``claude_extract`` and the pure functions that pull content out of an answer's text.

- :func:`extract_json`: the first JSON object or array. Fenced blocks come first: the
  first ```` ```json ```` (or unlabelled) block that holds one wins; otherwise the text is
  scanned left to right from each ``{`` and ``[`` for the first one that parses.
- :func:`extract_code_blocks`: every fenced block (```` ``` ```` or ``~~~``, three or more),
  optionally only those of one language (case-insensitive; ``py`` counts as ``python``
  and so on, see :data:`LANGUAGE_ALIASES`). An unclosed fence runs to the end of the text,
  as in CommonMark (a truncated answer keeps its code).
- :func:`extract_fields`: named values, from the keys of the first JSON object, else from
  ``name: value`` / ``name = value`` lines (names case-insensitive, markdown bullets and
  bold around the name allowed; the value is JSON-decoded when it is JSON — ``42``,
  ``true``, ``"quoted"``, ``[1, 2]`` — else the string with surrounding quotes removed).

They never raise on any text: "not found" is ``None`` / an empty list / a missing key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Final

from otpy.errors import InvalidValueError, StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice
from otpy.steps.llm._agentic import ask
from otpy.steps.llm._common import (
    CLAUDE_FIELDS,
    LLM_FIELDS,
    call_provider,
    check_llm_fields,
    check_str,
    check_str_list,
    step_label,
)
from otpy.steps.llm._extraction import FORMATS, POST_PROCESSING, apply_extraction
from otpy.steps.llm._prompting import check_preset, preset_request

__all__ = [
    "EXTRACT_KINDS",
    "LANGUAGE_ALIASES",
    "ClaudeExtractStep",
    "CodeBlock",
    "extract_code_blocks",
    "extract_fields",
    "extract_json",
]

EXTRACT_KINDS: Final = ("json", "code", "fields")

LANGUAGE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "py": "python",
        "python3": "python",
        "js": "javascript",
        "ts": "typescript",
        "sh": "bash",
        "shell": "bash",
        "zsh": "bash",
        "yml": "yaml",
        "ex": "elixir",
        "exs": "elixir",
        "rb": "ruby",
    }
)
"""Fence labels that name the same language as another (compared lower-case)."""

_OPEN: Final = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
_DECODER: Final = json.JSONDecoder()
_START: Final = re.compile(r'\{(?=\s*["}])|\[(?=\s*[\]"{\[\-0-9tfn])')
_FIELD_LINE: Final = re.compile(
    r"^[ \t]*(?:[-*+>][ \t]+)?(?:\d+[.)][ \t]+)?"  # a bullet or a number, if any
    r"(?P<name>[^:=\n]+?)[ \t]*[:=](?P<value>.*)$"
)
_EXCERPT: Final = 200


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced block: its ``language`` (the first word of the fence's info string,
    lower-case, aliases resolved; ``""`` if none) and its ``code`` (without the fences)."""

    language: str
    code: str


def _language(info: str) -> str:
    word = info.strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    word = word.strip("{}.")
    return LANGUAGE_ALIASES.get(word, word)


def extract_code_blocks(text: str, language: str | None = None) -> list[CodeBlock]:
    """Every fenced code block of ``text`` in order, or only those in ``language``."""
    wanted = None if language is None else _language(language)
    blocks: list[CodeBlock] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opened = _OPEN.match(lines[index])
        if opened is None or (opened["fence"][0] == "`" and "`" in opened["info"]):
            index += 1
            continue
        fence = opened["fence"]
        closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        index += 1
        while index < len(lines) and closing.match(lines[index]) is None:
            body.append(lines[index])
            index += 1
        index += 1  # past the closing fence (or the end)
        block = CodeBlock(language=_language(opened["info"]), code="\n".join(body))
        if wanted is None or block.language == wanted:
            blocks.append(block)
    return blocks


def _first_json_in(text: str) -> dict[str, Any] | list[Any] | None:
    # Only starts that can open a container are tried ("{" before '"' or "}", "[" before a
    # value or "]"), and only before the last closer of their kind: bracket soup with no
    # JSON in it is skipped without a decode attempt per bracket.
    last = {"{": text.rfind("}"), "[": text.rfind("]")}
    for match in _START.finditer(text):
        start = match.start()
        if start > last[text[start]]:
            continue
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict | list):
            return value
    return None


def extract_json(text: str) -> dict[str, Any] | list[Any] | None:
    """The first JSON object or array in ``text`` (fenced ``json``/unlabelled blocks
    first), or None if there is none."""
    for block in extract_code_blocks(text):
        if block.language in ("json", "", "jsonc", "json5"):
            found = _first_json_in(block.code)
            if found is not None:
                return found
    return _first_json_in(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} stays text")  # "NaN", "Infinity" are words here, not floats


def _field_value(raw: str) -> Any:
    value = raw.strip().rstrip(",").strip()
    if value.startswith(("**", "__")) and value.endswith(("**", "__")) and len(value) > 4:
        value = value[2:-2].strip()
    try:
        return json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        pass
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`":
        return value[1:-1]
    return value


def extract_fields(text: str, names: Sequence[str]) -> dict[str, Any]:
    """The values of ``names`` found in ``text``: keys of the first JSON object, then
    ``name: value`` / ``name = value`` lines for the rest (first occurrence wins)."""
    found: dict[str, Any] = {}
    data = extract_json(text)
    if isinstance(data, dict):
        for name in names:
            if name in data:
                found[name] = data[name]
    missing: dict[str, list[str]] = {}
    for name in names:
        if name not in found:
            missing.setdefault(name.lower(), []).append(name)
    for line in text.splitlines():
        if not missing:
            break
        match = _FIELD_LINE.match(line)
        if match is None:
            continue
        key = match["name"].strip().strip("*_`\"'").strip().lower()
        value = match["value"]
        if value.startswith(("**", "__")):  # "**name:** value"
            value = value[2:]
        for wanted in missing.pop(key, ()):
            found[wanted] = _field_value(value)
    return found


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


DEFAULT_EXTRACT_PRESET: Final = "analysis"
"""claude_extract's preset when none is given (pipeline_ex's)."""


def _check_extraction(checked: Mapping[str, Any], label: str) -> None:
    config = checked.get("extraction_config")
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise StepValidationError("must be a mapping", step=label, field="extraction_config")
    check_choice(config.get("format"), FORMATS, step=label, field="extraction_config.format")
    steps = config.get("post_processing")
    if steps is not None and not (
        isinstance(steps, list) and all(s in POST_PROCESSING for s in steps)
    ):
        raise StepValidationError(
            f"must be a list of {', '.join(POST_PROCESSING)}, got {steps!r}",
            step=label,
            field="extraction_config.post_processing",
        )
    limit = config.get("max_summary_length")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 4):
        raise StepValidationError(
            "must be an integer >= 4", step=label, field="extraction_config.max_summary_length"
        )


class ClaudeExtractStep(Step):
    """``claude_extract``: structured content out of an answer.

    With ``extract``: exactly one of ``prompt`` (ask the provider first, with the sampling
    fields) or ``text`` (extract from the given text, no call); ``extract`` is ``json``
    (output: the object or array), ``code`` (output: the list of code strings;
    ``language`` filters; metadata ``languages``), or ``fields`` (with ``fields:
    [names]``; output: name -> value, every name required). Content that is not there
    raises ``InvalidValueError`` (variable: the step, value: an excerpt of the text, rule:
    what was missing).

    Without ``extract`` (pipeline_ex's form): ask ``prompt`` with the ``preset`` (default
    ``analysis``) and ``claude_options``, then apply ``extraction_config`` (format and
    post-processing, see :mod:`otpy.steps.llm._extraction`); the output is the processed
    text, metadata ``extraction_metadata`` when ``include_metadata``.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Extract JSON, fenced code blocks or named fields from a provider's "
        "answer to prompt, or from a given text; or pipeline_ex's extraction_config "
        "(format, post_processing) applied to the answer.",
        optional_fields=(
            "extract", "prompt", "text", "language", "fields", "preset",
            "extraction_config", *LLM_FIELDS, *CLAUDE_FIELDS,
        ),
        capabilities=("text",),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = step_label(checked)
        prompt = check_str(checked, "prompt")
        text = check_str(checked, "text", empty=True)
        kind = checked.get("extract")
        check_preset(checked)
        _check_extraction(checked, label)
        check_llm_fields(checked)
        if kind is None:
            if prompt is None:
                raise StepValidationError("is required", step=label, field="prompt")
            for field in ("text", "language", "fields"):
                if checked.get(field) is not None:
                    raise StepValidationError("only applies with extract", step=label, field=field)
            return checked
        if (prompt is None) == (text is None):
            raise StepValidationError(
                "give exactly one of prompt (ask the provider) or text (extract from it)",
                step=label,
                field="prompt" if prompt is not None else "text",
            )
        check_choice(kind, EXTRACT_KINDS, step=label, field="extract")
        check_str(checked, "language")
        if checked.get("language") is not None and kind != "code":
            raise StepValidationError("only applies to extract: code", step=label, field="language")
        names = check_str_list(checked, "fields", non_empty=True)
        if kind == "fields" and names is None:
            raise StepValidationError(
                "is required with extract: fields", step=label, field="fields"
            )
        if kind != "fields" and names is not None:
            raise StepValidationError("only applies to extract: fields", step=label, field="fields")
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        label = step_label(step)
        completion = None
        if step.get("prompt") is not None:
            preset, request = preset_request(step, DEFAULT_EXTRACT_PRESET)
            capabilities = self.metadata.capabilities
            completion, _ = ask(
                step, context, request,
                lambda asked: call_provider(context, step, asked, capabilities),
            )  # fmt: skip
            text = completion.text
        else:
            text = step["text"]
        if step.get("extract") is None:
            assert completion is not None
            return self._pipeline_ex(step, completion, preset)
        output, rule, more = _extract(step, text)
        if rule is not None:
            raise InvalidValueError(variable=label, value=_excerpt(text), rule=rule)
        source = "text" if completion is None else "prompt"
        metadata = {"extract": step["extract"], "source": source, **more}
        if completion is None:
            return StepResult(output=output, text=text, metadata=metadata)
        return StepResult.of_completion(completion, output=output, metadata=metadata)

    @staticmethod
    def _pipeline_ex(step: Mapping[str, Any], completion: Any, preset: str) -> StepResult:
        config = step.get("extraction_config") or {}
        processed = apply_extraction(completion.text, config)
        metadata: dict[str, Any] = {"preset": preset, "extraction_applied": True}
        if config.get("include_metadata"):
            metadata["extraction_metadata"] = {
                "format": config.get("format") or "text",
                "post_processing_applied": list(config.get("post_processing") or []),
                "original_length": len(completion.text),
                "processed_length": len(processed),
                "step_name": step_label(step),
            }
        result = StepResult.of_completion(completion, output=processed, metadata=metadata)
        return result.model_copy(update={"text": processed})


def _extract(step: Mapping[str, Any], text: str) -> tuple[Any, str | None, dict[str, Any]]:
    """(output, None, metadata) or (None, the rule the text broke, {})."""
    kind = step["extract"]
    if kind == "json":
        data = extract_json(text)
        return (data, None, {}) if data is not None else (None, "contains JSON", {})
    if kind == "code":
        language = step.get("language")
        blocks = extract_code_blocks(text, language)
        if not blocks:
            what = f"a {language} code block" if language else "a fenced code block"
            return None, f"contains {what}", {}
        return [b.code for b in blocks], None, {"languages": [b.language for b in blocks]}
    names: list[str] = step["fields"]
    found = extract_fields(text, names)
    missing = [name for name in names if name not in found]
    if missing:
        return None, f"contains the fields {', '.join(missing)}", {}
    return found, None, {}
