"""Ports of OTP's supervisor_SUITE: starting, stopping and administering supervisors.

Each test is named after its OTP case. OTP lists ``which_children`` newest first; ours is
in start order, so the expected lists here are in start order. ``{shutdown, Info}`` exit
reasons do not exist in Python (an exit reason is a str or an exception): where OTP uses
one, the plain ``"shutdown"`` stands in for it.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pykka
import pytest
from pykka import ActorRegistry

from otpy.errors import (
    AlreadyPresentError,
    AlreadyStartedError,
    ChildNotFoundError,
    ChildRunningError,
    ChildSpecError,
    DuplicateChildError,
    NoProcessError,
    StartChildError,
)
from otpy.supervision import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    DynamicSupervisor,
    ServerRef,
    Supervisor,
    SupervisorRef,
)
from otpy.testing import FakeClock, wait_exit, wait_idle, wait_until
from support import Died, SlowStop, Worker, crash, refs, restarted, worker

# -- helpers ------------------------------------------------------------------------------


class Boom(Exception):
    """A failure raised on purpose by a start or an on_start."""


class FailingStart(Worker):
    """A worker whose ``on_start`` raises: its start fails."""

    def on_start(self) -> None:
        raise Boom(self.tag)


class FailingSupervisor(Supervisor):
    """A supervisor whose own init fails (OTP's ``init(fail)``)."""

    def on_start(self) -> None:
        raise Boom("fail")


class GatedStop(Worker):
    """Its ``on_stop`` sets ``entered`` and then waits for ``release``."""

    def __init__(
        self,
        entered: threading.Event,
        release: threading.Event,
        tag: Any = None,
        log: list[Any] | None = None,
    ) -> None:
        super().__init__(tag, log)
        self.entered = entered
        self.release = release

    def on_stop(self) -> None:
        self.entered.set()
        self.release.wait()
        super().on_stop()


class Tracked:
    """A start function that records every ref it starts."""

    def __init__(self, start: Callable[[], ServerRef[Any]]) -> None:
        self._start = start
        self.refs: list[ServerRef[Any]] = []

    def __call__(self) -> ServerRef[Any]:
        ref = self._start()
        self.refs.append(ref)
        return ref


def tracked_worker(tag: Any, log: list[Any] | None = None) -> Tracked:
    return Tracked(lambda: Worker.start(tag, log))


def row(
    cid: Hashable,
    ref: ServerRef[Any] | None,
    state: str = "running",
    restart: str = "permanent",
    type: str = "worker",
) -> ChildInfo:
    return ChildInfo(cid, ref, type, state, restart)  # type: ignore[arg-type]


def counts(specs: int, active: int, supervisors: int, workers: int) -> ChildCounts:
    return ChildCounts(specs, active, supervisors, workers)


def start_sup(children: Any = (), **flags: Any) -> SupervisorRef:
    """OTP's ``start_link({ok, {{one_for_one, 2, 3600}, Children}})``."""
    flags.setdefault("max_restarts", 2)
    flags.setdefault("max_seconds", 3600)
    return Supervisor.start(children, **flags)


def live_actors() -> set[Any]:
    return {r for r in ActorRegistry.get_all() if r.is_alive()}


def dead_supervisor() -> SupervisorRef:
    """A supervisor ref whose actor has exited (OTP's unregistered name ``foo``)."""
    sup = start_sup()
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    return sup


def handled(sup: Any, cid: Hashable, old: ServerRef[Any]) -> Callable[[], bool]:
    """For wait_until: the supervisor no longer holds ``old`` as child ``cid``'s ref."""

    def check() -> bool:
        return refs(sup).get(cid) is not old

    return check


def settle(sup: Any, cid: Hashable, old: ServerRef[Any]) -> None:
    """Wait until the supervisor has acted on the exit of ``old`` (child ``cid``)."""
    wait_until(handled(sup, cid, old), message=f"supervisor handled the exit of {cid!r}")
    wait_idle()


NEVER = object()  # "no such key" marker for dict specs


def spec_dict(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not NEVER}


# -- sup_start ----------------------------------------------------------------------------


def test_sup_start_normal() -> None:
    sup = Supervisor.start([], strategy="one_for_one", max_restarts=2, max_seconds=3600)
    assert isinstance(sup, SupervisorRef)
    assert sup.is_alive()
    assert sup.which_children() == []
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    assert not sup.is_alive()


def test_sup_start_fail(clock: FakeClock) -> None:
    # The supervisor's own init fails: the error comes back to the caller, no child starts.
    before = live_actors()
    log: list[Any] = []
    with pytest.raises(Boom, match="fail"):
        FailingSupervisor.start([worker("child1", log=log)])
    assert log == []
    assert live_actors() <= before

    # A child's on_start raises: Supervisor.start raises StartChildError naming it, the
    # children started before it are stopped (reverse order), later ones never start.
    log = []
    first = tracked_worker("child1", log)
    second = tracked_worker("child2", log)
    specs = [
        ChildSpec(id="child1", start=first, shutdown=1.0),
        ChildSpec(id="child2", start=second, shutdown=1.0),
        ChildSpec.actor(FailingStart, "child3", log, id="child3"),
        worker("child4", log=log),
    ]
    with pytest.raises(StartChildError) as info:
        Supervisor.start(specs, max_restarts=2, max_seconds=3600, clock=clock)
    err = info.value
    assert err.child_id == "child3"
    assert isinstance(err.reason, Boom)
    assert err.reason.args == ("child3",)
    assert err.__cause__ is err.reason
    assert len(first.refs) == len(second.refs) == 1
    assert wait_exit(first.refs[0]) == "shutdown"
    assert wait_exit(second.refs[0]) == "shutdown"
    assert log == [("start", "child1"), ("start", "child2"), ("stop", "child2"), ("stop", "child1")]
    assert live_actors() <= before


def test_sup_start_child_returns_error() -> None:
    sup = start_sup()

    # Start returns something that is not a started actor: an error, nothing saved.
    for cid, value in [("child1", ("error", "reason")), ("child2", "error_reason"), ("c3", None)]:
        with pytest.raises(StartChildError) as info:
            sup.start_child(ChildSpec(id=cid, start=lambda v=value: v))
        assert info.value.child_id == cid
        assert repr(value) in str(info.value.reason)

    # Start raises: StartChildError carrying that exception.
    boom = Boom("reason")

    def raising() -> ServerRef[Any]:
        raise boom

    with pytest.raises(StartChildError) as info:
        sup.start_child(ChildSpec(id="child4", start=raising))
    assert info.value.child_id == "child4"
    assert info.value.reason is boom

    # A plain Pykka actor is not a GenServer: refused, and stopped rather than leaked.
    plain: list[Any] = []

    def plain_start() -> Any:
        ref = pykka.ThreadingActor.start()
        plain.append(ref)
        return ref

    with pytest.raises(StartChildError) as info:
        sup.start_child(ChildSpec(id="child5", start=plain_start))
    assert info.value.child_id == "child5"
    assert plain[0].actor_stopped.wait(5.0)

    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)
    assert sup.is_alive()
    # Nothing was saved: the ids are free.
    ref = sup.start_child(worker("child1"))
    assert sup.which_children() == [row("child1", ref)]

    # The simple_one_for_one variant (DynamicSupervisor): same errors, nothing kept.
    dyn = DynamicSupervisor.start(max_restarts=2, max_seconds=3600)
    with pytest.raises(StartChildError) as info:
        dyn.start_child(ChildSpec(id="child1", start=lambda: ("error", "reason")))
    assert info.value.child_id == "child1"
    with pytest.raises(StartChildError) as info:
        dyn.start_child(ChildSpec(id="child1", start=raising))
    assert info.value.reason is boom
    assert dyn.which_children() == []
    assert dyn.count_children() == counts(0, 0, 0, 0)
    assert dyn.is_alive()


