"""Control of a program's LLM calls: the gate (pause, cancel, budgets, accounting) and the
call journal (record every answer durably, replay it on a re-run).

::

    gate = CallGate(CallBudget(max_cost=2.0), prices={"anthropic": (3.0, 15.0)})
    journal = CallJournal(SQLiteJournalStore("jobs.sqlite.journal"), "job-1")
    # around each LLM call of the program (otpy.dspy's engine does this):
    answer = journal.take(digest)            # a recorded answer: gate.replay(), no call
    gate.enter()                             # else: wait if paused, stop if over budget
    ...call..., journal.record(digest, answer), gate.leave(answer)
    gate.pause(); gate.resume(); gate.cancel()   # from the job runner's thread

Nothing here imports DSPy: the job runner uses these with any program.
"""

from otpy.calls._gate import (
    BudgetExhausted,
    CallBudget,
    CallGate,
    CallsCancelled,
    CallsStopped,
    CallTotals,
    GateState,
    Prices,
    cost_of,
)
from otpy.calls._journal import CallJournal, answer_json, completion_of, request_digest
from otpy.calls._sqlite_store import SQLiteJournalStore
from otpy.calls._store import JournalEntry, JournalStore, MemoryJournalStore, journal_path

__all__ = [
    "BudgetExhausted",
    "CallBudget",
    "CallGate",
    "CallJournal",
    "CallTotals",
    "CallsCancelled",
    "CallsStopped",
    "GateState",
    "JournalEntry",
    "JournalStore",
    "MemoryJournalStore",
    "Prices",
    "SQLiteJournalStore",
    "answer_json",
    "completion_of",
    "cost_of",
    "journal_path",
    "request_digest",
]
