"""RedisState beyond the compliance suite: processes sharing a session, subscriptions
across processes, conflicting writers, and a Redis that stops, freezes or restarts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import start_redis

from otpy.errors import ConfigurationError, StateError, VariableNotFound
from otpy.state import RedisState, VariableChange
from otpy.testing import FakeClock, wait_until

HERE = Path(__file__).resolve().parent
WRITER = HERE / "redis_writer.py"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A server of this test's own, for tests that stop or restart it."""
    yield from start_redis()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stores() -> Iterator[Callable[..., RedisState]]:
    """``RedisState(...)``, cleaned up after the test."""
    made: list[RedisState] = []

    def make(*args: Any, **kwargs: Any) -> RedisState:
        store = RedisState(*args, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.cleanup()


def server_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


class Collector:
    """A subscriber callback: records (kind, name, old, new, version) and the thread's
    name; ``done`` is set when ``until(change)`` is true."""

    def __init__(self, until: Callable[[VariableChange], bool] = lambda c: False) -> None:
        self.seen: list[tuple[str, str, Any, Any, int]] = []
        self.threads: list[str] = []
        self.until = until
        self.done = threading.Event()

    def __call__(self, change: VariableChange) -> None:
        self.seen.append((change.kind, change.name, change.old_value, change.new_value,
                          change.version))  # fmt: skip
        self.threads.append(threading.current_thread().name)
        if self.until(change):
            self.done.set()


# -- processes sharing a session ------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_writing_one_variable_lose_no_update(
    redis_url: str, prefix: str, stores: Callable[..., RedisState], round_: int
) -> None:
    """Two processes x 150 rounds of set_variable + a batch of two, started together: every
    write gets its own version, the batches stay whole, and a subscriber in this process
    sees every version of the counter once, in order."""
    count, session, go = 150, "shared", f"{prefix}:go"
    state = stores(redis_url, session, prefix=prefix)
    for name in ("counter", "a", "b"):
        state.register_variable(name, "integer", 0)
    last = 1 + 2 * count
    counter = Collector(until=lambda c: c.version == last)
    state.subscribe("counter", counter)
    args = [sys.executable, str(WRITER), redis_url, prefix, session, str(count), go]
    writers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE)
               for _ in range(2)]  # fmt: skip
    try:
        with redis.Redis.from_url(redis_url) as client:
            for _ in writers:
                assert client.blpop([f"{go}:ready"], timeout=30) is not None, "a writer hung"
            client.rpush(go, "go", "go")
        outputs = [w.communicate(timeout=45) for w in writers]
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait(10)
    assert [w.returncode for w in writers] == [0, 0], [err.decode() for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    versions = sorted(v for report in reports for v in report["counter"])
    assert versions == list(range(2, last + 1))  # no two writes got the same version
    for report in reports:
        assert all(a == b for a, b in report["batch"])  # a and b always change together
    batch_versions = sorted(a for report in reports for a, _b in report["batch"])
    assert batch_versions == list(range(2, last + 1))
    assert state.get_variable("counter").version == last
    assert counter.done.wait(10), f"saw {len(counter.seen)} of {2 * count} changes"
    assert [seen[4] for seen in counter.seen] == list(range(2, last + 1))


def test_changes_of_another_process_reach_subscribers_in_the_deliverer_thread(
    redis_url: str, prefix: str, stores: Callable[..., RedisState], caplog: pytest.LogCaptureFixture
) -> None:
    state = stores(redis_url, "s", prefix=prefix)

    def broken(change: VariableChange) -> None:
        raise RuntimeError("subscriber bug")

    collector = Collector(until=lambda c: c.kind == "deleted")
    state.subscribe("x*", broken)
    state.subscribe("x*", collector)
    code = (
        "from otpy.state import RedisState\n"
        f"s = RedisState({redis_url!r}, 's', prefix={prefix!r})\n"
        "s.register_variable('x', 'list', [1])\n"
        "s.register_variable('y', 'integer', 0)\n"
        "s.set_variable('x', [1, 2])\n"
        "s.delete_variable('x')\n"
        "s.cleanup()\n"
    )
    with caplog.at_level(logging.ERROR, logger="otpy.state"):
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30, capture_output=True)
        assert collector.done.wait(10)
    assert collector.seen == [
        ("registered", "x", None, [1], 1),
        ("updated", "x", [1], [1, 2], 2),
        ("deleted", "x", [1, 2], None, 2),
    ]
    assert all(name.endswith("deliverer") for name in collector.threads), collector.threads
    failures = [r for r in caplog.records if r.name == "otpy.state" and r.exc_info]
    assert len(failures) == 3
    assert state.list_variables()[0].name == "y"


