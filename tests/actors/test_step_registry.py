"""The StepRegistry actor and its handle: writes through the actor, reads from the snapshot,
registrations that survive a crash, plugins."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pykka.messages import ProxyCall
from step_plugins import Count, Echo, Shout, Whisper

from otpy._snapshot import Snapshot
from otpy.actors import StepRegistry, StepRegistryHandle
from otpy.errors import (
    ConfigurationError,
    DuplicateStepError,
    NoProcessError,
    StepValidationError,
    UnknownStepError,
)
from otpy.steps import StepContext, StepEntry, StepResult, StepTable
from otpy.supervision import Backoff, NamedHandle, ServerRef, Supervisor, whereis
from otpy.telemetry import Event, get_telemetry
from otpy.testing import FakeClock, wait_until
from support import InThread

_names = itertools.count()


def unique(prefix: str = "steps") -> str:
    """A registered name no other test uses (names are process-global)."""
    return f"test.{prefix}.{next(_names)}"


@dataclass
class Registry:
    name: str
    snapshot: Snapshot[StepTable]
    ref: ServerRef[Any]
    steps: StepRegistryHandle


@pytest.fixture
def registry(clock: FakeClock) -> Iterator[Registry]:
    name = unique()
    snapshot: Snapshot[StepTable] = Snapshot(StepTable())
    ref = StepRegistry.start_named(name, snapshot, clock=clock)
    yield Registry(name, snapshot, ref, StepRegistryHandle(name, snapshot))
    ref.stop()


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    hub = get_telemetry()
    sub = hub.subscribe(seen.append, "registry.step_*")
    yield seen
    hub.unsubscribe(sub)


# -- registration and lookup ------------------------------------------------------------


def test_a_registered_step_is_visible_at_once(registry: Registry, clock: FakeClock) -> None:
    steps = registry.steps
    assert steps.snapshot_version == 0 and not steps.has_step("echo")
    entry = steps.register_step("echo", Echo)
    assert isinstance(entry, StepEntry)
    assert (entry.name, entry.step_cls, entry.validator) == ("echo", Echo, None)
    assert entry.metadata is Echo.metadata and entry.registered_at == clock.time()
    assert steps.get_step("echo") == entry  # no wait: published before the reply
    assert steps.has_step("echo") and steps.snapshot_version == 1
    assert steps.table.names == ("echo",)
    assert steps.list_steps() == [entry]
    assert steps.ref is registry.ref


def test_unregister(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    assert steps.unregister_step("echo") is True
    assert not steps.has_step("echo")
    with pytest.raises(UnknownStepError):
        steps.get_step("echo")
    assert steps.snapshot_version == 2
    assert steps.unregister_step("echo") is False
    assert steps.snapshot_version == 2  # nothing published for a no-op


def test_get_unknown_step_suggests(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("claude_smart", Echo)
    steps.register_step("gemini", Echo)
    with pytest.raises(UnknownStepError) as info:
        steps.get_step("claude_smrt")
    assert info.value.suggestion == "claude_smart"
    assert info.value.known == ("claude_smart", "gemini")
    with pytest.raises(UnknownStepError) as info:
        steps.get_step(["unhashable"])  # type: ignore[arg-type]
    assert info.value.suggestion is None
    assert not steps.has_step(["unhashable"])  # type: ignore[arg-type]


def test_list_steps_by_capability(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("zeta", Echo)  # text
    steps.register_step("alpha", Count)  # text, analysis
    steps.register_step("eye", Echo, metadata={"capabilities": ["vision"], "version": "2.0.0"})
    assert [e.name for e in steps.list_steps()] == ["alpha", "eye", "zeta"]
    assert [e.name for e in steps.list_steps("text")] == ["alpha", "zeta"]
    assert [e.name for e in steps.list_steps(capability="vision")] == ["eye"]
    assert steps.get_step("eye").metadata.version == "2.0.0"
    assert steps.list_steps("audio") == []


def test_replace(registry: Registry, clock: FakeClock, events: list[Event]) -> None:
    steps = registry.steps
    first = steps.register_step("echo", Echo)
    with pytest.raises(DuplicateStepError, match="pass replace=True"):
        steps.register_step("echo", Count)
    assert steps.get_step("echo") is first
    clock.advance(5)
    second = steps.register_step("echo", Count, replace=True)
    assert steps.get_step("echo") is second and second.step_cls is Count
    assert second.registered_at == first.registered_at + 5
    assert [e.name for e in steps.list_steps("analysis")] == ["echo"]
    # replace=True of a new name simply registers it
    steps.register_step("fresh", Echo, replace=True)
    assert steps.snapshot_version == 3
    mine = [(e.metadata["name"], e.metadata["replaced"]) for e in events]
    assert mine == [("echo", False), ("echo", True), ("fresh", False)]


def test_telemetry_events(registry: Registry, events: list[Event]) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    steps.register_step("count", Count, metadata={"version": "3.0.1"})
    steps.unregister_step("count")
    steps.unregister_step("count")  # nothing removed: no event
    assert [(e.name, e.metadata["name"], e.metadata["version"]) for e in events] == [
        ("registry.step_registered", "echo", "1.2.0"),
        ("registry.step_registered", "count", "3.0.1"),
        ("registry.step_unregistered", "count", "3.0.1"),
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("bad name", Echo), {}, ConfigurationError, "is invalid"),
        (("", Echo), {}, ConfigurationError, "is invalid"),
        (("x", Echo()), {}, ConfigurationError, "an instance"),
        (("x", dict), {}, ConfigurationError, "not a Step subclass"),
        (("x", Echo, 5), {}, ConfigurationError, "validator must be callable"),
        (("x", Echo), {"metadata": {"version": "v1"}}, ConfigurationError, "field 'version'"),
        (("x", Echo), {"metadata": 3}, ConfigurationError, "metadata must be"),
        (("echo", Count), {}, DuplicateStepError, "already registered"),
    ],
)
def test_bad_registrations_come_back_and_the_registry_lives_on(
    registry: Registry, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, message: str
) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    with pytest.raises(error, match=message):
        steps.register_step(*args, **kwargs)
    with pytest.raises(ConfigurationError, match="must be a str"):
        steps.unregister_step(3)  # type: ignore[arg-type]
    assert registry.ref.is_alive() and whereis(registry.name) is registry.ref
    assert steps.snapshot_version == 1
    assert steps.register_step("after", Echo).name == "after"
    assert steps.table.names == ("after", "echo")


# -- validation and execution -----------------------------------------------------------


def test_validate_step(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    config = {"name": "say", "type": "echo", "prompt": "hi"}
    assert steps.validate_step(config) == config
    with pytest.raises(StepValidationError) as info:
        steps.validate_step({"name": "say", "type": "echo"})
    assert (info.value.step, info.value.field) == ("say", "prompt")  # missing required field
    with pytest.raises(StepValidationError) as info:
        steps.validate_step({"name": "say", "type": "echo", "prompt": "x", "tone": "dry"})
    assert (info.value.step, info.value.field) == ("say", "tone")  # unknown field
    with pytest.raises(UnknownStepError) as unknown:
        steps.validate_step({"name": "say", "type": "ehco", "prompt": "x"})
    assert unknown.value.suggestion == "echo"
    with pytest.raises(StepValidationError) as info:
        steps.validate_step({"name": "say", "prompt": "x"})
    assert (info.value.step, info.value.field) == ("say", "type")


def test_a_raising_validator_is_a_validation_error_and_the_registry_answers(
    registry: Registry,
) -> None:
    calls: list[str] = []

    def validator(config: dict[str, Any]) -> dict[str, Any]:
        calls.append(threading.current_thread().name)
        if config["prompt"] == "boom":
            raise RuntimeError("validator bug")
        return {**config, "prompt": config["prompt"].strip()}

    steps = registry.steps
    steps.register_step("echo", Echo, validator=validator)
    with pytest.raises(StepValidationError, match="validator of step type 'echo' raised Runt"):
        steps.validate_step({"name": "s", "type": "echo", "prompt": "boom"})
    assert calls == [threading.current_thread().name]  # it ran here, not in the actor
    assert registry.ref.is_alive()
    assert steps.validate_step({"type": "echo", "prompt": " ok "})["prompt"] == "ok"
    assert steps.register_step("count", Count).name == "count"
    assert steps.get_step("echo").validator is validator


def test_a_registered_dynamic_step_executes(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    config = steps.validate_step({"name": "s", "type": "echo", "prompt": "hi", "upper": True})
    context = StepContext()
    result = steps.get_step(config["type"]).step_cls().execute(config, context)
    assert isinstance(result, StepResult)
    assert (result.output, result.text, context.variables) == ("HI", "HI", {"last": "HI"})


# -- reads never wait on the mailbox -----------------------------------------------------


def test_reads_send_no_message_and_work_while_the_actor_is_down(registry: Registry) -> None:
    steps = registry.steps
    steps.register_step("echo", Echo)
    handled = registry.ref.statistics().handled
    for _ in range(1000):
        steps.get_step("echo")
        steps.has_step("nope")
        steps.list_steps("text")
        steps.validate_step({"type": "echo", "prompt": "x"})
    assert registry.ref.statistics().handled == handled
    registry.ref.stop()
    assert steps.get_step("echo").name == "echo"
    assert [e.name for e in steps.list_steps()] == ["echo"]
    assert steps.validate_step({"type": "echo", "prompt": "x"})["prompt"] == "x"
    assert steps.ref is None
    with pytest.raises(NoProcessError):
        StepRegistryHandle(registry.name, registry.snapshot, timeout=0).register_step("x", Echo)


def test_start_needs_a_snapshot_of_a_step_table() -> None:
    with pytest.raises(ConfigurationError, match="needs a Snapshot"):
        StepRegistry.start({"echo": Echo})  # type: ignore[arg-type]
    name = unique()
    with pytest.raises(ConfigurationError, match="not a StepTable"):
        StepRegistry.start_named(name, Snapshot({}))  # type: ignore[arg-type]
    assert whereis(name) is None


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_registrations_none_lost(registry: Registry, round_: int) -> None:
    threads, per_thread = 8, 1000
    steps = registry.steps
    steps.register_step("seed", Echo)
    version = steps.snapshot_version
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def register(t: int) -> None:
        # each thread its own handle: they share nothing but the name and the snapshot
        mine = StepRegistryHandle(registry.name, registry.snapshot)
        barrier.wait()
        try:
            for i in range(per_thread):
                name = f"t{t}.s{i}"
                entry = mine.register_step(name, Count if i % 2 else Echo)
                assert mine.get_step(name) is entry  # read-your-write
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=register, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert failures == []
    expected = {f"t{t}.s{i}" for t in range(threads) for i in range(per_thread)} | {"seed"}
    table = steps.table
    assert set(table.names) == expected and len(table) == threads * per_thread + 1
    assert table.names == tuple(sorted(expected))
    assert steps.snapshot_version == version + threads * per_thread
    assert len(steps.list_steps("analysis")) == threads * per_thread // 2
    assert registry.ref.is_alive()


# -- crash and restart -------------------------------------------------------------------


class Reader:
    """A thread looking every given step up in a loop until stopped; records anything odd."""

    def __init__(self, steps: StepRegistryHandle, names: list[str]) -> None:
        self.reads = 0
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(steps, names), name="reader")
        self.thread.start()

    def _run(self, steps: StepRegistryHandle, names: list[str]) -> None:
        while not self.stop.is_set():
            for name in names:
                try:
                    if steps.get_step(name).name != name:
                        self.problems.append(f"wrong entry for {name}")
                except Exception as exc:
                    self.problems.append(f"{name}: {exc!r}")
                self.reads += 1

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.reads


@pytest.mark.parametrize("how", ["kill", "crash"])
def test_restart_keeps_registrations_while_a_reader_reads(clock: FakeClock, how: str) -> None:
    name = unique()
    snapshot: Snapshot[StepTable] = Snapshot(StepTable())
    spec = dataclasses.replace(
        StepRegistry.child_spec(name, snapshot, clock=clock),
        backoff=Backoff(min=1, max=1, random_factor=0),  # down until the test moves time
    )
    assert spec.id == "steps"
    sup = Supervisor.start([spec], max_restarts=10, max_seconds=60, clock=clock)
    steps = StepRegistryHandle(name, snapshot)
    names = [f"step{i}" for i in range(100)]
    for n in names:
        steps.register_step(n, Echo if len(n) % 2 else Count)
    reader = Reader(steps, names)
    try:
        for cycle in range(3):
            old = whereis(name)
            assert isinstance(old, ServerRef)
            if how == "kill":
                old.kill()
            else:  # a message that raises a non-OtpyError crashes it
                with pytest.raises(AttributeError):
                    NamedHandle(name).no_such_handler()
            clock.wait_for_timers(1)  # the supervisor's backoff timer: it is down now
            assert whereis(name) is None and steps.ref is None
            writer = InThread(steps.register_step, f"during{cycle}", Whisper)
            down_reads = reader.reads
            wait_until(lambda n=down_reads: reader.reads >= n + 500, message="reads while down")
            assert not writer.done.is_set()  # nobody to write to yet
            assert steps.get_step(f"step{cycle}").name == f"step{cycle}"
            clock.advance(1)  # the restart
            entry = writer.result()  # the blocked writer got through to the new incarnation
            assert entry.name == f"during{cycle}" and steps.get_step(entry.name) is entry
            new = whereis(name)
            assert isinstance(new, ServerRef) and new is not old and new.is_alive()
            assert steps.register_step(f"after{cycle}", Shout).step_cls is Shout
    finally:
        reads = reader.finish()
    assert reader.problems == []
    assert reads > 1500
    expected = set(names) | {f"{w}{c}" for w in ("during", "after") for c in range(3)}
    assert set(steps.table.names) == expected
    assert snapshot.version == len(expected)
    assert sup.is_alive()
    sup.stop()


class BlockingClock(FakeClock):
    """``time()`` blocks once, when armed, until released: a write stuck mid-handler."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = threading.Event()
        self.blocked = threading.Event()
        self.release = threading.Event()

    def time(self) -> float:
        if self.armed.is_set():
            self.armed.clear()
            self.blocked.set()
            assert self.release.wait(10)
        return super().time()


