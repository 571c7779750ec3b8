"""``RedisState``: a session's variables in Redis, shared by every process that opens it."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, StateError
from otpy.redaction import mask
from otpy.state._records import check_session_id, closed_error
from otpy.state._redis_layout import (
    COMMIT,
    FIND,
    SNAPSHOT,
    Keys,
    RedisTransaction,
    decode_changes,
)
from otpy.state._redis_stream import ChangeStream
from otpy.state._store import TransactionalState, WriteBody
from otpy.state._subscriptions import ChangeCallback, Subscriptions
from otpy.state._variable import VariableChange

if TYPE_CHECKING:
    import redis

__all__ = ["RedisState"]

T = TypeVar("T")


def _redis_errors() -> type[Exception]:
    """redis-py's base error class; ConfigurationError if redis-py is not installed."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        raise ConfigurationError(
            "RedisState needs the redis package: pip install 'otpy[redis]'"
        ) from None
    return RedisError


def _connect(url: str, timeout: float) -> redis.Redis:
    """A client whose every command fails within ``timeout`` and is never sent twice."""
    _redis_errors()
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not isinstance(url, str):
        raise ConfigurationError(f"RedisState: url must be a str, got {url!r}")
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
    except ValueError as exc:
        raise ConfigurationError(f"RedisState: bad url {mask(url)!r}: {exc}") from None


def _failure(where: str, exc: BaseException, doubt: str = "") -> StateError:
    """The StateError of a Redis error, saying what to check."""
    name = type(exc).__name__
    hint = ""
    if "Timeout" in name:
        hint = " (no answer in time: is the server overloaded or stopped?)"
    elif "Connection" in name:
        hint = " (is the server running and reachable?)"
    return StateError(f"{where}: {name}: {mask(str(exc))}{hint}{doubt}")