# -- child specs and flags ----------------------------------------------------------------


def _start() -> ServerRef[Any]:
    return Worker.start("spec")


BAD_SPECS = [
    pytest.param(dict(start="mfa"), "start", id="invalid_start"),
    pytest.param(dict(start=_start, restart="prmanent"), "restart", id="invalid_restart"),
    pytest.param(dict(start=_start, shutdown=-10), "shutdown", id="negative_shutdown"),
    pytest.param(dict(start=_start, shutdown=-0.5), "shutdown", id="negative_float_shutdown"),
    pytest.param(dict(start=_start, shutdown=math.inf), "shutdown", id="inf_shutdown"),
    pytest.param(dict(start=_start, shutdown=math.nan), "shutdown", id="nan_shutdown"),
    pytest.param(dict(start=_start, shutdown="forever"), "shutdown", id="word_shutdown"),
    pytest.param(dict(start=_start, shutdown=True), "shutdown", id="bool_shutdown"),
    pytest.param(dict(start=_start, type="wrker"), "type", id="invalid_type"),
    pytest.param(dict(start=_start, significant="maybe"), "significant", id="invalid_sig"),
    pytest.param(dict(start=_start, backoff="fast"), "backoff", id="invalid_backoff"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_SPECS)
def test_child_specs_bad_field(fields: dict[str, Any], field: str) -> None:
    """OTP child_specs, the bad specs B1-B4: each names the faulty field."""
    fields = {"id": "child", **fields}
    with pytest.raises(ChildSpecError) as info:
        ChildSpec(**fields)
    assert (info.value.field, info.value.child_id) == (field, "child")
    with pytest.raises(ChildSpecError) as info:
        ChildSpec.from_dict(fields)
    assert (info.value.field, info.value.child_id) == (field, "child")

    # start_child refuses it and the supervisor carries on with nothing added.
    sup = start_sup()
    with pytest.raises(ChildSpecError) as info:
        sup.start_child(fields)
    assert (info.value.field, info.value.child_id) == (field, "child")
    assert sup.is_alive()
    assert sup.which_children() == []

    # The same spec among the init children: refused before anything starts.
    ok = tracked_worker("ok")
    with pytest.raises(ChildSpecError) as info:
        Supervisor.start([ChildSpec(id="ok", start=ok), fields])
    assert (info.value.field, info.value.child_id) == (field, "child")
    assert ok.refs == []


@pytest.mark.parametrize("bad_id", [None, "", ["un", "hashable"]])
def test_child_specs_bad_id(bad_id: Any) -> None:
    with pytest.raises(ChildSpecError) as info:
        ChildSpec(id=bad_id, start=_start)
    assert info.value.field == "id"


def test_child_specs() -> None:
    before = live_actors()
    sup = start_sup()

    # Not a child spec at all (OTP: start_child(sup_test, hej)).
    with pytest.raises(ChildSpecError):
        sup.start_child("hej")  # type: ignore[arg-type]
    assert sup.which_children() == []
    assert sup.is_alive()

    # Every valid combination of restart x shutdown x type is accepted.
    restarts = ("permanent", "transient", "temporary")
    shutdowns = (0, 1.0, None, "infinity", "brutal_kill")
    types = ("supervisor", "worker")
    expected_shutdown = {0: 0.0, 1.0: 1.0, None: None, "infinity": None}
    specs = []
    for n, (restart, shutdown, type_) in enumerate(itertools.product(restarts, shutdowns, types)):
        spec = ChildSpec(id=("c", n), start=_start, restart=restart, shutdown=shutdown, type=type_)
        assert spec.shutdown == expected_shutdown.get(shutdown, shutdown)  # type: ignore[call-overload]
        specs.append(spec)
    assert len(specs) == 30
    all_valid = Supervisor.start(specs)
    assert [(c.id, c.type, c.restart, c.state) for c in all_valid.which_children()] == [
        (s.id, s.type, s.restart, "running") for s in specs
    ]
    assert all_valid.count_children() == counts(30, 30, 15, 15)
    all_valid.exit("shutdown")
    assert wait_exit(all_valid) == "shutdown"

    # Duplicate ids (OTP: duplicate_child_name): refused before anything starts.
    start = tracked_worker("child")
    c1 = ChildSpec(id="child", start=start, shutdown="infinity", type="supervisor")
    c2 = ChildSpec(id="child", start=start, shutdown=1.0)
    with pytest.raises(DuplicateChildError) as dup:
        Supervisor.start([c1, c2])
    assert (dup.value.child_id, dup.value.field) == ("child", "id")
    assert start.refs == []

    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"

    # Faulty specs in Supervisor.start: ChildSpecError, nothing started.
    ok = tracked_worker("ok")
    faulty = [
        ([ChildSpec(id="ok", start=ok), {"id": "b1", "start": "mfa"}], "b1", "start"),
        ([ChildSpec(id="ok", start=ok), {"id": "b2", "start": _start, "restart": "prmanent"}],
         "b2", "restart"),
    ]  # fmt: skip
    for children, cid, field in faulty:
        with pytest.raises(ChildSpecError) as info:
            Supervisor.start(children, max_restarts=2, max_seconds=3600)
        assert (info.value.child_id, info.value.field) == (cid, field)
    assert ok.refs == []
    assert live_actors() <= before


def test_child_specs_map() -> None:
    # Missing id / start.
    for fields, field in [({}, "id"), ({"id": "child"}, "start"), ({"start": _start}, "id")]:
        with pytest.raises(ChildSpecError) as info:
            ChildSpec.from_dict(fields)
        assert info.value.field == field
    sup = start_sup()
    with pytest.raises(ChildSpecError) as info:
        sup.start_child({"id": "child"})
    assert (info.value.child_id, info.value.field) == ("child", "start")

    # significant must be a boolean.
    with pytest.raises(ChildSpecError) as info:
        ChildSpec.from_dict({"id": "child", "start": _start, "significant": "maybe"})
    assert (info.value.child_id, info.value.field) == ("child", "significant")

    # significant with auto_shutdown "never" (check_childspecs(Specs, never)) or with a
    # permanent restart (given or by default) is a bad combination; the rest is fine.
    for restart, significant, auto_shutdown in itertools.product(
        (NEVER, "permanent", "transient", "temporary"),
        (NEVER, False, True),
        ("never", "any_significant", "all_significant"),
    ):
        fields = spec_dict(id="child", start=_start, restart=restart, significant=significant)
        bad = significant is True and (auto_shutdown == "never" or restart in (NEVER, "permanent"))
        case = f"restart={restart!r} significant={significant!r} auto_shutdown={auto_shutdown}"
        sup = Supervisor.start([], auto_shutdown=auto_shutdown)
        if bad:
            with pytest.raises(ChildSpecError) as info:
                sup.start_child(fields)
            assert (info.value.child_id, info.value.field) == ("child", "significant"), case
            assert sup.which_children() == [], case
            with pytest.raises(ChildSpecError) as info:
                Supervisor.start([fields], auto_shutdown=auto_shutdown)
            assert (info.value.child_id, info.value.field) == ("child", "significant"), case
        else:
            ref = sup.start_child(fields)
            expected_restart = "permanent" if restart is NEVER else restart
            assert sup.which_children() == [row("child", ref, restart=expected_restart)], case
            from_init = Supervisor.start([fields], auto_shutdown=auto_shutdown)
            assert len(from_init.which_children()) == 1, case
            from_init.exit("shutdown")
            assert wait_exit(from_init) == "shutdown", case
        sup.exit("shutdown")
        assert wait_exit(sup) == "shutdown", case


BAD_FLAGS = [
    pytest.param({"strategy": "none_for_one"}, "strategy", id="invalid_strategy"),
    pytest.param({"strategy": "simple_one_for_one"}, "strategy", id="simple_one_for_one"),
    pytest.param({"max_restarts": math.inf}, "max_restarts", id="infinite_intensity"),
    pytest.param({"max_restarts": -1}, "max_restarts", id="negative_intensity"),
    pytest.param({"max_restarts": 2.5}, "max_restarts", id="float_intensity"),
    pytest.param({"max_restarts": "2"}, "max_restarts", id="str_intensity"),
    pytest.param({"max_restarts": True}, "max_restarts", id="bool_intensity"),
    pytest.param({"max_seconds": 0}, "max_seconds", id="zero_period"),
    pytest.param({"max_seconds": -1}, "max_seconds", id="negative_period"),
    pytest.param({"max_seconds": math.inf}, "max_seconds", id="infinite_period"),
    pytest.param({"max_seconds": math.nan}, "max_seconds", id="nan_period"),
    pytest.param({"max_seconds": "5"}, "max_seconds", id="str_period"),
    pytest.param({"auto_shutdown": "sometimes"}, "auto_shutdown", id="invalid_auto_shutdown"),
]


@pytest.mark.parametrize(("flags", "field"), BAD_FLAGS)
def test_sup_flags(flags: dict[str, Any], field: str) -> None:
    before = live_actors()
    start = tracked_worker("child1")
    with pytest.raises(ChildSpecError) as info:
        Supervisor.start([ChildSpec(id="child1", start=start)], **flags)
    assert (info.value.field, info.value.child_id) == (field, None)
    assert start.refs == []
    if field in ("max_restarts", "max_seconds"):
        with pytest.raises(ChildSpecError) as info:
            DynamicSupervisor.start(**flags)
        assert (info.value.field, info.value.child_id) == (field, None)
    assert live_actors() <= before


def test_sup_flags_valid_bounds() -> None:
    """The edges of the valid ranges: intensity 0, a small positive period."""
    sup = Supervisor.start([], max_restarts=0, max_seconds=0.5)
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"


# -- sup_stop -----------------------------------------------------------------------------


def test_sup_stop_timeout(clock: FakeClock) -> None:
    sup = start_sup(clock=clock)
    cpid1 = sup.start_child(worker("child1", shutdown=1.0))
    cpid2 = sup.start_child(worker("child2", shutdown=1.0))
    gate = threading.Event()
    try:
        cpid2.tell(("block", gate))  # child2 will not handle its shutdown
        sup.exit("shutdown")
        clock.wait_for_sleepers(1)  # the supervisor waits for child2 (stopped first)
        clock.advance(0.5)
        assert cpid2.exit_reason is None
        assert cpid1.exit_reason is None
        clock.advance(0.5)  # child2's shutdown time is up: killed
        assert wait_exit(sup) == "shutdown"
        assert wait_exit(cpid2) == "killed"
        assert wait_exit(cpid1) == "shutdown"
    finally:
        gate.set()


def test_sup_stop_infinity(clock: FakeClock) -> None:
    inner = Tracked(lambda: Supervisor.start([]))
    child1 = ChildSpec(id="child1", start=inner, type="supervisor")
    assert child1.shutdown is None  # a supervisor's default shutdown is infinity
    entered, release = threading.Event(), threading.Event()
    child2 = ChildSpec.actor(
        GatedStop, entered, release, "child2", id="child2", shutdown="infinity"
    )
    assert child2.shutdown is None
    sup = start_sup([child1, child2], clock=clock)
    cpid1 = inner.refs[0]
    cpid2 = refs(sup)["child2"]
    assert cpid2 is not None
    try:
        sup.exit("shutdown")
        assert entered.wait(5.0)
        clock.advance(24 * 3600.0)  # no amount of time gets child2 killed
        assert cpid2.exit_reason is None
        release.set()
        assert wait_exit(sup) == "shutdown"
        assert wait_exit(cpid2) == "shutdown"
        assert wait_exit(cpid1) == "shutdown"
    finally:
        release.set()


def test_sup_stop_brutal_kill(clock: FakeClock) -> None:
    log: list[Any] = []
    sup = start_sup(clock=clock)
    cpid1 = sup.start_child(worker("child1", log=log, shutdown=1.0))
    cpid2 = sup.start_child(worker("child2", log=log, shutdown="brutal_kill"))
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    assert wait_exit(cpid1) == "shutdown"
    assert wait_exit(cpid2) == "killed"
    assert ("stop", "child1") in log
    assert ("stop", "child2") not in log  # killed: no on_stop


def test_sup_stop_race(clock: FakeClock) -> None:
    sup = start_sup(clock=clock)
    cpid_a = sup.start_child(worker("child_a", restart="temporary", shutdown=1.0))
    reasons: list[Any] = ["normal", "shutdown", Died("other")]
    racers: list[tuple[ServerRef[Any], Any]] = []
    for n, (restart, reason) in enumerate(
        itertools.product(("temporary", "transient", "permanent"), reasons)
    ):
        ref = sup.start_child(worker(("child", n), restart=restart, shutdown=1.0))
        racers.append((ref, reason))
    release = threading.Event()
    cpid_z = sup.start_child(
        ChildSpec.actor(
            SlowStop, release, "child_z", id="child_z", restart="temporary", shutdown=2.0
        )
    )
    try:
        sup.exit("shutdown")
        clock.wait_for_sleepers(1)  # stuck on child_z, stopped first
        # Meanwhile the other children exit by themselves, each with its own reason.
        for ref, reason in racers:
            ref.tell(("exit", reason))
        for ref, reason in racers:
            assert wait_exit(ref) is reason
        assert sup.exit_reason is None
        release.set()
        assert wait_exit(sup) == "shutdown"
        assert wait_exit(cpid_z) == "shutdown"
        assert wait_exit(cpid_a) == "shutdown"
        for ref, reason in racers:
            assert ref.exit_reason is reason
    finally:
        release.set()


# -- order, administration, counting ------------------------------------------------------


def test_order_of_children(clock: FakeClock) -> None:
    ids = ["ch7", "ch3", "ch10", "ch2", "ch5"]
    log: list[Any] = []
    sup = start_sup(
        [worker(i, log=log, shutdown=1.0) for i in ids], strategy="rest_for_one", clock=clock
    )
    first = refs(sup)
    assert list(first) == ids
    assert all(first[i] is not None for i in ids)
    assert log == [("start", i) for i in ids]
    log.clear()

    crash(first["ch10"])  # rest_for_one: ch5 then ch2 stopped, then all three restarted
    assert isinstance(wait_exit(first["ch10"]), Died)
    wait_until(restarted(sup, "ch5", first["ch5"]))
    assert log == [
        ("stop", "ch5"),
        ("stop", "ch2"),
        ("start", "ch10"),
        ("start", "ch2"),
        ("start", "ch5"),
    ]
    assert wait_exit(first["ch5"]) == "shutdown"
    assert wait_exit(first["ch2"]) == "shutdown"
    second = refs(sup)
    assert list(second) == ids
    assert second["ch7"] is first["ch7"]
    assert second["ch3"] is first["ch3"]
    for i in ("ch10", "ch2", "ch5"):
        assert second[i] is not None and second[i] is not first[i]
        assert second[i].is_alive()  # type: ignore[union-attr]
    log.clear()

    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    assert log == [("stop", i) for i in reversed(ids)]
    for ref in second.values():
        assert ref is not None and ref.exit_reason == "shutdown"


def test_child_adm(clock: FakeClock) -> None:
    child = worker("child1", shutdown=1.0)
    sup = start_sup([child], clock=clock)
    foo = dead_supervisor()
    [info] = sup.which_children()
    cpid = info.ref
    assert cpid is not None and cpid.is_alive()
    assert sup.which_children() == [row("child1", cpid)]
    assert sup.count_children() == counts(1, 1, 0, 1)
    with pytest.raises(AlreadyStartedError) as started:
        sup.start_child(child)
    assert started.value.ref is cpid

    # terminate_child
    with pytest.raises(ChildNotFoundError):
        sup.terminate_child("hej")
    with pytest.raises(NoProcessError):
        foo.terminate_child("child1")
    sup.terminate_child("child1")
    assert wait_exit(cpid) == "shutdown"
    assert sup.which_children() == [row("child1", None, "terminated")]
    assert sup.count_children() == counts(1, 0, 0, 1)
    sup.terminate_child("child1")  # again: still fine
    assert sup.which_children() == [row("child1", None, "terminated")]

    # start_child of a terminated child
    with pytest.raises(AlreadyPresentError):
        sup.start_child(child)

    # restart_child
    cpid2 = sup.restart_child("child1")
    assert cpid2.is_alive() and cpid2 is not cpid
    assert sup.which_children() == [row("child1", cpid2)]
    assert sup.count_children() == counts(1, 1, 0, 1)
    with pytest.raises(ChildRunningError):
        sup.restart_child("child1")
    with pytest.raises(ChildNotFoundError):
        sup.restart_child("child2")

    # delete_child
    with pytest.raises(ChildRunningError):
        sup.delete_child("child1")
    with pytest.raises(ChildNotFoundError):
        sup.delete_child("hej")
    with pytest.raises(NoProcessError):
        foo.delete_child("child1")
    sup.terminate_child("child1")
    assert wait_exit(cpid2) == "shutdown"
    sup.delete_child("child1")
    with pytest.raises(ChildNotFoundError):
        sup.restart_child("child1")
    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)

    # start_child again
    with pytest.raises(NoProcessError):
        foo.start_child(child)
    cpid3 = sup.start_child(child)
    assert sup.which_children() == [row("child1", cpid3)]
    assert sup.count_children() == counts(1, 1, 0, 1)

    # A ref is not a child id in a Supervisor.
    with pytest.raises(ChildNotFoundError):
        sup.terminate_child(cpid3)
    assert cpid3.is_alive()
    assert sup.which_children() == [row("child1", cpid3)]
    assert sup.count_children() == counts(1, 1, 0, 1)

    with pytest.raises(NoProcessError):
        foo.which_children()
    with pytest.raises(NoProcessError):
        foo.count_children()


