"""Benchmarks do not rot: every script in ``benchmarks/`` runs to the end with ``--quick``
(its figures are not checked, only that it runs), and so does ``jobs.py --executor ray``
(the Ray section: a local Ray must start). A script without a ``--quick`` flag (its
``--help`` does not name one) is skipped, saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_"))
RUNS = [(path, ()) for path in SCRIPTS] + [(BENCHMARKS / "jobs.py", ("--executor", "ray"))]


def _run(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCHMARKS.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("script", "extra"), RUNS, ids=[" ".join((path.name, *extra)) for path, extra in RUNS]
)
def test_every_benchmark_runs_with_quick(script: Path, extra: tuple[str, ...]) -> None:
    usage = _run(script, "--help", timeout=60)
    assert usage.returncode == 0, usage.stderr
    if "--quick" not in usage.stdout:
        pytest.skip(f"{script.name} has no --quick flag (its --help names none)")
    result = _run(script, "--quick", *extra, timeout=540)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    if extra:
        assert "skipped:" not in result.stdout, result.stdout[-2000:]
