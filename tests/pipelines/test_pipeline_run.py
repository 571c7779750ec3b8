"""The pipeline executor's semantics, through ``rt.run_pipeline`` and ``run_plan``: checks
before anything runs, templates between steps, ``when``, ``on_error`` and fallbacks, the
PipelineResult, progress events, nesting and the ``pipeline`` step type."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from pipeline_steps import EXECUTED, add_provider, executed, start
from provider_plugins import ScriptedProvider

from otpy import Runtime
from otpy.errors import (
    AuthenticationError,
    ConfigurationError,
    PipelineError,
    ServerError,
    StepValidationError,
    UnknownStepError,
)
from otpy.pipelines import MAX_DEPTH, PipelineStepType, RunProgress, StepEvent, run_plan
from otpy.steps import StepContext
from otpy.testing import FakeClock

POSITION = re.compile(r"<text>:\d+:\d+")
ASK_CONTINUE = "name: ask\nsteps:\n  - {name: ask, type: claude, prompt: hi, on_error: continue}\n"


def statuses(result: Any) -> list[str]:
    return [outcome.status for outcome in result.steps]


# -- 1. everything is checked before anything runs ---------------------------------------------


def test_an_unknown_step_type_names_the_step_the_closest_match_and_the_position(
    rt: Runtime, p: ScriptedProvider
) -> None:
    text = """\
name: typo
steps:
  - name: first
    type: claude
    prompt: hi
  - name: second
    type: claud
    prompt: again
"""
    with pytest.raises(UnknownStepError) as caught:
        rt.run_pipeline(text)
    message = str(caught.value)
    assert "step 'second'" in message and "unknown step type 'claud'" in message
    assert caught.value.suggestion == "claude" and "did you mean 'claude'?" in message
    assert "<text>:7:5" in message  # the `type:` of the second step
    assert p.calls == 0


def test_a_missing_required_field_and_a_field_of_the_wrong_type_are_refused(
    rt: Runtime, p: ScriptedProvider
) -> None:
    missing = (
        "name: m\nsteps:\n  - {name: first, type: claude, prompt: hi}\n"
        "  - {name: ask, type: claude}\n"
    )
    with pytest.raises(StepValidationError) as caught:
        rt.run_pipeline(missing)
    assert (caught.value.step, caught.value.field) == ("ask", "prompt")
    assert "is required" in str(caught.value) and POSITION.search(str(caught.value))
    wrong = """\
name: m
steps:
  - name: first
    type: claude
    prompt: hi
  - name: ask
    type: claude
    prompt: hi
    temperature: hot
"""
    with pytest.raises(StepValidationError) as caught:
        rt.run_pipeline(wrong)
    assert (caught.value.step, caught.value.field) == ("ask", "temperature")
    assert "'hot'" in str(caught.value) and "<text>:9:5" in str(caught.value)
    assert p.calls == 0


INPUT_FIELD = """\
name: n
inputs: {n: {type: any}}
steps:
  - {name: first, type: const, value: 1}
  - {name: ask, type: claude, prompt: hi, max_tokens: "{{ inputs.n }}"}
"""


def test_a_field_the_inputs_make_invalid_is_refused_before_the_first_step(
    rt: Runtime, p: ScriptedProvider
) -> None:
    with pytest.raises(StepValidationError) as caught:
        rt.run_pipeline(INPUT_FIELD, {"n": "x"})
    assert (caught.value.step, caught.value.field) == ("ask", "max_tokens")
    assert "'x'" in str(caught.value)
    assert EXECUTED == [] and p.calls == 0  # not even the first step ran
    result = rt.run_pipeline(INPUT_FIELD, {"n": 7})
    assert result.ok and p.requests[0].max_tokens == 7


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"q": "hi", "qq": 1}, "unknown input 'qq'; did you mean 'q'?"),
        ({}, "input 'q' (string) is required"),
        ({"q": 3}, "input 'q' must be a string, got int 3"),
    ],
)
def test_bad_inputs_are_refused_before_the_first_step(
    rt: Runtime, p: ScriptedProvider, inputs: dict[str, Any], expected: str
) -> None:
    text = """\
