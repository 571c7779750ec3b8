"""pipeline_ex's ``extraction_config`` of ``claude_extract``: a format applied to the answer,
then post-processing steps, each adding a section (pure functions on text).

- ``format``: ``text`` (as it is, the default), ``json`` (the JSON in the answer, else
  ``{"content": text, "format": "json"}``), ``structured`` (under an ``## Extracted
  Content`` heading unless it has ``##`` headings), ``summary`` (cut to
  ``max_summary_length``, default 500, with ``...``), ``markdown`` (under ``# Extracted
  Content`` unless it has a heading);
- ``post_processing``: ``extract_code_blocks``, ``extract_recommendations`` (lines that
  recommend or suggest), ``extract_links``, ``extract_key_points`` (bullets and numbered
  lines), ``format_markdown``, ``generate_summary`` (the first three sentences).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["FORMATS", "POST_PROCESSING", "apply_extraction"]

FORMATS: Final = ("text", "json", "structured", "summary", "markdown")
_FENCED: Final = re.compile(r"```[\s\S]*?```")
_LINK: Final = re.compile(r"https?://[^\s)>\]]+")
_NUMBERED: Final = re.compile(r"^\d+\.")


def _section(title: str, lines: list[str]) -> str:
    return f"\n\n## {title}\n" + "\n".join(lines) if lines else ""


def _code_blocks(text: str) -> str:
    return _section("Code Blocks Extracted", _FENCED.findall(text))


def _recommendations(text: str) -> str:
    lines = [line for line in text.splitlines() if "recommend" in line or "suggest" in line]
    return _section("Recommendations Extracted", lines)


def _links(text: str) -> str:
    return _section("Links Extracted", [f"- {link}" for link in _LINK.findall(text)])


def _key_points(text: str) -> str:
    lines = [
        line for line in text.splitlines()
        if line.startswith(("- ", "* ")) or _NUMBERED.match(line)
    ]  # fmt: skip
    return _section("Key Points Extracted", lines)


def _summary(text: str) -> str:
    return _section("Generated Summary", [". ".join(text.split(". ")[:3])[:200] + "..."])


POST_PROCESSING: Final[dict[str, Callable[[str], str]]] = {
    "extract_code_blocks": _code_blocks,
    "extract_recommendations": _recommendations,
    "extract_links": _links,
    "extract_key_points": _key_points,
    "generate_summary": _summary,
    "format_markdown": lambda text: "" if "#" in text else "\0markdown",
}
"""Post-processing step -> what it adds to the text."""


def _format(text: str, fmt: str, config: Mapping[str, Any]) -> str:
    if fmt == "json":
        try:
            json.loads(text)
            return text
        except ValueError:
            return json.dumps({"content": text, "format": "json"}, ensure_ascii=False)
    if fmt == "structured":
        return text if "##" in text else f"## Extracted Content\n\n{text}"
    if fmt == "summary":
        limit = config.get("max_summary_length") or 500
        return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
    if fmt == "markdown":
        return text if "#" in text else f"# Extracted Content\n\n{text}"
    return text


def apply_extraction(text: str, config: Mapping[str, Any]) -> str:
    """``text`` through the ``format`` and the ``post_processing`` of ``config`` (an
    ``extraction_config``); unknown names were refused when the step was validated."""
    result = _format(text, str(config.get("format") or "text"), config)
    for name in config.get("post_processing") or []:
        added = POST_PROCESSING[name](result)
        result = f"# Content\n\n{result}" if added == "\0markdown" else result + added
    return result
