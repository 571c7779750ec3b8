"""otpy.dspy.lm: DSPy's calls through the provider layer (selection, failover, errors DSPy
knows, usage), with dspy.context and set_lm, sync and async; what cannot be carried is
refused by name; the call scope's gate and journal around the calls of Evaluate."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import dspy
import pytest
from dspy import lm15
from dspy.utils.exceptions import LMConfigurationError, LMRateLimitError, LMServerError
from dspy_support import exact, examples, runtime, simulated

import otpy.dspy
from otpy.calls import (
    BudgetExhausted,
    CallBudget,
    CallGate,
    CallJournal,
    CallsCancelled,
    MemoryJournalStore,
)
from otpy.errors import ConfigurationError, RateLimitedError, ServerError, UnknownProviderError
from otpy.telemetry import get_telemetry
from otpy.testing import wait_until


def causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None:
        chain.append(current)
        current = current.__cause__
    return chain


def test_predict_and_chain_of_thought_go_through_the_provider_layer() -> None:
    sim = simulated()
    events: list[Any] = []
    hub = get_telemetry()
    subscription = hub.subscribe(events.append, "dspy.lm_call.stop")
    try:
        with runtime(sim) as rt:
            lm = otpy.dspy.lm(rt)
            with dspy.context(lm=lm):
                assert dspy.Predict("question -> answer")(question="q2").answer == "A2"
                thought = dspy.ChainOfThought("question -> answer")(question="q3")
                aio = asyncio.run(dspy.Predict("question -> answer").acall(question="q4"))
            entry = rt.providers.get_provider("sim")
            assert entry.stats.statistics().total_calls == 3  # through the entry: guard, stats
    finally:
        hub.unsubscribe(subscription)
    assert [(e.metadata["provider"], e.metadata["outcome"]) for e in events] == [("sim", "ok")] * 3
    assert (thought.answer, aio.answer) == ("no idea", "A4") and thought.reasoning
    assert sim.calls == 3 and lm.model == "otpy/text" and lm.kwargs.get("temperature") is None
    last = lm.history[-1]
    assert last["usage"]["total_tokens"] > 0
    assert last["response"].provider_data == {"provider": "sim", "replayed": False}


def test_each_lm_goes_to_its_provider_with_context_and_set_lm() -> None:
    first, second = simulated("first"), simulated("second")
    with runtime(first, second) as rt:
        main, other = otpy.dspy.lm(rt, "first"), otpy.dspy.lm(rt, "second", temperature=0.3)
        plain, pinned = dspy.Predict("question -> answer"), dspy.Predict("question -> answer")
        pinned.set_lm(other)
        with dspy.context(lm=main):
            plain(question="q1")
            pinned(question="q1")
            with dspy.context(lm=other):
                plain(question="q2")
    assert (first.calls, second.calls) == (1, 2)
    assert {r.temperature for r in second.requests} == {0.3}


def test_provider_errors_reach_dspy_as_its_own_and_dspy_does_not_retry() -> None:
    sim = simulated()
    with runtime(sim, limits={"max_attempts": 1}) as rt:
        predict = dspy.Predict("question -> answer")
        with dspy.context(lm=otpy.dspy.lm(rt, "sim")):
            sim.inject(RateLimitedError("slow down", provider="sim", retry_after=3.0))
            with pytest.raises(LMRateLimitError) as limited:
                predict(question="q1")
            sim.inject(ServerError("boom", provider="sim", status=500))
            with pytest.raises(LMServerError) as failed:
                predict(question="q1")
    assert sim.calls == 2  # one attempt each: the guard's retries are the only ones
    assert any(isinstance(c, RateLimitedError) for c in causes(limited.value))
    assert limited.value.retry_after == 3.0
    assert any(isinstance(c, ServerError) for c in causes(failed.value))


def test_a_call_fails_over_to_another_capable_provider() -> None:
    broken, spare = simulated("broken", failure_rate=1.0), simulated("spare")
    with runtime(broken, spare, limits={"max_attempts": 1}) as rt:
        rt.providers.register_provider(
            "broken", broken, priority=10, limits={"timeout": None, "max_attempts": 1}, replace=True
        )
        with dspy.context(lm=otpy.dspy.lm(rt)):
            assert dspy.Predict("question -> answer")(question="q2").answer == "A2"
    assert (broken.calls, spare.calls) == (1, 1)


def test_what_the_provider_layer_cannot_carry_is_refused_by_name() -> None:
    sim = simulated()
    with runtime(sim) as rt:
        lm = otpy.dspy.lm(rt)
        tools = lm15.Request(
            model=lm.model,
            messages=(lm15.Message.user("hi"),),
            tools=(lm15.FunctionTool(name="search"),),
        )
        with pytest.raises(LMConfigurationError) as refused:
            lm(tools)
        otpy_error = [c for c in causes(refused.value) if isinstance(c, ConfigurationError)]
        assert otpy_error and "tool calls need the provider layer's tool support" in str(
            otpy_error[0]
        )
        sampled = otpy.dspy.lm(rt, top_p=0.5)
        with pytest.warns(UserWarning, match="top_p is not honoured") as warned:
            sampled("one")
            sampled("two")
        assert len(warned) == 1  # named once per LM
        with pytest.raises(UnknownProviderError):
            otpy.dspy.lm(rt, "nope")
        with pytest.raises(ConfigurationError, match="num_retries must stay 0"):
            otpy.dspy.lm(rt, num_retries=3)
        with pytest.raises(ConfigurationError, match="model_type"):
            otpy.dspy.lm(rt, model_type="text")
        with pytest.raises(ConfigurationError, match="lacks the capabilities"):
            otpy.dspy.lm(rt, "sim", capability="vision")
    assert sim.calls == 2


def test_a_budget_stops_evaluate_at_the_limit_whatever_it_catches() -> None:
    sim = simulated()
    gate = CallGate(CallBudget(max_calls=5))
    with runtime(sim) as rt:
        evaluate = dspy.Evaluate(devset=examples(20), metric=exact, num_threads=4)
        with (
            dspy.context(lm=otpy.dspy.lm(rt)),
            otpy.dspy.call_scope(gate=gate),
            pytest.raises(BudgetExhausted),
        ):
            evaluate(dspy.Predict("question -> answer"))
    assert sim.calls == 5 and gate.totals().calls == 5 and gate.state == "exhausted"


def test_pause_holds_evaluate_and_cancel_stops_it() -> None:
    sim = simulated()
    gate = CallGate()
    gate.pause()
    outcome: list[Any] = []
    with runtime(sim) as rt:
        lm = otpy.dspy.lm(rt)
        evaluate = dspy.Evaluate(devset=examples(12), metric=exact, num_threads=4)

        def run() -> None:
            with dspy.context(lm=lm), otpy.dspy.call_scope(gate=gate):
                try:
                    outcome.append(evaluate(dspy.Predict("question -> answer")).score)
                except BaseException as stop:
                    outcome.append(stop)

        worker = threading.Thread(target=run)
        worker.start()
        wait_until(lambda: gate.waiting == 4, 10, "every evaluation thread held")
        assert sim.calls == 0
        gate.resume()
        worker.join(30)
        assert outcome == [50.0] and sim.calls == 12
        gate.pause()
        outcome.clear()
        worker = threading.Thread(target=run)
        worker.start()
        wait_until(lambda: gate.waiting == 4, 10, "every evaluation thread held again")
        gate.cancel()
        worker.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], CallsCancelled)
    assert sim.calls == 12  # nothing after the pause


def test_a_journaled_evaluation_replays_without_a_call() -> None:
    sim = simulated()
    store = MemoryJournalStore()
    with runtime(sim) as rt:
        lm = otpy.dspy.lm(rt)
        evaluate = dspy.Evaluate(devset=examples(16), metric=exact, num_threads=8)
        scores = []
        for _ in range(2):
            journal, gate = CallJournal(store, "job"), CallGate()
            with dspy.context(lm=lm), otpy.dspy.call_scope(gate, journal):
                scores.append(evaluate(dspy.Predict("question -> answer")).score)
        assert sim.calls == 16  # the second run was answered from the journal
        assert (gate.totals().calls, gate.totals().replayed, journal.held) == (0, 16, 0)
        assert lm.history[-1]["response"].provider_data["replayed"] is True
    assert scores == [50.0, 50.0]
    with (
        pytest.raises(ConfigurationError, match="gate must be a CallGate"),
        otpy.dspy.call_scope(gate="open"),  # type: ignore[arg-type]
    ):
        pass


def test_a_saved_program_keeps_its_lm_target_and_is_bound_to_a_runtime_again(
    tmp_path: Path,
) -> None:
    sim = simulated()
    with runtime(sim) as rt:
        saved = dspy.Predict("question -> answer")
        saved.set_lm(otpy.dspy.lm(rt, "sim", temperature=0.5))
        saved.save(tmp_path / "program.json")
        loaded = dspy.Predict("question -> answer")
        loaded.load(tmp_path / "program.json", allow_unsafe_lm_state=True)
        with pytest.raises(LMConfigurationError, match=r"otpy.dspy.bind\(program, rt\)"):
            loaded(question="q2")
        assert otpy.dspy.bind(loaded, rt) == 1 and otpy.dspy.bind(loaded, rt) == 0
        assert loaded(question="q2").answer == "A2"
    assert loaded.lm.kwargs["temperature"] == 0.5 and sim.calls == 1
    assert "sim" in (tmp_path / "program.json").read_text()  # its target, no runtime


def test_otpy_never_needs_dspy_and_otpy_dspy_names_the_extra_without_it() -> None:
    code = """
import sys
import otpy, otpy.calls, otpy.providers
assert "dspy" not in sys.modules
sys.modules["dspy"] = None  # as if DSPy were not installed
try:
    import otpy.dspy
except ImportError as error:
    print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'otpy[dspy]'" in result.stdout