def test_two_objects_on_one_session_see_each_others_writes(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    first, second = stores(redis_url, "s", prefix=prefix), stores(redis_url, "s", prefix=prefix)
    collector = Collector(until=lambda c: c.version >= 2)
    first.subscribe("*", collector)
    var_id = first.register_variable("x", "integer", 1)
    assert collector.threads == [threading.current_thread().name]  # its own write: here
    assert second.get_variable(var_id).value == 1
    assert second.set_variable("x", 2).version == 2
    # Delivered by first's deliverer. (A write of first's own before that delivery would
    # deliver it first, in the writing thread, to keep the order.)
    assert collector.done.wait(10)
    collector.done.clear()
    assert first.set_variable("x", 3).version == 3
    assert collector.done.wait(10)
    assert [seen[4] for seen in collector.seen] == [1, 2, 3]
    assert collector.threads[1].endswith("deliverer")
    assert collector.threads[2] == threading.current_thread().name


# -- conflicting writers ---------------------------------------------------------------------


class InterferingClock(FakeClock):
    """A FakeClock whose ``time()`` first runs ``hook`` (if set): a write reads the clock
    between reading its records and committing, so a hook that writes makes it stale."""

    hook: Callable[[], None] | None = None

    def time(self) -> float:
        if self.hook is not None:
            self.hook()
        return super().time()


def test_a_write_whose_read_went_stale_is_retried_and_counted_once(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    clock = InterferingClock()
    state = stores(redis_url, "s", prefix=prefix, clock=clock)
    other = stores(redis_url, "s", prefix=prefix)
    state.register_variable("x", "integer", 0)
    collector = Collector()
    state.subscribe("x", collector)
    calls: list[int] = []

    def interfere_once() -> None:
        if not calls:
            calls.append(other.set_variable("x", 5).version)

    clock.hook = interfere_once
    result = state.set_variable("x", 7)
    clock.hook = None
    assert calls == [2]
    assert (result.value, result.version) == (7, 3)
    assert state.get_variable("x").version == 3
    wait_until(lambda: len(collector.seen) == 2, message="both changes delivered")
    assert [(seen[3], seen[4]) for seen in collector.seen] == [(5, 2), (7, 3)]


def test_a_write_that_keeps_losing_gives_up_with_a_state_error(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    clock = InterferingClock()
    state = stores(redis_url, "s", prefix=prefix, clock=clock, timeout=0.3)
    other = stores(redis_url, "s", prefix=prefix)
    state.register_variable("x", "integer", 0)
    state.register_variable("y", "integer", 0)
    clock.hook = lambda: other.set_variable("x", 5) and None
    with pytest.raises(StateError, match=r"gave up a write after \d+ attempts"):
        state.update_variables({"x": 1, "y": 1})
    clock.hook = None
    assert state.get_variable("y").version == 1  # nothing of the batch was applied
    assert state.get_variable("x").value == 5


# -- a Redis that is gone, frozen or restarted -----------------------------------------------


def test_an_unreachable_server_is_a_state_error_at_once_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    started = time.monotonic()
    with pytest.raises(StateError, match=f"127.0.0.1:{port}.*reachable") as info:
        RedisState(f"redis://:hunter2secret@127.0.0.1:{port}/0", timeout=2)
    assert time.monotonic() - started < 5
    assert "hunter2secret" not in str(info.value) and "[REDACTED]" in str(info.value)
    with pytest.raises(StateError, match="reachable"):
        RedisState.list_sessions(f"redis://127.0.0.1:{port}", timeout=2)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP here")
def test_a_frozen_server_fails_every_call_within_the_timeout(
    own_redis: str, stores: Callable[..., RedisState]
) -> None:
    clock = InterferingClock()
    state = stores(own_redis, "s", timeout=0.3, clock=clock)
    state.register_variable("x", "integer", 1)
    collector = Collector(until=lambda c: c.version == 2)
    state.subscribe("x", collector)
    pid = server_pid(own_redis)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("get_variable", lambda: state.get_variable("x")),
        ("get_variables", lambda: state.get_variables(["x"])),
        ("list_variables", state.list_variables),
        ("export_state", state.export_state),
        ("update_variables", lambda: state.update_variables({"x": 2})),
    ]
    os.kill(pid, signal.SIGSTOP)
    try:
        for name, call in calls:
            started = time.monotonic()
            with pytest.raises(StateError, match=r"Timeout.*no answer in time"):
                call()
            assert time.monotonic() - started < 3, name
    finally:
        os.kill(pid, signal.SIGCONT)
    assert state.get_variable("x").version == 1  # nothing was sent to commit

    def freeze() -> None:  # after the write read x, before it commits
        clock.hook = None
        os.kill(pid, signal.SIGSTOP)

    clock.hook = freeze
    try:
        with pytest.raises(StateError, match="may or may not have been applied"):
            state.set_variable("x", 2)
    finally:
        os.kill(pid, signal.SIGCONT)
    # If Redis ran the commit when it woke, the change was published, and the store's
    # deliverer delivers it although its writer gave up waiting.
    if state.get_variable("x").version == 2:
        assert collector.done.wait(10)
        assert collector.threads[-1].endswith("deliverer")
    assert state.set_variable("x", 3).value == 3


def test_a_server_shut_down_and_restarted_on_its_data(
    own_redis: str, stores: Callable[..., RedisState], tmp_path: Path
) -> None:
    state = stores(own_redis, "s", timeout=1)
    other = stores(own_redis, "s", timeout=1)
    state.register_variable("x", "integer", 1)
    collector = Collector(until=lambda c: c.version == 3)
    state.subscribe("x", collector)
    client = redis.Redis.from_url(own_redis, decode_responses=True)
    directory = client.config_get("dir")["dir"]
    client.save()
    client.shutdown(nosave=True)  # the RDB file is saved; the server is gone
    client.close()
    for call in (lambda: state.get_variable("x"), lambda: other.set_variable("x", 2)):
        with pytest.raises(StateError, match="reachable"):
            call()
    port = own_redis.rsplit(":", 1)[1]
    binary = shutil.which("redis-server")
    assert binary is not None
    args = ["--port", port, "--bind", "127.0.0.1", "--dir", directory, "--save", "",
            "--appendonly", "no"]  # fmt: skip
    with open(tmp_path / "log", "w") as log:
        restarted = subprocess.Popen([binary, *args], stdout=log, stderr=log)
    try:
        wait_until(lambda: _answers(own_redis), timeout=10, message="restarted server")
        assert state.get_variable("x").value == 1  # the same object, the data back
        wait_until(lambda: _subscribers(own_redis, "otpy:state:{s}:changes"), timeout=10,
                   message="the store resubscribed")  # fmt: skip
        assert other.set_variable("x", 2).version == 2
        assert state.set_variable("x", 3).version == 3
        assert collector.done.wait(10)
        assert [seen[4] for seen in collector.seen] == [2, 3]
    finally:
        state.cleanup()
        other.cleanup()
        restarted.terminate()
        restarted.wait(10)


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def _subscribers(url: str, channel: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.pubsub_numsub(channel)[0][1])


def test_a_lost_subscription_delivers_own_changes_once_and_comes_back(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    state = stores(redis_url, "s", prefix=prefix)
    other = stores(redis_url, "s", prefix=prefix)
    state.register_variable("x", "integer", 0)
    collector = Collector(until=lambda c: c.version == 3)
    state.subscribe("x", collector)
    channel = f"{prefix}:{{s}}:changes"
    with redis.Redis.from_url(redis_url) as client:
        client.client_kill_filter(_type="pubsub")
    assert state.set_variable("x", 1).version == 2
    assert collector.seen == [("updated", "x", 0, 1, 2)]  # delivered here, once
    wait_until(lambda: _subscribers(redis_url, channel), message="the store resubscribed")
    other.set_variable("x", 2)
    assert collector.done.wait(10)
    assert [seen[4] for seen in collector.seen] == [2, 3]


def test_commits_missed_while_the_subscription_was_down_are_counted_in_a_warning(
    own_redis: str, stores: Callable[..., RedisState], caplog: pytest.LogCaptureFixture
) -> None:
    state, other = stores(own_redis, "s"), stores(own_redis, "s")
    state.register_variable("x", "integer", 0)
    collector = Collector(until=lambda c: c.version == 5)
    state.subscribe("x", collector)
    assert other.get_variable("x").version == 1  # each store's pool holds a connection now
    admin = redis.Redis.from_url(own_redis)
    with caplog.at_level(logging.WARNING, logger="otpy.state"):
        admin.config_set("maxclients", len(admin.client_list()) - 1)  # no new connections
        admin.client_kill_filter(_type="pubsub")  # the store cannot subscribe again
        other.set_variable("x", 1)
        other.set_variable("x", 2)  # both published while nobody listened
        admin.config_set("maxclients", 1000)
        wait_until(lambda: _subscribers(own_redis, "otpy:state:{s}:changes"),
                   message="the store resubscribed")  # fmt: skip
        other.set_variable("x", 3)
        other.set_variable("x", 4)
        assert collector.done.wait(10)
    admin.close()
    assert [seen[4] for seen in collector.seen] == [4, 5]
    assert "2 commit(s) were published while the Redis pub/sub connection was down" in (caplog.text)


# -- sessions, layout, arguments -------------------------------------------------------------


def test_sessions_are_listed_and_prefixes_keep_stores_apart(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    clock = FakeClock()
    stores(redis_url, "b", prefix=prefix, clock=clock).register_variable("x", "integer", 1)
    clock.advance(1)
    stores(redis_url, "a", prefix=prefix, clock=clock)
    assert RedisState.list_sessions(redis_url, prefix=prefix) == ["b", "a"]
    assert stores(redis_url, "b", prefix=prefix + "-other").list_variables() == []
    assert stores(redis_url, "a", prefix=prefix).list_variables() == []
    assert RedisState.list_sessions(redis_url, prefix="never-used") == []


def test_records_are_stored_as_json_and_a_broken_one_is_a_state_error(
    redis_url: str, prefix: str, stores: Callable[..., RedisState]
) -> None:
    state = stores(redis_url, "s", prefix=prefix)
    var_id = state.register_variable("x", "json", {"a": [1, 2.5]}, metadata={"o": 1})
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = json.loads(client.hget(f"{prefix}:{{s}}:records", var_id))
        assert stored == state.get_variable("x").to_dict()
        assert client.hget(f"{prefix}:{{s}}:names", "x") == var_id
        client.hset(f"{prefix}:{{s}}:records", var_id, '{"id": "broken"')
    with pytest.raises(StateError, match=r"'s'.*broken"):
        state.get_variable("x")
    with pytest.raises(VariableNotFound):
        state.get_variable("y")


def test_repr_and_errors_mask_the_password(own_redis: str) -> None:
    with redis.Redis.from_url(own_redis) as client:
        client.config_set("requirepass", "right-password")
    good = own_redis.replace("redis://", "redis://default:right-password@")
    bad = own_redis.replace("redis://", "redis://default:wrong-password@")
    with pytest.raises(StateError, match="AuthenticationError") as info:
        RedisState(bad, "s")
    assert "wrong-password" not in str(info.value) and "[REDACTED]" in str(info.value)
    state = RedisState(good, "s")
    state.register_variable("x", "integer", 1)
    assert "right-password" not in repr(state)
    state.cleanup()
    assert repr(state) == (
        f"RedisState({good.replace('right-password', '[REDACTED]')!r}, session_id='s', closed)"
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"url": 5}, "url must be a str"),
        ({"url": "http://localhost"}, "bad url"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a{b"}, "prefix"),
        ({"session_id": ""}, "session_id"),
    ],
)
def test_bad_arguments(redis_url: str, kwargs: dict[str, Any], words: str) -> None:
    arguments = {"url": redis_url, **kwargs}
    with pytest.raises(ConfigurationError, match=words):
        RedisState(**arguments)