name: qa
inputs: {q: {type: string}}
steps:
  - {name: first, type: const, value: 1}
  - {name: ask, type: claude, prompt: "{{ inputs.q }}"}
"""
    with pytest.raises(ConfigurationError) as caught:
        rt.run_pipeline(text, inputs)
    assert expected in str(caught.value)
    assert EXECUTED == [] and p.calls == 0


def test_a_requirement_not_met_is_refused(rt: Runtime, p: ScriptedProvider) -> None:
    text = (
        "name: r\nrequires: {claude: '>=9.0'}\nsteps:\n  - {name: ask, type: claude, prompt: hi}\n"
    )
    with pytest.raises(StepValidationError) as caught:
        rt.run_pipeline(text)
    assert caught.value.field == "requires.claude"
    assert "needs claude >=9.0" in str(caught.value) and "1.0.0" in str(caught.value)
    assert p.calls == 0
    assert rt.run_pipeline(text.replace(">=9.0", ">=1.0")).ok


def test_a_python_tag_in_yaml_is_refused(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: evil
steps:
  - name: ask
    type: claude
    prompt: !!python/object/apply:os.system ["echo hacked"]
"""
    with pytest.raises(ConfigurationError) as caught:
        rt.run_pipeline(text)
    assert "<text>:5:13" in str(caught.value) and "refused YAML tag" in str(caught.value)
    assert p.calls == 0


# -- 2. templates and variables -----------------------------------------------------------------


