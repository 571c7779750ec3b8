"""An immutable snapshot a registry actor publishes and anyone reads without a lock.

The Python counterpart of an ETS table with read concurrency: the owning actor is the only
writer; it builds a new immutable value and swaps it in with one attribute assignment
(atomic in CPython), so a reader sees the old value or the new one, never a mix. The cell
outlives the actor: a restarted registry starts from the last published value.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Snapshot"]

T = TypeVar("T")


class Snapshot(Generic[T]):
    """The current value (``value``) and how many times it was replaced (``version``)."""

    __slots__ = ("value", "version")

    def __init__(self, initial: T) -> None:
        self.value: T = initial
        self.version = 0

    def publish(self, value: T) -> None:
        """Replace the value (from the one writer: the owning actor's thread)."""
        self.value = value
        self.version += 1

    def __repr__(self) -> str:
        return f"Snapshot(version={self.version})"
