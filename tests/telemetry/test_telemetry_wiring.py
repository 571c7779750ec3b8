"""Telemetry wired into the layers below it: resilience events and supervisor reports land
on the default hub with the caller's trace ids, and logs carry those ids."""

from __future__ import annotations

import logging
import threading

import pytest

from otpy.errors import CircuitOpenError, ServerError
from otpy.log import configure_logging
from otpy.resilience import CircuitBreaker, guard
from otpy.supervision import Supervisor
from otpy.telemetry import Event, Telemetry
from otpy.testing import FakeClock, wait_until
from support import crash, refs, restarted, worker


def failing() -> str:
    raise ServerError("upstream broke", provider="p", status=500)


def test_guard_events_reach_telemetry_inside_the_callers_trace(
    hub: Telemetry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("p", fail_max=1, clock=clock)
    call = guard(failing, name="p", breaker=breaker, clock=clock)
    with hub.span("pipeline.step", {"step": "ask"}) as step:
        with pytest.raises(ServerError):
            call()
        with pytest.raises(CircuitOpenError):
            call()
    tripped = hub.store.query(name="breaker.tripped")
    rejected = hub.store.query(name="breaker.rejected")
    assert len(tripped) == 1 and len(rejected) == 1
    for event in (*tripped, *rejected):
        assert event.correlation_id == step.correlation_id
        assert event.parent_id == step.span_id
        assert event.metadata["source"] == "p"
    (root,) = hub.store.trace_tree(step.correlation_id)
    assert [c.event.name for c in root.children] == [
        "breaker.state_changed",
        "breaker.tripped",
        "breaker.rejected",
        "pipeline.step.stop",
    ]


def test_an_on_event_sink_still_gets_its_events_and_a_broken_one_breaks_nothing(
    hub: Telemetry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("sink broke")

    call = guard(failing, name="p", breaker=CircuitBreaker("p", fail_max=1, clock=clock),
                 clock=clock, on_event=broken)  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="otpy.resilience"), pytest.raises(ServerError):
        call()
    assert hub.store.query(name="breaker.tripped")
    assert any("subscriber failed" in r.getMessage() for r in caplog.records)


def test_supervisor_reports_reach_telemetry_and_restarts_are_counted(hub: Telemetry) -> None:
    restarted_seen = threading.Event()

    def on_restart(event: Event) -> None:
        restarted_seen.set()

    hub.subscribe(on_restart, "supervisor.child_restarted")
    sup = Supervisor.start([worker("a")], max_restarts=5, max_seconds=60)
    old = refs(sup)["a"]
    assert old is not None
    crash(old)
    wait_until(restarted(sup, "a", old))
    assert restarted_seen.wait(5)
    names = [e.name for e in hub.store.query(name="supervisor.*")]
    assert names == [
        "supervisor.child_started",
        "supervisor.child_exited",
        "supervisor.child_restarted",
    ]
    exited = hub.store.query(name="supervisor.child_exited")[0]
    assert exited.metadata["child_id"] == "a" and exited.metadata["supervisor"] == str(sup)
    counters = {k: v for k, v in hub.metrics.snapshot().items() if k.startswith("supervisor.")}
    assert counters == {f"supervisor.restarts{{supervisor={sup}}}": {"type": "counter", "value": 1}}
    sup.stop()


def test_configured_logging_carries_the_trace_ids(
    hub: Telemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = configure_logging("INFO")
    log = logging.getLogger("otpy.test")
    try:
        log.info("outside any trace")
        with hub.span("job") as job, hub.span("evaluation") as evaluation:
            log.info("inside with api_key=%s", "sk-ant-api03-secretsecret")
    finally:
        for name in ("otpy", "pykka"):
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
    outside, inside = capsys.readouterr().err.splitlines()
    assert "[-/-] outside any trace" in outside
    assert f"[{job.correlation_id}/{evaluation.span_id}] inside with api_key=[REDACTED]" in inside
    assert "secretsecret" not in inside
