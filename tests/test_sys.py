"""otpy.sys on the runtime's own servers and handles: registries suspended while their reads
go on, trace events on the telemetry hub, statuses with secrets masked, handles that say
why there is no server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from step_plugins import Echo as EchoStep

import otpy
import otpy.sys
from otpy.errors import NoProcessError
from otpy.supervision import GenServer
from otpy.telemetry import Event, get_telemetry
from otpy.testing import wait_exit, wait_until


@pytest.fixture
def rt() -> Iterator[otpy.Runtime]:
    with otpy.start({"name": "sys-test"}) as runtime:
        yield runtime


def test_a_suspended_registry_still_answers_lookups_while_registrations_wait(
    rt: otpy.Runtime,
) -> None:
    otpy.sys.suspend(rt.steps)
    done = threading.Event()
    outcome: list[Any] = []

    def register() -> None:
        outcome.append(rt.steps.register_step("noop", EchoStep))
        done.set()

    writer = threading.Thread(target=register)
    writer.start()
    wait_until(lambda: otpy.sys.get_status(rt.steps).mailbox >= 1)
    assert otpy.sys.get_status(rt.steps).suspended
    assert not done.is_set()  # the registration waits in the mailbox...
    assert rt.steps.get_step("pipeline").name == "pipeline"  # ...reads never wait
    assert not rt.steps.has_step("noop")
    otpy.sys.resume(rt.steps)
    writer.join(5)
    assert done.is_set() and outcome[0].name == "noop"
    assert rt.steps.has_step("noop")


def test_every_runtime_handle_is_a_target(rt: otpy.Runtime) -> None:
    for target, cls in [
        (rt, "Supervisor"),
        (rt.steps, "StepRegistry"),
        (rt.providers, "ProviderRegistry"),
        (rt.compat, "CompatibilityManager"),
        (rt.jobs, "DynamicSupervisor"),
        ("sys-test.health", "HealthMonitor"),
    ]:
        status = otpy.sys.get_status(target)
        assert status.module.endswith(cls) and status.alive
        json.dumps(status.to_dict())  # JSON-ready
    assert otpy.sys.get_state(rt.providers)._snapshot is not None


def test_a_finished_pipeline_run_has_no_server_and_says_so(rt: otpy.Runtime) -> None:
    run = rt.start_pipeline(
        {"name": "p", "steps": [{"name": "s", "type": "set_variable", "variables": {"a": 1}}]}
    )
    run.wait(10)
    wait_exit(run._runner)  # type: ignore[arg-type]
    with pytest.raises(NoProcessError, match=r"pipeline run .* no worker"):
        otpy.sys.get_status(run)


def test_trace_emits_telemetry_events_and_fills_the_log() -> None:
    class Echo(GenServer):
        def on_receive(self, message: Any) -> Any:
            if message == "boom":
                raise RuntimeError("boom")
            return message

    events: list[Event] = []
    hub = get_telemetry()
    sub = hub.subscribe(events.append, "sys.*")
    try:
        ref = Echo.start()
        otpy.sys.trace(ref, True)
        ref.call({"api_key": "sk-ant-api03-secretsecretsecret"})
        otpy.sys.trace(ref, False)
        ref.call("untraced")
        otpy.sys.trace(ref, True)
        ref.tell("boom")
        wait_exit(ref)
    finally:
        hub.unsubscribe(sub)
    names = [e.name for e in events]
    assert names == ["sys.call", "sys.reply", "sys.cast", "sys.crash"]
    assert events[1].measurements["duration"] >= 0
    assert "secretsecret" not in json.dumps([e.to_dict() for e in events])
    assert events[3].metadata["error"] == "RuntimeError('boom')"


def test_get_status_masks_secrets_in_the_state_summary() -> None:
    class Keeper(GenServer):
        def __init__(self) -> None:
            super().__init__()
            self.api_key = "sk-ant-api03-secretsecretsecret"
            self.calls = 3

    ref = Keeper.start()
    status = otpy.sys.get_status(ref)
    assert status.state is not None and status.state["calls"] == "3"
    assert "secretsecret" not in json.dumps(status.to_dict())
    stats = otpy.sys.statistics(ref, True)
    assert stats.enabled and json.dumps(stats.to_dict())
    assert [e.to_dict()["event"] for e in otpy.sys.log(ref)] == ["statistics"]
    ref.stop()
