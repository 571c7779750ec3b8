"""The ProviderRegistry actor and its handle: writes through the actor, reads from the
snapshot, guarded calls, live stats, restarts, concurrency and plugins."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from provider_plugins import ECHO, ScriptedProvider

from otpy._snapshot import Snapshot
from otpy.actors import ProviderRegistry, ProviderRegistryHandle
from otpy.errors import (
    CircuitOpenError,
    ConfigurationError,
    DuplicateProviderError,
    NoProviderAvailable,
    OperationTimeout,
    OverloadedError,
    RateLimitTimeout,
    ServerError,
    UnknownProviderError,
)
from otpy.providers import (
    Completion,
    CompletionRequest,
    Provider,
    ProviderGateway,
    ProviderTable,
    RateLimitReading,
)
from otpy.supervision import Supervisor, whereis
from otpy.telemetry import Telemetry
from otpy.testing import FakeClock, wait_until
from support import InThread

NO_TIMEOUT = {"timeout": None, "max_attempts": 1}
_names = itertools.count()


@pytest.fixture
def name() -> str:
    return f"test{next(_names)}.providers"


@pytest.fixture
def snapshot() -> Snapshot[ProviderTable]:
    return Snapshot(ProviderTable())


@pytest.fixture
def registry(
    name: str, snapshot: Snapshot[ProviderTable], clock: FakeClock
) -> ProviderRegistryHandle:
    ProviderRegistry.start_named(name, snapshot, clock=clock)
    return ProviderRegistryHandle(name, snapshot, clock=clock, seed=7)


def ask(prompt: str = "hi") -> CompletionRequest:
    return CompletionRequest(prompt=prompt)


def add(
    registry: ProviderRegistryHandle,
    name: str,
    *,
    limits: dict[str, Any] | None = None,
    priority: int = 0,
    caps: tuple[str, ...] = ("text",),
    **provider: Any,
) -> ScriptedProvider:
    p = ScriptedProvider(name, capabilities=caps, **provider)
    registry.register_provider(name, p, priority=priority, limits={**NO_TIMEOUT, **(limits or {})})
    return p


# -- registration -------------------------------------------------------------------------


def test_register_get_list_unregister(
    registry: ProviderRegistryHandle, name: str, hub: Telemetry
) -> None:
    p = ScriptedProvider("a", capabilities=("text", "chat"))
    version = registry.snapshot_version
    e = registry.register_provider("a", p, priority=3, weight=2.5)
    assert registry.snapshot_version == version + 1  # published before the reply
    assert registry.get_provider("a") is e and e.provider is p
    assert (e.capabilities, e.priority, e.weight) == ({"text", "chat"}, 3, 2.5)
    add(registry, "b", caps=("text",))
    assert [x.name for x in registry.list_providers()] == ["a", "b"]
    assert [x.name for x in registry.list_providers("chat")] == ["a"]
    assert registry.table.names == ("a", "b")
    with pytest.raises(UnknownProviderError) as info:
        registry.get_provider("c")
    assert info.value.known == ("a", "b")
    assert registry.unregister_provider("a") is True
    assert registry.unregister_provider("a") is False
    assert [x.name for x in registry.list_providers()] == ["b"]
    names = [(e.name, e.metadata["name"]) for e in hub.store.query(name="registry.provider_*")]
    assert names == [
        ("registry.provider_registered", "a"),
        ("registry.provider_registered", "b"),
        ("registry.provider_unregistered", "a"),
    ]
    assert "ProviderRegistryHandle" in repr(registry) and name in repr(registry)


def test_duplicates_and_bad_arguments_are_refused_and_the_registry_lives_on(
    registry: ProviderRegistryHandle, name: str
) -> None:
    ref = whereis(name)
    first = registry.register_provider("a", ScriptedProvider("a"))
    with pytest.raises(DuplicateProviderError, match="replace=True"):
        registry.register_provider("a", ScriptedProvider("a2"))
    assert registry.get_provider("a") is first
    for bad in (
        {"provider": ScriptedProvider},
        {"limits": {"rpm": -1}},
        {"priority": "high"},
        {"name": ""},
    ):
        args: dict[str, Any] = {"name": "x", "provider": ScriptedProvider("x"), **bad}
        with pytest.raises(ConfigurationError):
            registry.register_provider(args.pop("name"), args.pop("provider"), **args)
    with pytest.raises(UnknownProviderError):
        registry.set_health("nobody", False, "x")
    with pytest.raises(ConfigurationError):
        registry.set_health("a", "no")  # type: ignore[arg-type]
    for unhashable in (["a"], {"a": 1}):  # not a crash: the registry must live on
        with pytest.raises(UnknownProviderError):
            registry.set_health(unhashable, False)  # type: ignore[arg-type]
        assert registry.unregister_provider(unhashable) is False  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            registry.register_provider(unhashable, ScriptedProvider("x"))  # type: ignore[arg-type]
    assert whereis(name) is ref and ref is not None and ref.is_alive()
    assert registry.list_providers() == [first]


def test_a_provider_whose_own_code_breaks_is_refused_without_crashing(
    registry: ProviderRegistryHandle, name: str
) -> None:
    class Broken(Provider):
        @property
        def capabilities(self) -> frozenset[str]:  # type: ignore[override]
            raise RuntimeError("no capabilities today")

        def complete(self, request: CompletionRequest) -> Completion:
            raise AssertionError("never called")

    with pytest.raises(ConfigurationError, match="could not be registered: RuntimeError"):
        registry.register_provider("broken", Broken())
    ref = whereis(name)
    assert ref is not None and ref.is_alive()


def test_replace_swaps_in_a_fresh_guard_and_stats(registry: ProviderRegistryHandle) -> None:
    old = registry.register_provider("a", ScriptedProvider("a"), limits=NO_TIMEOUT)
    registry.complete(ask())
    registry.set_health("a", False, "slow")
    new = registry.register_provider("a", ScriptedProvider("a2"), limits=NO_TIMEOUT, replace=True)
    assert registry.get_provider("a") is new and new.healthy
    assert new.breaker is not old.breaker and new.stats is not old.stats
    assert new.stats.statistics().total_calls == 0 and old.stats.statistics().total_calls == 1
    assert registry.complete(ask()).provider == "a2"


def test_set_health_takes_a_provider_out_of_selection_but_not_out_of_reach(
    registry: ProviderRegistryHandle, hub: Telemetry
) -> None:
    add(registry, "main", priority=10)
    add(registry, "spare")
    before = registry.get_provider("main")
    assert registry.select().name == "main"
    registry.set_health("main", False, "too slow")
    after = registry.get_provider("main")
    assert not after.healthy and after.unhealthy_reason == "too slow"
    assert after.breaker is before.breaker and after.stats is before.stats
    assert registry.select().name == "spare"
    with pytest.raises(NoProviderAvailable) as info:
        registry.select(exclude="spare")
    assert info.value.excluded == {"main": "unhealthy: too slow", "spare": "excluded by the caller"}
    assert registry.complete(ask(), provider="main").provider == "main"  # asked for by name
    assert registry.health()["main"].healthy is False
    assert registry.health()["main"].reason == "too slow"
    version = registry.snapshot_version
    registry.set_health("main", False, "too slow")  # no change: nothing published
    assert registry.snapshot_version == version
    registry.set_health("main", True)
    assert registry.select().name == "main"
    changes = [
        (e.metadata["healthy"], e.metadata["reason"])
        for e in hub.store.query(name="registry.provider_health")
    ]
    assert changes == [(False, "too slow"), (True, "")]


def test_the_handle_is_a_provider_gateway(registry: ProviderRegistryHandle) -> None:
    add(registry, "plain", caps=("text",), priority=5)
    add(registry, "rich", caps=("text", "structured_output"))
    gateway: ProviderGateway = registry
    assert gateway.complete(ask()).provider == "plain"
    assert gateway.complete(ask(), capabilities=["structured_output"]).provider == "rich"
    assert gateway.complete(ask(), provider="rich").provider == "rich"
    with pytest.raises(NoProviderAvailable, match="lacks structured_output"):
        gateway.complete(ask(), provider="plain", capabilities=["structured_output"])
    with pytest.raises(UnknownProviderError):
        gateway.complete(ask(), provider="ghost")
    with pytest.raises(ConfigurationError, match="CompletionRequest"):
        registry.complete("hi")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="round_robin"):
        registry.select(strategy="best")
    with pytest.raises(ConfigurationError, match="unknown selection strategy"):
        ProviderRegistryHandle("x", Snapshot(ProviderTable()), strategy="best")


def test_round_robin_rotates_per_capability_set(registry: ProviderRegistryHandle) -> None:
    for n in ("a", "b", "c"):
        add(registry, n, caps=("text", "chat") if n != "c" else ("text",))
    text = [registry.select("text", "round_robin").name for _ in range(6)]
    chat = [registry.select(["chat"], "round_robin").name for _ in range(4)]
    assert text == ["a", "b", "c", "a", "b", "c"]
    assert chat == ["a", "b", "a", "b"]  # its own rotation
    default = ProviderRegistryHandle(registry.name, registry._snapshot, strategy="round_robin")
    assert [default.select().name for _ in range(3)] == ["a", "b", "c"]


def test_weighted_is_repeatable_for_a_seed(
    registry: ProviderRegistryHandle, name: str, snapshot: Snapshot[ProviderTable]
) -> None:
    for n, w in (("a", 1.0), ("b", 2.0), ("c", 7.0)):
        registry.register_provider(n, ScriptedProvider(n), weight=w)
    one = ProviderRegistryHandle(name, snapshot, seed=42)
    two = ProviderRegistryHandle(name, snapshot, seed=42)
    picks = [one.select(strategy="weighted").name for _ in range(2_000)]
    assert picks == [two.select(strategy="weighted").name for _ in range(2_000)]
    counts = Counter(picks)
    assert counts["c"] > counts["b"] > counts["a"] > 100


# -- restarts -----------------------------------------------------------------------------


def test_a_restarted_registry_keeps_every_provider_while_readers_keep_selecting(
    name: str, snapshot: Snapshot[ProviderTable], clock: FakeClock
) -> None:
    sup = Supervisor.start(
        [ProviderRegistry.child_spec(name, snapshot, clock=clock)], max_restarts=5, clock=clock
    )
    registry = ProviderRegistryHandle(name, snapshot, clock=clock, timeout=5.0)
    for i in range(20):
        add(registry, f"p{i:02}", priority=i, caps=("text", f"c{i % 4}"))
    before = {e.name: (e.breaker, e.stats, e.limiter) for e in registry.list_providers()}
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        n = 0
        while not stop.is_set():
            try:
                assert registry.select("text").name == "p19"
                assert registry.select("c1", "round_robin").name.startswith("p")
                assert registry.get_provider("p07").priority == 7
                assert len(registry.list_providers()) >= 20
            except BaseException as exc:
                errors.append(exc)
                return
            n += 1
        seen.append(n)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for i, crash in enumerate(("kill", "bad message", "kill")):
            ref = whereis(name)
            assert ref is not None
            if crash == "kill":
                ref.kill()
            else:  # a handler raising a non-otpy error crashes the actor
                with pytest.raises(TypeError):
                    registry._actor.register_provider()
            # a writer sent while it is down waits for the next incarnation
            add(registry, f"late{i}", caps=("other",))
            new = whereis(name)
            assert new is not None and new is not ref and new.is_alive()
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    assert errors == [] and len(seen) == 2 and min(seen) > 0
    after = {e.name: (e.breaker, e.stats, e.limiter) for e in registry.list_providers()}
    assert len(after) == 23
    for n, parts in before.items():
        assert all(a is b for a, b in zip(after[n], parts, strict=True)), n
    assert sup.which_children()[0].ref is whereis(name)


# -- calls through the guard --------------------------------------------------------------


def test_a_rate_limit_makes_callers_wait_on_the_clock(
    registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    p = add(registry, "slowpoke", limits={"rpm": 2})
    registry.complete(ask())
    registry.complete(ask())
    waiting = InThread(registry.complete, ask("third"))
    clock.wait_for_sleepers(1)
    assert not waiting.done.is_set() and p.calls == 2
    assert registry.health()["slowpoke"].in_flight == 1  # waiting counts as in flight
    clock.advance(60)
    assert waiting.result().text == "slowpoke: third"
    limiter = registry.get_provider("slowpoke").limiter
    assert limiter is not None and limiter.statistics().waited == 1


def test_acquire_timeout_gives_up_waiting(
    registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    add(registry, "busy", limits={"rpm": 1, "acquire_timeout": 5})
    registry.complete(ask())
    waiting = InThread(registry.complete, ask())
    clock.wait_for_sleepers(1)
    clock.advance(5)
    with pytest.raises(RateLimitTimeout):
        waiting.result()
    s = registry.get_provider("busy").stats.statistics()
    assert s.failures == 0 and s.last_error is not None and "RateLimitTimeout" in s.last_error


def test_the_breaker_opens_after_failures_and_selection_skips_it(
    registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    bad = add(registry, "bad", priority=10, limits={"fail_max": 3, "reset_timeout": 30})
    add(registry, "good")
    bad.failing = ServerError("500", provider="bad", status=500)
    for _ in range(3):
        with pytest.raises(ServerError):
            registry.complete(ask())  # priority picks "bad" while its breaker is closed
    assert registry.health()["bad"].breaker_state == "open"
    assert registry.select().name == "good"
    assert registry.complete(ask()).provider == "good"
    with pytest.raises(CircuitOpenError):
        registry.complete(ask(), provider="bad")  # refused without calling it
    assert bad.calls == 3
    with pytest.raises(NoProviderAvailable) as info:
        registry.select(exclude=["good"])
    assert info.value.excluded["bad"].startswith("circuit breaker open")
    health = registry.health()["bad"]
    assert (health.calls, health.error_rate, health.breaker_retry_in) == (3, 1.0, 30.0)
    clock.advance(30)  # a probe is due: selection may try it again
    bad.failing = None
    assert registry.select().name == "bad"
    assert registry.complete(ask()).provider == "bad"
    assert registry.health()["bad"].breaker_state == "closed"


def test_retries_wait_on_the_clock_and_each_attempt_is_recorded(
    registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    p = add(
        registry,
        "p",
        limits={"max_attempts": 3},
        script=[ServerError("a", retry_after=2.0), OverloadedError("b", retry_after=3.0)],
    )
    call = InThread(registry.complete, ask())
    clock.wait_for_sleepers(1)
    assert p.calls == 1
    clock.advance(2)  # the first Retry-After
    p.wait_calls(2)
    clock.wait_for_sleepers(1)
    clock.advance(3)  # the second
    assert call.result().provider == "p"
    s = registry.get_provider("p").stats.statistics()
    assert (s.calls, s.failures, p.calls) == (3, 2, 3)
    assert s.last_error is not None and s.last_error.startswith("OverloadedError")
    (event,) = hub.store.query(name="provider.call")
    assert event.measurements == {"latency": 5.0, "tokens": 15, "attempts": 3}
    p.failing = ServerError("down")
    call = InThread(registry.complete, ask())
    for n in (4, 5):
        p.wait_calls(n)
        clock.wait_for_sleepers(1)
        clock.advance(30)  # past any backoff
    with pytest.raises(ServerError):
        call.result()
    assert p.calls == 6
    assert hub.store.query(name="provider.call")[-1].metadata["outcome"] == "ServerError"


def test_a_call_past_its_timeout_is_a_fault(
    registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    gate = threading.Event()
    add(registry, "hung", limits={"timeout": 5, "max_attempts": 1}, gate=gate)
    call = InThread(registry.complete, ask())
    clock.wait_for_sleepers(1)
    clock.advance(5)
    try:
        with pytest.raises(OperationTimeout):
            call.result()
    finally:
        gate.set()
    s = registry.get_provider("hung").stats.statistics()
    assert (s.calls, s.failures, s.in_flight) == (1, 1, 0)


# -- live stats ---------------------------------------------------------------------------


def test_in_flight_counts_concurrent_calls_and_least_loaded_follows_it(
    registry: ProviderRegistryHandle,
) -> None:
    gate = threading.Event()
    p = add(registry, "a", gate=gate, priority=1)
    add(registry, "b")
    calls = [InThread(registry.complete, ask(), provider="a") for _ in range(6)]
    try:
        p.wait_calls(6)
        assert registry.health()["a"].in_flight == 6
        assert registry.select(strategy="least_loaded").name == "b"
        assert registry.select(strategy="priority").name == "a"
    finally:
        gate.set()
    assert all(c.result().provider == "a" for c in calls)
    assert registry.health()["a"].in_flight == 0
    assert registry.select(strategy="least_loaded").name == "a"


def test_health_reports_latency_percentiles_and_error_rate(
    registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    latencies = [0.2] * 45 + [0.4] * 45 + [3.0] * 10
    p = add(registry, "p", clock=clock, latency=latencies, limits={"fail_max": 100})
    for _ in range(100):
        registry.complete(ask())
    p.script = [ServerError("x")] * 25
    for _ in range(25):
        with pytest.raises(ServerError):
            registry.complete(ask())
    h = registry.health()["p"]
    assert h.latency_p50 == pytest.approx(0.4, rel=0.01)
    assert h.latency_p99 == pytest.approx(3.0, rel=0.01)
    assert (h.calls, h.error_rate) == (100, 0.25)  # the window keeps the last 100
    assert h.last_error == "ServerError: provider: x" and h.healthy and h.in_flight == 0


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_many_readers_and_concurrent_writers(registry: ProviderRegistryHandle, round_: int) -> None:
    for n in ("a", "b", "c"):
        add(registry, n)
    version = registry.snapshot_version
    readers, selects, writers, writes = 8, 3_000, 4, 50
    start = threading.Barrier(readers + writers)
    picks: list[Counter[str]] = [Counter() for _ in range(readers)]
    errors: list[BaseException] = []

    def read(i: int) -> None:
        start.wait()
        try:
            for _ in range(selects):
                picks[i][registry.select("text", "round_robin").name] += 1
                registry.select(["text"], "least_loaded")
        except BaseException as exc:
            errors.append(exc)

    def write(w: int) -> None:
        start.wait()
        try:
            for k in range(writes):
                add(registry, f"w{w}.{k}", caps=("other",))
                registry.set_health(f"w{w}.{k}", k % 2 == 0, "odd")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    threads += [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    total = sum(picks, Counter())
    assert total == {"a": 8_000, "b": 8_000, "c": 8_000}  # the shared rotation lost no turn
    names = {e.name for e in registry.list_providers("other")}
    assert names == {f"w{w}.{k}" for w in range(writers) for k in range(writes)}
    healthy = {e.name for e in registry.list_providers("other") if e.healthy}
    assert healthy == {f"w{w}.{k}" for w in range(writers) for k in range(0, writes, 2)}
    assert registry.snapshot_version == version + writers * (writes + writes // 2)


def test_select_cost(registry: ProviderRegistryHandle) -> None:
    """Not a benchmark (benchmarks/registries.py is): prints p50/p99 for the report."""
    for n in ("a", "b", "c"):
        add(registry, n, caps=("text", "chat"))
    out = []
    for strategy in ("priority", "round_robin", "least_loaded"):
        samples = []
        for _ in range(5_000):
            t = time.perf_counter_ns()
            registry.select(("text",), strategy)
            samples.append(time.perf_counter_ns() - t)
        samples.sort()
        p50, p99 = samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3
        out.append(f"{strategy}: p50 {p50:.2f} µs, p99 {p99:.2f} µs")
    print("select over 3 providers:", "; ".join(out))


# -- plugins ------------------------------------------------------------------------------


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, "otpy.providers")


def test_plugins_register_and_broken_ones_are_skipped(
    registry: ProviderRegistryHandle, name: str
) -> None:
    eps = [
        ep("echo", "provider_plugins:ECHO"),
        ep("echo_cls", "provider_plugins:EchoProvider"),
        ep("pair", "provider_plugins:register_pair"),
        ep("missing", "no_such_module_xyz:thing"),
        ep("wrong", "provider_plugins:NOT_A_PROVIDER"),
        ep("wrong_cls", "provider_plugins:NotAProviderClass"),
        ep("needs_args", "provider_plugins:NeedsArgs"),
        ep("raises", "provider_plugins:broken_plugin"),
    ]
    reports = registry.load_plugins(eps)
    assert {r.name: r.loaded for r in reports} == {
        "echo": True,
        "echo_cls": True,
        "pair": True,
        "missing": False,
        "wrong": False,
        "wrong_cls": False,
        "needs_args": False,
        "raises": False,
    }
    why = {r.name: r.error for r in reports if not r.loaded}
    assert why["missing"] is not None and "ModuleNotFoundError" in why["missing"]
    assert why["wrong"] is not None and "expected a Provider instance" in why["wrong"]
    assert why["needs_args"] is not None and why["needs_args"].startswith("TypeError")
    assert why["raises"] is not None and "plugin backend unreachable" in why["raises"]
    assert registry.table.names == ("echo", "echo_cls", "pair.a", "pair.b")
    assert registry.get_provider("echo").provider is ECHO
    assert registry.get_provider("echo").capabilities == {"text", "echo"}
    assert registry.select("echo").name == "echo"
    again = registry.load_plugins(lambda group: [ep("echo", "provider_plugins:ECHO")])
    assert not again[0].loaded and "DuplicateProviderError" in (again[0].error or "")
    ref = whereis(name)
    assert ref is not None and ref.is_alive()


def test_child_spec_registers_under_the_name(
    name: str, snapshot: Snapshot[ProviderTable], clock: FakeClock
) -> None:
    spec = ProviderRegistry.child_spec(name, snapshot, clock=clock)
    assert spec.id == name
    Supervisor.start([spec], clock=clock)
    registry = ProviderRegistryHandle(name, snapshot, clock=clock)
    add(registry, "a")
    assert wait_until(lambda: whereis(name)) and registry.select().name == "a"


def test_the_providers_reported_limits_align_its_limiter(registry: ProviderRegistryHandle) -> None:
    class Reporting(ScriptedProvider):
        """Answers with the server's view: 4 requests and 500 tokens left this minute."""

        def complete(self, request: CompletionRequest) -> Completion:
            answer = super().complete(request)
            readings = (
                RateLimitReading(dimension="requests", limit=50, remaining=4),
                RateLimitReading(dimension="tokens", limit=40_000, remaining=500),
                RateLimitReading(dimension="output_tokens", remaining=0),  # no such bucket
            )
            return answer.model_copy(update={"rate_limits": readings})

    entry = registry.register_provider(
        "r", Reporting("r"), limits={"rpm": 50, "tpm": 40_000, "timeout": None}
    )
    registry.complete(ask())
    assert entry.limiter is not None
    levels = {b.dimension: b.level for b in entry.limiter.statistics().buckets}
    assert levels["requests"] == pytest.approx(50 - 4)  # 1 used, 45 more charged
    assert levels["tokens"] == pytest.approx(40_000 - 500)
    assert entry.limiter.statistics().aligned == {"requests": 45, "tokens": 40_000 - 500 - 15}


def test_a_health_verdict_about_a_replaced_registration_is_not_applied(
    registry: ProviderRegistryHandle,
) -> None:
    old = registry.register_provider("a", ScriptedProvider("a"), limits=NO_TIMEOUT)
    new = registry.register_provider("a", ScriptedProvider("a2"), limits=NO_TIMEOUT, replace=True)
    registry.set_health("a", False, "judged on the old one", expected=old)
    assert registry.get_provider("a").healthy  # the verdict was about the old registration
    registry.set_health("a", False, "judged on this one", expected=new)
    assert registry.get_provider("a").unhealthy_reason == "judged on this one"
    registry.set_health("a", True, expected=registry.get_provider("a"))  # a health change
    assert registry.get_provider("a").healthy  # keeps the registration: still applies
