"""``SQLiteJobStore``: claims are compare-and-sets, every write is fenced by the lease,
leases expire on the store's clock unless renewed, and a store of an earlier otpy is
read. Time is a FakeClock whose epoch is the real time (leases are compared across
processes by ``clock.time()``)."""

from __future__ import annotations

import dataclasses
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from otpy.errors import JobClaimedError, JobError, LeaseLostError, StateError
from otpy.optimize import CheckpointBatch, JobOptions, JobSpec, Owner, SQLiteJobStore, Trial
from otpy.state import SQLiteState
from otpy.testing import FakeClock

PROGRAM = {"name": "p", "steps": [{"name": "s", "type": "claude", "prompt": "{{ vars.a }}"}]}


def spec(job_id: str = "j") -> JobSpec:
    return JobSpec(
        job_id=job_id,
        program=PROGRAM,
        space={"a": {"kind": "choice", "values": [1, 2]}},
        trainset=[{"inputs": {}}],
        metric="contains",
        options=JobOptions(concurrency=2, max_evaluations=2),
    )


def trial(index: int) -> Trial:
    return Trial(index=index, round=0, configuration={"a": 1}, status="completed", score=0.5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=time.time())


def store_of(path: Path, clock: FakeClock, name: str, **owner: Any) -> SQLiteJobStore:
    who = dataclasses.replace(Owner.current(name), **owner)
    return SQLiteJobStore(path, owner=who, clock=clock, lease_seconds=30)


def test_create_then_fenced_writes_then_release(tmp_path: Path, clock: FakeClock) -> None:
    store = store_of(tmp_path / "s.sqlite", clock, "a")
    lease = store.create(spec())
    assert (lease.epoch, lease.expires) == (1, clock.time() + 30)
    with pytest.raises(JobError, match="'j' already exists"):
        store.create(spec())
    clock.advance(10)
    rounds = [(0, [{"index": 0, "configuration": {"a": 1}}])]
    renewed = store.write(lease, CheckpointBatch("running", 3.0, rounds=rounds, trials=[trial(0)]))
    assert renewed.expires == clock.time() + 30  # a write renews the lease too
    loaded = store.load("j")
    assert (loaded.spec, loaded.rounds, loaded.trials) == (spec(), dict(rounds), {0: trial(0)})
    assert (loaded.state, loaded.elapsed, loaded.holder.owner) == ("running", 3.0, store.owner)
    store.write(renewed, CheckpointBatch("completed", 4.0, release=True))
    done = store.load("j")
    assert (done.state, done.holder.owner, done.holder.epoch) == ("completed", None, 1)
    assert store.job_ids() == ["j"] and store.holds("j") and not store.holds("k")
    with pytest.raises(JobError, match="'j' is completed; nothing to resume"):
        store.claim("j", force=True)
    store.close()


