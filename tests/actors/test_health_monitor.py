"""The HealthMonitor on a FakeClock: an unhealthy provider leaves selection at the next check
and comes back when it recovers."""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

import pytest
from provider_plugins import CheckedProvider, ScriptedProvider

from otpy._snapshot import Snapshot
from otpy.actors import HealthChange, HealthMonitor, ProviderRegistry, ProviderRegistryHandle
from otpy.errors import ConfigurationError, NoProviderAvailable, ServerError
from otpy.providers import CompletionRequest, ProviderTable
from otpy.supervision import NamedHandle, Supervisor, whereis
from otpy.telemetry import Telemetry
from otpy.testing import FakeClock, wait_until
from support import InThread

INTERVAL = 10.0
_names = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"hm{next(_names)}"


@pytest.fixture
def registry(prefix: str, clock: FakeClock) -> ProviderRegistryHandle:
    snapshot: Snapshot[ProviderTable] = Snapshot(ProviderTable())
    ProviderRegistry.start_named(f"{prefix}.providers", snapshot, clock=clock)
    return ProviderRegistryHandle(f"{prefix}.providers", snapshot, clock=clock)


def start_monitor(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, **rule: Any
) -> NamedHandle:
    """A monitor checking every 10 s: out at an error rate >= 50% over >= 4 calls, back on
    probation after 30 s out."""
    settings: dict[str, Any] = {
        "min_calls": 4,
        "error_rate": 0.5,
        "recover_after": 30.0,
        "check_timeout": None,
        **rule,
    }
    HealthMonitor.start_named(
        f"{prefix}.health", registry, interval=INTERVAL, clock=clock, **settings
    )
    return NamedHandle(f"{prefix}.health")


def add(registry: ProviderRegistryHandle, provider: ScriptedProvider, **kwargs: Any) -> None:
    limits = {"timeout": None, "max_attempts": 1, "fail_max": 100, **kwargs.pop("limits", {})}
    registry.register_provider(provider.name, provider, limits=limits, **kwargs)


def tick(clock: FakeClock, seconds: float = INTERVAL) -> None:
    """Move the clock to the next check and wait until that check is done (it re-arms its
    timer when it finishes)."""
    clock.wait_for_timers(1)
    clock.advance(seconds)
    clock.wait_for_timers(1)


def ask() -> CompletionRequest:
    return CompletionRequest(prompt="q")


def calls(registry: ProviderRegistryHandle, n: int, **kwargs: Any) -> None:
    for _ in range(n):
        with contextlib.suppress(ServerError):
            registry.complete(ask(), **kwargs)


def events(hub: Telemetry, name: str) -> list[dict[str, Any]]:
    return [dict(e.metadata) for e in hub.store.query(name=name)]