@pytest.mark.parametrize("child_type", ["worker", "supervisor"])
def test_count_children(child_type: str) -> None:
    """simple_one_for_one as a DynamicSupervisor (``count_children_supervisor`` too).

    A DynamicSupervisor (Elixir's) counts each child as a spec, where OTP's
    simple_one_for_one reports its single template: specs is the number of children here.
    """
    sup = DynamicSupervisor.start(max_restarts=2, max_seconds=3600)
    spec = ChildSpec.actor(
        Worker,
        id="child",
        restart="temporary",
        shutdown=1.0,
        type=child_type,  # type: ignore[arg-type]
    )

    def expected(n: int) -> ChildCounts:
        sups = n if child_type == "supervisor" else 0
        return counts(n, n, sups, n - sups)

    started = [sup.start_child(spec) for _ in range(1000)]
    assert len(sup.which_children()) == 1000
    assert sup.count_children() == expected(1000)

    started += [sup.start_child(spec) for _ in range(1000)]
    assert sup.count_children() == expected(2000)
    assert sup.count_children() == expected(2000)
    children = sup.which_children()
    assert len(children) == 2000
    assert sup.which_children() == children
    assert [c.ref for c in children] == started
    assert {(c.id, c.type, c.state, c.restart) for c in children} == {
        ("child", child_type, "running", "temporary")
    }

    for ref in started:
        ref.kill()
    wait_until(lambda: sup.count_children() == expected(0))
    wait_idle()
    assert sup.count_children() == expected(0)
    assert sup.which_children() == []
    assert sup.is_alive()


