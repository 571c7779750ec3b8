"""The provider table, entries, limits, stats, selection strategies and the health rule:
plain logic, no actors, no threads."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from provider_plugins import ScriptedProvider

from otpy.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    InvalidRequestError,
    NoProviderAvailable,
    RateLimitedError,
    ServerError,
    UnknownProviderError,
)
from otpy.providers import (
    STRATEGIES,
    CompletionRequest,
    HealthRule,
    ProviderEntry,
    ProviderHealth,
    ProviderLimits,
    ProviderStats,
    ProviderTable,
)
from otpy.providers._health import Verdict, assess, decide, is_fault
from otpy.providers._select import (
    by_least_latency,
    by_least_loaded,
    by_priority,
    by_round_robin,
    by_weighted,
    candidates,
    select,
)
from otpy.providers._table import make_entry
from otpy.telemetry import Telemetry
from otpy.testing import FakeClock

NO_TIMEOUT = {"timeout": None, "max_attempts": 1}
TEXT = frozenset({"text"})


def entry(
    clock: FakeClock,
    name: str,
    *,
    caps: tuple[str, ...] = ("text",),
    priority: int = 0,
    weight: float = 1.0,
    limits: dict[str, Any] | None = None,
    **provider: Any,
) -> ProviderEntry:
    return make_entry(
        name,
        ScriptedProvider(name, capabilities=caps, clock=clock, **provider),
        priority=priority,
        weight=weight,
        limits={**NO_TIMEOUT, **(limits or {})},
        clock=clock,
    )


def ask(prompt: str = "hi") -> CompletionRequest:
    return CompletionRequest(prompt=prompt)


# -- the table ----------------------------------------------------------------------------


def test_table_is_immutable_sorted_and_reports_the_known_names(clock: FakeClock) -> None:
    b, a = entry(clock, "b"), entry(clock, "a", caps=("text", "chat"))
    empty = ProviderTable()
    one = empty.with_entry(b)
    two = one.with_entry(a)
    assert len(empty) == 0 and one.names == ("b",)
    assert two.names == ("a", "b") and list(two) == [a, b] and two.ordered == (a, b)
    assert two.get("a") is a and two.get("zzz") is None and "a" in two
    assert two.list("chat") == [a] and two.list() == [a, b] and two.list("none") == []
    with pytest.raises(UnknownProviderError) as info:
        two.require("c")
    assert info.value.known == ("a", "b")
    assert "unknown provider 'c'" in str(info.value) and "a, b" in str(info.value)
    with pytest.raises(TypeError):
        two.entries["c"] = a  # type: ignore[index]
    assert two.without("zzz") is two
    assert two.without("a").names == ("b",) and two.names == ("a", "b")
    a2 = entry(clock, "a")
    swapped = two.with_entry(a2)
    assert swapped.get("a") is a2 and two.get("a") is a and swapped.names == ("a", "b")


def test_make_entry_defaults_and_health_updates_share_the_live_parts(clock: FakeClock) -> None:
    provider = ScriptedProvider("p", capabilities=("text", "chat"))
    e = make_entry("p", provider, clock=clock)
    assert e.capabilities == {"text", "chat"} and e.priority == 0 and e.weight == 1.0
    assert e.limits == ProviderLimits() and e.limiter is None and e.healthy
    assert make_entry("q", provider, capabilities="text", clock=clock).capabilities == TEXT
    down = e.with_health(False, "flaky")
    assert not down.healthy and down.unhealthy_reason == "flaky" and e.healthy
    assert down.guard is e.guard and down.breaker is e.breaker and down.stats is e.stats
    assert down.with_health(True, "ignored").unhealthy_reason == ""
    assert "unhealthy (flaky)" in repr(down) and "'p'" in repr(e)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "provider name"),
        ({"name": "has space"}, "provider name"),
        ({"name": 3}, "provider name"),
        ({"provider": ScriptedProvider}, "instantiate it"),
        ({"provider": object()}, "must be a Provider instance"),
        ({"capabilities": [1]}, "capabilities must be non-empty strings"),
        ({"capabilities": [""]}, "capabilities must be non-empty strings"),
        ({"capabilities": 5}, "capabilities must be strings"),
        ({"priority": True}, "priority must be an int"),
        ({"priority": 1.5}, "priority must be an int"),
        ({"weight": 0}, "weight must be a finite number > 0"),
        ({"weight": float("inf")}, "weight must be a finite number > 0"),
        ({"weight": float("nan")}, "weight must be a finite number > 0"),
        ({"limits": {"rpm": 0}}, "limits.rpm"),
        ({"limits": {"timeout": -1}}, "limits.timeout"),
        ({"limits": {"timeout": float("inf")}}, "limits.timeout"),
        ({"limits": {"max_attempts": 0}}, "limits.max_attempts"),
        ({"limits": {"burst": 3}}, "limits.burst"),
        ({"limits": "fast"}, "limits must be a ProviderLimits or a mapping"),
        ({"limits": {"rpm": 5, "storage": "nosuch://x"}}, "storage"),
    ],
)
def test_make_entry_names_what_is_wrong(
    clock: FakeClock, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"name": "p", "provider": ScriptedProvider("p"), **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        make_entry(args.pop("name"), args.pop("provider"), clock=clock, **args)


def test_limits_build_the_guard(clock: FakeClock) -> None:
    limits = ProviderLimits(rpm=60, tpm=1000, fail_max=2, reset_timeout=7, max_attempts=4)
    e = make_entry("p", ScriptedProvider("p"), limits=limits, clock=clock)
    assert e.limits is limits
    assert e.limiter is not None
    assert {(lim.dimension, lim.amount, lim.period) for lim in e.limiter.limits} == {
        ("requests", 60, 60),
        ("tokens", 1000, 60),
    }
    stats = e.breaker.statistics()
    assert (stats.fail_max, stats.reset_timeout, stats.state) == (2, 7.0, "closed")
    assert e.guard.guard.retry.max_attempts == 4 and e.guard.guard.timeout == 120.0
    assert e.guard.guard.breaker is e.breaker and e.guard.guard.limiter is e.limiter
    only_rpm = make_entry("q", ScriptedProvider("q"), limits={"rpm": 5}, clock=clock)
    assert only_rpm.limiter is not None
    assert [lim.dimension for lim in only_rpm.limiter.limits] == ["requests"]
    with pytest.raises(ValueError, match="Extra inputs"):  # pydantic's own ValidationError
        ProviderLimits(burst=1)  # type: ignore[call-arg]


def test_a_call_reserves_requests_and_estimated_tokens_then_settles_the_real_usage(
    clock: FakeClock,
) -> None:
    e = entry(clock, "p", limits={"rpm": 10, "tpm": 10_000}, tokens=(30, 12))
    e.complete(ask())
    levels = {b.dimension: b.level for b in e.limiter.statistics().buckets}  # type: ignore[union-attr]
    assert levels == {"requests": 1, "tokens": 42}


# -- stats --------------------------------------------------------------------------------


def test_stats_window_slides_and_reset_keeps_in_flight() -> None:
    stats = ProviderStats("p", window=4)
    for ok in (False, False, True, True):
        stats.record_outcome(ok)
    assert (stats.statistics().calls, stats.statistics().error_rate) == (4, 0.5)
    stats.record_outcome(True)  # the first failure drops out
    stats.record_outcome(True)  # the second too
    s = stats.statistics()
    assert (s.calls, s.failures, s.error_rate, s.total_failures) == (4, 0, 0.0, 2)
    stats.record_error(InvalidRequestError("bad", provider="p"))  # not a fault
    assert stats.statistics().failures == 0
    assert stats.statistics().last_error == "InvalidRequestError: provider 'p': bad"
    stats.record_error(ServerError("boom", provider="p"))
    assert stats.statistics().failures == 1
    stats.begin()
    stats.record_latency(0.3)
    stats.reset()
    s = stats.statistics()
    assert (s.calls, s.failures, s.latency_count, s.in_flight) == (0, 0, 0, 1)
    assert s.total_calls == 1 and s.total_failures == 3
    stats.end()
    assert stats.in_flight == 0
    with pytest.raises(ConfigurationError):
        ProviderStats("p", window=0)


def test_faults_are_what_the_provider_is_to_blame_for() -> None:
    assert is_fault(ServerError("x")) and is_fault(RuntimeError("bug"))
    assert not is_fault(InvalidRequestError("x")) and not is_fault(RateLimitedError("x"))
    assert not is_fault(CircuitOpenError("b", 1.0)) and not is_fault(KeyboardInterrupt())


def test_complete_records_latency_outcomes_and_emits_provider_call(
    clock: FakeClock, hub: Telemetry
) -> None:
    e = entry(clock, "p", latency=[0.1] * 90 + [1.0] * 10)
    for _ in range(100):
        e.complete(ask())
    s = e.stats.statistics()
    assert s.latency_p50 == pytest.approx(0.1, rel=0.01)
    assert s.latency_p99 == pytest.approx(1.0, rel=0.01)
    assert (s.calls, s.error_rate, s.in_flight, s.last_error) == (100, 0.0, 0, None)
    e.stats.reset()
    e.provider.script = [ServerError("down", provider="p"), InvalidRequestError("bad")]  # type: ignore[attr-defined]
    for _ in range(2):
        with pytest.raises((ServerError, InvalidRequestError)):
            e.complete(ask())
    e.complete(ask())
    s = e.stats.statistics()
    assert (s.calls, s.failures) == (2, 1)  # the invalid request is not the provider's fault
    assert s.last_error is not None and s.last_error.startswith("InvalidRequestError")
    events = hub.store.query(name="provider.call")
    assert len(events) == 103
    first, failed = events[0], events[100]
    assert first.measurements == {"latency": pytest.approx(0.1), "tokens": 15, "attempts": 1}
    assert dict(first.metadata) == {"provider": "p", "model": "p-model", "outcome": "ok"}
    assert failed.metadata["outcome"] == "ServerError" and failed.measurements["tokens"] == 0


def test_retried_attempts_each_count_in_the_window(clock: FakeClock, hub: Telemetry) -> None:
    e = entry(
        clock,
        "p",
        limits={"max_attempts": 3},
        script=[ServerError("a", retry_after=0.0), ServerError("b", retry_after=0.0)],
    )
    assert e.complete(ask()).provider == "p"
    s = e.stats.statistics()
    assert (s.calls, s.failures, e.provider.calls) == (3, 2, 3)  # type: ignore[attr-defined]
    assert hub.store.query(name="provider.call")[0].measurements["attempts"] == 3
    e.provider.script = [AuthenticationError("key")]  # type: ignore[attr-defined]
    with pytest.raises(AuthenticationError):
        e.complete(ask())
    assert e.provider.calls == 4  # type: ignore[attr-defined]  # not retryable: one attempt


def test_a_provider_returning_garbage_is_a_fault(clock: FakeClock) -> None:
    e = entry(clock, "p")
    e.provider.complete = lambda request: "text"  # type: ignore[method-assign]
    with pytest.raises(TypeError, match="not a Completion"):
        e.complete(ask())
    assert e.stats.statistics().failures == 1


# -- selection ----------------------------------------------------------------------------


@pytest.fixture
def trio(clock: FakeClock) -> ProviderTable:
    return ProviderTable(
        [
            entry(clock, "alpha", priority=1, weight=1),
            entry(clock, "beta", priority=5, caps=("text", "chat"), weight=3),
            entry(clock, "gamma", priority=5, weight=6),
        ]
    )


def test_priority_takes_the_highest_then_the_first_name(trio: ProviderTable) -> None:
    assert by_priority(trio.ordered).name == "beta"
    assert select(trio).name == "beta"
    assert select(trio, frozenset({"chat"})).name == "beta"
    assert select(trio, exclude=frozenset({"beta"})).name == "gamma"


def test_round_robin_rotates_over_the_sorted_candidates(trio: ProviderTable) -> None:
    picks = [select(trio, TEXT, "round_robin", turn=t).name for t in range(6)]
    assert picks == ["alpha", "beta", "gamma"] * 2
    assert by_round_robin(trio.ordered, 7).name == "beta"


def answered(entry: ProviderEntry, seconds: float) -> None:
    """One call of ``entry`` that answered after ``seconds``."""
    entry.stats.begin()
    entry.stats.record_latency(seconds)
    entry.stats.end()


def test_least_latency_measures_new_providers_first_then_takes_the_fastest(
    trio: ProviderTable,
) -> None:
    alpha, beta, gamma = trio.ordered
    assert by_least_latency(trio.ordered) is beta  # none called: by priority
    answered(beta, 0.5)
    assert by_least_latency(trio.ordered) is gamma  # still uncalled, priority 5
    answered(gamma, 0.2)
    assert by_least_latency(trio.ordered) is alpha  # the last one never called
    answered(alpha, 0.3)
    assert select(trio, TEXT, "least_latency") is gamma
    answered(gamma, 0.9)
    answered(gamma, 0.9)
    assert gamma.stats.recent_latency == pytest.approx(0.2 + 0.2 * 0.7 + 0.2 * (0.9 - 0.34))
    assert select(trio, TEXT, "least_latency") is alpha  # gamma is slower lately


def test_least_latency_never_prefers_a_provider_that_only_fails(trio: ProviderTable) -> None:
    alpha, beta, gamma = trio.ordered
    answered(alpha, 2.0)
    answered(gamma, 3.0)
    for _ in range(5):  # beta is called and fails fast every time: no answer time at all
        beta.stats.begin()
        beta.stats.record_error(ServerError("down", status=500))
        beta.stats.end()
    assert beta.stats.recent_latency is None and beta.stats.total_calls == 5
    assert by_least_latency(trio.ordered) is alpha


def test_least_loaded_takes_the_fewest_in_flight_then_priority(trio: ProviderTable) -> None:
    alpha, beta, gamma = trio.ordered
    assert by_least_loaded(trio.ordered) is beta
    beta.stats.begin()
    assert by_least_loaded(trio.ordered) is gamma
    gamma.stats.begin()
    assert select(trio, TEXT, "least_loaded") is alpha
    alpha.stats.begin()
    alpha.stats.begin()
    assert select(trio, TEXT, "least_loaded") is beta
    beta.stats.end()
    assert select(trio, TEXT, "least_loaded") is beta


def test_weighted_follows_the_weights_and_a_seed_repeats_it(trio: ProviderTable) -> None:
    rng = random.Random(11)
    counts = Counter(by_weighted(trio.ordered, rng).name for _ in range(10_000))
    assert counts["alpha"] == pytest.approx(1_000, abs=150)
    assert counts["beta"] == pytest.approx(3_000, abs=250)
    assert counts["gamma"] == pytest.approx(6_000, abs=250)
    first = [select(trio, TEXT, "weighted", rng=random.Random(3)).name for _ in range(5)]
    again = [select(trio, TEXT, "weighted", rng=random.Random(3)).name for _ in range(5)]
    assert first == again


def test_an_unknown_strategy_lists_the_known_ones(trio: ProviderTable) -> None:
    with pytest.raises(ConfigurationError) as info:
        select(trio, TEXT, "fastest")
    for name in STRATEGIES:
        assert name in str(info.value)


def test_unhealthy_excluded_and_open_providers_are_left_out_and_said_why(
    clock: FakeClock,
) -> None:
    a = entry(clock, "a", limits={"fail_max": 1, "reset_timeout": 10})
    b = entry(clock, "b")
    c = entry(clock, "c").with_health(False, "error rate 80%")
    d = entry(clock, "d", caps=("image",))
    table = ProviderTable([a, b, c, d])
    a.provider.failing = ServerError("down")  # type: ignore[attr-defined]
    with pytest.raises(ServerError):
        a.complete(ask())
    chosen, left = candidates(table, TEXT, frozenset({"b"}))
    assert chosen == []
    assert left == {
        "a": "circuit breaker open (probe in 10.0 s)",
        "b": "excluded by the caller",
        "c": "unhealthy: error rate 80%",
    }
    with pytest.raises(NoProviderAvailable) as info:
        select(table, TEXT, exclude=frozenset({"b"}))
    assert info.value.capabilities == ("text",) and info.value.excluded == left
    assert "circuit breaker open" in str(info.value)
    with pytest.raises(NoProviderAvailable) as info:
        select(table, frozenset({"video"}))
    assert info.value.excluded == {}
    clock.advance(10)  # the reset timeout is over: a probe is due, so "a" is a candidate
    assert select(table, TEXT, exclude=frozenset({"b"})) is a
    with a.breaker.calling():  # the probe is in flight: nobody else gets through
        assert candidates(table, TEXT)[1]["a"] == "circuit breaker half-open, probe in flight"
    assert a.breaker.state == "closed" and candidates(table, TEXT)[0] == [a, b]


# -- the health rule ----------------------------------------------------------------------


def health(**kwargs: Any) -> ProviderHealth:
    base: dict[str, Any] = {
        "name": "p",
        "healthy": True,
        "reason": "",
        "breaker_state": "closed",
        "error_rate": 0.0,
        "calls": 0,
        "latency_p50": None,
        "latency_p99": None,
        "in_flight": 0,
        "last_error": None,
    }
    return ProviderHealth(**{**base, **kwargs})


RULE = HealthRule(error_rate=0.5, min_calls=10, latency_p99=2.0, recover_after=30)


def test_assess_names_every_broken_rule() -> None:
    assert assess(health(), RULE) == ""
    assert assess(health(error_rate=0.9, calls=9), RULE) == ""  # too few calls to judge
    assert "error rate 50% over the last 10 calls" in assess(health(error_rate=0.5, calls=10), RULE)
    assert assess(health(breaker_state="open", breaker_retry_in=0.0), RULE) == ""  # probe due
    reason = assess(
        health(breaker_state="open", breaker_retry_in=4.0, latency_p99=2.5), RULE, "Timeout: x"
    )
    assert "circuit breaker open" in reason and "latency p99 2.500 s over 2 s" in reason
    assert "health_check failed: Timeout: x" in reason
    assert assess(health(latency_p99=9.0), HealthRule()) == ""  # no latency limit set


def test_decide_takes_out_brings_back_and_puts_on_probation() -> None:
    sick = health(error_rate=0.6, calls=20)
    assert decide(health(), RULE) is None
    verdict = decide(sick, RULE)
    assert verdict is not None and not verdict.healthy and "error rate" in verdict.reason
    out = {"healthy": False, "reason": "error rate"}
    assert decide(health(**out, error_rate=0.1, calls=20), RULE) == Verdict(True)
    assert decide(health(**out, error_rate=0.6, calls=20), RULE, out_for=29.9) is None
    assert decide(health(**out, error_rate=0.6, calls=20), RULE, out_for=30) == Verdict(
        True, probation=True
    )
    refusing = health(**out, breaker_state="open", breaker_retry_in=1.0)
    assert decide(refusing, RULE, out_for=1000) is None  # live evidence: no probation
    assert decide(health(**out), RULE, check_failure="returned False", out_for=1000) is None
    assert decide(health(**out), RULE, out_for=0) == Verdict(True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 0},
        {"error_rate": 1.5},
        {"error_rate": True},
        {"min_calls": 0},
        {"min_calls": 2.5},
        {"latency_p99": 0},
        {"latency_p99": float("nan")},
        {"recover_after": -1},
    ],
)
def test_health_rule_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="health rule"):
        HealthRule(**kwargs)


def test_a_recorded_error_never_keeps_an_api_key(trio: ProviderTable) -> None:
    alpha = trio.ordered[0]
    key = "sk-ant-api03-" + "k" * 24
    alpha.stats.record_error(ServerError(f"upstream said: bad x-api-key: {key}", status=500))
    last = alpha.stats.statistics().last_error
    assert last is not None and key not in last and "[REDACTED]" in last
