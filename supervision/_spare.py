"""Pre-started threads a supervisor restarts its children on.

Under CPU load Linux makes a new thread wait about a scheduler slice (several ms) before
it first runs, while a parked thread woken by a lock runs at once: a restart that starts
its child's thread then waits for it pays that slice. So a child that crashes leaves a
fresh thread parked with its supervisor (created in the crashed child's own thread, after
its exit is reported, off the restart's path; up to ``CAPACITY``), and a later restart
runs the new incarnation's actor loop on it.

A spare thread has run nothing before it is handed an actor (no thread-locals, no
context carried over from another actor), runs exactly one actor loop and ends with it,
as Pykka's own thread would. It is a non-daemon thread, like Pykka's; daemon actors are
never started on one. Spares leave when their supervisor exits, or after ``IDLE_SECONDS``
unused.
"""

from __future__ import annotations

import _thread
import itertools
import threading
from collections.abc import Callable

__all__ = ["IDLE_SECONDS", "Spares"]

IDLE_SECONDS = 60.0
"""A spare unused this long (real time) ends."""
CAPACITY = 4
"""Spares one supervisor keeps. Each crash takes one and its thread starts one, but that
start waits for the scheduler too: with crashes back to back under load (benchmarks/
supervision.py, 3 runs each) restart p99 was 2.46, 0.89, 2.13 ms with 2, 0.57, 0.57, 1.04 ms
with 4."""

_names = itertools.count()


class _Spare:
    """One parked thread, waiting for an actor loop to run."""

    __slots__ = ("go", "loop", "owner", "thread")

    def __init__(self, owner: Spares) -> None:
        self.owner = owner
        self.loop: Callable[[], None] | None = None  # None when woken: leave
        self.go = _thread.allocate_lock()  # released to hand over a loop, or to leave
        self.go.acquire()
        self.thread = threading.Thread(
            target=self._park, name=f"otpy-spare-{next(_names)}", daemon=False
        )

    def _park(self) -> None:
        while not self.go.acquire(timeout=IDLE_SECONDS):
            if self.owner.retire(self):
                return
        loop, self.loop = self.loop, None
        if loop is not None:
            loop()


class Spares:
    """A supervisor's parked threads. ``run`` is called in the supervisor's thread (while
    a child starts), ``top_up`` in a crashed child's, ``close`` when the supervisor exits.
    """

    __slots__ = ("closed", "lock", "parked", "starting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parked: list[_Spare] = []
        self.starting = 0  # spares being started (children crashing at once start no more)
        self.closed = False

    def run(self, loop: Callable[[], None], name: str) -> bool:
        """Run ``loop`` on a parked thread named ``name``; False if none is parked."""
        with self.lock:
            if not self.parked:
                return False
            spare = self.parked.pop(0)  # the oldest: sure to be running by now
        spare.thread.name = name
        spare.loop = loop
        spare.go.release()
        return True

    def top_up(self) -> None:
        """Start a spare unless enough are parked. Blocks until it runs (call it off the
        restart's path); a spare that comes too late (supervisor gone) is ended and
        waited for here, so whoever joins the calling thread finds no thread left."""
        with self.lock:
            if self.closed or len(self.parked) + self.starting >= CAPACITY:
                return
            self.starting += 1
        spare = _Spare(self)
        try:
            spare.thread.start()
        except RuntimeError:  # no thread to spare (a resource limit): restarts start one
            with self.lock:
                self.starting -= 1
            return
        with self.lock:
            self.starting -= 1
            if not self._closed():  # closed meanwhile by the supervisor's thread?
                self.parked.append(spare)
                return
        spare.go.release()
        spare.thread.join()

    def _closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        """End every parked spare (the supervisor is exiting); any thread."""
        with self.lock:
            self.closed = True
            parked, self.parked = self.parked, []
        for spare in parked:
            spare.go.release()

    def retire(self, spare: _Spare) -> bool:
        """A spare idle too long asks to leave: yes, unless it was just handed a loop."""
        with self.lock:
            try:
                self.parked.remove(spare)
            except ValueError:  # taken meanwhile: its loop is on the way
                return False
        return True