def test_a_killed_incarnation_finishing_a_write_loses_no_later_write() -> None:
    """A killed actor's handler still runs to its end (threads cannot be interrupted) while
    the restarted registry serves new writes: both writes must end up in the table."""
    clock = BlockingClock()
    name = unique()
    snapshot: Snapshot[StepTable] = Snapshot(StepTable())
    sup = Supervisor.start([StepRegistry.child_spec(name, snapshot, clock=clock)])
    steps = StepRegistryHandle(name, snapshot)
    old = whereis(name)
    assert isinstance(old, ServerRef)
    clock.armed.set()
    first = InThread(steps.register_step, "first", Echo)
    assert clock.blocked.wait(5)  # the old incarnation is inside its write
    old.kill()
    new = wait_until(lambda: (r := whereis(name)) is not None and r is not old and r)
    later = new.ask(
        ProxyCall(attr_path=("register_step",), args=("later", Count), kwargs={}), block=False
    )
    wait_until(lambda: new.statistics().mailbox == 0, message="the new incarnation took it")
    clock.release.set()
    assert first.result().name == "first"  # the killed one still replied: it did publish
    assert later.get(timeout=5).name == "later"
    assert set(steps.table.names) == {"first", "later"}
    assert snapshot.version == 2
    sup.stop()


