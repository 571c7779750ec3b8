"""The call journal: every LLM request -> answer of a run, kept so that a re-run of the same
program pays for no call twice.

Keys
    A request's key is the hash (:func:`request_digest`) of its canonical content: the
    target it is sent to (a provider name or capabilities), the system prompt, the
    conversation, the model, temperature, max_tokens, stop sequences and response schema.
    The n-th answer recorded for a digest is its occurrence n (0, 1, ...): identical
    requests are separate entries.

Recording
    ``record`` writes the answer of a live call before the call returns to the program
    (durably: see the store) under the next occurrence of its digest.

Replay
    ``take`` answers a request from the journal: the lowest occurrence of its digest this
    journal object has not handed out yet, else None (the caller makes the call live and
    records it). Entries are loaded once, when the journal is opened, so a replayed answer
    costs a hash and a dict look-up.

The replay contract
    * A program whose requests come in the same order as in the recorded run (single
      thread, same seed, same program) gets every recorded answer back at the same call,
      and its first live call is the first call the recorded run never completed.
    * With several threads the order of requests may differ between runs. Answers are
      still matched by digest, never by position: the k-th request for a digest in this
      run gets the k-th recorded answer to that digest (by occurrence), whichever thread
      asks. Identical requests are interchangeable, so every answer given is one the
      provider gave to exactly that request; which thread gets which of several recorded
      answers to identical requests may differ from the recorded run (it matters only for
      requests whose answers differ, at a temperature above 0).
    * A request the journal holds no (more) answers for is made live, and recorded; one
      that the program no longer makes (a changed program) leaves its entry unused.
    * Nothing is paid twice: a live call for a digest happens only when every recorded
      answer to that digest has been handed out in this run, i.e. the run asks for it
      more often than every earlier run together got answers to it.
    * A call in flight when the recorded run died was never recorded: it is made again.

Secrets: entries hold the digest (not the request) and the answer, redacted
(``otpy.redaction``): a key an answer somehow holds is stored, and replayed, masked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from typing import Any

from otpy.calls._gate import CallTotals, Prices, cost_of
from otpy.calls._store import JournalEntry, JournalStore
from otpy.errors import ConfigurationError, StateError
from otpy.providers import Completion, CompletionRequest, Usage
from otpy.redaction import redact_value

__all__ = ["CallJournal", "answer_json", "completion_of", "request_digest"]


def request_digest(request: CompletionRequest, target: str = "") -> str:
    """The hex key of ``request`` sent to ``target`` (a provider name or capabilities):
    a 128-bit BLAKE2b over its content, each part length-prefixed (the texts, the
    settings, the response schema as sorted JSON); ``metadata`` is not part of it."""
    settings = (request.model, request.temperature, request.max_tokens, request.stop)
    parts = [target, repr(settings), "" if request.system is None else "s" + request.system]
    if request.response_schema is not None:
        parts.append(json.dumps(request.response_schema, sort_keys=True, default=repr))
    for message in request.conversation():
        parts.append(message.role)
        parts.append(message.content)
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode()
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return digest.hexdigest()


def answer_json(completion: Completion) -> str:
    """A completion as the journal stores it: compact JSON, text redacted, no latency."""
    data: dict[str, Any] = {
        "t": redact_value(completion.text),
        "i": completion.usage.input_tokens,
        "o": completion.usage.output_tokens,
        "m": completion.model,
        "p": completion.provider,
    }
    if completion.structured is not None:
        data["s"] = redact_value(completion.structured)
    if completion.stop_reason is not None:
        data["r"] = completion.stop_reason
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def completion_of(answer: str) -> Completion:
    """The completion a journal entry holds (StateError if it is not one)."""
    try:
        data = json.loads(answer)
        return Completion(
            text=data["t"],
            structured=data.get("s"),
            usage=Usage(input_tokens=data["i"], output_tokens=data["o"]),
            model=data["m"],
            provider=data["p"],
            stop_reason=data.get("r"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"a call journal entry is not an answer: {exc}") from exc


class CallJournal:
    """The journal ``journal_id`` of ``store``, opened for one run (see the module
    docstring for what it answers). ``take`` and ``record`` are safe from any number of
    threads; ``record`` blocks on the store's write, nothing else blocks."""

    def __init__(self, store: JournalStore, journal_id: str) -> None:
        if not isinstance(journal_id, str) or not journal_id:
            raise ConfigurationError(f"journal_id must be a non-empty str, got {journal_id!r}")
        self.store = store
        self.journal_id = journal_id
        self._lock = threading.Lock()
        self._held: dict[str, deque[JournalEntry]] = {}
        self._next: dict[str, int] = {}
        entries = sorted(store.load(journal_id), key=lambda e: (e.digest, e.occurrence))
        for entry in entries:
            self._held.setdefault(entry.digest, deque()).append(entry)
            self._next[entry.digest] = entry.occurrence + 1
        self._loaded = tuple(entries)
        self.replayed = 0
        self.recorded = 0

    @property
    def held(self) -> int:
        """Recorded answers not handed out in this run yet."""
        with self._lock:
            return sum(len(entries) for entries in self._held.values())

    @property
    def loaded(self) -> int:
        """Entries the journal held when it was opened (answers paid for before)."""
        return len(self._loaded)

    def spent(self, prices: Prices | None = None) -> CallTotals:
        """What the entries held when the journal was opened cost (calls, tokens and, by
        ``prices``, dollars): a resumed job's spending before this run."""
        totals = CallTotals()
        for entry in self._loaded:
            completion = completion_of(entry.answer)
            usage = completion.usage
            totals = totals + CallTotals(
                calls=1,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=cost_of(completion, prices or {}),
            )
        return totals

    def take(self, digest: str) -> Completion | None:
        """The next recorded answer to ``digest`` not handed out yet, or None."""
        with self._lock:
            entries = self._held.get(digest)
            if not entries:
                return None
            entry = entries.popleft()
            self.replayed += 1
        return completion_of(entry.answer)

    def record(self, digest: str, completion: Completion) -> int:
        """Write ``completion`` as the next occurrence of ``digest`` (durable when this
        returns) and return that occurrence. Raises what the store raises (StateError)."""
        answer = answer_json(completion)
        with self._lock:
            occurrence = self._next.get(digest, 0)
            self._next[digest] = occurrence + 1
        self.store.append(self.journal_id, JournalEntry(digest, occurrence, answer))
        with self._lock:
            self.recorded += 1
        return occurrence

    def __repr__(self) -> str:
        return (
            f"<CallJournal {self.journal_id!r} loaded={self.loaded} replayed={self.replayed} "
            f"recorded={self.recorded}>"
        )
