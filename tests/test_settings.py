"""Every setting the README names works: its Settings table is read here, each config key
starts a runtime from a dict and from the environment, each environment variable starts
one and has its effect, and every setting named anywhere in the README (prose, YAML
examples) or defined by RuntimeConfig is in the table.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

import otpy
from otpy.config import RuntimeConfig
from otpy.providers import CompletionRequest
from otpy.testing.fake_anthropic import FakeAnthropic
from otpy.testing.fake_gemini import FakeGemini

README = (Path(__file__).parent.parent / "README.md").read_text()
_SECTION = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
ROWS: dict[str, str] = dict(re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", _SECTION, re.M))
KEYS = [key for key in ROWS if not key.isupper()]
ENVIRONMENT = [key for key in ROWS if key.isupper()]
NAMES = {"<name>": "p", "<model>": "m"}


def test_the_settings_table_was_read() -> None:
    assert "state_dir" in KEYS and "OTPY_STATE_DIR" in ENVIRONMENT and len(ROWS) > 30


# -- the table covers every setting ---------------------------------------------------------


def _pattern(key: str) -> re.Pattern[str]:
    return re.compile(re.escape(key).replace("<name>", "[^.]+").replace("<model>", "[^.]+"))


def _documented(path: str) -> bool:
    """A row names ``path``, or a row whose example is a mapping holds it."""
    for key, example in ROWS.items():
        pattern = _pattern(key)
        if pattern.fullmatch(path):
            return True
        loaded = yaml.safe_load(example)
        holds = isinstance(loaded, dict) or (  # a list of sections: each holds the fields
            isinstance(loaded, list) and bool(loaded) and isinstance(loaded[0], dict)
        )
        if holds and any(pattern.fullmatch(path[:i]) for i in range(len(path)) if path[i] == "."):
            return True
    return False


def _model_paths(model: type[pydantic.BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field path of a config model; a dict of models is entered as ``<name>``."""
    for name, field in model.model_fields.items():
        path, annotation = prefix + name, field.annotation
        args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
        inner = args[-1] if getattr(annotation, "__origin__", None) is dict else None
        models = [a for a in [annotation, *args] if isinstance(a, type)]
        if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel):
            slot = "<model>" if name == "models" else "<name>"
            yield from _model_paths(inner, f"{path}.{slot}.")
        elif any(issubclass(a, pydantic.BaseModel) for a in models):
            sub = next(a for a in models if issubclass(a, pydantic.BaseModel))
            yield from _model_paths(sub, path + ".")
        else:
            yield path


def test_every_config_field_is_documented() -> None:
    missing = [path for path in _model_paths(RuntimeConfig) if not _documented(path)]
    assert missing == [], f"add these to the README's Settings table: {missing}"


def _yaml_paths(data: Any, prefix: str = "") -> Iterator[str]:
    """The path of every value that is not itself a section."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _yaml_paths(value, f"{prefix}{key}.")
        else:
            yield prefix + str(key)


def test_every_key_of_the_readme_config_examples_is_documented() -> None:
    for block in re.findall(r"```yaml\n(.*?)```", README, re.S):
        for path in _yaml_paths(yaml.safe_load(block)):
            assert _documented(path), f"README config example key {path!r} is not in Settings"


def _python_names() -> set[str]:
    import otpy.resilience
    import otpy.supervision

    return {n for m in (otpy, otpy.resilience, otpy.supervision) for n in dir(m)}


def test_every_environment_variable_the_readme_names_is_documented() -> None:
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", README)) - _python_names()
    for variable in sorted(named):
        if variable in ENVIRONMENT:
            continue
        assert variable.startswith("OTPY_"), f"{variable} is not in the README's Settings"
        path = variable[len("OTPY_") :].lower().replace("__", ".")
        assert _documented(path), f"{variable} ({path}) is not in the README's Settings"


# -- each config key starts a runtime ---------------------------------------------------------


def _value(example: str, tmp_path: Path) -> Any:
    value = yaml.safe_load(example)
    if isinstance(value, str) and value.startswith("/"):  # a path: under the test's folder
        return str(tmp_path / value.lstrip("/"))
    return value


def _path(key: str) -> list[str]:
    return [NAMES.get(part, part) for part in key.split(".")]


def _base(path: list[str]) -> dict[str, Any]:
    base: dict[str, Any] = {"name": f"s-{uuid.uuid4().hex[:6]}", "plugins": False}
    if path[0] not in ("state_dir", "jobs_store"):
        base["jobs_store"] = ":memory:"
    if path == ["agent", "default"]:  # a default names one of the routes
        base["agent"] = {"routes": yaml.safe_load(ROWS["agent.routes"])}
    return base


def _lookup(config: RuntimeConfig, path: list[str]) -> Any:
    found: Any = config
    for part in path:
        found = found[part] if isinstance(found, dict) else getattr(found, part)
    if isinstance(found, pydantic.SecretStr):
        return found.get_secret_value()
    return _plain(found)


def _plain(found: Any) -> Any:
    """A config value as the YAML that set it: a model as the fields that were set."""
    if isinstance(found, pydantic.BaseModel):
        return {k: _plain(getattr(found, k)) for k in found.model_fields_set}
    return [_plain(item) for item in found] if isinstance(found, tuple) else found


def _check(rt: otpy.Runtime, path: list[str], value: Any, tmp_path: Path) -> None:
    assert _lookup(rt.config, path) == value
    if path == ["state_dir"]:
        assert Path(rt.jobs.store.path) == tmp_path / "var/lib/otpy/jobs.sqlite"
    if path == ["jobs_store"]:
        assert rt.jobs.store.path == value


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the examples (an agent route's pipeline) are the repository's."""
    monkeypatch.chdir(Path(__file__).parent.parent)