# -- restart types x exit reasons ---------------------------------------------------------


def one_child(restart: str, clock: FakeClock) -> tuple[SupervisorRef, ChildSpec, ServerRef[Any]]:
    sup = start_sup(clock=clock)
    spec = worker("child1", restart=restart, shutdown=1.0)
    return sup, spec, sup.start_child(spec)


def test_permanent_normal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("permanent", clock)
    cpid1.tell("stop")
    assert wait_exit(cpid1) == "normal"
    cpid2 = wait_until(restarted(sup, "child1", cpid1))
    wait_idle()
    assert cpid2.is_alive()
    assert sup.which_children() == [row("child1", cpid2)]
    assert sup.count_children() == counts(1, 1, 0, 1)


def test_transient_normal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("transient", clock)
    cpid1.tell("stop")
    assert wait_exit(cpid1) == "normal"
    settle(sup, "child1", cpid1)
    assert sup.which_children() == [row("child1", None, "terminated", "transient")]
    assert sup.count_children() == counts(1, 0, 0, 1)


def test_temporary_normal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("temporary", clock)
    cpid1.tell("stop")
    assert wait_exit(cpid1) == "normal"
    settle(sup, "child1", cpid1)
    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)


def test_permanent_shutdown(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("permanent", clock)
    cpid1.exit("shutdown")  # exit(CPid1, shutdown)
    assert wait_exit(cpid1) == "shutdown"
    cpid2 = wait_until(restarted(sup, "child1", cpid1))
    assert sup.which_children() == [row("child1", cpid2)]
    assert sup.count_children() == counts(1, 1, 0, 1)

    cpid2.tell(("exit", "shutdown"))  # OTP: {shutdown, some_info}
    assert wait_exit(cpid2) == "shutdown"
    cpid3 = wait_until(restarted(sup, "child1", cpid2))
    wait_idle()
    assert cpid3.is_alive()
    assert sup.which_children() == [row("child1", cpid3)]
    assert sup.count_children() == counts(1, 1, 0, 1)
    assert sup.is_alive()  # two restarts: intensity 2 not exceeded


def test_transient_shutdown(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("transient", clock)
    cpid1.exit("shutdown")
    assert wait_exit(cpid1) == "shutdown"
    settle(sup, "child1", cpid1)
    assert sup.which_children() == [row("child1", None, "terminated", "transient")]
    assert sup.count_children() == counts(1, 0, 0, 1)

    cpid2 = sup.restart_child("child1")
    assert sup.which_children() == [row("child1", cpid2, restart="transient")]
    cpid2.tell(("exit", "shutdown"))  # OTP: {shutdown, some_info}
    assert wait_exit(cpid2) == "shutdown"
    settle(sup, "child1", cpid2)
    assert sup.which_children() == [row("child1", None, "terminated", "transient")]
    assert sup.count_children() == counts(1, 0, 0, 1)


def test_temporary_shutdown(clock: FakeClock) -> None:
    sup, spec, cpid1 = one_child("temporary", clock)
    cpid1.exit("shutdown")
    assert wait_exit(cpid1) == "shutdown"
    settle(sup, "child1", cpid1)
    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)

    cpid2 = sup.start_child(spec)  # the spec was not kept: adding it again works
    assert sup.which_children() == [row("child1", cpid2, restart="temporary")]
    cpid2.tell(("exit", "shutdown"))  # OTP: {shutdown, some_info}
    assert wait_exit(cpid2) == "shutdown"
    settle(sup, "child1", cpid2)
    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)


