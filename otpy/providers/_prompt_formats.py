"""DSPy adapter prompts, read and answered in the adapter's own format (for offline runs).

DSPy (3.4) asks a model for the output fields of a signature in one of three shapes, and
the last user turn of its request always ends with the adapter's reminder of them:

- ChatAdapter: ``[[ ## name ## ]]`` sections, ending with ``[[ ## completed ## ]]``
  (``Respond with the corresponding output fields, starting with the field `[[ ## a ## ]]`,
  then ...``);
- JSONAdapter: one JSON object (``Respond with a JSON object in the following order of
  fields: `a`, then `b` ...``);
- XMLAdapter: ``<name>...</name>`` elements (``Respond with the corresponding output fields
  wrapped in XML tags `<a>`, then `<b>`.``), nested ones following the skeleton it shows.

:func:`read_structured_prompt` recognises those reminders and reads the rest from the
system prompt DSPy writes: the input and output fields (``1. `name` (type): ...``), each
output's constraint (``# note: the value you produce must ...``: a bool, an int or float,
one of some choices, a JSON Schema) and the objective; and the values of the main request's
input fields from the last user turn. :func:`answer_structured` fills every output field
(a configured value, else a value drawn from ``rng`` that parses as the field's type) and
writes them in the adapter's format. Pure functions; nothing here imports DSPy.
"""

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from otpy.providers._schema_sample import sample_instance

__all__ = [
    "FieldValues",
    "OutputField",
    "StructuredPrompt",
    "answer_structured",
    "read_structured_prompt",
]

Adapter: TypeAlias = Literal["chat", "json", "xml"]

_CHAT_REMINDER = re.compile(
    r"Respond with the corresponding output fields, starting with the field (.*?), and then "
    r"ending with the marker for `\[\[ ## completed ## \]\]`\.",
    re.S,
)
_JSON_REMINDER = re.compile(r"Respond with a JSON object in the following order of fields: (.*)")
_XML_REMINDER = re.compile(
    r"Respond with the corresponding output fields wrapped in XML tags (.*?)\."
    r"(?: Use this nested XML structure: (.*))?$",
    re.S,
)
_CHAT_NAME = re.compile(r"`\[\[ ## (\w+) ## \]\]`")
_JSON_NAME = re.compile(r"(?:^|, then )`(\w+)`")
_XML_NAME = re.compile(r"`<(\w+)>`")
_LISTED = re.compile(r"^\s*\d+\. `(\w+)` \((.*?)\):", re.M)
_NOTE = "        # note: the value you produce "
_OBJECTIVE = "In adhering to this structure, your objective is: "


@dataclass(frozen=True)
class OutputField:
    """One output field asked for: its ``name``, the ``type`` as the prompt names it
    (``str``, ``int``, ``Literal['a', 'b']``, ...), and the constraint its note gives:
    ``kind`` (``text``, ``bool``, ``int``, ``float``, ``choice``, ``schema``), the
    ``choices`` or the JSON ``schema``; ``xml`` is the nested XML skeleton an XMLAdapter
    shows for it, if any."""

    name: str
    type: str = "str"
    kind: str = "text"
    choices: tuple[str, ...] = ()
    schema: Any = None
    xml: str | None = None


@dataclass(frozen=True)
class StructuredPrompt:
    """A DSPy adapter prompt as read: the ``adapter`` (chat, json or xml), the
    ``instructions`` (the signature's objective), the main request's ``inputs`` (name to
    text) and the ``outputs`` asked for, in order."""

    adapter: Adapter
    instructions: str
    inputs: Mapping[str, str]
    outputs: tuple[OutputField, ...]
    input_names: tuple[str, ...] = field(default=())


FieldValues: TypeAlias = Mapping[str, Any]
"""Configured output values by field name: a value (used as is), or a callable of the
:class:`StructuredPrompt` returning the value."""


