"""SQLiteState beyond the compliance suite: killed writers, other connections and
processes on the same file, the file layout, open errors."""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otpy.errors import ConfigurationError, StateError, VariableNotFound
from otpy.state import SQLiteState, VariableChange
from otpy.testing import FakeClock

HERE = Path(__file__).resolve().parent
WRITER = HERE / "state_writer.py"
NAMES = [f"v{i:02d}" for i in range(50)]

needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL here")


class Writer:
    """``state_writer.py`` in a child process, its stdout read line by line with timeouts."""

    def __init__(self, db: Path, session: str, *block: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(db), session, *map(str, block)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=HERE,
        )
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def readline(self, timeout: float) -> str:
        while b"\n" not in self.buffer:
            if not self.selector.select(timeout):
                raise TimeoutError(f"no line from the writer within {timeout} s")
            chunk = os.read(self.stdout.fileno(), 65536)
            if not chunk:
                self.kill()
                raise AssertionError(f"writer exited: {self.stderr_text()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def wait_for(self, wanted: str, timeout: float = 20.0) -> None:
        while (line := self.readline(timeout)) != wanted:
            assert line.startswith(("ready", "committed")), line

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode in (-signal.SIGKILL, 3), self.stderr_text()

    def stderr_text(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.stderr else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.selector.close()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.close()


def check_one_batch(db: Path, session: str, offset: int) -> int:
    """Every variable holds the same batch number k at version k + offset, and the store
    takes a write afterwards (the same values again: version k + offset + 1). Returns k."""
    with SQLiteState(db, session_id=session) as state:
        variables = state.list_variables()
        assert [v.name for v in variables] == NAMES
        values = {v.value for v in variables}
        assert len(values) == 1, f"a torn batch: {sorted(values)}"
        (batch,) = values
        assert {v.version for v in variables} == {batch + offset}
        after = state.update_variables(dict.fromkeys(NAMES, batch))
        assert {v.version for v in after.values()} == {batch + offset + 1}
    return int(batch)


# -- killed writers --------------------------------------------------------------------------


@needs_sigkill
def test_sigkill_in_the_middle_of_a_batch_leaves_nothing_of_it(
    tmp_path: Path, writers: list[Writer]
) -> None:
    db = tmp_path / "kill.db"
    writer = Writer(db, "job", 3, 25)
    writers.append(writer)
    writer.wait_for("ready")
    writer.wait_for("committed 2")
    assert writer.readline(20) == "inside 3"  # row 25 of batch 3 is written, not committed
    writer.kill()
    assert check_one_batch(db, "job", offset=1) == 2


@needs_sigkill
def test_random_kills_are_all_or_nothing(tmp_path: Path, writers: list[Writer]) -> None:
    """Rounds on one file: kill inside a random row of a batch, or at a random moment while
    the writer runs free; after each, every variable holds one batch, never older than the
    last one reported committed."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    db = tmp_path / "random-kill.db"
    committed = 0
    for round_ in range(6):
        where = f"seed {seed}, round {round_}"
        if round_ % 2 == 0:
            batch, row = committed + rng.randint(1, 4), rng.randint(1, 50)
            writer = Writer(db, "job", batch, row)
            writers.append(writer)
            writer.wait_for(f"inside {batch}")
            writer.kill()
            committed = check_one_batch(db, "job", offset=1 + round_)
            assert committed == batch - 1, where
        else:
            seen = committed + rng.randint(1, 30)
            writer = Writer(db, "job")
            writers.append(writer)
            writer.wait_for(f"committed {seen}")
            writer.kill()  # by now somewhere in a later batch, or between two
            committed = check_one_batch(db, "job", offset=1 + round_)
            assert committed >= seen, where


# -- other connections and processes on the same file ----------------------------------------


@pytest.mark.parametrize("round_", range(20))
def test_two_objects_on_one_file_in_two_threads_lose_no_update(tmp_path: Path, round_: int) -> None:
    db = tmp_path / "shared.db"
    stores = [SQLiteState(db, session_id="job") for _ in range(2)]
    try:
        stores[0].register_variable("shared", "integer", 0)
        for t in range(2):
            stores[t].register_variable(f"own.{t}", "integer", 0)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        writes = 50

        def work(t: int) -> None:
            try:
                barrier.wait(10)
                for i in range(writes):
                    if i % 2:
                        stores[t].set_variable(f"own.{t}", i)
                    else:
                        stores[t].update_variables({"shared": i, f"own.{t}": i})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors and not any(thread.is_alive() for thread in threads)
        versions = {v.name: v.version for v in stores[1].list_variables()}
        assert versions == {"shared": 1 + writes, "own.0": 1 + writes, "own.1": 1 + writes}
    finally:
        for store in stores:
            store.cleanup()


def test_a_second_process_reads_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "handover.db"
    with SQLiteState(db, session_id="job") as state:
        state.register_variable("temperature", "float", 0.5)
        state.register_variable("tags", "list", ["a"])
        state.update_variables({"temperature": 0.9, "tags": ["a", "b"]})
        code = (
            "import json, sys\n"
            "from otpy.state import SQLiteState\n"
            "with SQLiteState(sys.argv[1], session_id='job') as s:\n"
            "    print(json.dumps({v.name: [v.value, v.version] for v in s.list_variables()}))\n"
            "    s.set_variable('temperature', 1.5)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"temperature": [0.9, 2], "tags": [["a", "b"], 2]}
        assert state.get_variable("temperature").version == 3  # the other process's write
        assert state.set_variable("temperature", 1.0).version == 4


def test_subscribers_see_only_this_objects_writes(tmp_path: Path) -> None:
    db = tmp_path / "streams.db"
    with SQLiteState(db, session_id="s") as mine, SQLiteState(db, session_id="s") as other:
        seen: list[VariableChange] = []
        mine.subscribe("*", seen.append)
        other.register_variable("x", "integer", 0)
        mine.set_variable("x", 1)
        assert [(c.kind, c.version) for c in seen] == [("updated", 2)]


# -- persistence and sessions ----------------------------------------------------------------


def test_reopened_file_has_everything(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "persist.db"
    with SQLiteState(db, session_id="job", clock=clock) as state:
        state.register_variable("t", "float", 0.5, {"max": 1.0}, {"owner": "me"}, "temp")
        clock.advance(3)
        state.set_variable("t", 0.75)
        before = state.export_state()
    clock.advance(3)
    with SQLiteState(db, session_id="job", clock=clock) as again:
        after = again.export_state()
        assert after["variables"] == before["variables"]
        assert after["metadata"]["created_at"] == before["metadata"]["created_at"]
        assert again.set_variable("t", 1.0).version == 3


def test_sessions_in_one_file_are_separate(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "many.db"
    with SQLiteState(db, session_id="b", clock=clock) as b:
        clock.advance(1)
        with SQLiteState(db, session_id="a", clock=clock) as a:
            a.register_variable("x", "integer", 1)
            b.register_variable("x", "string", "other")
            a.delete_variable("x")
            assert b.get_variable("x").value == "other"
            with pytest.raises(VariableNotFound, match="session 'a'"):
                a.get_variable("x")
            a.import_state(b.export_state())
            assert a.get_variable("x").value == "other"
            assert a.export_state()["metadata"]["imported_from"] == "b"
    assert SQLiteState.list_sessions(db) == ["b", "a"]  # oldest first
    assert SQLiteState.list_sessions(str(db)) == ["b", "a"]


def test_values_are_stored_as_json_text(tmp_path: Path) -> None:
    db = tmp_path / "layout.db"
    with SQLiteState(db, session_id="s") as state:
        state.register_variable("doc", "json", {"a": [1, 2.5, None], "é": True}, metadata={"k": 1})
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value, constraints, metadata, version FROM variables").fetchone()
        assert json.loads(row[0]) == {"a": [1, 2.5, None], "é": True}
        assert (json.loads(row[1]), json.loads(row[2]), row[3]) == ({}, {"k": 1}, 1)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(("setting", "level"), [("NORMAL", 1), ("full", 2), ("OFF", 0)])
def test_synchronous_setting(tmp_path: Path, setting: str, level: int) -> None:
    with SQLiteState(tmp_path / "sync.db", synchronous=setting) as state:
        assert state._conn is not None
        assert state._conn.execute("PRAGMA synchronous").fetchone()[0] == level


def test_memory_store_is_not_persistent() -> None:
    with SQLiteState(":memory:", session_id="m") as state:
        assert state.capabilities()["persistence"] is False
        assert state.path == ":memory:"


# -- failures --------------------------------------------------------------------------------


def test_a_write_that_fails_midway_is_rolled_back(tmp_path: Path) -> None:
    with SQLiteState(tmp_path / "rollback.db", session_id="s") as state:
        for name in ("a", "b", "c"):
            state.register_variable(name, "integer", 0)
        assert state._conn is not None
        state._conn.execute(
            "CREATE TEMP TRIGGER fail_on_b AFTER UPDATE ON main.variables WHEN NEW.name = 'b' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        with pytest.raises(StateError, match="disk on fire"):
            state.update_variables({"a": 1, "b": 1, "c": 1})
        assert [v.version for v in state.list_variables()] == [1, 1, 1]
        state._conn.execute("DROP TRIGGER fail_on_b")
        assert state.update_variables({"a": 1, "b": 1})["b"].version == 2


def test_a_held_write_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    with SQLiteState(db, session_id="s", timeout=0.05) as state:
        state.register_variable("x", "integer", 0)
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StateError, match=r"locked.*0\.05 s"):
                state.set_variable("x", 1)
            assert state.get_variable("x").version == 1  # readers are not blocked (WAL)
            holder.execute("COMMIT")
        finally:
            holder.close()
        assert state.set_variable("x", 1).version == 2


def test_open_errors_name_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_bytes(b"this is not a database" * 100)
    for path in (tmp_path, garbage, tmp_path / "missing" / "dir" / "x.db"):
        with pytest.raises(StateError, match="cannot open") as info:
            SQLiteState(path)
        assert str(path) in str(info.value)
    with pytest.raises(StateError, match="no SQLite state store"):
        SQLiteState.list_sessions(tmp_path / "nothing.db")
    with pytest.raises(StateError, match=str(garbage)):
        SQLiteState.list_sessions(garbage)


def test_newer_schema_or_foreign_tables_are_refused(tmp_path: Path) -> None:
    newer, foreign, empty = tmp_path / "newer.db", tmp_path / "foreign.db", tmp_path / "empty.db"
    SQLiteState(newer).cleanup()
    for path, statement in (
        (newer, "PRAGMA user_version = 99"),
        (foreign, "CREATE TABLE variables (x)"),
        (empty, "CREATE TABLE unrelated (x)"),
    ):
        conn = sqlite3.connect(path)
        conn.execute(statement)
        conn.commit()
        conn.close()
    with pytest.raises(StateError, match="schema version 99, newer"):
        SQLiteState(newer)
    with pytest.raises(StateError, match="schema version 99"):
        SQLiteState.list_sessions(newer)
    with pytest.raises(StateError, match="not an otpy state store"):
        SQLiteState(foreign)
    assert SQLiteState.list_sessions(empty) == []
    SQLiteState(empty).cleanup()  # an unrelated table is fine: ours are added next to it
    assert len(SQLiteState.list_sessions(empty)) == 1


def test_a_broken_stored_value_is_a_state_error(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    with SQLiteState(db, session_id="s") as state:
        state.register_variable("x", "integer", 1)
        conn = sqlite3.connect(db)
        conn.execute("UPDATE variables SET value = '{oops'")
        conn.commit()
        conn.close()
        with pytest.raises(StateError, match="'x' has a broken stored field"):
            state.get_variable("x")


@pytest.mark.parametrize(
    "kwargs",
    [{"synchronous": "SOMETIMES"}, {"timeout": -1}, {"timeout": "soon"}, {"session_id": ""}],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteState(tmp_path / "args.db", **kwargs)  # type: ignore[arg-type]