@pytest.mark.parametrize("key", KEYS)
def test_each_config_key_starts_a_runtime(key: str, tmp_path: Path) -> None:
    path, value = _path(key), _value(ROWS[key], tmp_path)
    data = _base(path)
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    if path[-1] == "api_key":  # a key is for a provider that takes one
        target["type"] = "anthropic"
    with otpy.start(data) as rt:
        _check(rt, path, value, tmp_path)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTPY_* or provider variable of the machine leaks in."""
    import os

    for variable in os.environ:
        if variable.startswith("OTPY_") or variable in ENVIRONMENT:
            monkeypatch.delenv(variable)
    return monkeypatch


def _set_base(environ: pytest.MonkeyPatch, path: list[str]) -> str:
    for key, value in _base(path).items():
        if isinstance(value, dict):  # a section: each of its keys in a variable of its own
            for sub, item in value.items():
                text = yaml.safe_dump(item, default_flow_style=True).strip()
                environ.setenv(f"OTPY_{key.upper()}__{sub.upper()}", text)
            continue
        environ.setenv(f"OTPY_{key.upper()}", str(value).lower() if value is False else value)
    return "OTPY_" + "__".join(part.upper() for part in path)


@pytest.mark.parametrize("key", KEYS)
def test_each_config_key_starts_a_runtime_from_the_environment(
    key: str, tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    path, raw = _path(key), ROWS[key]
    value = _value(raw, tmp_path)
    variable = _set_base(environ, path)
    environ.setenv(variable, value if isinstance(value, str) and value.startswith("/") else raw)
    if path[-1] == "api_key":
        environ.setenv(variable.replace("API_KEY", "TYPE"), "anthropic")
    with otpy.start() as rt:
        _check(rt, path, value, tmp_path)


# -- each environment variable starts a runtime and has its effect ---------------------------


def _ask(rt: otpy.Runtime) -> None:
    rt.providers.complete(CompletionRequest(prompt="hi", max_tokens=8), provider="p")


def _effect(variable: str, value: str, tmp_path: Path, environ: pytest.MonkeyPatch) -> None:
    config: dict[str, Any] = {"name": f"e-{uuid.uuid4().hex[:6]}", "plugins": False}
    if variable == "OTPY_CONFIG":
        Path(value).write_text(yaml.safe_dump({**config, "call_timeout": 7}))
        with otpy.start() as rt:
            assert rt.config.call_timeout == 7
    elif variable in ("OTPY_STATE_DIR", "XDG_STATE_HOME"):
        with otpy.start(config) as rt:
            folder = Path(value) if variable == "OTPY_STATE_DIR" else Path(value) / "otpy"
            assert Path(rt.jobs.store.path) == folder / "jobs.sqlite"
    elif variable.startswith("ANTHROPIC_"):
        fake = FakeAnthropic().start()
        try:
            by_env = variable == "ANTHROPIC_BASE_URL"
            if by_env:
                environ.setenv(variable, fake.url)
            options = {} if by_env else {"base_url": fake.url}
            key = {"api_key": "sk-config"} if by_env else {}
            provider = {"type": "anthropic", "options": options, **key}
            with otpy.start({**config, "providers": {"p": provider}}) as rt:
                _ask(rt)
            (seen,) = fake.requests
            assert seen.api_key == ("sk-config" if by_env else value)
        finally:
            fake.stop()
    elif variable in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        fake = FakeGemini().start()
        try:
            provider = {"type": "gemini", "options": {"base_url": fake.base_url}}
            with otpy.start({**config, "providers": {"p": provider}}) as rt:
                _ask(rt)
            assert fake.requests[0].headers["x-goog-api-key"] == value
        finally:
            fake.stop()
    else:  # a variable with no check of its own yet: it must at least let a runtime start
        with otpy.start(config):
            pass


@pytest.mark.parametrize("variable", ENVIRONMENT)
def test_each_environment_variable_starts_a_runtime(
    variable: str, tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    value = _value(ROWS[variable], tmp_path)
    if variable == "OTPY_CONFIG":
        value = str(tmp_path / value)
    environ.setenv(variable, value)
    _effect(variable, value, tmp_path, environ)
