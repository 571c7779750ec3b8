"""Version checks, and the CompatibilityManager on a real StepRegistry: registration at
start, across restarts, migrate and check through the handle."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gateways import Gateway

from otpy._snapshot import Snapshot
from otpy.actors import (
    CompatibilityHandle,
    CompatibilityManager,
    StepRegistry,
    StepRegistryHandle,
)
from otpy.compat import Incompatibility, check_versions, parse_requirement
from otpy.errors import (
    ConfigurationError,
    StartChildError,
    StepValidationError,
    UnknownStepError,
)
from otpy.pipelines import compile_pipeline
from otpy.providers import SimulatedProvider
from otpy.state import LocalState
from otpy.steps import StepTable
from otpy.steps.llm import BUILTIN_STEPS, ClaudeSessionStep, ClaudeStep
from otpy.supervision import NamedHandle, ServerRef, Supervisor, SupervisorRef, whereis
from otpy.testing import FakeClock, wait_until

# -- version checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "inside", "outside"),
    [
        (">=1.0,<2", ["1.0.0", "1.9.9"], ["0.9", "2.0.0"]),
        ("~=1.2", ["1.2.0", "1.9"], ["1.1", "2.0"]),
        ("==1.*", ["1.0.0", "1.5.2"], ["2.0.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0", "2.0.0rc1"]),
        ("^1.2", ["1.2.0", "1.99"], ["1.1.9", "2.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0", ["0.0.1", "0.9.9"], ["1.0.0"]),
        ("^0.0", ["0.0.9"], ["0.1.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1.2", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("~> 1.2", ["1.2.0", "1.5.0"], ["2.0.0"]),
        ("~> 1.2.3", ["1.2.9"], ["1.3.0"]),
        ("1.0.0", ["1.0.0", "1.0"], ["1.0.1"]),
        ("*", ["0.0.1", "9.9.9"], []),
        ("", ["1.0.0"], []),
        ("^1.0, !=1.3.0", ["1.2.0", "1.4.0"], ["1.3.0", "2.0.0"]),
        (">= 1.0 , < 1.5", ["1.4.9"], ["1.5.0"]),
    ],
)
def test_requirements_pep440_and_npm_style(
    requirement: str, inside: list[str], outside: list[str]
) -> None:
    specifier = parse_requirement(requirement)
    for version in inside:
        assert specifier.contains(version, prereleases=True), (requirement, version)
    for version in outside:
        assert not specifier.contains(version, prereleases=True), (requirement, version)


@pytest.mark.parametrize("requirement", [">>1", "^", "^x.y", "~banana", "1.2.x", "=>1.0", 3])
def test_a_bad_requirement_names_the_step_and_the_specifier(requirement: Any) -> None:
    with pytest.raises(StepValidationError) as caught:
        check_versions({"claude": "^1.0", "gemini": requirement}, {"claude": "1.0.0"})
    assert caught.value.step == "gemini" and caught.value.field == "version"
    assert repr(requirement) in str(caught.value)


def test_check_versions_reports_each_incompatibility_in_order() -> None:
    registered = {"claude": "1.0.0", "gemini": "1.4.0", "beta": "2.0.0rc1", "odd": "not-a-version"}
    required = {
        "claude": "^1.0", "gemini": ">=2", "missing": "*", "beta": ">=2.0.0rc1,<3",
        "odd": "*",
    }  # fmt: skip
    assert check_versions(required, registered) == [
        Incompatibility("gemini", ">=2", "1.4.0", "registered version 1.4.0 does not satisfy >=2"),
        Incompatibility("missing", "*", None, "not registered"),
        Incompatibility(
            "odd", "*", "not-a-version", "registered version 'not-a-version' is invalid"
        ),
    ]
    assert check_versions({}, registered) == []
    assert check_versions({"beta": ">=1"}, registered) == []  # a registered pre-release counts


# -- the manager on a real registry --------------------------------------------------------

_names = itertools.count()


@dataclass
class Runtime:
    prefix: str
    snapshot: Snapshot[StepTable]
    steps: StepRegistryHandle
    compat: CompatibilityHandle
    sup: SupervisorRef


def start_runtime(clock: FakeClock, **manager: Any) -> Runtime:
    prefix = f"test.compat.{next(_names)}"
    snapshot: Snapshot[StepTable] = Snapshot(StepTable())
    steps = StepRegistryHandle(f"{prefix}.steps", snapshot)
    sup = Supervisor.start(
        [
            StepRegistry.child_spec(f"{prefix}.steps", snapshot, clock=clock),
            CompatibilityManager.child_spec(f"{prefix}.compat", steps, clock=clock, **manager),
        ],
        max_restarts=10,
        max_seconds=60,
        clock=clock,
    )
    return Runtime(prefix, snapshot, steps, CompatibilityHandle(f"{prefix}.compat", steps), sup)


@pytest.fixture
def runtime(clock: FakeClock) -> Iterator[Runtime]:
    rt = start_runtime(clock)
    yield rt
    rt.sup.stop()


def test_start_registers_all_ten_legacy_types(runtime: Runtime, clock: FakeClock) -> None:
    table = runtime.steps.table
    assert set(table.names) == set(BUILTIN_STEPS) and len(table.names) == 10
    for name, cls in BUILTIN_STEPS.items():
        entry = runtime.steps.get_step(name)
        assert entry.step_cls is cls and entry.metadata.version == "1.0.0"
    assert runtime.compat.legacy_steps() == list(BUILTIN_STEPS)
    stats = runtime.compat.statistics()
    assert stats.registered == tuple(BUILTIN_STEPS)
    assert (stats.rounds, stats.last_registered_at) == (1, clock.time())
    assert [e.name for e in runtime.steps.list_steps("structured_output")] == ["gemini_instructor"]
    assert [
        c.id for c in runtime.sup.which_children()
    ] == ["steps", "compat"]  # fmt: skip


@pytest.mark.parametrize("how", ["kill", "crash"])
def test_a_restarted_manager_registers_again_without_errors(runtime: Runtime, how: str) -> None:
    name = f"{runtime.prefix}.compat"
    for _ in range(3):
        old = whereis(name)
        assert isinstance(old, ServerRef)
        before = runtime.snapshot.version
        if how == "kill":
            old.kill()
        else:  # a non-OtpyError in a handler crashes it
            with pytest.raises(AttributeError):
                NamedHandle(name).no_such_handler()
        new = wait_until(lambda o=old: (r := whereis(name)) is not None and r is not o and r)
        # Named before its on_start runs; a call is handled only after it.
        assert runtime.compat.statistics().rounds == 1  # a fresh incarnation
        assert new.is_alive() and whereis(name) is new
        assert runtime.snapshot.version == before + 10  # replaced, not refused as duplicates
        assert set(runtime.steps.table.names) == set(BUILTIN_STEPS)
    counts = runtime.sup.count_children()
    assert runtime.sup.is_alive() and counts.active == 2


def test_reregister_through_the_handle_restores_replaced_types(runtime: Runtime) -> None:
    steps = runtime.steps
    steps.register_step("claude", ClaudeStep, metadata={"version": "2.1.0"}, replace=True)
    steps.unregister_step("set_variable")
    assert runtime.compat.check_versions({"claude": "^1.0", "set_variable": "*"}) == [
        Incompatibility(
            "claude", "^1.0", "2.1.0", "registered version 2.1.0 does not satisfy ^1.0 (<2,>=1.0)"
        ),
        Incompatibility("set_variable", "*", None, "not registered"),
    ]  # fmt: skip
    assert runtime.compat.reregister() == list(BUILTIN_STEPS)
    assert runtime.compat.check_versions({"claude": "^1.0", "set_variable": "*"}) == []
    assert runtime.compat.statistics().rounds == 2


def test_a_users_own_step_under_a_legacy_name_survives_manager_restarts(
    runtime: Runtime,
) -> None:
    class MyClaude(ClaudeStep):  # the user's own, in the user's module
        pass

    runtime.steps.register_step("claude", MyClaude, replace=True)
    name = f"{runtime.prefix}.compat"
    old = whereis(name)
    assert isinstance(old, ServerRef)
    old.kill()
    wait_until(lambda: (r := whereis(name)) is not None and r is not old)
    assert runtime.compat.statistics().rounds == 1  # the new incarnation has run on_start
    assert runtime.steps.get_step("claude").step_cls is MyClaude
    assert "claude" not in runtime.compat.reregister()
    assert runtime.steps.get_step("claude").step_cls is MyClaude
    assert runtime.steps.get_step("gemini").step_cls is BUILTIN_STEPS["gemini"]


def test_migrate_and_check_versions_through_the_handle(runtime: Runtime) -> None:
    legacy = {
        "workflow": {
            "name": "p",
            "steps": [{"name": "a", "type": "claude", "claude_options": {"system_prompt": "S"},
                       "prompt": [{"type": "static", "content": "hi"}]}],
        }
    }  # fmt: skip
    result = runtime.compat.migrate_pipeline(legacy)
    assert result.config == {
        "name": "p",
        "steps": [{"name": "a", "type": "claude", "claude_options": {"system_prompt": "S"},
                   "prompt": [{"type": "static", "content": "hi"}]}],
    }  # fmt: skip
    assert result.pipeline_ex and result.inert == []
    plan = compile_pipeline(legacy, runtime.steps.table)  # valid for the registered types
    assert plan.pipeline.pipeline_ex and plan.steps[0].config["claude_options"] == {
        "system_prompt": "S"
    }
    assert runtime.compat.check_versions({name: ">=1,<2" for name in BUILTIN_STEPS}) == []
    with pytest.raises(StepValidationError, match="claude"):
        runtime.compat.check_versions({"claude": "~banana"})


def test_the_session_store_reaches_the_registered_session_step(clock: FakeClock) -> None:
    store = LocalState()
    rt = start_runtime(clock, session_store=store)
    try:
        entry = rt.steps.get_step("claude_session")
        assert (
            issubclass(entry.step_cls, ClaudeSessionStep)
            and entry.step_cls is not ClaudeSessionStep
        )
        config = rt.steps.validate_step(
            {"type": "claude_session", "session_id": "s", "prompt": "hi"}
        )
        gateway = Gateway(SimulatedProvider("sim"))
        entry.step_cls().execute(config, gateway.context())
        assert store.get_variable("session.s").value[0]["user"] == "hi"
    finally:
        rt.sup.stop()


class FailingSteps:
    """A registry handle whose writes fail: the manager's start must fail with it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def register_step(self, name: str, step_cls: Any, validator: Any = None,
                      metadata: Any = None, replace: bool = False) -> Any:  # fmt: skip
        self.calls.append((name, replace))
        if len(self.calls) == 3:
            raise ConfigurationError("registry refuses")
        return None

    def get_step(self, name: str) -> Any:
        raise UnknownStepError(name)  # nothing is ever registered here


def test_a_manager_that_cannot_register_does_not_start() -> None:
    steps = FailingSteps()
    with pytest.raises(StartChildError):
        Supervisor.start(
            [CompatibilityManager.child_spec("test.compat.failing", steps)], max_restarts=0
        )
    assert steps.calls[:3] == [("claude", True), ("gemini", True), ("claude_smart", True)]
    assert whereis("test.compat.failing") is None
    with pytest.raises(ConfigurationError, match="session_store"):
        CompatibilityManager.start(steps, session_store="memory")  # type: ignore[arg-type]