def test_permanent_abnormal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("permanent", clock)
    crash(cpid1)
    assert isinstance(wait_exit(cpid1), Died)
    cpid2 = wait_until(restarted(sup, "child1", cpid1))
    wait_idle()
    assert cpid2.is_alive()
    assert sup.which_children() == [row("child1", cpid2)]
    assert sup.count_children() == counts(1, 1, 0, 1)


def test_transient_abnormal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("transient", clock)
    crash(cpid1)
    assert isinstance(wait_exit(cpid1), Died)
    cpid2 = wait_until(restarted(sup, "child1", cpid1))
    wait_idle()
    assert cpid2.is_alive()
    assert sup.which_children() == [row("child1", cpid2, restart="transient")]
    assert sup.count_children() == counts(1, 1, 0, 1)


def test_temporary_abnormal(clock: FakeClock) -> None:
    sup, _, cpid1 = one_child("temporary", clock)
    crash(cpid1)
    assert isinstance(wait_exit(cpid1), Died)
    settle(sup, "child1", cpid1)
    assert sup.which_children() == []
    assert sup.count_children() == counts(0, 0, 0, 0)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_temporary_bystander(strategy: str, clock: FakeClock) -> None:
    sup = Supervisor.start([], strategy=strategy, max_restarts=2, max_seconds=300, clock=clock)  # type: ignore[arg-type]
    cpid1 = sup.start_child(worker("child1", shutdown=0.1))
    cpid2 = sup.start_child(worker("child2", restart="temporary", shutdown=0.1))
    cpid1.tell("stop")  # permanent: restarted, and child2 stopped with it
    assert wait_exit(cpid1) == "normal"
    new1 = wait_until(restarted(sup, "child1", cpid1))
    assert wait_exit(cpid2) == "shutdown"
    wait_idle()
    assert sup.is_alive()
    assert new1.is_alive()
    assert sup.which_children() == [row("child1", new1)]
    assert sup.count_children() == counts(1, 1, 0, 1)


