"""The runtime's state backend: ``state: {backend, path|url}`` in the config, ``rt.open_state``,
and the ``claude_session`` conversations kept there."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import start_redis

import otpy
from otpy import ConfigurationError, Runtime, RuntimeConfig
from otpy.errors import StateError
from otpy.state import LocalState, RedisState, SQLiteState, StateProvider
from otpy.steps import StepContext
from otpy.supervision import registered
from otpy.testing import FakeClock


def unique() -> str:
    return f"rt-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


def converse(rt: Runtime, session: str, prompt: str) -> None:
    """One ``claude_session`` turn through the runtime (on its simulated provider)."""
    step = rt.steps.get_step("claude_session")
    config = rt.steps.validate_step({"type": "claude_session", "session_id": session,
                                     "prompt": prompt})  # fmt: skip
    step.step_cls().execute(config, StepContext(providers=rt.providers))


def test_the_default_is_memory_a_fresh_store_each_time() -> None:
    with otpy.start({"name": unique(), "plugins": False}) as rt:
        assert rt.config.state.backend == "memory"
        first, second = rt.open_state("s"), rt.open_state()
        assert isinstance(first, LocalState) and first.session_id == "s"
        first.register_variable("x", "integer", 1)
        assert second.list_variables() == [] and second.session_id != "s"
        assert rt.open_state("s").list_variables() == []  # memory: nothing shared


def test_sqlite_backend_shares_sessions_and_keeps_conversations(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    name = unique()
    config = {"name": name, "plugins": False, "state": {"backend": "sqlite", "path": str(path)}}
    with otpy.start(config) as rt:
        writer, reader = rt.open_state("shared"), rt.open_state("shared")
        assert isinstance(writer, SQLiteState) and writer.path == str(path)
        writer.register_variable("x", "integer", 1)
        assert reader.get_variable("x").value == 1
        converse(rt, "chat", "hello")
        writer.cleanup()
        reader.cleanup()
    with SQLiteState(path, f"{name}.llm.sessions") as kept:  # after the runtime stopped
        assert kept.get_variable("session.chat").value[0]["user"] == "hello"
    assert sorted(SQLiteState.list_sessions(path)) == sorted(["shared", f"{name}.llm.sessions"])


def test_redis_backend_shares_sessions_and_keeps_conversations(redis_url: str) -> None:
    prefix, name = f"rt-{uuid.uuid4().hex}", unique()
    config = {
        "name": name,
        "plugins": False,
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix, "timeout": 2},
    }
    with otpy.start(config) as rt:
        store = rt.open_state("shared")
        try:
            assert isinstance(store, RedisState) and store.prefix == prefix
            store.register_variable("x", "integer", 1)
        finally:
            store.cleanup()
        converse(rt, "chat", "hello")
        converse(rt, "chat", "again")
    with RedisState(redis_url, f"{name}.llm.sessions", prefix=prefix) as kept:
        turns = kept.get_variable("session.chat").value
        assert [turn["user"] for turn in turns] == ["hello", "again"]
    with RedisState(redis_url, "shared", prefix=prefix) as shared:
        assert shared.get_variable("x").value == 1


def test_an_unreachable_redis_fails_the_start_and_leaves_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = unique()
    config = {"name": name, "plugins": False,
              "state": {"backend": "redis", "url": f"redis://:pw-secret@127.0.0.1:{port}",
                        "timeout": 1}}  # fmt: skip
    with pytest.raises(StateError, match="reachable") as info:
        otpy.start(config)
    assert "pw-secret" not in str(info.value)
    assert not [n for n in registered() if n.startswith(name)]


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"backend": "redis"}, "needs the field 'url'"),
        ({"backend": "sqlite"}, "needs the field 'path'"),
        ({"backend": "mongo"}, "state.backend"),
        ({"backend": "redis", "url": "redis://x", "timeout": 0}, "state.timeout"),
        ({"backend": "memory", "colour": 1}, "state.colour"),
    ],
)
def test_bad_state_config_says_which_field(state: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match="state") as info:
        RuntimeConfig.load({"state": state})
    assert words in str(info.value)


def test_a_field_the_backend_does_not_use_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otpy.config"):
        config = RuntimeConfig.load({"state": {"backend": "sqlite", "path": "x.db",
                                               "url": "redis://h", "prefix": "p"}})  # fmt: skip
    assert config.state.path == "x.db"
    warnings = [r.getMessage() for r in caplog.records if r.name == "otpy.config"]
    assert warnings == ["state config: field(s) 'prefix', 'url' not used by backend 'sqlite'; "
                        "ignored"]  # fmt: skip


def test_the_redis_url_stays_secret_and_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTPY_STATE__BACKEND", "redis")
    monkeypatch.setenv("OTPY_STATE__URL", "redis://:hunter2-secret@cache:6379/1")
    config = RuntimeConfig.from_env()
    assert config.state.backend == "redis" and config.state.url is not None
    assert config.state.url.get_secret_value() == "redis://:hunter2-secret@cache:6379/1"
    assert "hunter2-secret" not in repr(config) and "hunter2-secret" not in str(config)


def test_open_uses_the_runtime_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    config = {"name": unique(), "plugins": False,
              "state": {"backend": "sqlite", "path": str(tmp_path / "s.db")}}  # fmt: skip
    with otpy.start(config, clock=clock) as rt:
        store: StateProvider = rt.open_state("s")
        with store:
            store.register_variable("x", "integer", 1)
            assert store.get_variable("x").created_at == clock.time()
