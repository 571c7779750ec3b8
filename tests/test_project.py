"""The project as a user meets it: README commands, CI, packaging, public API, quality."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import otpy
import otpy.errors
import otpy.resilience
import otpy.state
import otpy.supervision
import otpy.telemetry
from otpy import configure_logging
from otpy.demo import run_demo
from otpy.log import REDACTED, SecretFilter

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [line.strip() for line in lines[:5] if line.startswith("    ")]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    install_and_demo, install_and_test = _readme_commands()
    assert install_and_demo.endswith("otpy demo")
    assert install_and_test.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == install_and_test


def test_readme_example_runs() -> None:
    """Every example in the README is real code (the resilience one asserts its result)."""
    text = (ROOT / "README.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(examples) >= 2
    for example in examples:
        namespace: dict[str, object] = {}
        exec(compile(example, "README.md", "exec"), namespace)
        if "sup" in namespace:
            assert namespace["sup"].exit_reason == "normal"  # type: ignore[attr-defined]


def test_readme_config_examples_are_valid_configs() -> None:
    """Every YAML example in the README is a config ``otpy.start`` accepts."""
    import yaml

    from otpy.config import RuntimeConfig
    from otpy.providers import PROVIDER_TYPES

    text = (ROOT / "README.md").read_text()
    examples = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert examples
    for example in examples:
        config = RuntimeConfig.load(yaml.safe_load(example))
        for name, provider in config.providers.items():
            assert provider.type in PROVIDER_TYPES, name


def test_demo_recovers_from_every_crash() -> None:
    assert run_demo(verbose=False) == 0


def test_demo_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "otpy"), "demo"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "reached max restart intensity" in out
    assert "every worker running again: True" in out
    assert "a YAML pipeline on the embedded runtime" in out and "completed: category=" in out
    assert "completed: 9/9 evaluations" in out and "best configuration" in out
    assert "Traceback" not in out + result.stderr


def test_public_api_is_re_exported() -> None:
    documented_supervision = {
        "GenServer",
        "ServerRef",
        "ServerStats",
        "SupervisorStats",
        "Supervisor",
        "SupervisorRef",
        "DynamicSupervisor",
        "DynamicSupervisorRef",
        "ChildSpec",
        "ChildInfo",
        "ChildCounts",
        "ChildState",
        "Backoff",
        "RestartIntensity",
        "should_restart",
        "Down",
        "Monitor",
        "NamedHandle",
        "call",
        "cast",
        "handled_count",
        "is_supervisor",
        "whereis",
        "register",
        "unregister",
        "registered",
        "ExitReason",
        "is_abnormal",
        "NORMAL",
        "SHUTDOWN",
        "KILLED",
        "NOPROC",
        "SupervisorEvent",
        "SupervisorEventSink",
        "add_event_sink",
        "remove_event_sink",
    }
    assert set(otpy.supervision.__all__) == documented_supervision
    documented_resilience = {
        "RateLimiter", "Limit", "Permit", "LimiterStats", "BucketStats", "ClockedMemoryStorage",
        "CircuitBreaker", "BreakerStats", "PROBE_IN_FLIGHT", "SHARED_SCHEMES",
        "shared_breaker_storage", "RetryPolicy", "RetryAttempt", "is_retryable",
        "parse_retry_after", "retry_after_of",
        "call_with_timeout", "Fallback", "FallbackResult", "OptionFailure",
        "guard", "Guard", "Guarded", "GuardResult", "NOT_FAULTS", "ResilienceEvent", "EventSink",
    }  # fmt: skip
    assert set(otpy.resilience.__all__) == documented_resilience
    for name in ("RateLimiter", "Limit", "CircuitBreaker", "RetryPolicy", "guard", "Fallback"):
        assert getattr(otpy, name) is getattr(otpy.resilience, name)
    documented_telemetry = {
        "Telemetry", "TelemetryStats", "Event", "Span", "Subscriber", "get_telemetry",
        "set_telemetry", "emit", "emit_safely", "span", "EventStore", "StoreStats", "TraceNode",
        "TraceContext", "correlation", "current_context", "use_context", "new_correlation_id",
        "Metrics", "Counter", "Gauge", "Histogram", "QuantileSketch", "nearest_rank",
        "CorrelationFilter", "REDACTED", "redact_value", "is_secret_key",
    }  # fmt: skip
    assert set(otpy.telemetry.__all__) == documented_telemetry
    for name in ("Telemetry", "Event", "Histogram", "get_telemetry", "use_context"):
        assert getattr(otpy, name) is getattr(otpy.telemetry, name)
    documented_state = {
        "StateProvider", "LocalState", "SQLiteState", "RedisState", "Variable", "VariableChange",
        "EXPORT_FORMAT",
    }  # fmt: skip
    assert set(otpy.state.__all__) == documented_state
    for name in documented_state - {"EXPORT_FORMAT", "RedisState"}:  # RedisState: not yet
        assert getattr(otpy, name) is getattr(otpy.state, name)
    documented_runtime = {
        "otpy.providers": {
            "CAPABILITIES", "Completion", "CompletionRequest", "HealthRule", "Message",
            "Provider", "ProviderEntry", "ProviderGateway", "ProviderHealth", "ProviderLimits",
            "ProviderStats", "ProviderTable", "RateLimitReading", "STRATEGIES", "SimulatedProvider",
            "SimulatedStats", "StatsSnapshot", "Usage", "estimate_tokens", "GeminiProvider",
            "AnthropicProvider",
            "PROVIDER_TYPES", "ProviderType", "register_provider_type", "ProviderView",
            "make_entry", "make_provider", "Verdict", "decide", "as_capabilities",
            "TOOL_NAME_PATTERN", "ToolCall", "ToolResult",
            "ToolSpec",
        },
        "otpy.agent": {
            "BUILTIN_TOOLS", "DEFAULT_MAX_TURNS", "KEPT_VARIABLES", "AgentOptions", "AgentResult",
            "AgentTurn", "ChangeLog", "Tool", "ToolCallRecord", "ToolContext",
            "ToolLimits", "ToolRegistry", "ToolSelection", "as_tool", "ask_agent",
            "command_environment", "glob_regex", "python_tool", "run_agent", "tool",
            # the routing agent (rt.chat): its config, rules and replies
            "AgentConfig", "AgentRoute", "AgentClassifier", "Router", "RouteChoice",
            "AgentReply", "AgentAttempt", "AgentState", "AttemptStatus", "CHAT_ROUTE",
            "CLASSIFIER", "chat_pipeline", "classifier_pipeline", "check_routes", "response_of",
        },
        "otpy.steps": {
            "COMMON_FIELDS", "STEP_PLUGIN_GROUP", "Step", "StepContext", "StepEntry",
            "StepMetadata", "StepResult", "StepTable", "StepValidator", "load_step_plugins",
            "validate_step", "BodyRun", "StepHost", "check_choice", "make_entry",
        },
        "otpy.actors": {
            "ChatAgent", "ChatCell", "ChatHandle", "chat_child",
            "CompatibilityHandle", "CompatibilityManager", "CompatibilityStats", "HealthChange",
            "Deadline", "HealthMonitor", "JobCell", "JobHandle", "JobRecord", "JobsHandle",
            "OptimizationRunner",
            "PipelineRun", "PipelineRunner", "ProviderRegistry",
            "ProviderRegistryHandle", "StepRegistry", "StepRegistryHandle", "StepsHandle",
            "start_run",
        },
        "otpy.pipelines": {
            "Defaults", "FAILOVER_ERRORS", "Fallback", "InputSpec", "InputType", "MAX_DEPTH",
            "NAME_PATTERN", "OnError", "Pipeline", "PipelineResult", "PipelineSource",
            "PipelineStep", "PipelineStepType", "Plan", "PlannedStep", "ProviderDirectory",
            "RESULT_FIELDS", "ROOTS", "RunProgress", "RunStatus", "StepError", "StepEvent",
            "StepGateway", "StepOutcome", "StepStatus", "StepTools", "check_providers",
            "check_references", "check_tools", "compile_pipeline",
            "load_pipeline", "references", "render", "render_value", "run_plan", "step_record",
            "Ref", "parse",
        },
        "otpy.optimize": {
            "BootstrapFewShot", "Choice", "Demos", "ExampleResult", "FloatRange", "GridSearch",
            "IntRange", "JobFile", "JobOptions", "JobSpec", "JobState", "JobStatus", "METRICS",
            "METRIC_PLUGIN_GROUP", "Metric", "RandomSearch", "STRATEGY_PLUGIN_GROUP",
            "SearchSpace", "Strategy", "TPEStrategy", "Trial", "Variable", "load_job_file",
            "load_metric_plugins", "load_strategy_plugins", "make_strategy", "parse_job_file",
            "register_metric",
            "register_strategy", "resolve_metric", "strategy_names",
            "JobLedger", "JobStore", "SQLiteJobStore", "Checkpoint", "CheckpointBatch", "Lease",
            "Holder", "Owner", "default_store_path", "Executor", "ExecutorSession", "JobWork",
            "Task", "Outcome", "ThreadExecutor", "EXECUTORS", "register_executor",
            "make_executor", "ExecutorConfig", "evaluate_example",
            "planned_evaluations", "is_better", "ranked",
            "ENDED", "JobKind", "DSPyJob", "DSPyTarget", "DSPyJobFile", "DSPyLedger",
            "Evaluation", "LMCalls", "BEST_RESULT", "PROGRAM_RESULT", "beats", "score_of",
            "ranked_evaluations",
        },
        "otpy.compat": {
            "Change", "Incompatibility", "MigrationResult", "check_versions",
            "migrate_pipeline", "parse_requirement",
        },
    }  # fmt: skip
    for module_name, names in documented_runtime.items():
        assert set(importlib.import_module(module_name).__all__) == names, module_name
    assert set(otpy.steps.llm.BUILTIN_STEPS) == {
        "claude", "gemini", "claude_smart", "claude_session", "claude_extract", "claude_batch",
        "claude_robust", "parallel_claude", "gemini_instructor", "set_variable",
    }  # fmt: skip
    for name in ("start", "Runtime", "RuntimeConfig", "Step", "Provider", "SimulatedProvider"):
        assert getattr(otpy, name) is not None
    modules = (otpy, otpy.supervision, otpy.errors, otpy.resilience, otpy.telemetry, otpy.state)
    for module in modules:
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    assert set(otpy.__all__) == {
        "start", "Runtime", "RuntimeConfig",
        "GenServer", "Supervisor", "DynamicSupervisor", "ChildSpec", "NamedHandle",
        "ServerRef", "whereis",
        "RateLimiter", "Limit", "CircuitBreaker", "RetryPolicy", "Fallback", "guard",
        "Provider", "SimulatedProvider", "CompletionRequest", "Completion", "ProviderLimits",
        "Step", "StepContext", "StepMetadata", "StepResult",
        "Pipeline", "PipelineResult", "load_pipeline", "compile_pipeline",
        "JobHandle", "JobStatus", "SearchSpace", "Strategy", "load_job_file",
        "register_metric", "register_strategy",
        "LocalState", "SQLiteState", "get_telemetry", "configure_logging", "OtpyError",
    }  # fmt: skip
    for name in otpy.errors.__all__:  # not listed, still importable from the front door
        assert getattr(otpy, name) is getattr(otpy.errors, name)
    for name in ("GenServer", "Supervisor", "DynamicSupervisor", "ChildSpec", "whereis"):
        assert getattr(otpy, name) is getattr(otpy.supervision, name)


def test_every_error_is_an_otpy_error_named_in_the_docstring() -> None:
    doc = otpy.errors.__doc__ or ""
    for name in otpy.errors.__all__:
        cls = getattr(otpy.errors, name)
        assert issubclass(cls, otpy.errors.OtpyError)
        assert name in doc, f"{name} missing from the hierarchy drawn in otpy.errors"


def test_secret_filter_masks_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain-secret-value-123")
    redact = SecretFilter().redact
    text = redact(
        "key sk-ant-api03-abcdefghijklmnop and AIzaSyA1234567890abcdefghijk, "
        "api_key=hunter2hunter2, x-api-key: zzzzzzzz, env plain-secret-value-123"
    )
    for secret in ("sk-ant-api03", "AIzaSy", "hunter2", "zzzzzzzz", "plain-secret-value-123"):
        assert secret not in text
    assert text.count(REDACTED) == 5
    text = redact("Authorization: Bearer opaque-abc123, password=pw12345678 max_tokens=100")
    assert text == f"Authorization: Bearer {REDACTED}, password={REDACTED} max_tokens=100"


def test_configure_logging_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    handler = configure_logging("INFO")
    try:
        logging.getLogger("otpy.test").info("calling with api_key=%s", "sk-ant-api03-secretsecret")
    finally:
        for name in ("otpy", "pykka"):
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
    err = capsys.readouterr().err
    assert "secretsecret" not in err and REDACTED in err


def test_editable_install_maps_the_folders_into_otpy(tmp_path: Path) -> None:
    """From anywhere, otpy.supervision is the repo's supervision/ and there is no
    top-level `supervision`, `actors` or `resilience` package."""
    code = (
        "import importlib.util, otpy.supervision, otpy.actors, otpy.resilience\n"
        "print(otpy.supervision.__file__)\n"
        "print([importlib.util.find_spec(n) for n in ('supervision', 'actors', 'resilience')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout.splitlines()
    assert Path(out[0]) == ROOT / "supervision" / "__init__.py"
    assert out[1] == "[None, None, None]"


@pytest.mark.slow
def test_wheel_installs_only_otpy(tmp_path: Path) -> None:
    """A built wheel holds one top-level package; pip show -f of an installed copy lists no
    top-level actors/supervision/resilience, and otpy.supervision imports from it."""
    source = tmp_path / "src"  # pip wheel writes build/ next to the sources: not in the repo
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [
            str(BIN / "pip"),
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("otpy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"otpy", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "otpy/py.typed" in names
    assert "otpy/supervision/_genserver.py" in names

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    pip = [str(BIN / "pip"), "--python", str(python)]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    shown = subprocess.run([*pip, "show", "-f", "otpy"], capture_output=True, text=True, check=True)
    files = [line.strip() for line in shown.stdout.split("Files:")[1].splitlines() if line.strip()]
    tops = {f.split("/")[0] for f in files}
    assert not tops & {"actors", "supervision", "resilience"}
    assert "otpy/supervision/__init__.py" in files

    # Import the installed copy; dependencies come from this test environment's site-packages.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run(
        [str(python), "-c", "import otpy.supervision as s; print(s.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert out.startswith(str(env_dir)) and out.endswith("otpy/supervision/__init__.py")


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [str(BIN / "ruff"), *args], capture_output=True, text=True, cwd=ROOT
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """mypy cannot follow the folder mapping, so it checks a symlinked view of the
    installed layout: otpy/ with supervision/, actors/, resilience/ inside."""
    view = tmp_path / "otpy"
    view.mkdir()
    for entry in (ROOT / "otpy").iterdir():
        if entry.name != "__pycache__":
            (view / entry.name).symlink_to(entry)
    for sub in ("supervision", "actors", "resilience"):
        (view / sub).symlink_to(ROOT / sub)
    result = subprocess.run(
        [
            str(BIN / "mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--python-version",
            "3.11",
            "--no-incremental",
            "-p",
            "otpy",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
