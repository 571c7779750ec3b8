"""An immutable snapshot a registry actor publishes and anyone reads without a lock.

The Python counterpart of an ETS table with read concurrency: the owning actor is the only
writer; it builds a new immutable value and swaps it in with one attribute assignment
(atomic in CPython), so a reader sees the old value or the new one, never a mix. The cell
outlives the actor: a restarted registry starts from the last published value.

Writers hold ``writing()`` from reading the value to publishing the next one. Normally only
the owning actor writes, but a killed incarnation may still be finishing a handler (a
Python thread cannot be interrupted) while its successor serves new writes: without the
lock the older one could publish a value built before the newer write, and lose it.
Readers never take it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["Snapshot"]

T = TypeVar("T")


class Snapshot(Generic[T]):
    """The current value (``value``) and how many times it was replaced (``version``)."""

    __slots__ = ("_write_lock", "value", "version")

    def __init__(self, initial: T) -> None:
        self.value: T = initial
        self.version = 0
        self._write_lock = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[T]:
        """Hold the writers' lock and yield the current value; ``publish`` the next one
        inside the block (or nothing, to leave it unchanged)."""
        with self._write_lock:
            yield self.value

    def publish(self, value: T) -> None:
        """Replace the value (inside ``writing()``)."""
        self.value = value
        self.version += 1

    def __repr__(self) -> str:
        return f"Snapshot(version={self.version})"