def test_templates_read_what_earlier_steps_gave(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: t
steps:
  - name: src
    type: const
    value: {doc: {title: T, tags: [x, y, {deep: z}]}}
    text: the text
    tokens: 7
  - name: use
    type: const
    value:
      whole: "{{ steps.src.output }}"
      title: "{{ steps.src.output.doc.title }}"
      tags: "{{ steps.src.output.doc.tags }}"
      second: "{{ steps.src.output.doc.tags.1 }}"
      deep: "{{ steps.src.output.doc.tags.2.deep }}"
      text: "{{ steps.src.text }}"
      tokens: "{{ steps.src.usage.total_tokens }}"
      mixed: "{{ steps.src.output.doc.title }}/{{ steps.src.usage.input_tokens }}/\\
        {{ steps.src.output.doc.tags }}"
  - name: ask
    type: claude
    prompt: "Title: {{ steps.use.output.title }}"
  - name: who
    type: const
    value: ["{{ steps.ask.provider }}", "{{ steps.ask.model }}", "{{ steps.ask.text }}"]
outputs:
  title: "{{ steps.use.output.title }}"
  tags: "{{ steps.src.output.doc.tags }}"
"""
    result = rt.run_pipeline(text)
    assert result.ok, result.error
    tags = ["x", "y", {"deep": "z"}]
    assert result.step("use").output == {
        "whole": {"doc": {"title": "T", "tags": tags}},
        "title": "T",
        "tags": tags,
        "second": "y",
        "deep": "z",
        "text": "the text",
        "tokens": 7,
        "mixed": 'T/7/["x", "y", {"deep": "z"}]',
    }
    assert p.requests[0].prompt == "Title: T"
    assert result.step("who").output == ["p", "p-model", "p: Title: T"]
    assert result.outputs == {"title": "T", "tags": tags}


def test_variables_start_from_the_run_are_set_by_steps_and_read_later(
    rt: Runtime, p: ScriptedProvider
) -> None:
    text = """\
name: v
steps:
  - {name: seen, type: read_vars}
  - {name: set, type: set_variable, variables: {topic: "{{ vars.start }} and dogs", n: 2}}
  - {name: after, type: read_vars, names: [start, topic, n]}
  - {name: ask, type: claude, prompt: "about {{ vars.topic }}", max_tokens: "{{ vars.n }}"}
"""
    given = {"start": "cats"}
    result = rt.run_pipeline(text, variables=given)
    assert result.ok, result.error
    assert result.step("seen").output == {"start": "cats"}
    assert result.step("after").output == {"start": "cats", "topic": "cats and dogs", "n": 2}
    assert (p.requests[0].prompt, p.requests[0].max_tokens) == ("about cats and dogs", 2)
    assert result.variables == {"start": "cats", "topic": "cats and dogs", "n": 2}
    assert given == {"start": "cats"}  # the caller's mapping is not the run's


@pytest.mark.parametrize("on_error", ["continue", "fail"])
def test_a_value_known_only_when_its_step_runs_is_validated_then(
    rt: Runtime, p: ScriptedProvider, on_error: str
) -> None:
    text = f"""\
name: late
steps:
  - {{name: src, type: const, value: lots}}
  - {{name: set, type: set_variable, variables: {{n: "{{{{ steps.src.output }}}}"}}}}
  - name: ask
    type: claude
    prompt: hi
    max_tokens: "{{{{ vars.n }}}}"
    on_error: {on_error}
  - {{name: after, type: const, value: done}}
"""
    result = rt.run_pipeline(text)  # the plan defers max_tokens: its value is not known yet
    ask = result.step("ask")
    assert ask.status == "failed" and ask.error is not None
    assert ask.error.type == "StepValidationError" and "max_tokens" in ask.error.message
    assert "'lots'" in ask.error.message
    assert p.calls == 0
    if on_error == "continue":
        assert result.ok and statuses(result) == ["ok", "ok", "failed", "ok"]
    else:
        assert (result.status, result.failed_step) == ("failed", "ask")
        assert statuses(result) == ["ok", "ok", "failed", "not_run"]


# -- 3. when ----------------------------------------------------------------------------------

WHEN = """\
name: w
steps:
  - {name: maybe, type: claude, prompt: hi, when: "{{ vars.go }}"}
  - name: after
    type: const
    value: {output: "{{ steps.maybe.output }}", text: "{{ steps.maybe.text }}"}
"""


@pytest.mark.parametrize("go", [False, 0, "", None, [], {}])
def test_a_false_when_skips_the_step(rt: Runtime, p: ScriptedProvider, go: Any) -> None:
    result = rt.run_pipeline(WHEN, variables={"go": go})
    assert result.ok, result.error
    maybe = result.step("maybe")
    assert (maybe.status, maybe.output, maybe.text, maybe.tokens) == ("skipped", None, None, 0)
    assert result.step("after").output == {"output": None, "text": None}
    assert p.calls == 0
    assert result.outputs == {"after": {"output": None, "text": None}}  # only ok steps


@pytest.mark.parametrize("go", [True, 1, "yes", [0], {"k": None}])
def test_a_true_when_runs_the_step(rt: Runtime, p: ScriptedProvider, go: Any) -> None:
    result = rt.run_pipeline(WHEN, variables={"go": go})
    assert result.step("maybe").status == "ok" and p.calls == 1
    assert result.step("after").output == {"output": "p: hi", "text": "p: hi"}


def test_when_reads_inputs_and_literal_booleans(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: w
inputs: {go: {type: boolean}}
steps:
  - {name: by_input, type: const, value: 1, when: "{{ inputs.go }}"}
  - {name: never, type: const, value: 2, when: false}
  - {name: always, type: const, value: 3, when: true}
"""
    on = rt.run_pipeline(text, {"go": True})
    assert statuses(on) == ["ok", "skipped", "ok"]
    off = rt.run_pipeline(text, {"go": False})
    assert statuses(off) == ["skipped", "skipped", "ok"]
    assert executed(off.run_id) == ["always"]


# -- 4. on_error and fallbacks ----------------------------------------------------------------


def test_on_error_fail_ends_the_run(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: f
steps:
  - {name: a, type: const, value: 1}
  - {name: b, type: fail, message: broken}
  - {name: c, type: claude, prompt: hi}
"""
    result = rt.run_pipeline(text)
    assert (result.status, result.failed_step) == ("failed", "b")
    assert result.error is not None and result.error.type == "StepFailure"
    assert result.error.message == "broken" and not result.error.crash
    assert statuses(result) == ["ok", "failed", "not_run"]
    assert result.step("b").error == result.error
    assert result.outputs == {} and p.calls == 0
    assert executed(result.run_id) == ["a", "b"]
    with pytest.raises(PipelineError) as caught:
        result.raise_for_status()
    assert caught.value.result is result and caught.value.step == "b"
    assert "failed at step 'b'" in str(caught.value) and "StepFailure: broken" in str(caught.value)


def test_on_error_continue_goes_on(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: c
steps:
  - {name: a, type: const, value: 1}
  - {name: b, type: fail, message: broken, on_error: continue}
  - {name: c, type: claude, prompt: "after {{ steps.b.output }}"}
"""
    result = rt.run_pipeline(text)
    assert result.ok and result.error is None and result.failed_step is None
    assert statuses(result) == ["ok", "failed", "ok"]
    b = result.step("b")
    assert b.error is not None and b.error.message == "broken" and b.output is None
    assert p.requests[0].prompt == "after "  # None enters text as nothing
    assert result.outputs == {"a": 1, "c": "p: after "}
    assert result.raise_for_status() is result


def test_a_fallback_step_takes_over(rt: Runtime) -> None:
    text = """\
name: fb
steps:
  - name: b
    type: fail
    message: primary broke
    on_error: fallback
    fallback:
      step: {type: const, value: plan B, tokens: 3}
  - name: named
    type: fail
    on_error: fallback
    fallback:
      step: {name: rescue, type: const, value: "{{ steps.b.output }}!"}
  - {name: c, type: const, value: "{{ steps.named.output }}"}
"""
    result = rt.run_pipeline(text)
    assert result.ok, result.error
    b = result.step("b")
    assert (b.status, b.output, b.tokens, b.fallback) == ("ok", "plan B", 3, "b.fallback")
    assert b.error is not None and (b.error.type, b.error.message) == (
        "StepFailure",
        "primary broke",
    )
    assert result.step("named").fallback == "rescue"
    assert result.step("c").output == "plan B!"
    assert executed(result.run_id) == ["b", "b.fallback", "named", "rescue", "c"]


def test_a_fallback_provider_runs_the_step_again_there(rt: Runtime) -> None:
    bad = add_provider(rt, "bad", priority=10)
    bad.failing = AuthenticationError("key revoked", provider="bad")
    good = add_provider(rt, "good")
    text = """\
name: fp
defaults: {failover: false}
steps:
  - name: ask
    type: claude
    prompt: hi
    provider: bad
    model: bad-model
    on_error: fallback
    fallback: {provider: good}
"""
    result = rt.run_pipeline(text)
    assert result.ok, result.error
    ask = result.step("ask")
    assert (ask.status, ask.provider, ask.fallback) == ("ok", "good", "provider:good")
    assert ask.model == "good-model"  # the fallback provider's own default model
    assert ask.error is not None and ask.error.type == "AuthenticationError"
    assert "key revoked" in ask.error.message
    assert (bad.calls, good.calls) == (1, 1)
    assert good.requests[0].prompt == "hi" and good.requests[0].model is None


def test_a_fallback_provider_re_runs_the_step_itself(rt: Runtime) -> None:
    text = """\
name: again
steps:
  - name: ask
    type: flaky
    key: fallback-provider
    provider: first
    on_error: fallback
    fallback: {provider: second}
"""
    with pytest.raises(StepValidationError, match="no provider 'first' is registered"):
        rt.run_pipeline(text)  # names are checked before anything runs
    add_provider(rt, "first")
    with pytest.raises(StepValidationError, match=r"field 'fallback\.provider'.*'second'"):
        rt.run_pipeline(text)
    add_provider(rt, "second")
    result = rt.run_pipeline(text)
    ask = result.step("ask")
    assert (ask.status, ask.fallback) == ("ok", "provider:second")
    assert ask.output == {"attempt": 2, "provider": "second"}
    assert ask.error is not None and "attempt 1 of fallback-provider failed" in ask.error.message
    assert executed(result.run_id) == ["ask", "ask"]


INLINE_FALLBACK = """\
name: fpl
inputs: {q: {type: string}}
steps:
  - name: ask
    type: fail
    on_error: fallback
    fallback:
      pipeline:
        name: rescue
        inputs: {question: {type: string}}
        steps:
          - {name: answer, type: claude, prompt: "rescue: {{ inputs.question }}"}
        outputs: {answer: "{{ steps.answer.output }}"}
      inputs: {question: "{{ inputs.q }}"}
"""


def test_a_fallback_pipeline_inline(rt: Runtime, p: ScriptedProvider) -> None:
    result = rt.run_pipeline(INLINE_FALLBACK, {"q": "why"})
    assert result.ok, result.error
    ask = result.step("ask")
    assert (ask.status, ask.fallback, ask.output) == (
        "ok",
        "ask.fallback",
        {"answer": "p: rescue: why"},
    )
    assert ask.tokens == 15 and ask.metadata == {"pipeline": "rescue", "steps": 1}
    assert ask.error is not None and ask.error.type == "StepFailure"


def test_a_fallback_pipeline_file_is_relative_to_the_pipeline_file(
    rt: Runtime, p: ScriptedProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows = tmp_path / "flows"
    (flows / "parts").mkdir(parents=True)
    (flows / "parts" / "rescue.yaml").write_text(
        "name: rescue\ninputs: {question: {type: string}}\nsteps:\n"
        "  - {name: answer, type: claude, prompt: 'file: {{ inputs.question }}'}\n"
        "outputs: {answer: '{{ steps.answer.text }}'}\n",
        encoding="utf-8",
    )
    main = flows / "main.yaml"
    main.write_text(
        "name: main\ninputs: {q: {type: string}}\nsteps:\n"
        "  - name: ask\n    type: fail\n    on_error: fallback\n"
        "    fallback: {pipeline: parts/rescue.yaml, inputs: {question: '{{ inputs.q }}'}}\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where parts/rescue.yaml is
    result = rt.run_pipeline(main, {"q": "how"})
    assert result.ok, result.error
    assert result.step("ask").output == {"answer": "p: file: how"}


def test_a_fallback_that_fails_too_reports_both_errors(rt: Runtime) -> None:
    text = """\
name: both
steps:
  - name: b
    type: fail
    message: primary broke
    on_error: fallback
    fallback: {step: {type: fail, message: backup broke}}
  - {name: c, type: const, value: 1}
"""
    result = rt.run_pipeline(text)
    assert (result.status, result.failed_step) == ("failed", "b")
    b = result.step("b")
    assert (b.status, b.fallback) == ("failed", "b.fallback")
    assert b.error is not None and result.error == b.error
    assert "backup broke" in b.error.message and "primary broke" in b.error.message
    assert statuses(result) == ["failed", "not_run"]


# -- 5. the PipelineResult --------------------------------------------------------------------


def test_the_result_has_timing_tokens_provider_model_and_retries(clock: FakeClock) -> None:
    with start(clock) as rt:
        add_provider(rt, "p", clock=clock, latency=[2.0, 3.0])
        add_provider(
            rt,
            "shaky",
            limits={"max_attempts": 2},
            script=[ServerError("blip", provider="shaky", retry_after=0)],
            tokens=(4, 4),
        )
        text = """\
name: timed
steps:
  - {name: one, type: claude, prompt: first, provider: p}
  - {name: two, type: claude, prompt: second, provider: p, model: big}
  - {name: three, type: claude, prompt: third, provider: shaky}
  - {name: four, type: const, value: 4, tokens: 2}
"""
        result = rt.run_pipeline(text, timeout=10)
    assert result.ok, result.error
    one, two, three, four = result.steps
    assert (one.started, one.duration, one.tokens, one.provider, one.model) == (
        0.0,
        2.0,
        15,
        "p",
        "p-model",
    )
    assert (one.usage.input_tokens, one.usage.output_tokens, one.retries) == (10, 5, 0)
    assert (two.started, two.duration, two.model) == (2.0, 3.0, "big")
    assert (three.started, three.duration, three.provider, three.retries) == (5.0, 0.0, "shaky", 1)
    assert three.tokens == 8 and three.providers_tried == ()
    assert (four.provider, four.model, four.tokens, four.retries) == (None, None, 2, 0)
    assert result.tokens == 15 + 15 + 8 + 2
    assert result.usage.input_tokens == 10 + 10 + 4 + 2
    assert result.duration == 5.0
    assert result.text == "shaky: third"  # the last text answer (the const step gave none)
    assert result.outputs == {
        "one": "p: first",
        "two": "p: second",
        "three": "shaky: third",
        "four": 4,
    }


def test_declared_outputs_are_rendered(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: o
steps:
  - {name: a, type: claude, prompt: hi}
  - {name: b, type: const, value: [1, 2]}
outputs:
  answer: "{{ steps.a.output }}"
  tokens: "{{ steps.a.usage.total_tokens }}"
  line: "{{ steps.a.provider }} said {{ steps.b.output.1 }}"
"""
    result = rt.run_pipeline(text)
    assert result.outputs == {"answer": "p: hi", "tokens": 15, "line": "p said 2"}


def test_an_output_that_cannot_be_rendered_fails_the_run(rt: Runtime) -> None:
    text = """\
name: o
steps:
  - {name: a, type: const, value: 1, when: false}
outputs: {x: "{{ steps.a.output.field }}"}
"""
    result = rt.run_pipeline(text)
    assert result.status == "failed" and result.outputs == {}
    assert result.error is not None and result.error.type == "StepValidationError"
    assert "outputs.x" in result.error.message
    with pytest.raises(PipelineError):
        result.raise_for_status()


# -- run_plan: the executor in the calling thread ------------------------------------------


def test_run_plan_runs_in_the_calling_thread(rt: Runtime, p: ScriptedProvider) -> None:
    plan = rt.compile_pipeline(
        "name: direct\ninputs: {q: {type: string}}\nsteps:\n"
        "  - {name: ask, type: claude, prompt: '{{ inputs.q }}'}\n"
    )
    threads: list[threading.Thread] = []
    progress = RunProgress(on_step=lambda event: threads.append(threading.current_thread()))
    result = run_plan(plan, {"q": "hi"}, providers=rt.providers, progress=progress)
    assert result.ok and result.run_id == progress.run_id
    assert result.step("ask").output == "p: hi"
    assert threads == [threading.current_thread()] * 2
    assert progress.outcomes == list(result.steps)
    with pytest.raises(ConfigurationError, match="unknown input 'x'"):
        run_plan(plan, {"q": "hi", "x": 1}, providers=rt.providers)


def test_run_plan_without_providers_fails_only_the_steps_that_need_one(rt: Runtime) -> None:
    plan = rt.compile_pipeline(
        "name: none\nsteps:\n  - {name: ask, type: claude, prompt: hi, on_error: continue}\n"
        "  - {name: c, type: const, value: 1}\n"
    )
    result = run_plan(plan)
    assert result.ok and statuses(result) == ["failed", "ok"]
    error = result.step("ask").error
    assert error is not None and error.type == "ConfigurationError" and "provider" in error.message


def test_run_plan_records_a_crash_and_leaves_it_to_the_caller(rt: Runtime) -> None:
    plan = rt.compile_pipeline(
        "name: c\nsteps:\n  - {name: boom, type: crash, message: bug, on_error: continue}\n"
        "  - {name: after, type: const, value: 1}\n"
    )
    progress = RunProgress()
    result = run_plan(plan, progress=progress)  # does not raise
    assert isinstance(progress.crash, RuntimeError) and str(progress.crash) == "bug"
    assert (result.status, result.failed_step) == ("failed", "boom")  # whatever on_error says
    assert result.error is not None and result.error.crash and result.error.type == "RuntimeError"
    assert statuses(result) == ["failed", "not_run"]


# -- progress events -------------------------------------------------------------------------


def test_on_step_hears_each_step_start_and_finish_in_order(rt: Runtime) -> None:
    text = """\
name: ev
steps:
  - {name: a, type: const, value: 1}
  - {name: s, type: const, value: 2, when: false}
  - {name: f, type: fail}
  - {name: n, type: const, value: 3}
"""
    events: list[StepEvent] = []
    result = rt.run_pipeline(text, on_step=events.append)
    seen = [(e.step, e.index, e.total, e.outcome and e.outcome.status) for e in events]
    assert seen == [
        ("a", 0, 4, None),
        ("a", 0, 4, "ok"),
        ("s", 1, 4, None),
        ("s", 1, 4, "skipped"),
        ("f", 2, 4, None),
        ("f", 2, 4, "failed"),
    ]  # nothing for the step that never ran
    assert {(e.run_id, e.pipeline) for e in events} == {(result.run_id, "ev")}
    assert [e.outcome for e in events if e.outcome is not None] == list(result.steps[:3])


def test_an_on_step_callback_that_raises_does_not_break_the_run(rt: Runtime) -> None:
    calls: list[str] = []

    def broken(event: StepEvent) -> None:
        calls.append(event.step)
        raise ValueError("callback bug")

    text = (
        "name: cb\nsteps:\n  - {name: a, type: const, value: 1}\n"
        "  - {name: b, type: const, value: 2}\n"
    )
    result = rt.run_pipeline(text, on_step=broken)
    assert result.ok and result.outputs == {"a": 1, "b": 2}
    assert calls == ["a", "a", "b", "b"]


# -- nesting and the `pipeline` step type ------------------------------------------------------


def test_a_pipeline_step_runs_a_sub_pipeline(rt: Runtime, p: ScriptedProvider) -> None:
    text = """\
name: outer
inputs: {topic: {type: string}}
steps:
  - name: sub
    type: pipeline
    pipeline:
      name: inner
      inputs: {t: {type: string}}
      steps:
        - {name: one, type: claude, prompt: "one {{ inputs.t }}"}
        - {name: two, type: claude, prompt: "two {{ steps.one.output }}"}
      outputs: {last: "{{ steps.two.output }}"}
    inputs: {t: "{{ inputs.topic }}"}
  - {name: after, type: const, value: "{{ steps.sub.output.last }}"}
"""
    result = rt.run_pipeline(text, {"topic": "owls"})
    assert result.ok, result.error
    sub = result.step("sub")
    assert sub.output == {"last": "p: two p: one owls"}
    assert sub.tokens == 30 and sub.metadata == {"pipeline": "inner", "steps": 2}
    assert result.step("after").output == "p: two p: one owls"


def test_a_failing_or_invalid_sub_pipeline_fails_its_step(rt: Runtime) -> None:
    text = """\
name: outer
steps:
  - name: failing
    type: pipeline
    pipeline: {name: inner, steps: [{name: deep, type: fail, message: deep trouble}]}
    on_error: continue
  - name: invalid
    type: pipeline
    pipeline: {name: inner2, steps: [{name: x, type: nope}]}
    on_error: continue
"""
    result = rt.run_pipeline(text)
    failing, invalid = result.steps
    assert failing.error is not None and failing.error.type == "PipelineError"
    assert "'deep'" in failing.error.message and "deep trouble" in failing.error.message
    assert invalid.error is not None and invalid.error.type == "UnknownStepError"
    assert "'nope'" in invalid.error.message


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [
        ("pipeline: 42", "pipeline", "must be a path, YAML text or a mapping, got int"),
        ("pipeline: sub.yaml\n    inputs: [1, 2]", "inputs", "must be a mapping"),
        ("inputs: {a: 1}", "pipeline_file", "give exactly one of pipeline_file"),
        ("pipeline_ref: common/x", "pipeline_ref", "pipeline registries do not exist"),
        ("pipeline: x.yaml\n    outputs: [{as: a}]", "outputs[0]", "must be a step name"),
        ("pipeline: x.yaml\n    config: {max_depth: 0}", "config.max_depth", "an integer >= 1"),
        ("pipeline: sub.yaml\n    extra: 1", "extra", "unknown field"),
    ],
)
def test_the_pipeline_step_type_checks_its_fields(
    rt: Runtime, fields: str, field: str, expected: str
) -> None:
    text = f"name: outer\nsteps:\n  - name: sub\n    type: pipeline\n    {fields}\n"
    with pytest.raises(StepValidationError) as caught:
        rt.compile_pipeline(text)
    assert (caught.value.step, caught.value.field) == ("sub", field)
    assert expected in str(caught.value)


def test_a_pipeline_step_outside_a_run_is_refused() -> None:
    with pytest.raises(PipelineError, match="only inside a pipeline run"):
        PipelineStepType().execute({"pipeline": "x.yaml"}, StepContext())


def test_a_crash_inside_a_sub_pipeline_is_still_a_crash(rt: Runtime) -> None:
    """A bug in a step type ends the run whatever ``on_error`` says, nested or not."""
    text = """\
name: outer
steps:
  - name: sub
    type: pipeline
    pipeline: {name: inner, steps: [{name: boom, type: crash, message: nested bug}]}
    on_error: continue
  - {name: after, type: const, value: 1}
"""
    result = rt.run_pipeline(text)
    assert (result.status, result.failed_step) == ("failed", "sub")
    assert result.error is not None and result.error.crash
    assert statuses(result) == ["failed", "not_run"]


def test_nesting_deeper_than_max_depth_fails_with_a_clear_error(
    rt: Runtime, tmp_path: Path
) -> None:
    loop = tmp_path / "loop.yaml"
    loop.write_text(
        "name: loop\nsteps:\n  - {name: mark, type: const, value: 1}\n"
        "  - {name: again, type: pipeline, pipeline: loop.yaml}\n",
        encoding="utf-8",
    )
    result = rt.run_pipeline(loop, timeout=30)
    assert (result.status, result.failed_step) == ("failed", "again")
    assert result.error is not None and result.error.type == "PipelineError"
    assert f"pipelines nest deeper than {MAX_DEPTH} levels" in result.error.message
    assert [name for _, name in EXECUTED] == ["mark"] * (MAX_DEPTH + 1)  # the top one too


# -- what a failed step spent ------------------------------------------------------------------


def test_a_failed_step_still_reports_the_retries_it_spent(rt: Runtime) -> None:
    down = add_provider(rt, "down", limits={"max_attempts": 3})
    down.failing = ServerError("down", provider="down", retry_after=0)
    result = rt.run_pipeline(ASK_CONTINUE)
    ask = result.step("ask")
    assert ask.status == "failed" and down.calls == 3
    assert ask.retries == 2  # the guard retried twice before the step failed


def test_a_failed_step_still_reports_the_tokens_it_spent(rt: Runtime) -> None:
    b = add_provider(rt, "b", script=[None, AuthenticationError("revoked", provider="b")])
    text = """\
name: batch
defaults: {failover: false}
steps:
  - {name: ask, type: claude_batch, prompts: [one, two], max_concurrency: 1, on_error: continue}
"""
    result = rt.run_pipeline(text)
    ask = result.step("ask")
    assert ask.status == "failed" and b.calls == 2  # the first prompt was answered (15 tokens)
    assert ask.tokens == 15 and result.tokens == 15
