"""Change subscriptions shared by the in-process backends.

A store calls ``enqueue`` with the changes of a commit while it still holds its own lock
(so the queue is in commit order), releases the lock, then calls ``dispatch``. Whichever
thread takes the dispatch lock delivers everything queued, in order; the others return at
once (their changes are delivered by that thread). A callback that writes to the same store
only queues its change: the drain in progress delivers it next, so nothing deadlocks.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from types import MappingProxyType

from otpy.state._variable import VariableChange

__all__ = ["ChangeCallback", "SubscriptionMethods", "Subscriptions"]

ChangeCallback = Callable[[VariableChange], object]

logger = logging.getLogger("otpy.state")


class Subscriptions:
    """Subscribers by id, a queue of committed changes, and their in-order delivery."""

    def __init__(self) -> None:
        self._subscribers: MappingProxyType[str, tuple[str, ChangeCallback]] = MappingProxyType({})
        self._edit = threading.Lock()
        self._pending: deque[VariableChange] = deque()
        self._dispatching = threading.Lock()

    def __bool__(self) -> bool:
        """Whether anyone is subscribed (a store skips building changes otherwise)."""
        return bool(self._subscribers)

    def subscribe(self, pattern: str, callback: ChangeCallback) -> str:
        """Call ``callback(change)`` for changes of variables whose name matches ``pattern``
        (``fnmatch.fnmatchcase``: ``*``, ``?``, ``[...]``); returns the subscription id."""
        if not isinstance(pattern, str):
            raise TypeError(f"a subscription pattern must be a str, got {pattern!r}")
        if not callable(callback):
            raise TypeError(f"a subscription callback must be callable, got {callback!r}")
        subscription_id = "sub:" + uuid.uuid4().hex
        with self._edit:
            self._subscribers = MappingProxyType(
                {**self._subscribers, subscription_id: (pattern, callback)}
            )
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; True if it existed. Changes already queued skip it too."""
        with self._edit:
            if subscription_id not in self._subscribers:
                return False
            remaining = dict(self._subscribers)
            del remaining[subscription_id]
            self._subscribers = MappingProxyType(remaining)
            return True

    def clear(self) -> None:
        """Drop every subscription and every change not yet delivered."""
        with self._edit:
            self._subscribers = MappingProxyType({})
        self._pending.clear()

    def enqueue(self, changes: Iterable[VariableChange]) -> None:
        """Queue committed changes; call it inside the store's lock, in commit order."""
        self._pending.extend(changes)

    def dispatch(self) -> None:
        """Deliver queued changes unless another thread is at it; call it outside the
        store's lock.

        Callbacks run in this thread (or in the thread already delivering). A callback that
        raises is logged on the ``otpy.state`` logger and skipped; the writer never sees it.
        """
        while self._pending:
            if not self._dispatching.acquire(blocking=False):
                return  # the thread delivering now re-checks the queue before it stops
            try:
                while True:
                    try:
                        change = self._pending.popleft()
                    except IndexError:  # drained (or cleared by cleanup)
                        break
                    for subscription_id, (pattern, callback) in self._subscribers.items():
                        if fnmatch.fnmatchcase(change.name, pattern):
                            self._deliver(subscription_id, callback, change)
            finally:
                self._dispatching.release()

    def _deliver(
        self, subscription_id: str, callback: ChangeCallback, change: VariableChange
    ) -> None:
        if subscription_id not in self._subscribers:
            return  # unsubscribed by an earlier callback of this drain
        try:
            callback(change)
        except Exception:
            logger.exception(
                "state subscriber %s (%r) failed on %s of %r; the change stands",
                subscription_id,
                callback,
                change.kind,
                change.name,
            )


class SubscriptionMethods:
    """``subscribe`` and ``unsubscribe`` of a store that keeps its subscribers in
    ``_subscriptions`` and raises from ``_check_open`` once closed (a mixin, listed before
    ``StateProvider``)."""

    _subscriptions: Subscriptions

    def _check_open(self) -> None:
        raise NotImplementedError

    def subscribe(self, pattern: str, callback: ChangeCallback) -> str:
        self._check_open()
        return self._subscriptions.subscribe(pattern, callback)

    def unsubscribe(self, subscription_id: str) -> bool:
        self._check_open()
        return self._subscriptions.unsubscribe(subscription_id)
