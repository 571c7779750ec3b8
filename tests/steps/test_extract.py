"""claude_extract: the pure extraction functions (examples and properties) and the step."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from gateways import Gateway
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy.errors import InvalidValueError
from otpy.providers import SimulatedProvider
from otpy.steps.llm import (
    ClaudeExtractStep,
    CodeBlock,
    extract_code_blocks,
    extract_fields,
    extract_json,
)

# -- extract_json --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("[1, 2, 3]", [1, 2, 3]),
        ('Sure: {"a": {"b": [1, {"c": null}]}} Hope it helps.', {"a": {"b": [1, {"c": None}]}}),
        ('first {"x": 1} then {"y": 2}', {"x": 1}),
        ("see [note] and {broken: json} then [1, 2]", [1, 2]),
        ('braces in strings: {"s": "}{]["}', {"s": "}{]["}),
        ('```json\n{"fenced": true}\n```', {"fenced": True}),
        ('A list [1] first, then\n```json\n{"preferred": 1}\n```', {"preferred": 1}),
        ('```\n{"unlabelled": 1}\n```', {"unlabelled": 1}),
        ('```python\nx = {"a": 1}\n```', {"a": 1}),  # no json fence: the scan finds it
        ('```json\n{"truncated": [1, 2', None),
        ("no json here", None),
        ("", None),
        ('"just a string"', None),
        ("42", None),
        ("[" * 5000, None),
        ("{" * 100000, None),
    ],
)  # fmt: skip
def test_extract_json_examples(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
containers = st.one_of(
    st.dictionaries(st.text(), json_values, max_size=5), st.lists(json_values, max_size=5)
)
# Noise with no JSON of its own: no brackets, no fences.
noise = st.text(alphabet=st.characters(blacklist_characters="{[`~"), max_size=200)
any_noise = st.text(max_size=200)


@settings(max_examples=300, deadline=None)
@given(containers, noise, any_noise, st.sampled_from([0, 2, 4, None]))
def test_json_embedded_in_noise_is_found(
    value: Any, before: str, after: str, indent: int | None
) -> None:
    text = before + json.dumps(value, indent=indent) + after
    assert extract_json(text) == value


@settings(max_examples=200, deadline=None)
@given(containers, any_noise, any_noise)
def test_fenced_json_wins_over_anything_around_it(value: Any, before: str, after: str) -> None:
    text = f"{before.replace('`', '')}\n```json\n{json.dumps(value)}\n```\n{after}"
    assert extract_json(text) == value


@settings(max_examples=300, deadline=None)
@given(any_noise)
def test_extract_json_never_raises_and_finds_only_containers(text: str) -> None:
    found = extract_json(text)
    assert found is None or isinstance(found, dict | list)


# -- extract_code_blocks -------------------------------------------------------------------

ANSWER = """Here is the fix:

```python
def add(a, b):
    return a + b
```

And a test:

```py
assert add(1, 2) == 3
```

Run it with:

~~~bash
pytest -q
~~~

````markdown
```inner
nested fence
```
````
"""


def test_code_blocks_in_order_with_languages() -> None:
    blocks = extract_code_blocks(ANSWER)
    assert [b.language for b in blocks] == ["python", "python", "bash", "markdown"]
    assert blocks[0] == CodeBlock("python", "def add(a, b):\n    return a + b")
    assert blocks[3].code == "```inner\nnested fence\n```"


def test_code_blocks_filtered_by_language_and_alias() -> None:
    assert [b.code for b in extract_code_blocks(ANSWER, "Python")] == [
        "def add(a, b):\n    return a + b",
        "assert add(1, 2) == 3",
    ]
    assert [b.code for b in extract_code_blocks(ANSWER, "sh")] == ["pytest -q"]
    assert extract_code_blocks(ANSWER, "rust") == []


def test_unclosed_fence_runs_to_the_end_and_inline_backticks_are_not_fences() -> None:
    assert extract_code_blocks("text\n```js\nlet x = 1;\nlet y") == [
        CodeBlock("javascript", "let x = 1;\nlet y")
    ]
    assert extract_code_blocks("use ```x``` inline") == []
    assert extract_code_blocks("```\n```") == [CodeBlock("", "")]
    assert extract_code_blocks("no code") == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["python", "json", "", "bash"]),
            st.text(alphabet=string.ascii_letters + string.digits + " =()\n", max_size=60),
        ),
        max_size=4,
    ),
    st.text(alphabet=string.ascii_letters + " .,\n", max_size=40),
)
def test_code_blocks_round_trip(blocks: list[tuple[str, str]], prose: str) -> None:
    text = prose + "".join(f"\n```{lang}\n{code}\n```\n{prose}" for lang, code in blocks)
    assert extract_code_blocks(text) == [CodeBlock(lang, code) for lang, code in blocks]


# -- extract_fields ------------------------------------------------------------------------


def test_fields_from_lines_with_markdown_and_types() -> None:
    text = """Review summary
