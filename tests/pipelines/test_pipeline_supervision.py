"""Pipeline runs as supervised workers: a crash ends only its own run, many runs at once,
cancelling and stopping mid-run, emergent provider failover, and one trace per run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from pipeline_steps import add_provider, executed, gate, reset, start
from provider_plugins import ScriptedProvider

from otpy import Runtime
from otpy.errors import (
    AuthenticationError,
    CallTimeoutError,
    InvalidRequestError,
    OtpyError,
    PipelineError,
    ServerError,
)
from otpy.supervision import (
    DynamicSupervisorRef,
    SupervisorEvent,
    add_event_sink,
    remove_event_sink,
    whereis,
)
from otpy.telemetry import Telemetry, TraceNode, set_telemetry
from otpy.testing import FakeClock, wait_until


@pytest.fixture
def reports() -> Iterator[list[SupervisorEvent]]:
    """Every supervisor report while the test runs."""
    seen: list[SupervisorEvent] = []
    sink = seen.append
    add_event_sink(sink)
    yield seen
    remove_event_sink(sink)


@pytest.fixture
def hub() -> Iterator[Telemetry]:
    fresh = Telemetry()
    previous = set_telemetry(fresh)
    yield fresh
    set_telemetry(previous)


def runs_supervisor(rt: Runtime) -> DynamicSupervisorRef:
    ref = whereis(rt.runs_supervisor)
    assert ref is not None and ref.is_alive()
    return cast(DynamicSupervisorRef, ref)


def no_runs_left(rt: Runtime) -> None:
    supervisor = runs_supervisor(rt)
    wait_until(lambda: supervisor.count_children().specs == 0, message="runs removed")
    assert supervisor.which_children() == []


def blocking(key: str) -> str:
    return (
        f"name: blocking\nsteps:\n  - {{name: wait, type: block, gate: '{key}'}}\n"
        "  - {name: after, type: const, value: done}\n"
    )


# -- a crash ends only its own run ------------------------------------------------------------


def test_a_crashing_step_ends_only_its_own_run(
    rt: Runtime, p: ScriptedProvider, reports: list[SupervisorEvent]
) -> None:
    key, held = gate()
    others = [rt.start_pipeline(blocking(key)) for _ in range(3)]
    wait_until(lambda: held.count == 3, message="the other runs are all in their step")
    crash = (
        "name: c\nsteps:\n  - {name: boom, type: crash, message: step bug}\n"
        "  - {name: after, type: claude, prompt: hi}\n"
    )
    crashed = rt.run_pipeline(crash, timeout=10)
    assert (crashed.status, crashed.failed_step) == ("failed", "boom")
    assert crashed.error is not None and crashed.error.crash
    assert (crashed.error.type, crashed.error.message) == ("RuntimeError", "step bug")
    assert [s.status for s in crashed.steps] == ["failed", "not_run"] and p.calls == 0

    def exit_report() -> SupervisorEvent | None:
        child = f"run:{crashed.run_id}"
        found = [r for r in reports if r.name == "supervisor.child_exited" and r.child_id == child]
        return found[0] if found else None

    exited = wait_until(exit_report, message="the crashed runner's exit report")
    assert exited.metadata["abnormal"] is True and exited.metadata["restart"] is False
    assert "RuntimeError" in exited.metadata["reason"] and "step bug" in exited.metadata["reason"]
    assert not any(run.done() for run in others)  # they go on
    held.release.set()
    for run in others:
        result = run.wait(10)
        assert result.ok and result.outputs == {"wait": key, "after": "done"}

    def clean_exits() -> list[SupervisorEvent]:
        return [r for r in reports if r.name == "supervisor.child_exited" and r is not exited]

    wait_until(lambda: len(clean_exits()) == 3, message="the other runners' exit reports")
    assert not any(r.metadata["abnormal"] for r in clean_exits())
    # the runtime and its registries are untouched
    assert rt.state == "running"
    for role in ("steps", "providers", "compat", "runs"):
        ref = whereis(f"{rt.name}.{role}")
        assert ref is not None and ref.is_alive(), role
    assert not any(r.name == "supervisor.child_restarted" for r in reports)
    rt.steps.register_step("const2", rt.steps.get_step("const").step_cls)
    assert rt.providers.select(["text"]).name == "p"
    assert rt.run_pipeline("name: again\nsteps:\n  - {name: ask, type: claude, prompt: hi}\n").ok
    no_runs_left(rt)


# -- many runs at once --------------------------------------------------------------------------


def test_a_hundred_runs_at_once_each_in_a_worker_of_its_own(
    rt: Runtime, p: ScriptedProvider
) -> None:
    key, held = gate()
    plan = rt.compile_pipeline(
        "name: many\ninputs: {i: {type: integer}}\nsteps:\n"
        f"  - {{name: wait, type: block, gate: '{key}'}}\n"
        "  - {name: ask, type: claude, prompt: 'n{{ inputs.i }}'}\n"
        "outputs: {answer: '{{ steps.ask.output }}'}\n"
    )
    runs = [rt.start_pipeline(plan, {"i": i}) for i in range(100)]
    wait_until(lambda: held.count == 100, timeout=20, message="all 100 runs in their step")
    assert runs_supervisor(rt).count_children().active == 100  # all at once
    held.release.set()
    results = [run.wait(30) for run in runs]
    assert all(result.ok for result in results)
    assert [r.outputs["answer"] for r in results] == [f"p: n{i}" for i in range(100)]
    assert len({r.run_id for r in results}) == 100
    assert [r.run_id for r in results] == [run.run_id for run in runs]
    assert p.calls == 100
    no_runs_left(rt)


# -- cancelling, and stopping the runtime mid-run --------------------------------------------


def test_cancel_stops_the_run_before_its_next_step(rt: Runtime, p: ScriptedProvider) -> None:
    key, held = gate()
    run = rt.start_pipeline(
        f"name: c\nsteps:\n  - {{name: wait, type: block, gate: '{key}'}}\n"
        "  - {name: ask, type: claude, prompt: hi}\n  - {name: last, type: const, value: 1}\n"
    )
    assert held.entered.wait(5)
    run.cancel()
    assert not run.done()
    held.release.set()  # the step running finishes
    result = run.wait(10)
    assert result.status == "cancelled" and result.error is None and result.failed_step is None
    assert [s.status for s in result.steps] == ["ok", "not_run", "not_run"]
    assert result.step("wait").output == key and result.outputs == {}
    assert executed(run.run_id) == ["wait"] and p.calls == 0
    assert run.outcomes == list(result.steps)
    with pytest.raises(PipelineError, match="was cancelled") as caught:
        result.raise_for_status()
    assert caught.value.result is result
    no_runs_left(rt)


def test_stopping_the_runtime_mid_run_fails_the_wait_instead_of_hanging(
    clock: FakeClock,
) -> None:
    reset()
    key, held = gate()
    with start(clock) as rt:
        run = rt.start_pipeline(blocking(key))
        assert held.entered.wait(5)
        stopper = threading.Thread(target=rt.stop)
        stopper.start()
        clock.wait_for_sleepers(1)  # the runs supervisor gives its runner 5 s to stop
        clock.advance(5)  # ... then kills it
        with pytest.raises(PipelineError, match="worker exited") as caught:
            run.wait(10)
        assert caught.value.result == []  # no step had finished
        stopper.join(10)
        assert not stopper.is_alive() and rt.state == "stopped"
        held.release.set()  # the killed runner's thread finishes its step in the background
        assert held.thread is not None
        held.thread.join(10)


def test_a_run_whose_worker_was_killed_starts_no_further_step(clock: FakeClock) -> None:
    """The runner's thread cannot be interrupted, but once its worker is gone (killed when
    the runtime stops) the run must not go on calling providers for a result nobody gets."""
    reset()
    key, held = gate()
    with start(clock) as rt:
        ask = add_provider(rt, "p")
        run = rt.start_pipeline(
            f"name: k\nsteps:\n  - {{name: wait, type: block, gate: '{key}'}}\n"
            "  - {name: ask, type: claude, prompt: hi}\n"
        )
        assert held.entered.wait(5)
        stopper = threading.Thread(target=rt.stop)
        stopper.start()
        clock.wait_for_sleepers(1)
        clock.advance(5)
        with pytest.raises(PipelineError, match="worker exited"):
            run.wait(10)
        stopper.join(10)
        held.release.set()
        assert held.thread is not None
        held.thread.join(10)
        assert executed(run.run_id) == ["wait"]
        assert ask.calls == 0  # no provider call after the runtime stopped


def test_a_wait_that_times_out_leaves_the_run_going(rt: Runtime) -> None:
    key, held = gate()
    run = rt.start_pipeline(blocking(key))
    assert held.entered.wait(5)
    with pytest.raises(CallTimeoutError) as caught:
        run.wait(0.01)
    assert f"pipeline 'blocking' run {run.run_id} (0 step(s) done)" in str(caught.value)
    assert "within 0.01 s" in str(caught.value)
    assert not run.done()
    held.release.set()
    assert run.wait(10).ok and run.done()
    no_runs_left(rt)


def test_no_run_starts_on_a_stopped_runtime() -> None:
    rt = start()
    rt.stop()
    with pytest.raises(PipelineError, match="is the runtime up"):
        rt.run_pipeline("name: s\nsteps:\n  - {name: a, type: const, value: 1}\n")


# -- emergent failover ------------------------------------------------------------------------

ASK = "name: ask\nsteps:\n  - {name: ask, type: claude, prompt: hi}\n"


@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize(
    ("error", "limits", "attempts"),
    [
        (AuthenticationError("key revoked", provider="a"), None, 1),
        (ServerError("down", provider="a", retry_after=0), {"max_attempts": 2}, 2),
    ],
    ids=["not-retryable", "retries-exhausted"],
)
def test_a_failing_provider_hands_the_call_to_another_capable_one(
    rt: Runtime, error: OtpyError, limits: dict[str, Any] | None, attempts: int, named: bool
) -> None:
    a = add_provider(rt, "a", priority=10, limits=limits)
    a.failing = error
    add_provider(rt, "lacks", priority=5, capabilities=("vision",))
    b = add_provider(rt, "b")
    text = ASK.replace("prompt: hi", "prompt: hi, provider: a, model: a-big") if named else ASK
    result = rt.run_pipeline(text)
    assert result.ok, result.error
    ask = result.step("ask")
    assert (ask.provider, ask.providers_tried, ask.fallback, ask.error) == ("b", ("a",), None, None)
    assert ask.model == "b-model"  # the other provider's own default model
    assert ask.retries == attempts - 1
    assert (a.calls, b.calls) == (attempts, 1)


def test_with_failover_off_the_step_fails(rt: Runtime) -> None:
    a = add_provider(rt, "a", priority=10)
    a.failing = AuthenticationError("key revoked", provider="a")
    b = add_provider(rt, "b")
    result = rt.run_pipeline(ASK.replace("steps:", "defaults: {failover: false}\nsteps:"))
    assert (result.status, result.failed_step) == ("failed", "ask")
    assert result.error is not None and result.error.type == "AuthenticationError"
    assert (a.calls, b.calls) == (1, 0)


def test_with_no_other_capable_provider_the_error_says_so(rt: Runtime) -> None:
    a = add_provider(rt, "a")
    a.failing = AuthenticationError("key revoked", provider="a")
    add_provider(rt, "lacks", capabilities=("vision",))
    result = rt.run_pipeline(ASK)
    assert result.status == "failed" and result.error is not None
    assert result.error.type == "AuthenticationError"
    assert "key revoked" in result.error.message and "no other provider" in result.error.message


def test_an_invalid_request_is_not_failed_over(rt: Runtime) -> None:
    a = add_provider(rt, "a", priority=10)
    a.failing = InvalidRequestError("prompt too long", provider="a")
    b = add_provider(rt, "b")
    result = rt.run_pipeline(ASK)
    assert result.status == "failed" and result.error is not None
    assert result.error.type == "InvalidRequestError"
    assert (a.calls, b.calls) == (1, 0)


# -- telemetry: one trace per run -------------------------------------------------------------

TWO_ASKS = (
    "name: t\nsteps:\n  - {name: a, type: claude, prompt: one}\n"
    "  - {name: b, type: claude, prompt: two}\n"
)


def test_each_run_is_one_trace_with_its_run_id_as_correlation_id(
    hub: Telemetry, rt: Runtime, p: ScriptedProvider
) -> None:
    first = rt.run_pipeline(TWO_ASKS)
    second = rt.start_pipeline(TWO_ASKS).wait(10)
    assert first.run_id != second.run_id
    runs = {first.run_id, second.run_id}
    for pattern in ("pipeline.run.*", "pipeline.step.*", "provider.call"):
        events = hub.store.query(name=pattern)
        assert events and {e.correlation_id for e in events} == runs, pattern
    for result in (first, second):
        names = [e.name for e in hub.store.query(correlation_id=result.run_id)]
        assert names.count("provider.call") == 2
        assert names.count("pipeline.step.start") == names.count("pipeline.step.stop") == 2
        assert names.count("pipeline.run.start") == names.count("pipeline.run.stop") == 1
        (start_event,) = hub.store.query(correlation_id=result.run_id, name="pipeline.run.start")
        assert start_event.metadata["run_id"] == result.run_id


def tree(node: TraceNode) -> tuple[str, list[Any]]:
    return node.event.name, [tree(child) for child in node.children]


def test_the_trace_tree_has_the_step_spans_under_the_run_span(
    hub: Telemetry, rt: Runtime, p: ScriptedProvider
) -> None:
    result = rt.run_pipeline(TWO_ASKS)
    (root,) = hub.store.trace_tree(result.run_id)
    calls: list[Any] = [("provider.call", []), ("pipeline.step.stop", [])]
    step = ("pipeline.step.start", calls)
    assert tree(root) == ("pipeline.run.start", [step, step, ("pipeline.run.stop", [])])
    steps = [child.event for child in root.children[:2]]
    assert [e.metadata["step"] for e in steps] == ["a", "b"]
    stop = root.children[2].event
    assert stop.metadata["status"] == "completed" and stop.metadata["tokens"] == 30


def test_a_nested_run_and_a_failover_stay_in_the_run_s_trace(hub: Telemetry, rt: Runtime) -> None:
    a = add_provider(rt, "a", priority=10)
    a.failing = AuthenticationError("key revoked", provider="a")
    add_provider(rt, "b")
    text = """\
name: outer
steps:
  - name: sub
    type: pipeline
    pipeline: {name: inner, steps: [{name: ask, type: claude, prompt: hi}]}
"""
    with hub.span("request") as caller:
        result = rt.run_pipeline(text)
    assert result.ok, result.error
    assert caller.correlation_id != result.run_id  # the run is a trace of its own ...
    (outer,) = hub.store.query(name="pipeline.run.start", where=lambda e: e.metadata["depth"] == 0)
    assert outer.metadata["parent_correlation_id"] == caller.correlation_id  # ... linked to it
    (inner,) = hub.store.query(name="pipeline.run.start", where=lambda e: e.metadata["depth"] == 1)
    (failover,) = hub.store.query(name="pipeline.provider_failover")
    assert inner.correlation_id == failover.correlation_id == result.run_id
    assert (failover.metadata["failed"], failover.metadata["to"]) == ("a", "b")
    (root,) = hub.store.trace_tree(result.run_id)
    (sub_step, _) = root.children
    assert sub_step.children[0].event is inner
