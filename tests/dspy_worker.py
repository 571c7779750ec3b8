"""A DSPy program that journals its LLM calls, run in its own process by the journal tests::

    python tests/dspy_worker.py JOURNAL_FILE CALLS [BLOCK_AFTER]

It asks ``CALLS`` questions one after another (``q0`` .. ``q6`` over and over, so identical
requests repeat) through ``otpy.dspy.lm`` on a simulated provider, recording in and
answering from the journal ``job`` of the SQLite file ``JOURNAL_FILE``. With
``BLOCK_AFTER``, the provider's call number ``BLOCK_AFTER + 1`` never returns (the test
kills the process there). At the end it prints one JSON line: the live calls, the
replayed ones and the answers in order.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from typing import Any

import dspy

import otpy
import otpy.dspy
from otpy.calls import CallGate, CallJournal, SQLiteJournalStore
from otpy.clock import SystemClock
from otpy.providers import SimulatedProvider


class BlockingClock(SystemClock):
    """The real clock, whose ``sleep`` (the simulated latency) blocks forever once it has
    been called ``after`` times."""

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.sleeps = 0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps += 1
            blocked = self.after is not None and self.sleeps > self.after
        if blocked:
            threading.Event().wait()


def questions(calls: int) -> list[str]:
    return [f"q{i % 7}" for i in range(calls)]


def run(journal_file: str, calls: int, block_after: int | None) -> dict[str, Any]:
    provider = SimulatedProvider("sim", seed=5, latency=0.001, clock=BlockingClock(block_after))
    config = {"name": f"worker-{uuid.uuid4().hex[:6]}", "plugins": False, "providers": {}}
    with otpy.start(config) as rt:
        rt.providers.register_provider("sim", provider, limits={"timeout": None})
        store = SQLiteJournalStore(journal_file)
        journal = CallJournal(store, "job")
        gate = CallGate(spent=journal.spent())
        predict = dspy.Predict("question -> answer")
        with dspy.context(lm=otpy.dspy.lm(rt, "sim")), otpy.dspy.call_scope(gate, journal):
            answers = [predict(question=q).answer for q in questions(calls)]
        store.close()
        totals = gate.totals()
    return {"live": provider.calls, "replayed": totals.replayed, "answers": answers}


if __name__ == "__main__":
    block = int(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), block)), flush=True)