- **Score**: 8
* verdict = "approve"
Reason: clear code, good tests
1. risk: low
Ignored: true
"""
    assert extract_fields(text, ["score", "Verdict", "reason", "risk", "missing"]) == {
        "score": 8,
        "Verdict": "approve",
        "reason": "clear code, good tests",
        "risk": "low",
    }


def test_fields_from_a_json_object_first_then_lines() -> None:
    text = 'Result: {"score": 9, "tags": ["a"]}\nverdict: reject\nscore: 1'
    assert extract_fields(text, ["score", "tags", "verdict"]) == {
        "score": 9,
        "tags": ["a"],
        "verdict": "reject",
    }
    assert extract_fields("**Name:** Ada\nname: Bob", ["name"]) == {"name": "Ada"}
    assert extract_fields("", ["a"]) == {}


words = (
    st.text(alphabet=string.ascii_letters + " ", max_size=20)
    .map(str.strip)
    .filter(lambda w: w not in ("true", "false", "null"))
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8),
        st.integers() | words,
        min_size=1,
        max_size=5,
    ),
    st.sampled_from([": ", " = ", ":", "="]),
)
def test_fields_round_trip_from_lines(values: dict[str, Any], separator: str) -> None:
    text = "\n".join(f"{name}{separator}{value}" for name, value in values.items())
    found = extract_fields(text, list(values))
    assert found == values


def test_field_values_that_are_json_are_decoded() -> None:
    text = 'a: true\nb: null\nc: "7"\nd: [1, 2]\ne: NaN\nf: Infinity\ng: 2.5'
    assert extract_fields(text, list("abcdefg")) == {
        "a": True, "b": None, "c": "7", "d": [1, 2], "e": "NaN", "f": "Infinity", "g": 2.5,
    }  # fmt: skip


# -- the step ------------------------------------------------------------------------------


def run(config: dict[str, Any], gateway: Gateway | None = None) -> Any:
    gateway = gateway or Gateway()
    checked = ClaudeExtractStep.validate({"name": "pull", "type": "claude_extract", **config})
    return ClaudeExtractStep().execute(checked, gateway.context())


def test_step_extracts_from_text_without_a_call() -> None:
    gateway = Gateway()
    result = run({"text": 'x {"a": 1}', "extract": "json"}, gateway)
    assert result.output == {"a": 1}
    assert result.metadata == {"extract": "json", "source": "text"}
    assert gateway.calls == [] and result.usage.total_tokens == 0


def test_step_asks_the_provider_then_extracts() -> None:
    sim = SimulatedProvider(
        "sim", responses={"code": "```py\nprint(1)\n```\n```sql\nselect 1\n```"}
    )
    result = run({"prompt": "write code", "extract": "code", "language": "python"}, Gateway(sim))
    assert result.output == ["print(1)"]
    assert result.metadata == {"extract": "code", "source": "prompt", "languages": ["python"]}
    assert result.provider == "sim" and result.usage.total_tokens > 0
    fields = run({"text": "a: 1\nb = two", "extract": "fields", "fields": ["a", "b"]})
    assert fields.output == {"a": 1, "b": "two"}


@pytest.mark.parametrize(
    ("config", "rule"),
    [
        ({"text": "nothing structured", "extract": "json"}, "contains JSON"),
        ({"text": "no code", "extract": "code"}, "contains a fenced code block"),
        (
            {"text": "```js\nx\n```", "extract": "code", "language": "python"},
            "contains a python code block",
        ),
        ({"text": "a: 1", "extract": "fields", "fields": ["a", "b"]}, "contains the fields b"),
    ],
)  # fmt: skip
def test_missing_content_raises_invalid_value_naming_the_step(
    config: dict[str, Any], rule: str
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        run(config)
    error = caught.value
    assert (error.variable, error.rule) == ("pull", rule)
    assert error.value == config["text"]


def test_the_excerpt_of_a_long_text_is_short() -> None:
    with pytest.raises(InvalidValueError) as caught:
        run({"text": "x" * 10_000, "extract": "json"})
    assert len(caught.value.value) == 200 and caught.value.value.endswith("...")
