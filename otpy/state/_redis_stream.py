"""A session's commits from Redis pub/sub, queued for a store's subscribers in ``seq`` order.

Every commit of a session — by any object, in any process — is published on the
session's channel with its ``seq`` (1, 2, 3, ... in commit order). A ``ChangeStream``
holds a subscription to that channel (its *receiver* thread reads it) and queues each
commit's changes on the store's :class:`Subscriptions`, so subscribers see every
process's changes in one order:

- a writer of this store announces its commit (``expect``), then waits (``delivered``)
  until the commit came back through the channel and delivers in its own thread, as the
  in-process backends do. If it does not come back within ``timeout`` (the subscription
  is down, Redis is slow) the writer queues its changes itself and the message is ignored
  if it arrives later; the order relative to other processes' commits is then not
  guaranteed, and a warning says so;
- any other commit (of another object or process, or one whose writer gave up waiting
  for Redis's answer) is delivered by the stream's *deliverer* thread (or by a thread of
  this store that is delivering at the time).

Pub/sub is at most once: commits published while the subscription is down (it reconnects
by itself, backing off up to a second) are missed, and a warning says how many.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otpy.state._subscriptions import Subscriptions
from otpy.state._variable import VariableChange

if TYPE_CHECKING:
    import redis
    from redis.client import PubSub

__all__ = ["ChangeStream"]

logger = logging.getLogger("otpy.state")

_SPANS = 16  # connections remembered: enough for any writer still waiting for its commit


class ChangeStream:
    """The receiver and deliverer threads of one store's subscription to its channel.

    ``start`` subscribes in the calling thread (a Redis error is raised there) and starts
    both threads; ``stop`` ends them. ``decode`` turns a message's ``changes`` into
    VariableChange objects; ``baseline()`` reads the session's current ``seq``.
    """

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        baseline: Callable[[], int],
        decode: Callable[[Any], list[VariableChange]],
        subscriptions: Subscriptions,
        *,
        origin: str,
        timeout: float,
        label: str,
    ) -> None:
        self._client, self._channel, self._baseline = client, channel, baseline
        self._decode, self._subscriptions = decode, subscriptions
        self._origin, self._timeout, self._label = origin, timeout, label
        self._wake_channel = f"{channel}:wake:{origin}"
        self._cond = threading.Condition()
        # Commits up to the seq read before SUBSCRIBE never reach that connection; later
        # ones do unless they were published before the SUBSCRIBE took effect. What did
        # arrive is known exactly: a connection receives consecutive seqs, so it is one
        # span (first - 1, last] per connection.
        self._last = 0  # the seq read before SUBSCRIBE, then the last one received
        self._fresh = True  # nothing received on the current connection yet
        self._high: int | None = None  # the last seq received (or the first baseline)
        self._pubsub_count = 0  # connections made
        self._reconnected = False  # the current connection is not the first
        self._spans: list[list[int]] = []  # [after, through] received, per connection
        self._direct: set[int] = set()  # own commits a writer queued itself
        self._writes = 0
        self._expected: set[int] = set()  # writes whose writer delivers their changes
        self._down = False
        self._stopped = threading.Event()
        self._ready = threading.Event()  # set when the receiver has queued remote changes
        self._pubsub: PubSub | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe now (raises redis errors), then start the receiver and deliverer."""
        self._connect()
        for role, target in (("receiver", self._receive), ("deliverer", self._deliver)):
            thread = threading.Thread(target=target, name=f"{self._label} {role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """End both threads (waits at most ``timeout`` + 2 s); waiting writers return."""
        self._stopped.set()
        self._ready.set()
        with self._cond:
            self._cond.notify_all()
        with contextlib.suppress(Exception):  # else it wakes within a second anyway
            self._client.publish(self._wake_channel, "stop")  # wakes the receiver at once
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(self._timeout + 2.0)

    # -- writers of this store -------------------------------------------------------------

    def expect(self) -> int:
        """A write id for a commit this store is about to make: the receiver leaves the
        delivery of its changes to the writer (``delivered`` or ``abandon`` must follow)."""
        with self._cond:
            self._writes += 1
            self._expected.add(self._writes)
            return self._writes

    def abandon(self, write: int) -> None:
        """The commit of ``write`` failed or its outcome is unknown: if it was published,
        the deliverer delivers it."""
        with self._cond:
            self._expected.discard(write)
        self._ready.set()

    def delivered(self, write: int, seq: int, changes: list[VariableChange]) -> None:
        """After this store committed ``seq``: wait until the receiver queued it, or queue
        ``changes`` here if it does not come within ``timeout``. The caller then
        dispatches."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._last >= seq or self._down or self._stopped.is_set(),
                self._timeout,
            )
            self._expected.discard(write)
            if any(after < seq <= through for after, through in self._spans):
                return
            self._direct.add(seq)
            if self._subscriptions:
                self._subscriptions.enqueue(changes)
            stopped = self._stopped.is_set()
        if not stopped:
            logger.warning(
                "%s: commit %d did not come back through Redis pub/sub (the connection was "
                "down, or no answer within %g s); its changes were delivered directly, "
                "perhaps out of order with other processes'",
                self._label,
                seq,
                self._timeout,
            )

    # -- the receiver ----------------------------------------------------------------------

    def _connect(self) -> None:
        baseline = self._baseline()  # commits up to here were published before SUBSCRIBE
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel, self._wake_channel)
            confirmed = 0
            while confirmed < 2:  # the server answers each SUBSCRIBE before any message
                message = pubsub.get_message(timeout=self._timeout)
                if message is None:
                    raise TimeoutError(f"no answer to SUBSCRIBE within {self._timeout:g} s")
                confirmed += message["type"] == "subscribe"
        except BaseException:
            pubsub.close()
            raise
        with self._cond:
            if self._high is None:  # the subscription starts here: it covers what follows
                self._high = baseline
            self._reconnected = self._pubsub_count > 0
            self._pubsub_count += 1
            self._last, self._fresh, self._down, self._pubsub = baseline, True, False, pubsub
            self._cond.notify_all()

    def _receive(self) -> None:
        delay = 0.05
        try:
            while not self._stopped.is_set():
                try:
                    pubsub = self._pubsub
                    if pubsub is None:
                        self._connect()
                        delay = 0.05
                        continue
                    message = pubsub.get_message(timeout=1.0)
                except Exception as exc:
                    self._lost(exc)
                    self._stopped.wait(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if message is not None and message["channel"] == self._channel:
                    self._handle(message["data"])
        finally:
            self._close()

    def _lost(self, exc: BaseException) -> None:
        with self._cond:
            was_down, self._down = self._down, True
            self._cond.notify_all()
        self._close()
        if not was_down and not self._stopped.is_set():
            logger.warning(
                "%s: Redis pub/sub connection lost (%s); changes of other writers are not "
                "delivered until it is back (retrying)",
                self._label,
                exc,
            )

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    def _handle(self, data: str) -> None:
        try:
            message = json.loads(data)
            seq, origin, write = int(message["seq"]), message["origin"], int(message["write"])
        except Exception as exc:
            logger.warning("%s: ignored a malformed change message (%s)", self._label, exc)
            return
        try:
            changes = self._decode(message["changes"]) if self._subscriptions else []
        except Exception as exc:
            logger.warning("%s: commit %d: undeliverable changes (%s)", self._label, seq, exc)
            changes = []
        with self._cond:
            missed = self._track(seq)
            if missed is None:
                return
            if seq in self._direct:
                self._direct.discard(seq)
            elif changes:
                self._subscriptions.enqueue(changes)
                if origin != self._origin or write not in self._expected:
                    self._ready.set()
            self._cond.notify_all()
        if missed:
            logger.warning(
                "%s: %d commit(s) were published while the Redis pub/sub connection was "
                "down; their changes were not delivered",
                self._label,
                missed,
            )

    def _track(self, seq: int) -> int | None:
        """Record ``seq`` as received (under the lock): None for a repeat, else how many
        commits since the previous connection's last one were missed."""
        missed = 0
        if self._fresh:
            self._fresh = False
            if self._high is not None and seq <= self._high:
                self._spans.clear()  # the server lost its data: seq started again
            elif self._high is not None and self._reconnected:
                gap = range(self._high + 1, seq)
                missed = sum(1 for lost in gap if lost not in self._direct)
            self._direct = {own for own in self._direct if own >= seq}
            self._spans = [*self._spans[-_SPANS + 1 :], [seq - 1, seq]]
        elif seq <= self._last:
            return None
        else:
            self._spans[-1][1] = seq
        self._last = self._high = seq
        return missed

    # -- the deliverer ---------------------------------------------------------------------

    def _deliver(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            if self._stopped.is_set():
                return
            self._subscriptions.dispatch()