def read_structured_prompt(system: str | None, prompt: str) -> StructuredPrompt | None:
    """The DSPy adapter prompt made of ``system`` and the last user turn ``prompt``, or
    None when ``prompt`` ends with no adapter's reminder of the output fields."""
    if "Respond with" not in prompt:
        return None
    read = _reminder(prompt)
    if read is None:
        return None
    adapter, names, skeleton, body = read
    system = system or ""
    listed = _listed(system)
    input_names = tuple(n for n in listed.get("inputs", {}) if n not in names)
    outputs = tuple(_output(name, system, adapter, listed, skeleton) for name in names)
    inputs = _inputs(body, input_names, adapter)
    return StructuredPrompt(adapter, _instructions(system), inputs, outputs, input_names)


def answer_structured(
    prompt: StructuredPrompt, rng: random.Random, values: FieldValues | None = None
) -> str:
    """An answer to ``prompt`` in its adapter's format with every output field filled: the
    configured value from ``values`` (a callable is called with the prompt), else one drawn
    from ``rng`` that parses as the field's type. Raises UnsupportedSchema for a field
    whose JSON Schema cannot be sampled."""
    filled: dict[str, Any] = {}
    for output in prompt.outputs:
        if values is not None and output.name in values:
            chosen = values[output.name]
            filled[output.name] = chosen(prompt) if callable(chosen) else chosen
        else:
            filled[output.name] = _draw(output, rng)
    if prompt.adapter == "json":
        return json.dumps(filled, ensure_ascii=False, indent=2)
    if prompt.adapter == "xml":
        return "\n\n".join(_xml(output, filled[output.name], rng) for output in prompt.outputs)
    sections = [f"[[ ## {name} ## ]]\n{_text(value)}" for name, value in filled.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


# -- reading ---------------------------------------------------------------------------------


def _reminder(prompt: str) -> tuple[Adapter, list[str], str | None, str] | None:
    """(adapter, output names, XML skeleton, the turn before the reminder) or None."""
    found = _CHAT_REMINDER.search(prompt)
    if found is not None:
        names = _CHAT_NAME.findall(found.group(1))
        return ("chat", names, None, prompt[: found.start()]) if names else None
    found = _JSON_REMINDER.search(prompt)
    if found is not None:
        names = _JSON_NAME.findall(found.group(1))
        return ("json", names, None, prompt[: found.start()]) if names else None
    found = _XML_REMINDER.search(prompt)
    if found is not None:
        names = _XML_NAME.findall(found.group(1))
        return ("xml", names, found.group(2), prompt[: found.start()]) if names else None
    return None


def _listed(system: str) -> dict[str, dict[str, str]]:
    """The fields the system prompt lists, by section ("inputs", "outputs"): name to the
    type as written."""
    inputs_at = system.find("Your input fields are:")
    outputs_at = system.find("Your output fields are:")
    sections: dict[str, dict[str, str]] = {}
    if inputs_at >= 0:
        end = outputs_at if outputs_at > inputs_at else len(system)
        sections["inputs"] = dict(_LISTED.findall(system[inputs_at:end]))
    if outputs_at >= 0:
        end = system.find("All interactions will be structured", outputs_at)
        sections["outputs"] = dict(_LISTED.findall(system[outputs_at : end if end > 0 else None]))
    return sections


def _output(
    name: str,
    system: str,
    adapter: Adapter,
    listed: Mapping[str, Mapping[str, str]],
    skeleton: str | None,
) -> OutputField:
    type_name = listed.get("outputs", {}).get(name, "str")
    note = _note(name, system, adapter)
    xml = _skeleton(name, skeleton) if adapter == "xml" else None
    if note is None:
        return OutputField(name, type_name, xml=xml)
    if note == "must be True or False":
        return OutputField(name, type_name, "bool")
    if note in ("must be a single int value", "must be a single float value"):
        return OutputField(name, type_name, note.split()[-2])
    for lead in ("must exactly match (no extra characters) one of: ", "must be one of: "):
        if note.startswith(lead):
            return OutputField(name, type_name, "choice", tuple(note[len(lead) :].split("; ")))
    lead = "must adhere to the JSON schema: "
    if note.startswith(lead):
        try:
            schema = json.loads(note[len(lead) :])
        except ValueError:
            schema = None
        if schema is not None:
            return OutputField(name, type_name, "schema", schema=schema, xml=xml)
    return OutputField(name, type_name, xml=xml)


def _note(name: str, system: str, adapter: Adapter) -> str | None:
    """What the structure section says the value of ``name`` must be, or None."""
    marker = "{" + name + "}" + _NOTE
    if adapter == "json":
        found = re.search(rf'^\s*"{name}": ("(?:[^"\\]|\\.)*")', system, re.M)
        if found is None:
            return None
        try:
            line = json.loads(found.group(1))
        except ValueError:
            return None
        return line[len(marker) :] if isinstance(line, str) and line.startswith(marker) else None
    at = system.find(marker)
    if at < 0:
        return None
    end = system.find("\n", at)
    return system[at + len(marker) : end if end >= 0 else None].strip()


def _skeleton(name: str, nested: str | None) -> str | None:
    if nested is None:
        return None
    found = re.search(rf"<{name}>.*?</{name}>", nested, re.S)
    return found.group(0) if found is not None else None


def _inputs(body: str, names: tuple[str, ...], adapter: Adapter) -> dict[str, str]:
    """The text of each input field in the main request's turn."""
    values: dict[str, str] = {}
    if adapter == "xml":
        for name in names:
            found = re.search(rf"<{name}>\n?(.*?)\n?</{name}>", body, re.S)
            if found is not None:
                values[name] = found.group(1).strip()
        return values
    headers = [
        (found.start(), found.end(), found.group(1))
        for found in re.finditer(r"^\[\[ ## (\w+) ## \]\]$", body, re.M)
        if found.group(1) in names
    ]
    for index, (_, end, name) in enumerate(headers):
        stop = headers[index + 1][0] if index + 1 < len(headers) else len(body)
        values.setdefault(name, body[end:stop].strip())
    return values


def _instructions(system: str) -> str:
    at = system.rfind(_OBJECTIVE)
    if at < 0:
        return ""
    return textwrap.dedent(system[at + len(_OBJECTIVE) :].strip("\n")).strip()


# -- answering -------------------------------------------------------------------------------


def _draw(output: OutputField, rng: random.Random) -> Any:
    """A value for ``output`` that DSPy parses as its type."""
    if output.kind == "choice" and output.choices:
        return rng.choice(output.choices)
    if output.kind == "bool":
        return rng.random() < 0.5
    if output.kind == "int":
        return rng.randint(0, 100)
    if output.kind == "float":
        return round(rng.uniform(0.0, 100.0), 2)
    if output.kind == "schema":
        return sample_instance(output.schema, rng)
    return f"Simulated {output.name} [{rng.getrandbits(32):08x}]"


def _text(value: Any) -> str:
    """A value as DSPy's field text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _xml(output: OutputField, value: Any, rng: random.Random) -> str:
    name = output.name
    if output.xml is not None and isinstance(value, dict | list):
        return _xml_value(name, value)
    if output.xml == f"<{name}>...</{name}>" and output.type.startswith("dict"):
        return f"<{name}></{name}>"  # a mapping of unknown keys: the empty one
    if output.xml is not None:
        return _xml_skeleton(output.xml, rng)
    return f"<{name}>\n{_escape(_text(value))}\n</{name}>"


def _xml_value(tag: str, value: Any) -> str:
    if isinstance(value, list):
        return f"<{tag}>" + "".join(_xml_value("item", item) for item in value) + f"</{tag}>"
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(_xml_value(str(k), v) for k, v in value.items()) + f"</{tag}>"
    return f"<{tag}>{_escape(_text(value))}</{tag}>"


def _xml_skeleton(skeleton: str, rng: random.Random) -> str:
    """The XMLAdapter's nested skeleton with every ``...`` filled with a number (text that
    parses as a string, an int or a float alike)."""
    return re.sub(r"\.\.\.", lambda _: str(rng.randint(1, 9)), skeleton)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