class RedisState(TransactionalState):
    """Variables in Redis: every object on the same ``url``, ``prefix`` and session, in
    this process or another, sees the same variables, and subscribers see every one's
    changes.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL (its password is masked in
    every message); ``prefix`` starts every key (see ``otpy.state._redis_layout``);
    ``timeout`` bounds every Redis command (a stopped or unreachable server is a
    ``StateError`` within it, never a hang) and the retries of one write.

    Versions are optimistic: a write reads the records, checks and builds the new ones in
    Python, and commits with one Lua script that applies everything only if every record
    is still at the version read; otherwise it reads again and retries (until
    ``timeout``). A batch or an import is one script: all or nothing. Writes through one
    object are serialised by a lock (threads of a process never conflict with each other);
    reads take no lock and cost one round trip.

    Subscribers get every committed change of the session, from any process, in commit
    order (Redis pub/sub): changes of this object in the writing thread after the commit
    came back through the channel (as the other backends), other writers' changes in the
    store's deliverer thread; a callback that raises is logged on ``otpy.state``. Pub/sub
    is at most once: what is published while the connection is down is missed (logged).
    Capabilities: all four. A command whose answer was lost (the connection dropped) is
    not sent again; its StateError says the write may or may not have been applied.
    """

    requires_bridge: ClassVar[bool] = False  # reached directly through its client

    def __init__(
        self,
        url: str,
        session_id: str | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        prefix: str = "otpy:state",
        timeout: float = 5.0,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if not isinstance(prefix, str) or not prefix or "{" in prefix:
            raise ConfigurationError(f"prefix must be a non-empty str without '{{', got {prefix!r}")
        self._errors = _redis_errors()
        self._url, self._prefix, self._timeout = url, prefix, float(timeout)
        self._session_id = check_session_id(session_id)
        self._clock = clock
        self._keys = Keys(prefix, self._session_id)
        self._origin = uuid.uuid4().hex
        self._where = f"Redis state store {mask(str(url))} (session {self._session_id!r})"
        self._lock = threading.RLock()
        self._subscriptions = Subscriptions()
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._stream: ChangeStream | None = None
        self.init()

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"RedisState({mask(str(self._url))!r}, session_id={self._session_id!r}, {state})"

    @property
    def url(self) -> str:
        """The Redis URL, as given."""
        return self._url

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    # -- lifecycle -------------------------------------------------------------------------

    def init(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            client = _connect(self._url, self._timeout)
            now = self._clock.time()
            try:
                pipe = client.pipeline(transaction=False)
                pipe.hsetnx(self._keys.session, "created_at", repr(now))
                pipe.hsetnx(self._keys.session, "metadata", "{}")
                pipe.zadd(self._keys.sessions, {self._session_id: now}, nx=True)
                pipe.execute()
            except self._errors as exc:
                client.close()
                raise _failure(f"cannot open {self._where}", exc) from exc
            self._scripts = {
                "commit": client.register_script(COMMIT),
                "find": client.register_script(FIND),
                "snapshot": client.register_script(SNAPSHOT),
            }
            self._client = client

    def cleanup(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            stream, self._stream = self._stream, None
            self._subscriptions.clear()
        if stream is not None:
            stream.stop()
        if client is not None:
            client.close()

    def capabilities(self) -> dict[str, bool]:
        self._check_open()
        return dict.fromkeys(("atomic_updates", "streaming", "persistence", "distribution"), True)

    @staticmethod
    def list_sessions(url: str, *, prefix: str = "otpy:state", timeout: float = 5.0) -> list[str]:
        """The session ids stored under ``prefix`` in that Redis, oldest first.

        StateError if the server cannot be reached.
        """
        client = _connect(url, timeout)
        try:
            return list(cast("list[str]", client.zrange(Keys(prefix, "").sessions, 0, -1)))
        except _redis_errors() as exc:
            raise _failure(f"Redis state store {mask(url)}", exc) from exc
        finally:
            client.close()

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, pattern: str, callback: ChangeCallback) -> str:
        """See :meth:`StateProvider.subscribe`; the first one also subscribes this store to
        the session's channel (StateError if Redis cannot be reached)."""
        with self._lock:
            client = self._live()
            subscription = self._subscriptions.subscribe(pattern, callback)
            if self._stream is None:
                stream = ChangeStream(
                    client,
                    self._keys.channel,
                    lambda: int(cast("str | None", client.hget(self._keys.session, "seq")) or 0),
                    lambda entries: decode_changes(entries, self._where),
                    self._subscriptions,
                    origin=self._origin,
                    timeout=self._timeout,
                    label=self._where,
                )
                try:
                    stream.start()
                except Exception as exc:
                    self._subscriptions.unsubscribe(subscription)
                    raise _failure(f"{self._where}: cannot subscribe", exc) from exc
                self._stream = stream
        return subscription

    # -- transactions ----------------------------------------------------------------------

    def _live(self) -> redis.Redis:
        client = self._client
        if client is None:
            raise closed_error(self, self._session_id)
        return client

    def _check_open(self) -> None:
        self._live()

    @contextmanager
    def _reading(self, snapshot: bool = True) -> Iterator[RedisTransaction]:
        """Each read is one script, atomic in Redis: no lock taken."""
        tx = RedisTransaction(self._live(), self._keys, self._scripts, self._where)
        with self._translated():
            yield tx

    @contextmanager
    def _translated(self, doubt: str = "") -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise _failure(self._where, exc, doubt) from exc

    def _write(self, body: WriteBody[T]) -> T:
        """Run ``body`` and commit, again from the start while another writer changed what
        it read (until ``timeout``); then deliver the changes to this store's subscribers."""
        with self._lock:
            client = self._live()
            deadline = time.monotonic() + self._timeout
            for attempt in itertools.count(1):
                tx = RedisTransaction(client, self._keys, self._scripts, self._where)
                changes: list[VariableChange] = []
                with self._translated():
                    result = body(tx, changes)
                if not tx.staged:
                    return result
                stream = self._stream
                write = stream.expect() if stream is not None and self._subscriptions else 0
                try:
                    with self._translated(" (the write may or may not have been applied)"):
                        seq = tx.commit(changes, self._origin, write)
                except BaseException:
                    if stream is not None and write:
                        stream.abandon(write)
                    raise
                if seq:
                    break
                if stream is not None and write:
                    stream.abandon(write)
                if time.monotonic() > deadline:
                    raise StateError(
                        f"{self._where}: gave up a write after {attempt} attempts in "
                        f"{self._timeout:g} s: other writers kept changing what it read"
                    )
        if stream is not None and write:
            stream.delivered(write, seq, changes)
        self._subscriptions.dispatch()
        return result
