"""Model-based randomized test of ``Supervisor`` against a pure model of OTP's rules.

Each seed builds a supervisor of 3-6 Workers (random restart types and shutdowns) on a
FakeClock and a pure model of it (no threads), then applies ~40 random operations to both:
a child exiting by itself (normal / shutdown / crash), terminate_child, restart_child,
delete_child, start_child and moving the clock. After each one the real system is let
settle and compared with the model: alive (exit reason shutdown once dead), which_children
ids, order, states and restart types, each running child's incarnation (a new ref exactly
when the model started it again) and the error each API call raised.

OTP's rules (``supervisor.erl``): permanent children always restart, transient ones only
after an abnormal exit, temporary never (spec dropped). Every automatic restart counts
toward intensity: more than ``max_restarts`` in ``max_seconds`` (sliding window, kept while
``now - t <= max_seconds``) and the supervisor stops all and exits ``shutdown``.
one_for_all stops the others (temporary ones dropped) and starts every remaining spec in
order, also terminated ones; rest_for_one does the same for the child and those after it.
restart_child does not count toward intensity. The clock moves by whole seconds, so OTP's
whole-second ``monotonic_time(second)`` and the float clock give the same window. A failure
prints the seed, both states and the ops as a list that ``run(strategy, setup, ops)`` replays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

from otpy.errors import NoProcessError, OtpyError
from otpy.supervision import ServerRef, Supervisor, SupervisorRef
from otpy.testing import FakeClock, wait_exit, wait_idle
from support import Died, worker

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTARTS = ("permanent", "transient", "temporary")
SHUTDOWNS: tuple[Any, ...] = (5.0, "brutal_kill")
IDS = tuple("abcdefgh")
MAX_SECONDS = 10.0
SEEDS = range(40)
N_OPS = 40

Op = tuple[Any, ...]  # ("exit", id, "normal"|"shutdown"|"crash"), ("terminate", id), ...
Setup = tuple[int, list[tuple[str, str, Any]]]  # max_restarts, [(id, restart, shutdown)]


@dataclass
class MChild:
    id: str
    restart: str
    shutdown: Any  # 5.0 (on_stop runs, logged) or "brutal_kill" (killed, not logged)
    running: bool = False
    inc: int = -1  # incarnation: a new number on every start


@dataclass
class Model:
    """A supervisor as OTP's supervisor.erl would behave; all starts succeed."""

    strategy: str
    max_restarts: int
    children: list[MChild]
    alive: bool = True
    now: float = 0.0
    restarts: list[float] = field(default_factory=list)
    next_inc: int = 0
    log: list[tuple[str, str]] = field(default_factory=list)  # as Worker's log

    def find(self, cid: str) -> MChild | None:
        return next((c for c in self.children if c.id == cid), None)

    def launch(self, child: MChild) -> None:
        child.running, child.inc = True, self.next_inc
        self.next_inc += 1
        self.log.append(("start", child.id))

    def halt(self, child: MChild) -> None:
        """The supervisor stops ``child`` (if running) and waits for it."""
        if child.running and child.shutdown != "brutal_kill":
            self.log.append(("stop", child.id))
        child.running = False

    def exit(self, cid: str, reason: str) -> None:
        child = self.find(cid)
        assert child is not None and child.running
        child.running = False
        if reason != "crash":
            self.log.append(("stop", cid))  # on_stop runs on normal and shutdown exits
        if child.restart != "permanent" and (child.restart, reason) != ("transient", "crash"):
            if child.restart == "temporary":
                self.children.remove(child)
            return
        self.restarts = [t for t in self.restarts if self.now - t <= MAX_SECONDS] + [self.now]
        if len(self.restarts) > self.max_restarts:
            self.alive = False
            for c in reversed(self.children):
                self.halt(c)
            return
        if self.strategy == "one_for_one":
            group = [child]
        elif self.strategy == "one_for_all":
            group = list(self.children)
        else:
            group = self.children[self.children.index(child) :]
        for member in reversed(group):  # stop the others in reverse start order
            self.halt(member)
            if member is not child and member.restart == "temporary":
                self.children.remove(member)  # a bystander: stopped and dropped
        for member in group:
            if member in self.children:
                self.launch(member)  # then start all that remain, in start order

    def apply(self, op: Op) -> str | None:
        """Apply ``op``; the name of the error the API call should raise, or None."""
        kind = op[0]
        if kind == "exit":
            self.exit(op[1], op[2])
            return None
        if kind == "advance":
            self.now += op[1]
            return None
        child = self.find(op[1])
        if kind == "start":
            if child is not None:
                return "AlreadyStartedError" if child.running else "AlreadyPresentError"
            child = MChild(op[1], op[2], op[3])
            self.children.append(child)
            self.launch(child)
            return None
        if child is None:
            return "ChildNotFoundError"
        if kind == "terminate":
            self.halt(child)
            if child.restart == "temporary":
                self.children.remove(child)
        elif child.running:
            return "ChildRunningError"  # restart / delete of a running child
        elif kind == "restart":
            self.launch(child)
        else:
            self.children.remove(child)
        return None

    def rows(self) -> list[tuple[str, str, str]]:
        return [(c.id, "running" if c.running else "terminated", c.restart) for c in self.children]


