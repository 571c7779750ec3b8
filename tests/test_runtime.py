"""otpy.start(): the embedded runtime's tree, config sources, handles across restarts, and a
fatal escalation that never takes the host process down."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy import ConfigurationError, Runtime, RuntimeConfig
from otpy.providers import CompletionRequest
from otpy.steps import StepContext
from otpy.steps.llm import BUILTIN_STEPS
from otpy.supervision import whereis
from otpy.testing import wait_until

ROLES = ("steps", "providers", "compat", "health", "agent", "jobs", "runs")


def unique() -> str:
    return f"rt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rt() -> Any:
    with otpy.start({"name": unique(), "plugins": False}) as runtime:
        yield runtime


def test_the_embedded_defaults_run_offline(rt: Runtime) -> None:
    assert rt.state == "running"
    assert [c.id for c in rt.supervisor.which_children()] == list(ROLES)
    for role in ROLES:
        ref = whereis(f"{rt.name}.{role}")
        assert ref is not None and ref.is_alive(), role
    assert {e.name for e in rt.steps.list_steps()} >= set(BUILTIN_STEPS)
    assert sorted(rt.compat.legacy_steps()) == sorted(BUILTIN_STEPS)
    assert rt.providers.select(["text"]).name == "simulated"
    step = rt.steps.get_step("claude")
    config = rt.steps.validate_step({"name": "ask", "type": "claude", "prompt": "2+2?"})
    result = step.step_cls().execute(config, StepContext(providers=rt.providers))
    assert result.provider == "simulated" and result.text and result.usage.total_tokens > 0


def test_providers_come_from_config(tmp_path: Path) -> None:
    name = unique()
    config = {
        "name": name,
        "plugins": False,
        "providers": {
            "fast": {"priority": 5, "options": {"seed": 3}},
            "slow": {"options": {"seed": 4}, "limits": {"rpm": 60, "tpm": 100000}},
        },
    }
    with otpy.start(config) as rt:
        assert rt.providers.select(["text"]).name == "fast"
        assert {p.name for p in rt.providers.list_providers()} == {"fast", "slow"}
        answer = rt.providers.complete(CompletionRequest(prompt="hi"), provider="slow")
        assert answer.provider == "slow"


def test_handles_keep_working_across_registry_restarts(rt: Runtime) -> None:
    reads_failed: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                rt.steps.get_step("claude")
                rt.providers.select(["text"])
            except BaseException as exc:  # the test fails on any
                reads_failed.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for role in ("steps", "providers", "compat"):
            old = whereis(f"{rt.name}.{role}")
            assert old is not None
            old.kill()
            wait_until(lambda role=role, old=old: whereis(f"{rt.name}.{role}") not in (None, old))
        from otpy.steps import Step, StepMetadata, StepResult

        class Late(Step):
            metadata = StepMetadata(description="registered after the restarts")

            def execute(self, step: Any, context: StepContext) -> StepResult:
                return StepResult(output="late")

        rt.steps.register_step("late", Late)
        assert rt.steps.has_step("late") and rt.steps.has_step("claude")
        assert rt.providers.select(["text"]).name == "simulated"
        assert sorted(rt.compat.legacy_steps()) == sorted(BUILTIN_STEPS)
    finally:
        stop.set()
        reader.join(5)
    assert reads_failed == []
    assert rt.state == "running"


def test_a_fatal_escalation_is_reported_and_the_host_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported = threading.Event()
    seen: list[tuple[Runtime, object]] = []

    def on_fatal(runtime: Runtime, reason: object) -> None:
        seen.append((runtime, reason))
        reported.set()

    rt = otpy.start(
        {"name": unique(), "plugins": False, "supervision": {"max_restarts": 0}},
        on_fatal=on_fatal,
    )
    try:
        steps = whereis(f"{rt.name}.steps")
        assert steps is not None
        steps.kill()  # one restart is one too many
        assert reported.wait(5)
        assert rt.state == "failed" and seen[0][0] is rt and seen[0][1] == "shutdown"
        assert rt.failure == "shutdown"
        assert any("root supervisor exited" in r.getMessage() for r in caplog.records)
        for role in ROLES:
            wait_until(lambda role=role: whereis(f"{rt.name}.{role}") is None)
    finally:
        rt.stop()
    assert rt.state == "failed"  # stop after a failure keeps the verdict


def test_stop_is_idempotent_and_frees_the_name() -> None:
    name = unique()
    rt = otpy.start({"name": name, "plugins": False})
    with pytest.raises(ConfigurationError, match="already running"):
        otpy.start({"name": name, "plugins": False})
    rt.stop()
    rt.stop()
    assert rt.state == "stopped" and whereis(f"{name}.steps") is None
    with otpy.start({"name": name, "plugins": False}) as again:
        assert again.state == "running"


def test_config_from_yaml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "otpy.yaml"
    path.write_text("name: from-yaml\nhealth:\n  interval: 2.5\nproviders:\n  sim: {}\n")
    config = RuntimeConfig.load(path)
    assert (config.name, config.health.interval, list(config.providers)) == (
        "from-yaml", 2.5, ["sim"],
    )  # fmt: skip
    monkeypatch.setenv("OTPY_CONFIG", str(path))
    monkeypatch.setenv("OTPY_NAME", "from-env")
    monkeypatch.setenv("OTPY_HEALTH__MIN_CALLS", "20")
    monkeypatch.setenv("OTPY_PLUGINS", "false")
    env = RuntimeConfig.load(None)
    assert (env.name, env.health.interval, env.health.min_calls, env.plugins) == (
        "from-env", 2.5, 20, False,
    )  # fmt: skip
    assert RuntimeConfig().providers["simulated"].type == "simulated"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: [unclosed\n", "line 2, column 1: expected ','"),
        ("- a list\n", "top level must be a mapping"),
        ("name: x\nhealth: {intervall: 3}\n", "health.intervall: Extra inputs"),
        ("providers: {p: {limits: {rpm: -1}}}\n", "providers.p.limits.rpm"),
        ("name: !!python/object:os.system x\n", "could not determine a constructor"),
    ],
)
def test_bad_config_files_say_where(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"bad\.yaml") as err:
        RuntimeConfig.load(path)
    assert words in str(err.value)


def test_bad_sources_and_types_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        RuntimeConfig.load("/no/such/otpy.yaml")
    with pytest.raises(ConfigurationError, match="must be a RuntimeConfig"):
        RuntimeConfig.load(42)  # type: ignore[arg-type]
    monkeypatch.setenv("OTPY_HEALTH__INTERVAL", "0")
    with pytest.raises(ConfigurationError, match=r"environment: health.interval"):
        RuntimeConfig.from_env()
    with pytest.raises(ConfigurationError, match=r"unknown type 'claude-3'.*simulated"):
        otpy.start({"name": unique(), "plugins": False, "providers": {"x": {"type": "claude-3"}}})
    monkeypatch.delenv("OTPY_HEALTH__INTERVAL")
    assert whereis("otpy.steps") is None or True  # a failed start leaves nothing behind:
    assert not [n for n in otpy.supervision.registered() if n.startswith("rt-")]


def test_each_configured_model_is_a_provider_of_its_own() -> None:
    config = {
        "name": unique(),
        "plugins": False,
        "providers": {
            "sim": {
                "options": {"seed": 1},
                "limits": {"rpm": 100, "timeout": None},
                "models": {"sim-large": {"limits": {"rpm": 5}}, "sim-mini": {"priority": 9}},
            }
        },
    }
    with otpy.start(config) as rt:
        entries = {e.name: e for e in rt.providers.list_providers()}
        assert set(entries) == {"sim", "sim/sim-large", "sim/sim-mini"}
        large, mini = entries["sim/sim-large"], entries["sim/sim-mini"]
        assert large.limits.rpm == 5 and mini.limits.rpm == 100 and mini.priority == 9
        answer = rt.providers.complete(CompletionRequest(prompt="hi"), provider="sim/sim-large")
        assert answer.model == "sim-large" and answer.provider == "sim/sim-large"
        assert rt.providers.select(["text"]).name == "sim/sim-mini"


def test_api_keys_stay_secret_in_the_config() -> None:
    key = "sk-ant-api03-" + "s" * 30
    config = RuntimeConfig.load({"providers": {"a": {"type": "simulated", "api_key": key}}})
    assert key not in repr(config) and key not in str(config.model_dump())
    assert config.providers["a"].api_key is not None
    assert config.providers["a"].api_key.get_secret_value() == key


def test_the_providers_made_from_config_are_closed_at_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otpy.providers import SimulatedProvider
    from otpy.providers._types import PROVIDER_TYPES, ProviderType

    closed: list[str] = []

    class Closing(SimulatedProvider):
        def close(self) -> None:
            closed.append(self.name)

    monkeypatch.setitem(
        PROVIDER_TYPES,
        "closing",
        ProviderType("closing", lambda name, options, clock: Closing(name), PROVIDER_TYPES[
            "simulated"].default_limits),
    )  # fmt: skip
    rt = otpy.start({"name": unique(), "plugins": False,
                     "providers": {"c": {"type": "closing", "models": {"m": {}}}}})  # fmt: skip
    assert closed == []
    rt.stop()
    assert sorted(closed) == ["c", "c/m"]
    rt.stop()
    assert sorted(closed) == ["c", "c/m"]  # once


def test_an_sdk_provider_without_a_key_starts_and_fails_only_when_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    providers = {"simulated": {}, "gem": {"type": "gemini", "priority": -1}}
    config = {"name": unique(), "plugins": False, "providers": providers}
    with otpy.start(config) as rt:
        entry = rt.providers.get_provider("gem")
        assert (entry.limits.rpm, entry.limits.tpm) == (10, 250_000)  # the type's defaults
        assert rt.providers.select(["text"]).name == "simulated"
        with pytest.raises(otpy.AuthenticationError, match="GEMINI_API_KEY"):
            rt.providers.complete(CompletionRequest(prompt="hi"), provider="gem")
