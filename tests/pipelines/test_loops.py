"""for_loop and while_loop: loop variables, data sources, errors, limits, parallel
iterations, progress events, a loop over 1,000 items, and loops that go wrong."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pipeline_steps import add_provider, gate, reset, start

from otpy import Runtime
from otpy.errors import StepValidationError
from otpy.pipelines import StepEvent
from otpy.testing import FakeClock


def doc(steps: str, head: str = "") -> str:
    return f"workflow:\n  name: loops\n{head}  steps:\n{steps}"


def test_a_loop_over_a_thousand_items(rt: Runtime) -> None:
    text = doc(
        """\
    - name: make
      type: set_variable
      variables:
        total: 0
    - name: each
      type: for_loop
      iterator: n
      data_source: "{{inputs.items}}"
      steps:
        - name: square
          type: test_echo
          value: "{{loop.n * loop.n}}"
        - name: add
          type: set_variable
          variables:
            total: "{{state.total + steps.square.result}}"
"""
    )
    events: list[StepEvent] = []
    result = rt.run_pipeline(text, {"items": list(range(1000))}, on_step=events.append)
    assert result.ok
    output = result.step("each").output
    assert (output["total_items"], output["completed_items"], output["success"]) == (
        1000,
        1000,
        True,
    )
    assert output["iterations"][999]["results"]["square"] == 999 * 999
    assert result.variables["total"] == sum(n * n for n in range(1000))
    items = [e.item for e in events if e.step == "each" and e.item is not None]
    assert items == list(range(1, 1001)) and {e.items for e in events if e.item} == {1000}


def test_data_source_forms(rt: Runtime) -> None:
    text = doc(
        """\
    - name: source
      type: test_echo
      value: {files: [a, b], nested: {deep: [1]}}
    - name: by_path
      type: for_loop
      iterator: f
      data_source: steps.source.files
      steps: [{name: p1, type: test_echo, value: "{{loop.f}}"}]
    - name: by_colon
      type: for_loop
      iterator: f
      data_source: "source:nested.deep"
      steps: [{name: p2, type: test_echo, value: "{{loop.f}}"}]
    - name: after
      type: test_echo
      value: {list: [x, y, z]}
    - name: by_previous
      type: for_loop
      iterator: f
      data_source: "previous_response:list"
      steps: [{name: p3, type: test_echo, value: "{{loop.f}}"}]
    - name: by_bare_step
      type: for_loop
      iterator: f
      data_source: "after.list"
      steps: [{name: p4, type: test_echo, value: "{{loop.f}}"}]
"""
    )
    result = rt.run_pipeline(text)
    assert result.ok, result.error

    def items(name: str) -> list[Any]:
        return [it["item"] for it in result.step(name).output["iterations"]]

    assert items("by_path") == ["a", "b"]
    assert items("by_colon") == [1]
    assert items("by_previous") == ["x", "y", "z"]
    assert items("by_bare_step") == ["x", "y", "z"]


def test_a_failing_iteration_stops_the_loop_and_names_the_item(rt: Runtime) -> None:
    text = doc(
        """\
    - name: each
      type: for_loop
      iterator: v
      data_source: [ok, __FAIL__, never]
      steps:
        - {name: echo, type: test_echo, value: "{{loop.v}}", error_message: "bad {{loop.v}}"}
    - {name: after, type: test_echo, value: x}
"""
    )
    result = rt.run_pipeline(text)
    assert (result.status, result.failed_step) == ("failed", "each")
    assert result.error is not None and result.error.message == (
        "for_loop 'each' stopped at item 2/3: step 'echo' failed: PipelineError: bad __FAIL__"
    )
    assert result.step("after").status == "not_run"


def test_on_error_continue_inside_a_loop_goes_on(rt: Runtime) -> None:
    text = doc(
        """\
    - name: each
      type: for_loop
      iterator: v
      data_source: [ok, __FAIL__]
      steps:
        - {name: echo, type: test_echo, value: "{{loop.v}}", on_error: continue}
        - {name: after, type: test_echo, value: "after {{loop.v}}"}
"""
    )
    result = rt.run_pipeline(text)
    assert result.ok
    assert [it["results"].get("after") for it in result.step("each").output["iterations"]] == [
        "after ok",
        "after __FAIL__",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("data_source", "steps.nope.files", "data_source 'steps.nope.files': steps.nope"),
        ("data_source", "{{steps.source.result}}", "must be a list, or where to find one"),
        ("max_iterations", "2", "holds 3 items, more than max_iterations (2)"),
    ],
)
def test_bad_data_sources_and_limits_fail_the_step_clearly(
    rt: Runtime, field: str, value: str, message: str
) -> None:
    source = f'"{value}"' if field == "data_source" else "[1, 2, 3]"
    limit = f"\n      max_iterations: {value}" if field == "max_iterations" else ""
    text = doc(
        f"""\
    - {{name: source, type: test_echo, value: 1}}
    - name: each
      type: for_loop
      iterator: v
      data_source: {source}{limit}
      steps: [{{name: e, type: test_echo, value: x}}]
