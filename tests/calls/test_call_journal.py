"""The call journal: answers keyed by request content and occurrence, stored durably (memory
and SQLite), replayed in order, by digest whatever the order, nothing paid twice; a
process killed mid-run leaves what it journaled for the next one."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from otpy.calls import (
    CallJournal,
    CallTotals,
    JournalEntry,
    JournalStore,
    MemoryJournalStore,
    SQLiteJournalStore,
    answer_json,
    completion_of,
    journal_path,
    request_digest,
)
from otpy.errors import ConfigurationError, StateError
from otpy.providers import Completion, CompletionRequest, Message, Usage
from otpy.testing import wait_until

WORKER = Path(__file__).resolve().parents[1] / "dspy_worker.py"


def completion(text: str, provider: str = "sim") -> Completion:
    return Completion(
        text=text, usage=Usage(input_tokens=7, output_tokens=3), model="m", provider=provider
    )


def stores(tmp_path: Path) -> list[JournalStore]:
    return [MemoryJournalStore(), SQLiteJournalStore(tmp_path / "jobs.sqlite.journal")]


def test_the_digest_is_the_request_content_and_its_target() -> None:
    ask = CompletionRequest(prompt="2+2?", system="be brief", temperature=0.0)
    same = CompletionRequest(
        messages=(Message(role="user", content="2+2?"),),
        system="be brief",
        temperature=0.0,
        metadata={"trace": "not content"},
    )
    assert request_digest(ask, "sim") == request_digest(same, "sim")
    assert request_digest(ask, "sim") != request_digest(ask, "other")
    assert request_digest(ask, "sim") != request_digest(ask.model_copy(update={"max_tokens": 9}))
    assert len(request_digest(ask)) == 32


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_identical_requests_are_separate_entries_replayed_in_order(
    tmp_path: Path, kind: str
) -> None:
    store = stores(tmp_path)[0 if kind == "memory" else 1]
    first = CallJournal(store, "job")
    assert first.take("d1") is None  # nothing recorded yet: the caller calls live
    assert [first.record("d1", completion(t)) for t in ("a", "b")] == [0, 1]
    assert first.record("d2", completion("c")) == 0
    again = CallJournal(store, "job")
    assert (again.loaded, again.held) == (3, 3)
    assert [again.take("d1").text for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]
    assert again.take("d1") is None  # asked more often than ever answered: a live call
    assert again.record("d1", completion("new")) == 2  # after the occurrences held
    assert again.take("d2").text == "c"  # type: ignore[union-attr]
    assert (again.replayed, again.recorded, again.held) == (3, 1, 0)
    assert CallJournal(store, "other").loaded == 0
    assert store.journal_ids() == ["job"]
    with pytest.raises(StateError, match="already holds occurrence 0"):
        store.append("job", JournalEntry("d2", 0, answer_json(completion("x"))))
    store.drop("job")
    assert store.journal_ids() == [] and store.load("job") == []
    store.close()


def test_what_was_spent_before_is_priced_from_the_entries(tmp_path: Path) -> None:
    store = SQLiteJournalStore(tmp_path / "j.sqlite")
    journal = CallJournal(store, "job")
    journal.record("dd", completion("a"))
    journal.record("ee", completion("b", provider="free"))
    spent = CallJournal(store, "job").spent({"sim": (1e6, 1e6)})  # $1 per token
    assert spent == CallTotals(calls=2, input_tokens=14, output_tokens=6, cost=10.0)


def test_answers_round_trip_and_secrets_are_stored_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    structured = Completion(
        text='{"x": 1}',
        structured={"x": 1},
        usage=Usage(input_tokens=1, output_tokens=2),
        model="m",
        provider="p",
        stop_reason="end_turn",
        latency=2.5,
    )
    assert completion_of(answer_json(structured)) == structured.model_copy(update={"latency": 0})
    secret = "sk-ant-api03-" + "x" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    store = SQLiteJournalStore(tmp_path / "j.sqlite")
    CallJournal(store, "job").record("dd", completion(f"the key is {secret}"))
    with pytest.raises(ConfigurationError, match="a digest is hex"):
        CallJournal(store, "job").record("not hex", completion("a"))
    stored = sqlite3.connect(tmp_path / "j.sqlite").execute("SELECT answer FROM call_journal")
    assert secret not in stored.fetchone()[0]
    with pytest.raises(StateError, match="not an answer"):
        completion_of('{"t": "no usage"}')


def test_the_journal_path_is_beside_the_job_store(tmp_path: Path) -> None:
    assert journal_path(tmp_path / "jobs.sqlite") == f"{tmp_path / 'jobs.sqlite'}.journal"
    assert journal_path(":memory:") == ":memory:"
    with pytest.raises(StateError, match="closed"):
        store = SQLiteJournalStore(":memory:")
        store.close()
        store.load("job")


def _entries(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM call_journal").fetchone()[0])
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


@pytest.mark.slow
def test_a_process_killed_mid_run_leaves_its_journal_to_the_next(tmp_path: Path) -> None:
    """The worker journals 5 calls and hangs in the 6th; SIGKILL; a new process replays
    the 5 (identical requests among them) and makes the other 15 calls live, with the
    answers an uninterrupted run gives."""
    from dspy_worker import run

    journal = tmp_path / "jobs.sqlite.journal"
    killed = subprocess.Popen(
        [sys.executable, str(WORKER), str(journal), "20", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _entries(journal) == 5, 60, "5 calls journaled")
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
    assert killed.returncode == -signal.SIGKILL and _entries(journal) == 5
    resumed = subprocess.run(
        [sys.executable, str(WORKER), str(journal), "20"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (report["replayed"], report["live"]) == (5, 15)  # the first live call is call 6
    assert _entries(journal) == 20
    uninterrupted = run(str(tmp_path / "fresh.journal"), 20, None)
    assert report["answers"] == uninterrupted["answers"]
    assert uninterrupted["live"] == 20


def test_concurrent_appends_are_committed_together_each_with_its_own_outcome(
    tmp_path: Path,
) -> None:
    store = SQLiteJournalStore(tmp_path / "j.sqlite")
    store.append("job", JournalEntry("dd", 0, answer_json(completion("first"))))
    start = threading.Barrier(16)
    failures: list[str] = []

    def append(index: int) -> None:
        occurrence = 0 if index == 7 else index + 1  # writer 7 repeats an entry held
        start.wait()
        try:
            store.append("job", JournalEntry("dd", occurrence, answer_json(completion("x"))))
        except StateError as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=append, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(failures) == 1 and "already holds occurrence 0" in failures[0]
    held = sorted(entry.occurrence for entry in store.load("job"))
    assert held == [0, *[i + 1 for i in range(16) if i != 7]]
    assert store.commits <= 16  # one per transaction: 1 + 15 at most, fewer when grouped
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.append("job", JournalEntry("ee", 0, answer_json(completion("late"))))