def random_setup(rng: random.Random) -> Setup:
    ids = rng.sample(IDS, rng.randint(3, 6))
    return rng.randint(1, 4), [(cid, rng.choice(RESTARTS), rng.choice(SHUTDOWNS)) for cid in ids]


def random_op(rng: random.Random, model: Model) -> Op:
    running = [c.id for c in model.children if c.running]
    roll = rng.random()
    if roll < 0.22 and running:
        return ("exit", rng.choice(running), rng.choice(("normal", "shutdown", "crash")))
    if roll < 0.45:
        return ("advance", float(rng.choice((1, 2, 3, 5, 9, 10, 11))))
    kind = rng.choice(("terminate", "restart", "delete", "start"))
    if kind == "start":
        return ("start", rng.choice(IDS), rng.choice(RESTARTS), rng.choice(SHUTDOWNS))
    stopped = [c.id for c in model.children if not c.running]
    pool = {"terminate": running, "restart": stopped, "delete": stopped}[kind]
    return (kind, rng.choice(pool if pool and rng.random() < 0.7 else IDS))


def real_rows(sup: SupervisorRef) -> tuple[list[tuple[str, str, str]], dict[str, ServerRef[Any]]]:
    infos = sup.which_children()
    rows = [(str(i.id), str(i.state), i.restart) for i in infos]
    return rows, {str(i.id): i.ref for i in infos if i.ref is not None}


def apply_real(
    sup: SupervisorRef, clock: FakeClock, op: Op, refs: dict[str, Any], log: list[Any]
) -> tuple[str | None, ServerRef[Any] | None]:
    """Apply ``op`` to the real supervisor and let it settle: (the error's name or None,
    the ref start_child / restart_child returned)."""
    kind, returned = op[0], None
    try:
        if kind == "exit":
            ref = refs[op[1]]
            ref.tell("die" if op[2] == "crash" else ("exit", op[2]))
            reason = wait_exit(ref)
            if not (isinstance(reason, Died) if op[2] == "crash" else reason == op[2]):
                return f"exit reason {reason!r}", None
        elif kind == "advance":
            clock.advance(op[1])
        elif kind == "start":
            returned = sup.start_child(worker(op[1], log=log, restart=op[2], shutdown=op[3]))
        elif kind == "terminate":
            sup.terminate_child(op[1])
        elif kind == "restart":
            returned = sup.restart_child(op[1])
        else:
            sup.delete_child(op[1])
    except OtpyError as exc:
        return type(exc).__name__, None
    finally:
        wait_idle()
    return None, returned


