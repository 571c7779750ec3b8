"""Telemetry events: the hub (emit, subscribers, spans), the bounded store and its trace
trees, redaction of everything stored or delivered, and the process-default hub.

Time comes from a FakeClock; threads synchronise on Barriers and are always joined.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

import pytest

from otpy.errors import ConfigurationError
from otpy.telemetry import (
    REDACTED,
    Event,
    EventStore,
    Telemetry,
    current_context,
    emit,
    emit_safely,
    get_telemetry,
    is_secret_key,
    redact_value,
    set_telemetry,
    span,
)
from otpy.telemetry import _hub as hub_module
from otpy.telemetry._event import make_event
from otpy.testing import FakeClock

WAIT = 5.0  # real-time upper bound for any wait on another thread
ANTHROPIC_KEY = "sk-ant-api03-Zx9_kQ2-abcdefghijklmnopqrstuvwxyz0123456789"
GOOGLE_KEY = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"


def _event(name: str = "e", **kw: Any) -> Event:
    fields: dict[str, Any] = {
        "measurements": {},
        "metadata": {},
        "timestamp": 0.0,
        "correlation_id": None,
        "parent_id": None,
        "event_id": name,
    }
    fields.update(kw)
    return Event(name, **fields)


# -- Event ------------------------------------------------------------------------------


def test_event_is_frozen_and_to_dict_gives_plain_values(hub: Telemetry) -> None:
    event = hub.emit("llm.call", {"tokens": 12}, {"provider": "anthropic"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    assert event.to_dict() == {
        "name": "llm.call",
        "measurements": {"tokens": 12},
        "metadata": {"provider": "anthropic"},
        "timestamp": 1_700_000_000.0,
        "correlation_id": None,
        "parent_id": None,
        "event_id": event.event_id,
    }


def test_the_fast_constructor_builds_the_same_event() -> None:
    args = ("n", {"a": 1.0}, {"b": "c"}, 12.5, "corr", "parent", "id1")
    fast, slow = make_event(*args), Event(*args)
    assert type(fast) is Event
    assert fast == slow
    assert repr(fast) == repr(slow)


def test_event_ids_are_unique_across_threads(hub: Telemetry) -> None:
    barrier = threading.Barrier(16)
    ids: list[list[str]] = [[] for _ in range(16)]

    def work(slot: int) -> None:
        barrier.wait(WAIT)
        for _ in range(2000):
            ids[slot].append(hub.emit("tick").event_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    flat = [i for chunk in ids for i in chunk]
    assert len(flat) == 32_000
    assert len(set(flat)) == 32_000
    assert hub.statistics().events_emitted == 32_000


# -- emit -------------------------------------------------------------------------------


def test_emit_stamps_the_clock_time_and_stores_the_event(hub: Telemetry, clock: FakeClock) -> None:
    clock.advance(2.5)
    event = hub.emit("job.queued", {"depth": 3, "wait": 0.25}, {"job": "j1"})
    assert event.timestamp == 1_700_000_002.5
    assert event.measurements == {"depth": 3, "wait": 0.25}
    assert hub.store.query() == [event]


@pytest.mark.parametrize("bad", [True, "3", None, [1], complex(1, 2)])
def test_a_measurement_that_is_not_a_number_is_refused(hub: Telemetry, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"'llm\.call'.*'tokens'"):
        hub.emit("llm.call", {"ok": 1, "tokens": bad})
    assert len(hub.store) == 0


@pytest.mark.parametrize("bad", ["", None, 3])
def test_an_event_needs_a_name(hub: Telemetry, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="event name"):
        hub.emit(bad)


def test_emit_copies_its_arguments(hub: Telemetry) -> None:
    measurements: dict[str, float] = {"n": 1}
    metadata: dict[str, Any] = {"who": "a"}
    event = hub.emit("e", measurements, metadata)
    measurements["n"] = 2
    metadata["who"] = "b"
    assert event.measurements == {"n": 1}
    assert event.metadata == {"who": "a"}


def test_explicit_ids_win_and_a_foreign_trace_gets_no_parent(hub: Telemetry) -> None:
    with hub.span("job") as job:
        inside = hub.emit("inside")
        other = hub.emit("other", correlation_id="elsewhere")
        same = hub.emit("same", correlation_id=job.correlation_id)
        explicit = hub.emit("explicit", correlation_id="c2", parent_id="p2")
    assert (inside.correlation_id, inside.parent_id) == (job.correlation_id, job.span_id)
    assert (other.correlation_id, other.parent_id) == ("elsewhere", None)
    assert (same.correlation_id, same.parent_id) == (job.correlation_id, job.span_id)
    assert (explicit.correlation_id, explicit.parent_id) == ("c2", "p2")


# -- subscribers ------------------------------------------------------------------------


def test_subscribers_get_matching_events_synchronously(hub: Telemetry) -> None:
    got: dict[str, list[tuple[str, int]]] = {"all": [], "breaker": [], "exact": [], "set": []}
    emitter = threading.get_ident()

    def recorder(key: str) -> Any:
        return lambda e: got[key].append((e.name, threading.get_ident()))

    hub.subscribe(recorder("all"))
    hub.subscribe(recorder("breaker"), "breaker.*")
    hub.subscribe(recorder("exact"), "limiter.waited")
    hub.subscribe(recorder("set"), "[lr]*.*d")
    for name in ("breaker.tripped", "limiter.waited", "retry.retried", "breaker.rejected"):
        hub.emit(name)
        assert got["all"][-1] == (name, emitter)  # delivered before emit returned
    assert [n for n, _ in got["all"]] == [
        "breaker.tripped",
        "limiter.waited",
        "retry.retried",
        "breaker.rejected",
    ]
    assert [n for n, _ in got["breaker"]] == ["breaker.tripped", "breaker.rejected"]
    assert [n for n, _ in got["exact"]] == ["limiter.waited"]
    assert [n for n, _ in got["set"]] == ["limiter.waited", "retry.retried"]


def test_pattern_matching_is_case_sensitive(hub: Telemetry) -> None:
    got: list[str] = []
    hub.subscribe(lambda e: got.append(e.name), "Breaker.*")
    hub.emit("breaker.tripped")
    hub.emit("Breaker.tripped")
    assert got == ["Breaker.tripped"]


def test_unsubscribe_stops_delivery(hub: Telemetry) -> None:
    got: list[str] = []
    sub = hub.subscribe(lambda e: got.append(e.name))
    hub.emit("a")
    assert hub.unsubscribe(sub) is True
    assert hub.unsubscribe(sub) is False
    assert hub.unsubscribe("sub-unknown") is False
    hub.emit("b")
    assert got == ["a"]
    assert hub.statistics().subscribers == 0


@pytest.mark.parametrize(("callback", "pattern"), [(None, "*"), (print, ""), (print, 3)])
def test_subscribe_checks_its_arguments(hub: Telemetry, callback: Any, pattern: Any) -> None:
    with pytest.raises(ConfigurationError):
        hub.subscribe(callback, pattern)


def test_a_failing_subscriber_is_logged_rate_limited_and_never_breaks_the_emitter(
    hub: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.name}")

    hub.subscribe(broken)
    hub.subscribe(lambda e: got.append(e.name))
    with caplog.at_level(logging.ERROR, logger="otpy.telemetry"):
        for i in range(250):
            hub.emit(f"e{i}")
    assert len(got) == 250  # the other subscriber saw every event
    records = [r for r in caplog.records if r.name == "otpy.telemetry"]
    assert len(records) == 3  # failures 1, 100 and 200
    numbers = [re.search(r"failure (\d+) ", r.getMessage()) for r in records]
    assert [m.group(1) for m in numbers if m] == ["1", "100", "200"]
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in records)
    assert "broken" in records[0].getMessage()
    assert hub.statistics().subscriber_failures == 250


def test_subscribing_and_unsubscribing_inside_a_callback_is_safe(hub: Telemetry) -> None:
    got: list[tuple[str, str]] = []
    subs: dict[str, str] = {}

    def second(event: Event) -> None:
        got.append(("second", event.name))

    def first(event: Event) -> None:
        got.append(("first", event.name))
        assert hub.unsubscribe(subs["first"])
        subs["second"] = hub.subscribe(second)
        hub.emit("nested")  # re-entrant emit: reaches the new subscriber only

    subs["first"] = hub.subscribe(first)
    hub.emit("one")
    hub.emit("two")
    assert got == [("first", "one"), ("second", "nested"), ("second", "two")]


def test_concurrent_emit_and_subscribe_lose_nothing(hub: Telemetry) -> None:
    counted: list[int] = []
    lock = threading.Lock()

    def count(event: Event) -> None:
        with lock:
            counted.append(1)

    hub.subscribe(count)
    barrier = threading.Barrier(9)

    def emitter() -> None:
        barrier.wait(WAIT)
        for _ in range(1000):
            hub.emit("x")

    def churner() -> None:
        barrier.wait(WAIT)
        for _ in range(300):
            hub.unsubscribe(hub.subscribe(lambda e: None))

    threads = [threading.Thread(target=emitter) for _ in range(8)]
    threads.append(threading.Thread(target=churner))
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(counted) == 8000
    assert hub.statistics().subscribers == 1


# -- redaction --------------------------------------------------------------------------


def test_metadata_is_redacted_before_the_store_and_subscribers_see_it(hub: Telemetry) -> None:
    seen: list[Event] = []
    hub.subscribe(seen.append)
    event = hub.emit(
        "llm.call",
        metadata={
            "note": f"called with {ANTHROPIC_KEY} ok",
            "google": GOOGLE_KEY,
            "api_key": "short",
            "Authorization": "Bearer abc",
            "provider": "anthropic",
            "attempt": 2,
        },
    )
    expected = {
        "note": f"called with {REDACTED} ok",
        "google": REDACTED,
        "api_key": REDACTED,
        "Authorization": REDACTED,
        "provider": "anthropic",
        "attempt": 2,
    }
    assert event.metadata == expected
    assert seen[0].metadata == expected
    assert hub.store.query()[0].metadata == expected


def test_nested_structures_are_redacted(hub: Telemetry) -> None:
    Pair = namedtuple("Pair", "left right")
    request: dict[str, Any] = {
        "headers": {"x-api-key": "k", "X-Goog-Api-Key": "g", "accept": "json"},
        "messages": [{"role": "user", "content": f"my key is {ANTHROPIC_KEY}"}],
        "pair": Pair(GOOGLE_KEY, 7),
        "tuple": ("fine", f"api_key={'x' * 12}"),
        "untouched": [1, 2.5, None, True, b"sk-ant-bytes-are-not-text"],
    }
    event = hub.emit("request", metadata={"request": request, "anthropic_api_key": 123})
    out = event.metadata["request"]
    assert out["headers"] == {"x-api-key": REDACTED, "X-Goog-Api-Key": REDACTED, "accept": "json"}
    assert out["messages"] == [{"role": "user", "content": f"my key is {REDACTED}"}]
    assert out["pair"] == Pair(REDACTED, 7)
    assert type(out["pair"]) is Pair
    assert out["tuple"] == ("fine", f"api_key={REDACTED}")
    assert out["untouched"] is request["untouched"]  # nothing changed: not copied
    assert event.metadata["anthropic_api_key"] == REDACTED
    assert request["headers"]["x-api-key"] == "k"  # the caller's data is not modified


def test_unchanged_values_are_not_copied() -> None:
    clean = {"a": [1, "two", (3.0, None)], "b": {"c": "d"}}
    assert redact_value(clean) is clean
    for scalar in (1, 2.5, None, True, b"x"):
        assert redact_value(scalar) is scalar


def test_cyclic_structures_are_cut_off() -> None:
    loop: list[Any] = ["plain"]
    loop.append(loop)
    out = redact_value(loop)
    assert isinstance(out, list)
    assert out[0] == "plain"


def test_environment_key_values_are_redacted_by_a_hub_made_after_they_are_set(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    secret = "plain-secret-from-env-42"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    hub = Telemetry(clock)
    event = hub.emit("e", metadata={"msg": f"connecting with {secret}", "n": [secret]})
    assert event.metadata == {"msg": f"connecting with {REDACTED}", "n": [REDACTED]}
    assert redact_value(f"x {secret} y") == f"x {REDACTED} y"  # the module redactor too
    monkeypatch.setenv("ANTHROPIC_API_KEY", "another-secret-value-7")
    assert redact_value("another-secret-value-7") == REDACTED


def test_redaction_can_be_turned_off(clock: FakeClock) -> None:
    hub = Telemetry(clock, redact=False)
    assert hub.emit("e", metadata={"api_key": ANTHROPIC_KEY}).metadata == {"api_key": ANTHROPIC_KEY}


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "APIKEY",
        "x-api-key",
        "Authorization",
        "password",
        "Secret",
        "token",
        "anthropic_api_key",
        "GEMINI-API-KEY",
        "github_token",
        "client_secret",
        "db_password",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["max_tokens", "input_tokens", "tokens", "key", "cache_key", "provider", "monkey"]
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


# -- spans ------------------------------------------------------------------------------


def test_a_span_emits_start_and_stop_with_its_duration(hub: Telemetry, clock: FakeClock) -> None:
    with hub.span("job", {"job_id": "j1"}, {"size": 3}) as job:
        assert current_context().span_id == job.span_id
        clock.advance(1.5)
        job.set(result="ok", api_key="hidden")
    start, stop = hub.store.query()
    assert start.name == "job.start"
    assert (start.event_id, start.parent_id) == (job.span_id, None)
    assert start.correlation_id == job.correlation_id is not None
    assert start.measurements == {"size": 3}
    assert start.metadata == {"job_id": "j1"}
    assert stop.name == "job.stop"
    assert (stop.parent_id, stop.correlation_id) == (job.span_id, job.correlation_id)
    assert stop.measurements == {"duration": 1.5}
    assert stop.metadata == {"job_id": "j1", "result": "ok", "api_key": REDACTED}
    assert current_context().span_id is None
    assert hub.metrics.histogram("job.duration").summary()["max"] == 1.5


def test_a_span_reports_an_exception_and_reraises_it(hub: Telemetry, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="bad"), hub.span("call", {"provider": "p"}) as call:
        clock.advance(0.25)
        raise ValueError(f"bad request with key {ANTHROPIC_KEY}")
    start, failed = hub.store.query()
    assert [start.name, failed.name] == ["call.start", "call.exception"]
    assert failed.parent_id == call.span_id
    assert failed.measurements == {"duration": 0.25}
    assert failed.metadata == {
        "provider": "p",
        "error_type": "ValueError",
        "error_message": f"bad request with key {REDACTED}",
    }
    assert hub.metrics.histogram("call.duration").count == 1
    assert current_context().span_id is None


def test_a_span_is_single_use(hub: Telemetry) -> None:
    job = hub.span("job")
    with job:
        pass
    with pytest.raises(ConfigurationError, match="single-use"), job:
        pass


def test_a_span_whose_histogram_name_is_taken_fails_before_its_body(hub: Telemetry) -> None:
    hub.metrics.counter("job.duration")
    ran = []
    with pytest.raises(ConfigurationError, match=r"job\.duration"), hub.span("job"):
        ran.append(1)
    assert ran == []
    assert len(hub.store) == 0


def test_spanned_wraps_sync_and_async_functions(hub: Telemetry, clock: FakeClock) -> None:
    @hub.spanned("work.sync", {"kind": "s"})
    def work(x: int) -> int:
        clock.advance(1.0)
        return x * 2

    @hub.spanned()
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert work(21) == 42
    assert asyncio.run(fetch(1)) == 2
    names = [e.name for e in hub.store.query()]
    qualname = fetch.__qualname__
    assert names == ["work.sync.start", "work.sync.stop", f"{qualname}.start", f"{qualname}.stop"]
    assert hub.store.query(name="work.sync.stop")[0].measurements == {"duration": 1.0}
    assert work.__name__ == "work"


def test_async_with_span(hub: Telemetry) -> None:
    async def main() -> str | None:
        async with hub.span("task") as task:
            hub.emit("inside")
            return task.span_id

    span_id = asyncio.run(main())
    assert hub.store.query(name="inside")[0].parent_id == span_id


# -- the store --------------------------------------------------------------------------


def test_the_store_is_bounded_and_counts_what_it_drops() -> None:
    store = EventStore(3)
    for i in range(5):
        store.add(_event(f"e{i}"))
    assert len(store) == 3
    assert [e.name for e in store.query()] == ["e2", "e3", "e4"]
    stats = store.statistics()
    assert (stats.size, stats.max_events, stats.added, stats.dropped) == (3, 3, 5, 2)
    store.clear()
    assert len(store) == 0
    assert store.statistics().dropped == 2


def test_a_store_of_size_zero_keeps_nothing() -> None:
    store = EventStore(0)
    store.add(_event())
    assert len(store) == 0
    assert store.statistics().dropped == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_store_size_must_be_a_count(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_events"):
        EventStore(bad)


def test_the_hub_store_is_bounded(clock: FakeClock) -> None:
    hub = Telemetry(clock, store_size=10)
    for _ in range(25):
        hub.emit("x")
    stats = hub.statistics()
    assert (stats.events_emitted, stats.store_size, stats.store_dropped) == (25, 10, 15)
    assert stats.store_max_events == 10


def test_query_filters() -> None:
    store = EventStore()
    events = [
        _event("breaker.tripped", correlation_id="a"),
        _event("limiter.waited", correlation_id="a"),
        _event("breaker.rejected", correlation_id="b"),
        _event("breaker.tripped", correlation_id="b", measurements={"n": 5}),
        _event("breaker[x]", correlation_id="b"),
    ]
    for e in events:
        store.add(e)
    assert store.query(correlation_id="a") == events[:2]
    assert store.query(name="breaker.tripped") == [events[0], events[3]]
    assert store.query(name="breaker.*") == [events[0], events[2], events[3]]
    assert store.query(name="breaker.?ejected") == [events[2]]
    assert store.query(name="breaker.*", correlation_id="b") == [events[2], events[3]]
    assert store.query(where=lambda e: e.measurements.get("n", 0) > 1) == [events[3]]
    assert store.query(limit=2) == events[3:]  # the most recent two, oldest first
    assert store.query(name="breaker.*", limit=1) == [events[3]]
    assert store.query(limit=0) == []
    assert store.query(name="nothing") == []


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_query_limit_must_be_a_count(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        EventStore().query(limit=bad)


def test_a_where_callback_may_use_the_store() -> None:
    store = EventStore()
    store.add(_event("a"))
    assert store.query(where=lambda e: len(store.query()) == 1) == store.query()


def test_trace_tree_nests_spans_and_orders_children_by_time(
    hub: Telemetry, clock: FakeClock
) -> None:
    with hub.span("job") as job:
        clock.advance(1)
        with hub.span("fetch"):
            clock.advance(2)
            hub.emit("fetch.chunk", {"bytes": 10})
        hub.emit("job.progress")
        clock.advance(1)
    hub.emit("unrelated")
    roots = hub.store.trace_tree(job.correlation_id)
    assert len(roots) == 1
    assert roots[0].render() == "\n".join(
        [
            "job.start",
            "  fetch.start",
            "    fetch.chunk",
            "    fetch.stop  duration=2s",
            "  job.progress",
            "  job.stop  duration=4s",
        ]
    )
    assert roots[0].children[0].event.name == "fetch.start"
    assert [c.event.name for c in roots[0].children[0].children] == ["fetch.chunk", "fetch.stop"]


def test_trace_tree_makes_orphans_roots_and_sorts_roots_by_time() -> None:
    store = EventStore()
    store.add(_event("late-root", correlation_id="t", timestamp=5.0))
    store.add(_event("orphan", correlation_id="t", parent_id="dropped", timestamp=1.0))
    store.add(_event("child", correlation_id="t", parent_id="orphan", timestamp=2.0))
    store.add(_event("other-trace", correlation_id="u", timestamp=0.0))
    roots = store.trace_tree("t")
    assert [r.event.name for r in roots] == ["orphan", "late-root"]
    assert [c.event.name for c in roots[0].children] == ["child"]
    assert store.trace_tree("missing") == []


def test_render_shows_the_error_of_an_exception_event(hub: Telemetry) -> None:
    with pytest.raises(KeyError), hub.span("step") as step:
        raise KeyError("k")
    (root,) = hub.store.trace_tree(step.correlation_id)
    assert root.render() == "step.start\n  step.exception  duration=0s  error=KeyError"


# -- the default hub --------------------------------------------------------------------


@pytest.fixture
def default_hub(clock: FakeClock) -> Iterator[Telemetry]:
    hub = Telemetry(clock)
    previous = set_telemetry(hub)
    try:
        yield hub
    finally:
        assert set_telemetry(previous) is hub


def test_module_shortcuts_use_the_default_hub(default_hub: Telemetry) -> None:
    assert get_telemetry() is default_hub
    with span("job") as job:
        event = emit("step", {"n": 1})
    assert event.parent_id == job.span_id
    assert [e.name for e in default_hub.store.query()] == ["job.start", "step", "job.stop"]


def test_set_telemetry_refuses_other_objects() -> None:
    with pytest.raises(ConfigurationError):
        set_telemetry(object())  # type: ignore[arg-type]


def test_the_default_hub_is_made_once_even_under_a_race(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "_default", None)
    barrier = threading.Barrier(16)
    got: list[Telemetry] = []

    def grab() -> None:
        barrier.wait(WAIT)
        got.append(get_telemetry())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(got) == 16
    assert all(h is got[0] for h in got)


def test_emit_safely_logs_a_refused_event_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Telemetry()
    previous = set_telemetry(hub)
    try:
        with caplog.at_level(logging.ERROR, logger="otpy.telemetry"):
            assert emit_safely("bad", {"n": "not a number"}) is None  # type: ignore[dict-item]
        event = emit_safely("good", {"n": 1}, {"k": "v"})
    finally:
        set_telemetry(previous)
    assert any("refused event 'bad'" in r.getMessage() for r in caplog.records)
    assert event is not None and [e.name for e in hub.store.query()] == ["good"]