"""
    )
    result = rt.run_pipeline(text)
    assert result.failed_step == "each" and result.error is not None
    assert message in result.error.message


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ("{name: l, type: for_loop, iterator: 'a b', data_source: [1], steps: [{name: e, type: test_echo}]}",  # noqa: E501
         "iterator", "must be a name"),
        ("{name: l, type: for_loop, iterator: v, data_source: [1], steps: []}", "steps", "non-empty"),  # noqa: E501
        ("{name: l, type: for_loop, iterator: v, data_source: [1], steps: [{name: e}]}",
         "steps[0].type", "is required"),
        ("{name: l, type: for_loop, iterator: v, data_source: [1], steps: [{name: e, type: nope}]}",
         "steps[0].type", "unknown step type 'nope'"),
        ("{name: l, type: for_loop, iterator: v, data_source: [1], steps: [{name: e, type: test_echo}, {name: e, type: test_echo}]}",  # noqa: E501
         "steps[1].name", "duplicate step name"),
        ("{name: l, type: while_loop, condition: 'a >', steps: [{name: e, type: test_echo}]}",
         "condition", "bad condition"),
        ("{name: l, type: while_loop, condition: 'true', max_iterations: 0, steps: [{name: e, type: test_echo}]}",  # noqa: E501
         "max_iterations", "an integer >= 1"),
        ("{name: l, type: test_echo, value: '{{loop.item}}'}", "value", "loop.* is set only inside"),  # noqa: E501
        ("{name: l, type: for_loop, iterator: v, data_source: [1], steps: [{name: e, type: test_echo, value: '{{inputs.x | y}}'}]}",  # noqa: E501
         "steps[0].value", "filters"),
    ],
)  # fmt: skip
def test_loop_configs_are_checked_before_anything_runs(
    rt: Runtime, step: str, field: str, message: str
) -> None:
    with pytest.raises(Exception) as caught:
        rt.compile_pipeline(doc(f"    - {step}\n"))
    error = caught.value
    assert getattr(error, "step", None) == "l" and message in str(error)
    if isinstance(error, StepValidationError):
        assert error.field == field
    assert "<text>:" in str(error)  # the position in the document


def test_parallel_iterations_run_at_once_and_keep_their_own_results(rt: Runtime) -> None:
    key, blocking = gate()
    text = doc(
        f"""\
    - name: each
      type: for_loop
      iterator: v
      data_source: [1, 2, 3, 4]
      parallel: true
      max_parallel: 4
      steps:
        - {{name: wait, type: block, gate: "{key}"}}
        - {{name: mine, type: set_variable, variables: {{seen: "{{{{loop.v}}}}"}}}}
        - {{name: echo, type: test_echo, value: "{{{{state.seen}}}}-{{{{steps.mine.result.seen}}}}"}}
"""  # noqa: E501
    )
    run = rt.start_pipeline(text)
    for _ in range(100):
        if blocking.count == 4:
            break
        blocking.entered.wait(0.05)
        blocking.entered.clear()
    assert blocking.count == 4  # all four iterations are waiting at once
    blocking.release.set()
    result = run.wait(30)
    assert result.ok
    echoes = [it["results"]["echo"] for it in result.step("each").output["iterations"]]
    assert echoes == ["1-1", "2-2", "3-3", "4-4"]  # each saw its own variable and record
    assert "seen" not in result.variables  # isolated iterations leave the run's alone


def test_while_loop_timeout_and_cancel(rt: Runtime) -> None:
    clock = FakeClock()
    reset()
    with start(clock=clock) as timed:
        provider = add_provider(timed, "p", clock=clock, latency=10.0)
        text = doc(
            """\
    - name: spin
      type: while_loop
      condition: "true"
      max_iterations: 100
      timeout_seconds: 25
      steps:
        - {name: ask, type: claude, prompt: "again {{loop.iteration}}"}
"""
        )
        result = timed.run_pipeline(text, timeout=30)
        assert result.failed_step == "spin" and result.error is not None
        assert "ran out of its timeout_seconds (25s) after 3 iterations" in result.error.message
        assert provider.calls == 3
    key, blocking = gate()
    text = doc(
        f"""\
    - name: each
      type: for_loop
      iterator: v
      data_source: [1, 2, 3]
      steps: [{{name: wait, type: block, gate: "{key}"}}]
    - {{name: after, type: test_echo, value: x}}
"""
    )
    run = rt.start_pipeline(text)
    assert blocking.entered.wait(10)
    run.cancel()
    blocking.release.set()
    result = run.wait(30)
    assert result.status == "cancelled" and blocking.count == 1
    assert result.step("after").status == "not_run"


def test_a_crash_inside_a_loop_is_a_crash_and_the_runtime_lives(rt: Runtime) -> None:
    text = doc(
        """\
    - name: each
      type: for_loop
      iterator: v
      data_source: [1, 2]
      steps: [{name: boom, type: crash, message: "a bug"}]
"""
    )
    result = rt.run_pipeline(text)
    assert result.failed_step == "each" and result.error is not None and result.error.crash
    assert rt.state == "running"
    assert rt.run_pipeline(doc("    - {name: ok, type: test_echo, value: 1}\n")).ok


def test_loop_results_stay_readable_after_the_loop(rt: Runtime) -> None:
    done = threading.Event()
    text = doc(
        """\
    - name: each
      type: for_loop
      iterator: v
      data_source: [a, b]
      steps: [{name: last_seen, type: test_echo, value: "{{loop.v}}"}]
    - {name: read, type: test_echo, value: "{{steps.last_seen.result}} {{steps.each.total_items}}"}
"""
    )
    result = rt.run_pipeline(text, on_step=lambda e: done.set())
    assert result.step("read").output == "b 2" and done.is_set()