def run(strategy: str, setup: Setup, ops: Any, label: str = "replay") -> int:
    """Run ``ops`` (a list, or a callable ``model -> op | None``) on both; ops applied."""
    max_restarts, specs = setup
    clock, log = FakeClock(), list[tuple[str, str]]()
    sup = Supervisor.start(
        [worker(cid, log=log, restart=r, shutdown=s) for cid, r, s in specs],
        strategy=strategy,  # type: ignore[arg-type]
        max_restarts=max_restarts,
        max_seconds=MAX_SECONDS,
        clock=clock,
    )
    model = Model(strategy, max_restarts, [MChild(*spec) for spec in specs])
    for child in model.children:
        model.launch(child)
    if not callable(ops):
        steps = iter(ops)
        ops = lambda _: next(steps, None)  # noqa: E731
    urn_of: dict[int, str] = {}  # model incarnation -> the real ref's urn
    inc_of: dict[str, int] = {}  # and back: one real ref per incarnation
    history: list[Op] = []
    refs: dict[str, ServerRef[Any]] = {}
    returned: ServerRef[Any] | None = None

    def fail(what: str) -> NoReturn:
        try:
            real: Any = real_rows(sup)[0]
        except NoProcessError:
            real = f"dead, exit reason {sup.exit_reason!r}"
        same = 0  # the length of the logs' common prefix
        while same < min(len(log), len(model.log)) and log[same] == model.log[same]:
            same += 1
        lines = [f"{label}: {what}", "replay: run(strategy, setup, ops) with"]
        lines += [f"strategy, setup = {strategy!r}, {setup!r}", "ops = ["]
        lines += [f"    {op!r},  # {i}" for i, op in enumerate(history)] + ["]"]
        lines += [f"model: alive={model.alive} now={model.now} restarts={model.restarts}"]
        lines += [f"  {row}" for row in model.rows()] + [f"real: {real}"]
        lines += [f"log after entry {same}: model {model.log[same:]}, real {log[same:]}"]
        pytest.fail("\n".join(lines))

    while True:
        if log != model.log:
            fail("start/stop order differs")
        if not model.alive:
            if not sup.wait_exit(5.0) or sup.exit_reason != "shutdown":
                fail("the supervisor should have exited with reason shutdown")
            if any(ref.is_alive() for ref in refs.values()):
                fail("a child outlived its supervisor")
            return len(history)
        try:
            rows, refs = real_rows(sup)
        except NoProcessError:
            fail("the supervisor exited")
        if rows != model.rows():
            fail("which_children differs")
        if returned is not None and refs.get(history[-1][1]) is not returned:
            fail(f"{history[-1]!r} returned {returned}, which_children has another ref")
        for c in model.children:
            if c.running:
                urn = refs[c.id].actor_urn
                if urn_of.setdefault(c.inc, urn) != urn or inc_of.setdefault(urn, c.inc) != c.inc:
                    fail(f"child {c.id!r}: a new ref is expected iff it was started again")
        op = ops(model)
        if op is None:
            return len(history)
        history.append(op)
        expected = model.apply(op)
        actual, returned = apply_real(sup, clock, op, refs, log)
        if actual != expected:
            fail(f"{op!r} raised {actual}, expected {expected}")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_supervisor_matches_model(seed: int, strategy: str) -> None:
    rng = random.Random(f"{strategy}/{seed}")
    setup = random_setup(rng)
    left = [N_OPS]

    def next_op(model: Model) -> Op | None:
        left[0] -= 1
        return random_op(rng, model) if left[0] >= 0 else None

    run(strategy, setup, next_op, label=f"seed={seed} strategy={strategy}")


def test_replay_one_for_all_restarts_terminated_child() -> None:
    """A fixed sequence: one_for_all brings back a child stopped with terminate_child."""
    setup: Setup = (2, [("a", "permanent", 5.0), ("b", "transient", 5.0), ("c", "temporary", 5.0)])
    ops: list[Op] = [("terminate", "b"), ("exit", "a", "crash"), ("exit", "b", "normal")]
    ops += [("advance", 11.0), ("exit", "a", "shutdown"), ("exit", "a", "crash")]
    assert run("one_for_all", setup, ops) == len(ops)