# -- plugins -----------------------------------------------------------------------------


def ep(name: str, value: str, group: str = "otpy.steps") -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name, value, group)


def test_plugins_register_and_broken_ones_are_skipped(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    steps = registry.steps
    steps.register_step("taken", Echo)
    entry_points = [
        ep("shout", "step_plugins:Shout"),  # a Step subclass: registered under "shout"
        ep("many", "step_plugins:register_many"),  # a function registering two
        ep("missing", "no_such_module_for_otpy_tests:Thing"),
        ep("raising", "step_plugins:register_broken"),
        ep("wrong_class", "step_plugins:NotAStep"),
        ep("wrong_value", "step_plugins:NOT_CALLABLE"),
        ep("taken", "step_plugins:Shout"),  # the name is registered: not replaced
        ep("bad name", "step_plugins:Shout"),
        ep("other", "step_plugins:Shout", group="otpy.providers"),  # another group
    ]
    with caplog.at_level(logging.WARNING, logger="otpy.plugins"):
        reports = steps.load_plugins(entry_points)
    outcome = {r.name: (r.loaded, (r.error or "").split(":")[0]) for r in reports}
    assert outcome == {
        "shout": (True, ""),
        "many": (True, ""),
        "missing": (False, "ModuleNotFoundError"),
        "raising": (False, "RuntimeError"),
        "wrong_class": (False, "ConfigurationError"),
        "wrong_value": (False, "ConfigurationError"),
        "taken": (False, "DuplicateStepError"),
        "bad name": (False, "ConfigurationError"),
    }
    assert steps.table.names == ("plugin.count", "plugin.whisper", "shout", "taken")
    assert steps.get_step("shout").step_cls is Shout
    assert steps.get_step("taken").step_cls is Echo
    assert [e.name for e in steps.list_steps("analysis")] == ["plugin.count"]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 6
    assert registry.ref.is_alive()


def test_plugins_from_a_function_of_the_group(registry: Registry) -> None:
    asked: list[str] = []

    def find(group: str) -> list[importlib.metadata.EntryPoint]:
        asked.append(group)
        return [ep("shout", "step_plugins:Shout")]

    reports = registry.steps.load_plugins(find)
    assert asked == ["otpy.steps"] and [r.loaded for r in reports] == [True]
    assert registry.steps.has_step("shout")


def test_installed_plugins_load_without_error(registry: Registry) -> None:
    reports = registry.steps.load_plugins()  # whatever is installed: never raises
    assert all(r.group == "otpy.steps" for r in reports)
