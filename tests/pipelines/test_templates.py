"""Templates: rendering paths and expressions, errors naming what is missing, refusing
anything that is neither (filters, blocks, ``__`` names, unknown functions)."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpy.errors import StepValidationError
from otpy.pipelines import RESULT_FIELDS, references, render, render_value, step_record
from otpy.providers import Usage
from otpy.steps import StepResult

SCOPE: dict[str, Any] = {
    "inputs": {"question": "2+2?", "n": 3, "flags": [True, False], "none": None},
    "steps": {
        "search": {
            "output": {"items": [{"title": "first"}, {"title": "second"}], "count": 2},
            "text": "found two",
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
            "provider": "simulated",
        },
        "answer": {"output": "4", "text": "4", "provider": "simulated"},
    },
    "vars": {"topic": "maths"},
}


def fails(template: str, **where: Any) -> str:
    with pytest.raises(StepValidationError) as caught:
        render(template, SCOPE, **where)
    return str(caught.value)


# -- rendering ------------------------------------------------------------------------------


def test_a_single_placeholder_returns_the_value_itself() -> None:
    items = SCOPE["steps"]["search"]["output"]["items"]
    assert render("{{ steps.search.output.items }}", SCOPE) is items
    assert render("{{ inputs.n }}", SCOPE) == 3
    assert render("{{ inputs.none }}", SCOPE) is None
    assert render("{{inputs.question}}", SCOPE) == "2+2?"
    assert render("{{   vars.topic \n }}", SCOPE) == "maths"
    assert render("{{ inputs }}", SCOPE) is SCOPE["inputs"]


def test_paths_read_keys_indexes_and_result_fields() -> None:
    assert render("{{ steps.search.output.items.1.title }}", SCOPE) == "second"
    assert render("{{ steps.search.usage.total_tokens }}", SCOPE) == 12
    assert render("{{ steps.search.provider }}", SCOPE) == "simulated"
    assert render("{{ steps.search.text }}", SCOPE) == "found two"
    numbered = {"inputs": {"table": {"0": "text key", 1: "int key"}}}
    assert render("{{ inputs.table.0 }}", numbered) == "text key"
    assert render("{{ inputs.table.1 }}", numbered) == "int key"
    assert render("{{ inputs.pair.1 }}", {"inputs": {"pair": ("a", "b")}}) == "b"
    assert render("{{ inputs.my-key }}", {"inputs": {"my-key": 1}}) == 1


def test_mixed_text_gets_str_of_each_value_and_json_for_collections() -> None:
    assert (
        render("Q: {{ inputs.question }} n={{ inputs.n }} [{{ inputs.none }}]", SCOPE)
        == "Q: 2+2? n=3 []"  # None enters a text as nothing (pipeline_ex's to_string)
    )
    assert render("flags: {{ inputs.flags }}", SCOPE) == "flags: [true, false]"
    assert render("{{ inputs.flags.0 }}!", SCOPE) == "true!"
    assert render("> {{ steps.search.output.items.0 }}", SCOPE) == '> {"title": "first"}'
    assert render("{{ inputs.n }}{{ inputs.n }}", SCOPE) == "33"
    assert render(" {{ inputs.n }}", SCOPE) == " 3"  # not exactly one placeholder: text


def test_text_without_placeholders_comes_back_as_it_is() -> None:
    text = 'JSON: {"a": {"b": 1}} and }} and { { and {0} {x.__class__}'
    assert render(text, SCOPE) is text
    assert render("", SCOPE) == ""


def test_dotted_step_names_match_longest_first() -> None:
    scope = {"steps": {"a": {"output": "short"}, "a.b": {"output": "long"}}}
    assert render("{{ steps.a.b.output }}", scope) == "long"
    assert render("{{ steps.a.output }}", scope) == "short"


def test_rendered_values_are_never_rendered_again() -> None:
    scope = {"inputs": {"evil": "{{ inputs.secret }}", "secret": "s3cr3t"}}
    assert render("say {{ inputs.evil }}", scope) == "say {{ inputs.secret }}"
    assert render("{{ inputs.evil }}", scope) == "{{ inputs.secret }}"


def test_an_absent_root_is_empty() -> None:
    assert render("{{ vars }}", {}) == {}
    with pytest.raises(StepValidationError, match=r"vars\.x: no variable 'x' \(variables: none\)"):
        render("{{ vars.x }}", {"inputs": {}})


def test_render_value_recurses_and_names_nested_fields() -> None:
    config = {
        "prompt": "{{ inputs.question }}",
        "options": {"stop": ["\n", "{{ vars.topic }}"], "n": "{{ inputs.n }}"},
        "pair": ("{{ inputs.n }}", 1),
        "flag": True,
        7: "{{ inputs.n }}",
    }
    rendered = render_value(config, SCOPE, step="s")
    assert rendered == {
        "prompt": "2+2?",
        "options": {"stop": ["\n", "maths"], "n": 3},
        "pair": (3, 1),
        "flag": True,
        7: 3,
    }
    assert config["options"]["stop"][1] == "{{ vars.topic }}"  # the input is not changed
    bad = {"options": {"stop": ["x", "{{ vars.nope }}"]}}
    with pytest.raises(StepValidationError) as caught:
        render_value(bad, SCOPE, step="answer")
    assert str(caught.value) == (
        "step 'answer', field 'options.stop[1]': vars.nope: no variable 'nope' (variables: topic)"
    )
    assert (caught.value.step, caught.value.field) == ("answer", "options.stop[1]")
    with pytest.raises(StepValidationError, match=r"field 'outer\.inner'"):
        render_value({"inner": "{{ inputs.x }}"}, SCOPE, field="outer")


def test_references_lists_each_path_once_in_order() -> None:
    template = "{{ inputs.q }} {{steps.a.output.0}} {{ inputs.q }} {{ vars.v }}"
    assert references(template) == ["inputs.q", "steps.a.output.0", "vars.v"]
    assert references("no placeholders") == []
    assert references("{{ a + inputs.n * 2 }} {{ length(steps.s.output) }}") == [
        "a",
        "inputs.n",
        "steps.s.output",
    ]
    with pytest.raises(StepValidationError, match=r"step 'x', field 'p': bad template"):
        references("{{ a | b }}", step="x", field="p")


def test_step_record_is_a_plain_mapping_of_the_result_fields() -> None:
    result = StepResult(
        output={"a": 1},
        text="t",
        usage=Usage(input_tokens=2, output_tokens=3),
        provider="p",
        model="m",
        retries=1,
        metadata={"k": "v"},
    )
    record = step_record(result)
    assert tuple(record) == RESULT_FIELDS
    assert record["usage"] == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    scope = {"steps": {"s": record}}
    assert render("{{ steps.s.output.a }} {{ steps.s.usage.total_tokens }}", scope) == "1 5"


# -- missing names ----------------------------------------------------------------------------


def test_missing_names_say_the_step_field_name_and_what_exists() -> None:
    assert fails("{{ steps.answr.output }}", step="final", field="prompt") == (
        "step 'final', field 'prompt': steps.answr: no result of a step 'answr' "
        "(steps so far: search, answer)"
    )
    assert fails("Q: {{ inputs.questoin }}", step="a", field="prompt") == (
        "step 'a', field 'prompt': inputs.questoin: no input 'questoin' "
        "(inputs: question, n, flags, none)"
    )
    assert fails("{{ vars.topik }}") == "vars.topik: no variable 'topik' (variables: topic)"
    assert fails("{{ steps.answer.outptu }}") == (
        "steps.answer.outptu: no field 'outptu' in step 'answer''s result (record fields: "
        "output, text, usage, provider, model, retries, metadata, result; output: text)"
    )
    assert fails("{{ steps.search.output.itemz }}") == (
        "steps.search.output.itemz: no key 'itemz' (keys: items, count)"
    )
    assert fails("{{ steps.search.output.items.2 }}") == (
        "steps.search.output.items.2: not in a list of 2 (indexes 0..1)"
    )
    assert fails("{{ steps.answer.output.value }}") == (
        "steps.answer.output.value: the text holds no JSON with that key"
    )
    assert fails("{{ inputs.none.x }}") == (
        "inputs.none.x: the value there is None, not a mapping or a list"
    )
    assert fails("{{ nothing }}") == (
        "nothing: no step, variable, input or global var named 'nothing' (variables: topic; "
        "inputs: question, n, flags, none; steps: search, answer)"
    )
    with pytest.raises(StepValidationError, match=r"not in a list of 0 \(it is empty\)"):
        render("{{ inputs.l.x }}", {"inputs": {"l": []}})


def test_pipeline_ex_roots_and_bare_names() -> None:
    scope = {
        **SCOPE,
        "vars": {"count": 2, "pipeline_request": "make a pipeline"},
        "loop": {"item": "a.py", "index": 0, "parent": {"item": "src", "index": 3}},
        "global_vars": {"api": "v2"},
        "workflow": {"name": "wf", "variables": {"declared": 1}},
        "previous": "search",
        "status": {"search": "ok", "answer": "skipped"},
        "builtins": {"timestamp": "20250101_000000"},
    }
    assert render("{{ state.count + 1 }}", scope) == 3
    assert render("{{ pipeline_request }}", scope) == "make a pipeline"
    assert render("{{ loop.item }} {{ loop.parent.item }}#{{ loop.parent.index }}", scope) == (
        "a.py src#3"
    )
    assert render("{{ global_vars.api }} {{ workflow.name }}", scope) == "v2 wf"
    assert render("{{ variables.declared }} {{ timestamp }}", scope) == "1 20250101_000000"
    assert render("{{ previous_response.count }}", scope) == 2
    assert render("{{ previous_response:search.items.1.title }}", scope) == "second"
    assert render("{{ steps.search.result.count }} {{ steps.search.count }}", scope) == "2 2"
    assert render("{{ steps.search.success }} {{ steps.answer.skipped }}", scope) == "true true"
    assert render("{{ search.count }}", scope) == 2  # a bare step name
    assert render("{{ steps.answer.result }}", scope) == "4"
    json_answer = {"steps": {"review": {"output": '```json\n{"score": 8}\n```'}}}
    assert render("{{ steps.review.score }}", json_answer) == 8  # a key of the JSON answer
    answers = {"steps": {"c": {"output": "said"}, "j": {"output": '{"content": "kept"}'}}}
    for path in ("c.content", "c.result.text", "c.result.content"):  # pipeline_ex's maps
        assert render(f"{{{{ steps.{path} }}}}", answers) == "said", path
    assert render("{{ steps.j.content }} {{ steps.j.result.content }}", answers) == "kept kept"
    assert "no field 'contents'" in fails_with(answers, "{{ steps.c.contents }}")
    assert render("{{ length(steps.search.output.items) }}", scope) == 2
    assert render("{{ steps.search.output.items.length }}", scope) == 2


def test_long_key_lists_are_cut() -> None:
    scope = {"inputs": {f"k{i:02}": i for i in range(25)}}
    message = fails_with(scope, "{{ inputs.x }}")
    assert message.endswith("k18, k19, ... (5 more))")


# -- refusing what is neither a path nor an expression ---------------------------------------


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ inputs.question | upper }}", "filters ('|') are not allowed"),
        ("{{ inputs.n if inputs.n else 0 }}", "expected an operator or the end of the expression"),
        ("{{ range(10) }}", "unknown function range()"),
        ("{{ ''.join }}", "expected an operator or the end of the expression"),
        ("{{ __class__ }}", "names starting with '__' are not allowed ('__class__')"),
        ("{{ inputs.__class__ }}", "names starting with '__' are not allowed ('inputs.__class__')"),
        ("{{ inputs..n }}", "expected a name or an index after '.'"),
        ("{{ inputs.n. }}", "expected a name or an index after '.'"),
        ("{{ inputs.-1 }}", "expected a name or an index after '.'"),
        ("{{ @ }}", "'@' is only the current item inside any/all/count/filter conditions"),
        ("{{  }}", "an empty placeholder"),
    ],
)
def test_anything_but_a_path_or_an_expression_is_refused_naming_what(
    template: str, why: str
) -> None:
    message = fails(f"before {template} after", step="s", field="prompt")
    assert message.startswith(f"step 's', field 'prompt': bad template: {template!r}: ")
    assert why in message
    assert message.endswith(
        "; a placeholder is a path such as {{ inputs.question }} or "
        "{{ steps.answer.output.title }}, or an expression such as {{ state.count + 1 }}"
    )


def test_expressions_compute_from_looked_up_values() -> None:
    assert render("{{ inputs.n + 1 }}", SCOPE) == 4
    assert render("{{ inputs.n * 2 - 1 }} {{ inputs.flags[0] }}", SCOPE) == "5 true"
    assert render('{{ "x" }}', SCOPE) == "x"
    assert render("{{ inputs.n > 2 ? 'big' : 'small' }}", SCOPE) == "big"
    with pytest.raises(StepValidationError, match="cannot evaluate cannot apply '-'"):
        render("{{ inputs.question - 1 }}", SCOPE)


def test_blocks_and_unclosed_placeholders_are_refused() -> None:
    assert fails("{% if inputs.n %}yes{% endif %}") == (
        "bad template: '{%' blocks are not allowed: templates look values up, with "
        "placeholders such as {{ inputs.question }} or {{ steps.answer.output.title }}"
    )
    assert fails("a {{ inputs.n") == "bad template: '{{' at offset 2 is never closed with '}}'"
    assert fails("{{ inputs.n {{ inputs.n }}") == (
        "bad template: '{{' at offset 0 is never closed with '}}' before the next '{{'"
    )
    assert fails("{{ inputs.n }} {%- raw %}").startswith("bad template: '{%' blocks")


def test_a_template_must_be_a_string() -> None:
    with pytest.raises(StepValidationError, match="step 's', field 'f': a template must be a str"):
        render(3, SCOPE, step="s", field="f")  # type: ignore[arg-type]


class Trap:
    """An object whose every attribute access is recorded: templates must never touch it."""

    touched: list[str] = []  # noqa: RUF012 - shared on purpose

    def __getattribute__(self, name: str) -> Any:
        Trap.touched.append(name)
        return object.__getattribute__(self, name)

    def __getitem__(self, key: Any) -> Any:
        Trap.touched.append(f"[{key}]")
        raise AssertionError("a template indexed an object")


def test_python_objects_are_never_looked_into() -> None:
    Trap.touched.clear()
    scope = {"inputs": {"obj": Trap()}}
    for name in ("secret", "__class__", "__dict__", "0"):
        with pytest.raises(StepValidationError):
            render(f"{{{{ inputs.obj.{name} }}}}", scope)
    message = fails_with(scope, "{{ inputs.obj.secret }}")
    assert message == "inputs.obj.secret: the value there is a Trap, not a mapping or a list"
    assert [name for name in Trap.touched if name != "__class__"] == []


def fails_with(scope: dict[str, Any], template: str) -> str:
    with pytest.raises(StepValidationError) as caught:
        render(template, scope)
    return str(caught.value)


# -- properties -------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True).filter(
    lambda name: not name.startswith("__")
)
LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
TREES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def paths_into(draw: st.DrawFn) -> tuple[dict[str, Any], str, Any]:
    """A scope, a path into it, and the object at that path."""
    root = draw(st.sampled_from(["inputs", "vars"]))
    top = draw(st.dictionaries(NAMES, TREES, min_size=1, max_size=4))
    name = draw(st.sampled_from(sorted(top)))
    value = top[name]
    segments = [root, name]
    while draw(st.booleans()):
        if isinstance(value, dict) and value:
            key = draw(st.sampled_from(sorted(value)))
        elif isinstance(value, list) and value:
            key = draw(st.integers(0, len(value) - 1))
        else:
            break
        segments.append(str(key))
        value = value[key]
    return {root: top}, ".".join(segments), value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths_into(), st.text(alphabet=" \t", max_size=2), st.text(alphabet=" \n", max_size=2))
def test_a_single_placeholder_round_trips_the_exact_object(
    case: tuple[dict[str, Any], str, Any], left: str, right: str
) -> None:
    scope, path, value = case
    assert render("{{" + left + path + right + "}}", scope) is value
    assert references("{{ " + path + " }}") == [path]


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda text: "{{" not in text and "{%" not in text))
def test_text_without_placeholders_renders_unchanged(text: str) -> None:
    assert render(text, SCOPE) == text
    assert render_value([text, {"k": text}], SCOPE) == [text, {"k": text}]


PLACEHOLDER_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "_.-+*/()[]|'\" %<>=!,:~^&@ ", max_size=30
)


@settings(max_examples=300, deadline=None)
@given(PLACEHOLDER_TEXT)
def test_whatever_is_inside_a_placeholder_is_never_evaluated_by_python(inner: str) -> None:
    """A path or an expression of the grammar is looked up; anything else is refused; no
    object is ever looked into."""
    Trap.touched.clear()
    scope = {"inputs": {"x": Trap()}, "steps": {}, "vars": {}}
    try:
        render("{{" + inner + "}}", scope)
    except StepValidationError as error:
        if is_a_path(inner.strip()):
            assert "bad template" not in str(error), (inner, str(error))
    assert [name for name in Trap.touched if name != "__class__"] == []


def is_a_path(text: str) -> bool:
    """The path grammar, restated independently of the implementation."""
    segment = r"([A-Za-z_][A-Za-z0-9_\-]*|[0-9]+)"
    if re.fullmatch(rf"(inputs|steps|vars)(\.{segment})*", text) is None:
        return False
    return not any(part.startswith("__") for part in text.split("."))