def test_a_claim_succeeds_only_on_an_expired_released_or_own_lease(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "s.sqlite"
    far = store_of(path, clock, "far", host="elsewhere.invalid")  # alive() is unknown
    here = store_of(path, clock, "here")
    lease = far.create(spec())
    with pytest.raises(JobClaimedError, match=r"'j' is running in runtime far, pid \d+ on "
                       "elsewhere.invalid; stop it there") as err:  # fmt: skip
        here.claim("j")
    assert (err.value.owner, err.value.expires) == (far.owner.describe(), lease.expires)
    assert far.claim("j").epoch == 2  # its own: a new epoch
    clock.advance(29)
    assert far.renew([far.claim("j")]) == {}  # epoch 3, renewed to now + 30
    clock.advance(29)
    with pytest.raises(JobClaimedError):
        here.claim("j")
    clock.advance(2)  # the heartbeat stopped: the lease has expired
    taken = here.claim("j")
    assert (taken.epoch, taken.owner) == (4, here.owner)
    forced = far.claim("j", force=True)
    assert forced.epoch == 5
    far.write(forced, CheckpointBatch("interrupted", 1.0, release=True))
    assert here.claim("j").epoch == 6  # released: no wait


def test_a_lease_held_by_an_exited_process_on_this_host_is_claimable(
    tmp_path: Path, clock: FakeClock
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    dead = store_of(tmp_path / "s.sqlite", clock, "dead", pid=child.pid, token=None)
    dead.create(spec())
    alive = store_of(tmp_path / "s.sqlite", clock, "other", host=socket.gethostname())
    assert alive.claim("j").epoch == 2  # the live lease of a process that has exited


def test_a_fenced_write_is_refused_whole_once_another_claim_came(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "s.sqlite"
    a, b = store_of(path, clock, "a"), store_of(path, clock, "b")
    lease = a.create(spec())
    taken = b.claim("j", force=True)
    batch = CheckpointBatch("running", 1.0, rounds=[(0, [])], trials=[trial(0)])
    with pytest.raises(LeaseLostError, match="runtime b, pid") as err:
        a.write(lease, batch)
    assert err.value.owner == b.owner.describe()
    assert b.load("j").trials == {} and b.load("j").rounds == {}  # nothing of it
    assert a.renew([lease]) == {"j": b.load("j").holder}  # the heartbeat says so too
    assert a.write_many([(lease, batch)]) == ["j"]
    b.write(taken, CheckpointBatch("running", 2.0, trials=[trial(0)]))
    with pytest.raises(StateError, match="UNIQUE"):  # a trial is never written twice
        b.write(taken, CheckpointBatch("running", 2.0, trials=[trial(0)]))


def test_renew_extends_every_lease_in_one_go(tmp_path: Path, clock: FakeClock) -> None:
    store = store_of(tmp_path / "s.sqlite", clock, "a")
    leases = [store.create(spec(f"j{i}")) for i in range(50)]
    clock.advance(20)
    assert store.renew(leases) == {}
    assert {store.load(f"j{i}").holder.expires for i in range(50)} == {clock.time() + 30}
    assert store.renew([]) == {}


def test_many_threads_racing_to_claim_one_job_leave_one_winner(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "s.sqlite"
    first = store_of(path, clock, "first")
    first.write(first.create(spec()), CheckpointBatch("interrupted", 0.0, release=True))
    stores = [store_of(path, clock, f"r{i}") for i in range(8)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def claim(store: SQLiteJobStore) -> None:
        barrier.wait()
        try:
            store.claim("j")
            outcomes.append("won")
        except JobClaimedError as exc:
            outcomes.append(exc.owner)

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    winner = first.load("j").holder
    assert outcomes.count("won") == 1 and winner.epoch == 2
    assert outcomes.count(winner.describe()) == len(stores) - 1


def test_a_store_of_an_earlier_otpy_is_read(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.sqlite"
    old = SQLiteState(path, session_id="legacy")
    old.register_variable("spec", "json", {**spec("legacy").model_dump(exclude={"options"}),
                                           "concurrency": 3, "batch_size": 3})  # fmt: skip
    old.register_variable("state", "json", {"state": "running", "elapsed": 2.5, "owner": None})
    old.register_variable("round/0", "json", [{"index": 0, "configuration": {"a": 1}}])
    old.register_variable("trial/0", "json", trial(0).model_dump(mode="json"))
    old.cleanup()
    store = store_of(path, clock, "new")
    loaded = store.load("legacy")
    assert (loaded.spec.options.concurrency, loaded.spec.options.round_size) == (3, 3)
    assert (loaded.state, loaded.elapsed, loaded.trials) == ("running", 2.5, {0: trial(0)})
    assert loaded.rounds == {0: [{"index": 0, "configuration": {"a": 1}}]}
    assert loaded.holder.owner is None
    assert store.claim("legacy").epoch == 1


def test_a_store_of_a_newer_version_or_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SQLiteJobStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE otpy_jobs_meta SET value = ? WHERE key = 'schema'", (json.dumps(99),))
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="schema version 99, newer than this otpy's"):
        SQLiteJobStore(path)
    (tmp_path / "junk").write_text("not a database" * 100)
    with pytest.raises(StateError, match="junk"):
        SQLiteJobStore(tmp_path / "junk")