HOWS = ["kill", "normal", "abnormal", "supervisor"]
EXPECTED_REASON: dict[str, Callable[[Any], bool]] = {
    "kill": lambda r: r == "killed",
    "normal": lambda r: r == "normal",
    "abnormal": lambda r: isinstance(r, Died),
    "supervisor": lambda r: r == "shutdown",
}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("strategy", ["one_for_all", "one_for_one", "rest_for_one"])
def test_do_not_save_child_specs_for_temporary_children(
    strategy: str, how: str, clock: FakeClock
) -> None:
    sup = Supervisor.start([], strategy=strategy, max_restarts=2, max_seconds=3600, clock=clock)  # type: ignore[arg-type]

    def terminate(cid: str, ref: ServerRef[Any]) -> None:
        if how == "supervisor":
            sup.terminate_child(cid)
        elif how == "kill":
            ref.kill()
        elif how == "normal":
            ref.tell("stop")
        else:
            crash(ref)
        assert EXPECTED_REASON[how](wait_exit(ref)), (cid, ref.exit_reason)
        wait_until(handled(sup, cid, ref))

    for cid, restart in [("child1", "permanent"), ("child2", "transient")]:
        spec = worker(cid, restart=restart, shutdown=1.0)
        ref = sup.start_child(spec)
        terminate(cid, ref)
        kept_stopped = how == "supervisor" or (restart == "transient" and how == "normal")
        if kept_stopped:
            assert refs(sup)[cid] is None
            with pytest.raises(AlreadyPresentError):
                sup.start_child(spec)
            new = sup.restart_child(cid)
            assert new.is_alive()
        else:
            new = refs(sup)[cid]
            assert new is not None and new is not ref
            with pytest.raises(AlreadyStartedError) as started:
                sup.start_child(spec)
            assert started.value.ref is new

    spec3 = worker("child3", restart="temporary", shutdown=1.0)
    ref3 = sup.start_child(spec3)
    terminate("child3", ref3)
    assert "child3" not in refs(sup)
    again = sup.start_child(spec3)
    assert again.is_alive()
    assert refs(sup)["child3"] is again
    assert list(refs(sup)) == ["child1", "child2", "child3"]

    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"