def test_a_failing_provider_leaves_at_the_next_check_and_returns_on_probation(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky, steady = ScriptedProvider("flaky"), ScriptedProvider("steady")
    add(registry, flaky, priority=10)
    add(registry, steady)
    start_monitor(prefix, registry, clock)
    calls(registry, 4)
    tick(clock)
    assert registry.select().name == "flaky" and events(hub, "provider.unhealthy") == []

    flaky.failing = ServerError("500", provider="flaky", status=500)
    calls(registry, 4)  # 4 failures after 4 successes: 50%
    assert registry.select().name == "flaky"  # taken out at the check, not before
    tick(clock)
    assert registry.select().name == "steady"
    (event,) = events(hub, "provider.unhealthy")
    assert event["provider"] == "flaky"
    assert "error rate 50% over the last 8 calls" in event["reason"]
    health = registry.health()["flaky"]
    assert not health.healthy and health.reason == event["reason"]

    flaky.failing = None  # recovered, but it gets no traffic to show it
    calls(registry, 5)
    assert flaky.calls == 8
    tick(clock)
    tick(clock)  # 20 s out: still out
    assert registry.select().name == "steady" and events(hub, "provider.recovered") == []
    tick(clock)  # 30 s out: back on probation, its old failures forgotten
    assert registry.select().name == "flaky"
    (back,) = hub.store.query(name="provider.recovered")
    assert back.metadata["provider"] == "flaky" and back.metadata["probation"] is True
    assert back.measurements["out_for"] == 30.0
    assert registry.health()["flaky"].calls == 0
    calls(registry, 4)
    tick(clock)
    assert registry.select().name == "flaky" and len(events(hub, "provider.unhealthy")) == 1


def test_on_probation_a_still_failing_provider_is_taken_out_again(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky, priority=10)
    add(registry, ScriptedProvider("steady"))
    start_monitor(prefix, registry, clock, recover_after=10.0)
    flaky.failing = ServerError("down")
    calls(registry, 4)
    tick(clock)
    assert registry.select().name == "steady"
    tick(clock)
    assert registry.select().name == "flaky"  # probation
    calls(registry, 4)
    tick(clock)
    assert registry.select().name == "steady"
    assert [e["provider"] for e in events(hub, "provider.unhealthy")] == ["flaky", "flaky"]


def test_calls_by_name_can_heal_the_window_without_probation(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky, priority=10)
    add(registry, ScriptedProvider("steady"))
    start_monitor(prefix, registry, clock, recover_after=1000.0)
    flaky.script = [ServerError("x")] * 4
    calls(registry, 4)
    tick(clock)
    assert registry.select().name == "steady"
    calls(registry, 6, provider="flaky")  # asked for by name: it still gets these
    tick(clock)
    assert registry.select().name == "flaky"
    (back,) = events(hub, "provider.recovered")
    assert back["probation"] is False and registry.health()["flaky"].calls == 10


def test_an_open_breaker_holds_a_provider_out_until_its_reset_timeout(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky, priority=10, limits={"fail_max": 2, "reset_timeout": 35})
    add(registry, ScriptedProvider("steady"))
    start_monitor(prefix, registry, clock, recover_after=10.0)
    flaky.failing = ServerError("down")
    calls(registry, 2)  # opens at t=0, refuses calls until t=35
    tick(clock)  # t=10
    (event,) = events(hub, "provider.unhealthy")
    assert event["reason"].startswith("circuit breaker open")
    tick(clock)
    tick(clock)  # t=30: out 20 s > recover_after, but the breaker still refuses
    assert not registry.get_provider("flaky").healthy
    assert events(hub, "provider.recovered") == []
    tick(clock)  # t=40: the breaker admits a probe, and 2 calls are too few to judge
    (back,) = events(hub, "provider.recovered")
    assert back["probation"] is False
    flaky.failing = None
    assert registry.select().name == "flaky"
    registry.complete(ask())  # the probe succeeds and closes the breaker
    assert registry.health()["flaky"].breaker_state == "closed"


def test_breaker_refusal_blocks_probation_at_the_check(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky, priority=10, limits={"fail_max": 2, "reset_timeout": 25})
    add(registry, ScriptedProvider("steady"))
    monitor = start_monitor(prefix, registry, clock, recover_after=10.0)
    flaky.failing = ServerError("down")
    calls(registry, 2)
    assert [c.healthy for c in monitor.check_now()] == [False]  # t=0
    clock.advance(20)
    assert monitor.check_now() == []  # 20 s out, but the breaker refuses for 5 s more
    clock.advance(5)
    (change,) = monitor.check_now()  # the breaker admits a probe; 2 calls < min_calls
    assert change == HealthChange("flaky", True, "", probation=False)


def test_a_health_check_takes_a_provider_out_and_brings_it_back(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    checked = CheckedProvider("checked")
    add(registry, checked, priority=10)
    add(registry, ScriptedProvider("steady"))
    monitor = start_monitor(prefix, registry, clock, recover_after=5.0, check_timeout=10.0)
    assert monitor.check_now() == [] and checked.checks == 1
    checked.check = False
    (change,) = monitor.check_now()
    assert change.reason == "health_check failed: returned False"
    assert registry.select().name == "steady"
    checked.check = ConnectionError("refused")
    clock.advance(100)
    assert monitor.check_now() == []  # a failing check is live evidence: no probation
    assert registry.health()["checked"].reason == "health_check failed: returned False"
    checked.check = None  # None counts as a pass
    assert monitor.check_now() == [HealthChange("checked", True)]
    assert registry.select().name == "checked"
    checked.check = ConnectionError("refused")
    (change,) = monitor.check_now()
    assert change.reason == "health_check failed: ConnectionError: refused"


def test_a_slow_provider_leaves_on_latency(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    add(registry, ScriptedProvider("slow", clock=clock, latency=2.0), priority=10)
    add(registry, ScriptedProvider("steady"))
    monitor = start_monitor(prefix, registry, clock, latency_p99=1.5)
    registry.complete(ask())
    assert registry.health()["slow"].latency_p99 == pytest.approx(2.0, rel=0.01)
    (change,) = monitor.check_now()
    assert "latency p99 2.000 s over 1.5 s" in change.reason
    assert registry.select().name == "steady"


def test_set_health_is_called_only_on_a_change(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky)
    monitor = start_monitor(prefix, registry, clock, recover_after=1000.0)
    flaky.failing = ServerError("x")
    calls(registry, 4)
    version = registry.snapshot_version
    assert len(monitor.check_now()) == 1
    for _ in range(5):
        assert monitor.check_now() == []
        tick(clock)
    assert registry.snapshot_version == version + 1
    assert len(events(hub, "registry.provider_health")) == 1
    assert len(events(hub, "provider.unhealthy")) == 1
    with pytest.raises(NoProviderAvailable, match="unhealthy: error rate 100%"):
        registry.select()


def test_the_timer_is_rearmed_after_each_check_and_cancelled_on_stop(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock
) -> None:
    start_monitor(prefix, registry, clock)
    ref = whereis(f"{prefix}.health")
    assert ref is not None
    for _ in range(3):
        tick(clock)
        assert clock.pending_timers() == 1
    assert ref.proxy().checks.get(timeout=5) == 3
    ref.stop()
    assert clock.pending_timers() == 0


def test_a_restarted_monitor_keeps_checking(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    flaky = ScriptedProvider("flaky")
    add(registry, flaky, priority=10)
    add(registry, ScriptedProvider("steady"))
    name = f"{prefix}.health"
    spec = HealthMonitor.child_spec(
        name, registry, interval=INTERVAL, clock=clock, min_calls=4, check_timeout=None
    )
    assert spec.id == name
    Supervisor.start([spec], clock=clock)
    old = whereis(name)
    assert old is not None
    old.kill()  # no on_stop: its timer is left behind and fires into the void
    new = wait_until(lambda: (r := whereis(name)) is not None and r is not old and r)
    assert new.is_alive()
    clock.wait_for_timers(2)  # the new one has armed its timer (the name comes before that)
    flaky.failing = ServerError("x")
    calls(registry, 4)
    clock.advance(INTERVAL)
    # the monitor marks the provider, then emits the event: wait for the event, the last
    wait_until(lambda: events(hub, "provider.unhealthy"), message="the unhealthy event")
    assert not registry.get_provider("flaky").healthy
    assert registry.select().name == "steady"
    assert len(events(hub, "provider.unhealthy")) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": 0},
        {"interval": float("inf")},
        {"check_timeout": -1},
        {"error_rate": 2},
        {"min_calls": 0},
    ],
)
def test_bad_settings_are_refused_at_start(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, kwargs: dict[str, Any]
) -> None:
    settings: dict[str, Any] = {"interval": 10.0, "clock": clock, **kwargs}
    with pytest.raises(ConfigurationError):
        HealthMonitor.start_named(f"{prefix}.health", registry, **settings)
    assert whereis(f"{prefix}.health") is None


def test_a_hung_health_check_costs_one_thread_not_one_per_check(
    prefix: str, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    release, entered = threading.Event(), threading.Event()

    class Hanging(ScriptedProvider):
        started = 0

        def health_check(self) -> bool:
            Hanging.started += 1
            entered.set()
            release.wait(10)  # hangs until the test lets it go
            return True

    add(registry, Hanging("hanging"), priority=10)
    add(registry, ScriptedProvider("steady"))
    monitor = start_monitor(prefix, registry, clock, check_timeout=5.0)
    first = InThread(monitor.check_now)
    assert entered.wait(10)  # the check runs (on a pooled runner) and hangs
    clock.wait_for_sleepers(1)
    clock.advance(5.0)  # the check times out and is abandoned
    (change,) = first.result()
    assert change.healthy is False and "OperationTimeout" in change.reason
    for _ in range(3):  # still hung: counted as failing, and no second check is started
        assert monitor.check_now() == []
        assert registry.health()["hanging"].healthy is False
    assert Hanging.started == 1
    release.set()
    # this check's runner goes idle (other tests' abandoned checks may still be running)
    ours = "health_check:hanging"
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.endswith(ours)])
    (back,) = monitor.check_now()
    assert back.healthy is True and Hanging.started == 2
