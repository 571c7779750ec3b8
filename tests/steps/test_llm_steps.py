"""The legacy step types: validation (step and field named) and execution on simulated
providers, fan-out bounds, session memory, robust fallbacks, instructor re-asks."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gateways import GatedGateway, Gateway

from otpy.errors import (
    AllOptionsFailed,
    AuthenticationError,
    CircuitOpenError,
    InvalidValueError,
    NoProviderAvailable,
    RateLimitedError,
    ServerError,
    StepValidationError,
)
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.state import LocalState, SQLiteState
from otpy.steps import Step, StepResult
from otpy.steps.llm import (
    BUILTIN_STEPS,
    PRESETS,
    ClaudeBatchStep,
    ClaudeRobustStep,
    ClaudeSessionStep,
    ClaudeSmartStep,
    ClaudeStep,
    GeminiInstructorStep,
    GeminiStep,
    ParallelClaudeStep,
    SetVariableStep,
    builtin_step_types,
    fan_out,
    merge_texts,
)
from otpy.telemetry import correlation
from otpy.testing import FakeClock, wait_until
from support import InThread

NAMES = [
    "claude",
    "gemini",
    "claude_smart",
    "claude_session",
    "claude_extract",
    "claude_batch",
    "claude_robust",
    "parallel_claude",
    "gemini_instructor",
    "set_variable",
]


def run(step_cls: type[Step], config: dict[str, Any], gateway: Gateway, **context: Any) -> Any:
    """Validate then execute, as the executor does."""
    checked = step_cls.validate(config)
    return step_cls().execute(checked, gateway.context(**context))


def invalid(step_cls: type[Step], config: dict[str, Any]) -> StepValidationError:
    with pytest.raises(StepValidationError) as caught:
        step_cls.validate(config)
    return caught.value


# -- the set of types ---------------------------------------------------------------------


def test_all_ten_types_with_version_and_capabilities() -> None:
    assert list(BUILTIN_STEPS) == NAMES
    for name, cls in BUILTIN_STEPS.items():
        assert issubclass(cls, Step), name
        assert cls.metadata.version == "1.0.0"
        assert cls.metadata.description
        assert not getattr(cls, "__abstractmethods__", None)
    assert "structured_output" in GeminiInstructorStep.metadata.capabilities
    assert "chat" in ClaudeSessionStep.metadata.capabilities
    assert SetVariableStep.metadata.capabilities == ()
    for name in ("claude", "gemini", "claude_batch", "parallel_claude", "claude_robust"):
        assert BUILTIN_STEPS[name].metadata.capabilities == ("text",)


def test_builtin_step_types_binds_the_session_store() -> None:
    store = LocalState()
    types = builtin_step_types(store)
    assert types["claude_session"] is not ClaudeSessionStep
    assert issubclass(types["claude_session"], ClaudeSessionStep)
    assert types["claude_session"].session_store() is store
    assert {k: v for k, v in types.items() if k != "claude_session"} == {
        k: v for k, v in BUILTIN_STEPS.items() if k != "claude_session"
    }
    assert builtin_step_types() == BUILTIN_STEPS


# -- validation: good and bad configs name the step and the field -------------------------

GOOD: dict[str, dict[str, Any]] = {
    "claude": {"prompt": "hi", "system": "s", "temperature": 0.5, "max_tokens": 10, "stop": ["x"]},
    "gemini": {"prompt": "hi", "provider": "sim", "model": "m"},
    "claude_smart": {"prompt": "hi", "preset": "code_review", "temperature": 1.0},
    "claude_session": {"session_id": "user-1/chat.2", "prompt": "hi", "max_turns": 3},
    "claude_extract": {"text": "a: 1", "extract": "fields", "fields": ["a"]},
    "claude_batch": {"prompts": ["a", "b"], "max_concurrency": 2, "continue_on_error": True},
    "claude_robust": {"prompt": "hi", "max_attempts": 2, "fallback_provider": "backup"},
    "parallel_claude": {"instances": [{"prompt": "a"}, {"temperature": 0.1}], "prompt": "p"},
    "gemini_instructor": {"prompt": "hi", "schema": {"type": "object"}, "max_retries": 0},
    "set_variable": {"variables": {"x": 1, "y_2": [1, 2]}},
}

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("claude", {}, "prompt"),
    ("claude", {"prompt": 3}, "prompt"),
    ("claude", {"prompt": " "}, "prompt"),
    ("claude", {"prompt": "hi", "temperature": 3}, "temperature"),
    ("claude", {"prompt": "hi", "temperature": True}, "temperature"),
    ("claude", {"prompt": "hi", "max_tokens": 0}, "max_tokens"),
    ("claude", {"prompt": "hi", "stop": "x"}, "stop"),
    ("claude", {"prompt": "hi", "stop": [""]}, "stop"),
    ("claude", {"prompt": "hi", "provider": 1}, "provider"),
    ("claude", {"prompt": "hi", "preset": "chat"}, "preset"),
    ("gemini", {"prompt": "hi", "sytem": "typo"}, "sytem"),
    ("claude_smart", {"prompt": "hi", "claude_options": {"max_turns": 0}},
     "claude_options.max_turns"),
    ("claude_smart", {"prompt": "hi", "claude_options": ["x"]}, "claude_options"),
    ("claude_smart", {"prompt": "hi", "preset": "poetry"}, "preset"),
    ("claude_session", {"prompt": "hi", "session_config": {"session_name": "a b"}}, "session_id"),
    ("claude_session", {"prompt": "hi", "session_config": "s"}, "session_config"),
    ("claude_session", {"session_id": "a b", "prompt": "hi"}, "session_id"),
    ("claude_session", {"session_id": "s", "prompt": "hi", "max_turns": 0}, "max_turns"),
    ("claude_extract", {"extract": "json"}, "text"),
    ("claude_extract", {"extract": "json", "prompt": "p", "text": "t"}, "prompt"),
    ("claude_extract", {"extract": "yaml", "text": "t"}, "extract"),
    ("claude_extract", {"extract": "fields", "text": "t"}, "fields"),
    ("claude_extract", {"extract": "json", "text": "t", "fields": ["a"]}, "fields"),
    ("claude_extract", {"extract": "json", "text": "t", "language": "py"}, "language"),
    ("claude_batch", {"prompts": []}, "prompts"),
    ("claude_batch", {"prompts": "one"}, "prompts"),
    ("claude_batch", {"prompts": ["a", 2]}, "prompts"),
    ("claude_batch", {"prompts": ["a"], "max_concurrency": 0}, "max_concurrency"),
    ("claude_batch", {"prompts": ["a"], "continue_on_error": "yes"}, "continue_on_error"),
    ("claude_robust", {"prompt": "hi", "retry_config": {"max_retries": -1}},
     "retry_config.max_retries"),
    ("claude_robust", {"prompt": "hi", "retry_config": {"fallback_action": 3}},
     "retry_config.fallback_action"),
    ("claude_robust", {"prompt": "hi", "retry_config": {"backoff_strategy": "random"}},
     "retry_config.backoff_strategy"),
    (
        "claude_robust",
        {"prompt": "hi", "fallback_provider": "b", "fallback_capabilities": ["text"]},
        "fallback_provider",
    ),
    ("claude_robust", {"prompt": "hi", "fallback_capabilities": []}, "fallback_capabilities"),
    ("claude_robust", {"prompt": "p", "fallback_provider": "b", "max_attempts": 0}, "max_attempts"),
    ("parallel_claude", {"instances": 0, "prompt": "p"}, "instances"),
    ("parallel_claude", {"instances": True, "prompt": "p"}, "instances"),
    ("parallel_claude", {"instances": 2}, "prompt"),
    ("parallel_claude", {"instances": [{"system": "s"}]}, "prompt"),
    ("parallel_claude", {"instances": ["x"], "prompt": "p"}, "instances[0]"),
    ("parallel_claude", {"instances": [{"model": "m"}], "prompt": "p"}, "instances[0]"),
    ("parallel_claude", {"instances": [{"temperature": 9}]}, "instances[0].temperature"),
    ("parallel_claude", {"instances": 2, "prompt": "p", "merge": "sum"}, "merge"),
    ("gemini_instructor", {"prompt": "hi", "token_budget": {"max_output_tokens": 0}},
     "token_budget.max_output_tokens"),
    ("gemini_instructor", {"prompt": "hi", "schema": "object"}, "schema"),
    ("gemini_instructor", {"prompt": "hi", "schema": {"type": "nope"}}, "schema"),
    ("gemini_instructor", {"prompt": "hi", "schema": {}, "max_retries": -1}, "max_retries"),
    ("set_variable", {}, "variables"),
    ("set_variable", {"variables": {}}, "variables"),
    ("set_variable", {"variables": {"1x": 1}}, "variables"),
    ("set_variable", {"variables": {"x": 1}, "prompt": "p"}, "prompt"),
]  # fmt: skip


@pytest.mark.parametrize("kind", NAMES)
def test_good_configs_validate(kind: str) -> None:
    config = {"name": f"my_{kind}", "type": kind, **GOOD[kind]}
    assert BUILTIN_STEPS[kind].validate(config) == config


@pytest.mark.parametrize(("kind", "config", "field"), BAD)
def test_bad_configs_name_the_step_and_the_field(
    kind: str, config: dict[str, Any], field: str
) -> None:
    error = invalid(BUILTIN_STEPS[kind], {"name": "the_step", "type": kind, **config})
    assert error.step == "the_step"
    assert error.field == field
    assert "the_step" in str(error) and field in str(error)


def test_every_type_is_covered_by_good_and_bad_configs() -> None:
    assert set(GOOD) == set(NAMES)
    assert {kind for kind, _, _ in BAD} == set(NAMES)


# -- claude, gemini, claude_smart ---------------------------------------------------------


def test_claude_sends_the_fields_and_returns_the_text() -> None:
    sim = SimulatedProvider("sim", responses={"capital": "Paris. The end"})
    gateway = Gateway(sim)
    config = {
        "name": "ask", "type": "claude", "prompt": "The capital of France?", "system": "Be brief",
        "temperature": 0.2, "max_tokens": 50, "stop": [". The end"], "model": "sim-big",
    }  # fmt: skip
    result = run(ClaudeStep, config, gateway)
    assert isinstance(result, StepResult)
    assert result.output == result.text == "Paris"
    assert (result.provider, result.model) == ("sim", "sim-big")
    assert result.usage.total_tokens > 0
    (request,) = sim.requests
    assert (request.prompt, request.system, request.temperature) == (
        "The capital of France?", "Be brief", 0.2,
    )  # fmt: skip
    assert (request.max_tokens, request.stop, request.model) == (50, (". The end",), "sim-big")
    assert gateway.calls[0][:2] == (None, ("text",))


def test_gemini_on_a_named_provider_and_unset_fields_default() -> None:
    first, second = SimulatedProvider("first"), SimulatedProvider("gemini", seed=3)
    gateway = Gateway(first, second)
    result = run(GeminiStep, {"type": "gemini", "prompt": "hello", "provider": "gemini"}, gateway)
    assert result.provider == "gemini" and first.calls == 0 and second.calls == 1
    (request,) = second.requests
    assert (request.system, request.temperature, request.max_tokens, request.stop) == (
        None, None, 1024, (),
    )  # fmt: skip


def test_claude_smart_applies_the_preset_and_explicit_fields_win() -> None:
    sim = SimulatedProvider("sim")
    gateway = Gateway(sim)
    run(
        ClaudeSmartStep,
        {"type": "claude_smart", "prompt": "review", "preset": "code_review"},
        gateway,
    )
    preset = PRESETS["code_review"]
    request = sim.requests[-1]
    assert (request.system, request.temperature, request.max_tokens) == (
        preset.system, preset.temperature, preset.max_tokens,
    )  # fmt: skip
    result = run(
        ClaudeSmartStep,
        {
            "type": "claude_smart",
            "prompt": "x",
            "preset": "chat",
            "system": "Mine",
            "max_tokens": 7,
        },
        gateway,
    )
    request = sim.requests[-1]
    assert (request.system, request.temperature, request.max_tokens) == (
        "Mine", PRESETS["chat"].temperature, 7,
    )  # fmt: skip
    assert result.metadata == {"preset": "chat"}
    assert set(PRESETS) == {"analysis", "code_review", "development", "chat", "production", "test"}


def test_provider_errors_propagate_unchanged() -> None:
    sim = SimulatedProvider("sim")
    sim.inject(ServerError("boom", provider="sim", status=500))
    with pytest.raises(ServerError):
        run(ClaudeStep, {"type": "claude", "prompt": "x"}, Gateway(sim))
    with pytest.raises(NoProviderAvailable):
        run(
            ClaudeStep,
            {"type": "claude", "prompt": "x"},
            Gateway(SimulatedProvider(capabilities=[])),
        )


# -- set_variable ------------------------------------------------------------------------


def test_set_variable_writes_copies_into_the_context_without_a_call() -> None:
    gateway = Gateway()
    context = gateway.context(variables={"keep": 1, "x": 0})
    value = {"nested": [1, 2]}
    config = SetVariableStep.validate({"type": "set_variable", "variables": {"x": 5, "obj": value}})
    result = SetVariableStep().execute(config, context)
    assert context.variables == {"keep": 1, "x": 5, "obj": {"nested": [1, 2]}}
    assert result.output == {"x": 5, "obj": {"nested": [1, 2]}}
    value["nested"].append(3)
    context.variables["obj"]["nested"].append(4)
    assert result.output["obj"] == {"nested": [1, 2]}
    assert gateway.calls == []


# -- claude_session ----------------------------------------------------------------------


def session_step(store: Any) -> type[ClaudeSessionStep]:
    return ClaudeSessionStep.using(store)


def test_session_sends_previous_turns_and_remembers_the_answer() -> None:
    sim = SimulatedProvider("sim", responses=lambda r: f"answer {len(r.messages) // 2}")
    gateway = Gateway(sim)
    step = session_step(LocalState())
    config = {"type": "claude_session", "session_id": "s1"}
    first = run(step, {**config, "prompt": "My name is Ada."}, gateway)
    second = run(step, {**config, "prompt": "What is my name?"}, gateway)
    assert (first.output, second.output) == ("answer 0", "answer 1")
    assert second.metadata == {"session_id": "s1", "turns": 2}
    request = sim.requests[-1]
    assert [(m.role, m.content) for m in request.conversation()] == [
        ("user", "My name is Ada."),
        ("assistant", "answer 0"),
        ("user", "What is my name?"),
    ]
    assert step.history("s1") == [
        {"user": "My name is Ada.", "assistant": "answer 0"},
        {"user": "What is my name?", "assistant": "answer 1"},
    ]
    assert gateway.calls[0][1] == ("text", "chat")


def test_sessions_are_separate_and_a_failed_call_remembers_nothing() -> None:
    sim = SimulatedProvider("sim")
    step = session_step(LocalState())
    gateway = Gateway(sim)
    run(step, {"type": "claude_session", "session_id": "a", "prompt": "one"}, gateway)
    run(step, {"type": "claude_session", "session_id": "b", "prompt": "two"}, gateway)
    assert sim.requests[-1].messages == ()
    sim.inject(ServerError("down", provider="sim"))
    with pytest.raises(ServerError):
        run(step, {"type": "claude_session", "session_id": "a", "prompt": "lost"}, gateway)
    assert [t["user"] for t in step.history("a")] == ["one"]
    assert step.forget("a") and not step.forget("a")
    assert step.history("a") == []


def test_max_turns_keeps_the_last_exchanges() -> None:
    sim = SimulatedProvider("sim")
    step = session_step(LocalState())
    gateway = Gateway(sim)
    for index in range(5):
        result = run(
            step,
            {"type": "claude_session", "session_id": "s", "prompt": f"p{index}", "max_turns": 2},
            gateway,
        )
    assert result.metadata["turns"] == 2
    assert [t["user"] for t in step.history("s")] == ["p3", "p4"]
    sent = [m.content for m in sim.requests[-1].messages if m.role == "user"]
    assert sent == ["p2", "p3"]  # the last two before p4


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_turns_on_one_session_are_all_kept(attempt: int) -> None:
    sim = SimulatedProvider("sim")
    step = session_step(LocalState())
    gateway = Gateway(sim)
    threads, turns = 8, 6
    barrier = threading.Barrier(threads)

    def talk(worker: int) -> None:
        barrier.wait()
        for turn in range(turns):
            run(
                step,
                {"type": "claude_session", "session_id": "shared", "prompt": f"{worker}.{turn}"},
                gateway,
            )

    workers = [InThread(talk, w) for w in range(threads)]
    for worker in workers:
        worker.result(timeout=30)
    history = step.history("shared")
    assert len(history) == threads * turns
    assert sorted(t["user"] for t in history) == sorted(
        f"{w}.{t}" for w in range(threads) for t in range(turns)
    )
    # Serialised: each request carried every turn before it, exactly once.
    assert sorted(len(r.messages) for r in sim.requests) == [2 * i for i in range(threads * turns)]


def test_session_memory_in_a_persistent_store(tmp_path: Any) -> None:
    sim = SimulatedProvider("sim")
    with SQLiteState(tmp_path / "s.db", session_id="x") as store:
        run(
            session_step(store),
            {"type": "claude_session", "session_id": "p", "prompt": "a"},
            Gateway(sim),
        )
    with SQLiteState(tmp_path / "s.db", session_id="x") as store:
        run(
            session_step(store),
            {"type": "claude_session", "session_id": "p", "prompt": "b"},
            Gateway(sim),
        )
        assert sim.requests[-1].messages[0].content == "a"
        assert store.get_variable("session.p").type == "json"


def test_default_store_is_process_wide() -> None:
    sim = SimulatedProvider("sim")
    sid = f"default-{id(sim)}"
    run(
        ClaudeSessionStep,
        {"type": "claude_session", "session_id": sid, "prompt": "a"},
        Gateway(sim),
    )
    assert [t["user"] for t in ClaudeSessionStep.history(sid)] == ["a"]
    assert ClaudeSessionStep.forget(sid)


# -- fan-out: claude_batch and parallel_claude --------------------------------------------


class _Submitted(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "calls submitted" in record.getMessage():
            self.event.set()


@pytest.fixture
def submitted() -> Iterator[threading.Event]:
    """Set once a fan-out has submitted all its calls: a test that holds every call at
    the gate until then sees each one the pool ever starts (none can be recycled)."""
    logger = logging.getLogger("otpy.steps.llm")
    handler, level = _Submitted(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.event
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("attempt", range(2))
def test_batch_never_exceeds_max_concurrency(attempt: int, submitted: threading.Event) -> None:
    gateway = GatedGateway(SimulatedProvider("sim"))
    prompts = [f"prompt {i}" for i in range(10)]
    config = {"type": "claude_batch", "prompts": prompts, "max_concurrency": 3}
    call = InThread(run, ClaudeBatchStep, config, gateway)
    assert submitted.wait(5)
    for done in range(len(prompts)):
        assert gateway.wait_in_flight(min(3, len(prompts) - done)) <= 3
        gateway.release()
    result = call.result()
    assert gateway.max_in_flight == 3
    assert len(gateway.threads) == 3  # one call at a time each: never more than 3 at once
    assert [t.split(" to: ")[1].split(" [")[0] for t in result.output] == prompts
    assert result.metadata == {"prompts": 10, "failures": []}
    sim = gateway.providers["sim"]
    assert result.usage.output_tokens == sim.statistics().output_tokens


def test_batch_default_concurrency_is_four(submitted: threading.Event) -> None:
    gateway = GatedGateway(SimulatedProvider("sim"))
    call = InThread(
        run, ClaudeBatchStep, {"type": "claude_batch", "prompts": list("abcdefg")}, gateway
    )
    assert submitted.wait(5)
    gateway.wait_in_flight(4)
    gateway.release(7)
    call.result()
    assert gateway.max_in_flight == 4 and len(gateway.threads) == 4


def test_batch_continue_on_error_gives_none_for_failed_prompts() -> None:
    failing = RateLimitedError("slow down", provider="sim", retry_after=1.0)

    def answer(request: CompletionRequest) -> str:
        if request.prompt == "bad":
            raise failing
        return f"fine: {request.prompt}"

    gateway = Gateway(SimulatedProvider("sim", responses=answer))
    config = {
        "type": "claude_batch", "prompts": ["good 1", "bad", "good 2"], "continue_on_error": True,
        "max_concurrency": 2,
    }  # fmt: skip
    result = run(ClaudeBatchStep, config, gateway)
    assert result.output == ["fine: good 1", None, "fine: good 2"]
    assert result.metadata["failures"] == [{"index": 1, "error": f"RateLimitedError: {failing}"}]
    config["continue_on_error"] = False
    with pytest.raises(RateLimitedError):
        run(ClaudeBatchStep, config, gateway)


def test_batch_without_continue_cancels_what_has_not_started() -> None:
    sim = SimulatedProvider("sim")
    sim.inject(ServerError("first fails", provider="sim"))
    config = {"type": "claude_batch", "prompts": [f"p{i}" for i in range(6)], "max_concurrency": 1}
    with pytest.raises(ServerError, match="first fails"):
        run(ClaudeBatchStep, config, Gateway(sim))
    assert sim.calls == 1  # the other five never started


def test_batch_raises_a_crash_even_with_continue_on_error() -> None:
    sim = SimulatedProvider("sim")
    sim.inject(None, KeyError("bug"))
    config = {
        "type": "claude_batch",
        "prompts": ["a", "b", "c"],
        "continue_on_error": True,
        "max_concurrency": 1,
    }
    with pytest.raises(KeyError):
        run(ClaudeBatchStep, config, Gateway(sim))


def test_fan_out_propagates_the_trace_context() -> None:
    threads: list[str] = []

    def answer(request: CompletionRequest) -> str:
        threads.append(threading.current_thread().name)
        return "ok"

    gateway = Gateway(SimulatedProvider("sim", responses=answer))
    config = {"type": "claude_batch", "prompts": ["a", "b", "c", "d"], "max_concurrency": 4}
    with correlation("trace-42") as ctx:
        run(ClaudeBatchStep, config, gateway)
    assert [trace for _, _, trace in gateway.calls] == [ctx.correlation_id] * 4
    assert all(name.startswith("otpy-fanout") for name in threads)


def test_fan_out_runs_inline_for_one_call_and_rejects_zero() -> None:
    result = fan_out([lambda: threading.current_thread()], 8)
    assert result.outcomes[0].value is threading.current_thread()
    with pytest.raises(ValueError):
        fan_out([], 0)


def test_parallel_claude_runs_every_instance_at_once() -> None:
    gateway = GatedGateway(SimulatedProvider("sim"))
    call = InThread(
        run,
        ParallelClaudeStep,
        {"type": "parallel_claude", "instances": 5, "prompt": "go"},
        gateway,
    )
    gateway.wait_in_flight(5)
    gateway.release(5)
    result = call.result()
    assert gateway.max_in_flight == 5
    assert isinstance(result.output, list) and len(result.output) == 5
    assert result.metadata["instances"] == 5 and result.metadata["merge"] == "list"


def test_parallel_claude_caps_its_threads_unless_told(submitted: threading.Event) -> None:
    gateway = GatedGateway(SimulatedProvider("sim"))
    config = {"type": "parallel_claude", "instances": 40, "prompt": "go"}
    call = InThread(run, ParallelClaudeStep, config, gateway)
    assert submitted.wait(5)
    gateway.wait_in_flight(32)
    gateway.release(40)
    assert len(call.result().output) == 40
    assert gateway.max_in_flight == 32 and len(gateway.threads) == 32


def test_parallel_claude_overrides_and_merges() -> None:
    a = SimulatedProvider("a", responses=lambda r: "yes" if r.temperature == 0.0 else "no")
    b = SimulatedProvider("b", responses={"": "a much longer answer"})
    gateway = Gateway(a, b)
    instances = [
        {"temperature": 0.0},
        {"temperature": 1.0},
        {"temperature": 0.0},
        {"provider": "b"},
    ]
    base = {"type": "parallel_claude", "instances": instances, "prompt": "q?", "temperature": 0.0}
    vote = run(ParallelClaudeStep, {**base, "merge": "vote"}, gateway)
    assert vote.output == vote.text == "yes"
    assert vote.metadata["texts"] == ["yes", "no", "yes", "a much longer answer"]
    assert vote.metadata["providers"] == ["a", "a", "a", "b"] and vote.provider is None
    longest = run(ParallelClaudeStep, {**base, "merge": "longest"}, gateway)
    assert longest.output == "a much longer answer"
    concat = run(ParallelClaudeStep, {**base, "merge": "concat"}, gateway)
    assert concat.output == "yes\n\nno\n\nyes\n\na much longer answer"
    per_prompt = run(
        ParallelClaudeStep,
        {
            "type": "parallel_claude",
            "instances": [{"prompt": "one"}, {"prompt": "two", "system": "S"}],
        },
        Gateway(SimulatedProvider("sim")),
    )
    assert len(per_prompt.output) == 2


def test_merge_texts_ties_and_whitespace() -> None:
    assert merge_texts(["b", "a", "a ", "b"], "vote") == "b"  # tie: the first given wins
    assert merge_texts(["x", " y", "y"], "vote") == " y"
    assert merge_texts(["ab", "cd", "e"], "longest") == "ab"
    assert merge_texts([], "vote") is None


def test_parallel_claude_raises_after_the_others_finish() -> None:
    sim = SimulatedProvider("sim")
    sim.inject(None, ServerError("one down", provider="sim"))
    with pytest.raises(ServerError, match="one down"):
        run(
            ParallelClaudeStep,
            {"type": "parallel_claude", "instances": 3, "prompt": "p"},
            Gateway(sim),
        )
    assert sim.calls == 3


# -- claude_robust -----------------------------------------------------------------------

ROBUST = {
    "name": "sturdy",
    "type": "claude_robust",
    "prompt": "hi",
    "provider": "main",
    "fallback_provider": "backup",
}


def robust_pair() -> tuple[SimulatedProvider, SimulatedProvider, Gateway]:
    main, backup = SimulatedProvider("main"), SimulatedProvider("backup", seed=9)
    return main, backup, Gateway(main, backup)


def limited() -> RateLimitedError:
    return RateLimitedError("429", provider="main", status=429, retry_after=0.0)


def test_robust_retries_the_primary_then_succeeds(clock: FakeClock) -> None:
    main, backup, gateway = robust_pair()
    main.inject(limited(), limited())
    caller = InThread(run, ClaudeRobustStep, ROBUST, gateway, clock=clock)
    for calls, delay in ((1, 1.0), (2, 2.0)):  # exponential from base_delay_ms (1000)
        wait_until(lambda n=calls: main.calls == n and clock.sleepers == 1, 5, "a retry's wait")
        clock.advance(delay)
    result = caller.result()
    assert result.provider == "main" and backup.calls == 0 and main.calls == 3
    assert result.metadata["served_by"] == "primary"
    assert result.metadata["primary_attempts"] == 3 and result.retries == 2


def test_robust_falls_back_after_max_attempts(clock: FakeClock) -> None:
    main, backup, gateway = robust_pair()
    main.inject(limited(), limited())
    config = {**ROBUST, "max_attempts": 2, "fallback_model": "b-1"}
    caller = InThread(run, ClaudeRobustStep, config, gateway, clock=clock)
    clock.wait_for_sleepers(1)
    clock.advance(1.0)  # the one retry's delay; after the second failure, no wait
    result = caller.result()
    assert result.provider == "backup" and result.model == "b-1"
    assert (main.calls, backup.calls) == (2, 1)
    assert result.metadata["served_by"] == "fallback"
    assert result.metadata["primary_error"].startswith("RateLimitedError")


def test_robust_waits_the_retry_after_between_attempts(clock: FakeClock) -> None:
    main, backup, gateway = robust_pair()
    main.inject(RateLimitedError("429", provider="main", status=429, retry_after=2.5))
    caller = InThread(run, ClaudeRobustStep, ROBUST, gateway, clock=clock)
    clock.wait_for_sleepers(1)
    assert main.calls == 1  # the second attempt waits for the Retry-After
    clock.advance(2.5)
    result = caller.result()
    assert result.metadata["served_by"] == "primary" and (main.calls, backup.calls) == (2, 0)


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("bad key", provider="main", status=401),
        CircuitOpenError("main", 3.0),
    ],
)
def test_robust_non_retryable_goes_straight_to_the_fallback(error: Exception) -> None:
    main, backup, gateway = robust_pair()
    main.inject(error)
    result = run(ClaudeRobustStep, ROBUST, gateway)
    assert (main.calls, backup.calls) == (1, 1)
    assert result.metadata["primary_error"].startswith(type(error).__name__)


def test_robust_fallback_by_capabilities() -> None:
    main = SimulatedProvider("main")
    spare = SimulatedProvider("spare", capabilities=["text", "spare"])
    gateway = Gateway(main, spare)
    main.inject(AuthenticationError("no", provider="main"))
    config = {**ROBUST, "fallback_provider": None, "fallback_capabilities": ["spare"]}
    del config["fallback_provider"]
    result = run(ClaudeRobustStep, config, gateway)
    assert result.provider == "spare"
    assert gateway.calls[-1][:2] == (None, ("spare",))


def test_robust_both_failing_raise_all_options_failed() -> None:
    main, backup, gateway = robust_pair()
    main.inject(AuthenticationError("bad key", provider="main"))
    backup.inject(ServerError("also down", provider="backup"))
    with pytest.raises(AllOptionsFailed) as caught:
        run(ClaudeRobustStep, ROBUST, gateway)
    error = caught.value
    assert error.chain == "sturdy"
    assert [type(e) for _, e in error.failures] == [AuthenticationError, ServerError]
    assert "primary main" in str(error) and "fallback backup" in str(error)
    assert isinstance(error.__cause__, ServerError)


# -- gemini_instructor -------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_instructor_validates_structured_output() -> None:
    sim = SimulatedProvider("sim")
    result = run(
        GeminiInstructorStep,
        {"type": "gemini_instructor", "prompt": "a person", "schema": SCHEMA},
        Gateway(sim),
    )
    assert set(result.output) == {"name", "age"} and result.output["age"] >= 0
    assert result.metadata == {"attempts": 1}
    assert sim.requests[0].response_schema == SCHEMA


def test_instructor_reasks_with_the_errors_until_valid() -> None:
    answers = iter(['{"name": "Ada"}', "not json at all", '{"name": "Ada", "age": 36}'])
    sim = SimulatedProvider("sim", responses=lambda request: next(answers))
    result = run(
        GeminiInstructorStep,
        {"name": "person", "type": "gemini_instructor", "prompt": "Ada?", "schema": SCHEMA},
        Gateway(sim),
    )
    assert result.output == {"name": "Ada", "age": 36}
    assert result.metadata == {"attempts": 3} and result.retries == 2
    first_reask = sim.requests[1]
    assert [m.role for m in first_reask.conversation()] == ["user", "assistant", "user"]
    assert first_reask.conversation()[1].content == '{"name": "Ada"}'
    assert first_reask.prompt.startswith("Your answer did not match the schema: ")
    assert "'age' is a required property" in first_reask.prompt
    assert "not JSON" in sim.requests[2].prompt
    assert result.usage.input_tokens == sim.statistics().input_tokens


def test_instructor_gives_up_with_a_clear_error() -> None:
    sim = SimulatedProvider("sim", invalid_structured_rate=1.0)
    config = {
        "name": "person",
        "type": "gemini_instructor",
        "prompt": "p",
        "schema": SCHEMA,
        "max_retries": 1,
    }
    with pytest.raises(InvalidValueError) as caught:
        run(GeminiInstructorStep, config, Gateway(sim))
    assert caught.value.variable == "person"
    assert "2 attempts" in str(caught.value) and "last problem" in str(caught.value)
    assert sim.calls == 2
    assert gateway_capabilities(GeminiInstructorStep) == ("text", "structured_output")


def gateway_capabilities(step_cls: type[Step]) -> tuple[str, ...]:
    gateway = Gateway(SimulatedProvider("sim"))
    config = {"type": "x", "prompt": "p", "schema": {"type": "object"}}
    step_cls().execute(config, gateway.context())
    return gateway.calls[0][1]


def test_instructor_accepts_fenced_json_text() -> None:
    sim = SimulatedProvider("sim", responses={"": 'Here:\n```json\n{"name": "B", "age": 2}\n```'})
    result = run(
        GeminiInstructorStep,
        {"type": "gemini_instructor", "prompt": "p", "schema": SCHEMA},
        Gateway(sim),
    )
    assert result.output == {"name": "B", "age": 2}
    assert json.loads(json.dumps(result.output)) == result.output