def test_multiple_restarts(clock: FakeClock) -> None:
    sup = Supervisor.start([], strategy="one_for_one", max_restarts=1, max_seconds=1, clock=clock)
    spec = ChildSpec.from_dict(
        {
            "id": "child1",
            "start": lambda: Worker.start("child1"),
            "restart": "permanent",
            "shutdown": "brutal_kill",
            "type": "worker",
        }
    )
    ref = sup.start_child(spec)
    crash(ref)
    ref = wait_until(restarted(sup, "child1", ref))
    for _ in range(3):
        clock.advance(2.1)  # the restart above leaves the 1 s window
        [info] = sup.which_children()
        assert info.ref is ref
        crash(ref)
        ref = wait_until(restarted(sup, "child1", ref))
    wait_idle()
    assert sup.is_alive()
    assert ref.is_alive()
    sup.terminate_child("child1")
    assert wait_exit(ref) == "killed"  # brutal_kill
    sup.delete_child("child1")
    assert sup.which_children() == []
    sup.kill()
    assert wait_exit(sup) == "killed"


def test_killing_a_supervisor_kills_its_tree() -> None:
    """Erlang links a supervisor to its children: kill it and they die with it."""
    inner = ChildSpec(
        id="inner", type="supervisor", start=lambda: Supervisor.start([worker("leaf")])
    )
    sup = Supervisor.start([worker("a"), inner])
    inner_ref = refs(sup)["inner"]
    assert inner_ref is not None
    leaf = refs(inner_ref)["leaf"]
    a = refs(sup)["a"]
    assert sup.kill() is True
    assert wait_exit(a) == "killed"
    assert wait_exit(inner_ref) == "killed"
    assert leaf is not None and wait_exit(leaf) == "killed"


def test_crashed_supervisor_stops_its_children() -> None:
    """A bug in the supervisor itself (here: a call to a method it lacks) crashes it,
    and its children are shut down, not orphaned."""
    from pykka.messages import ProxyCall

    sup = Supervisor.start([worker("a"), worker("b")])
    a, b = refs(sup)["a"], refs(sup)["b"]
    with pytest.raises(AttributeError):
        sup.call(ProxyCall(attr_path=("no_such_method",), args=(), kwargs={}))
    assert isinstance(wait_exit(sup), AttributeError)
    assert a is not None and wait_exit(a) == "shutdown"
    assert b is not None and wait_exit(b) == "shutdown"
