"""Benchmarks do not rot: every script in ``benchmarks/`` runs to the end with ``--quick``
(its figures are not checked, only that it runs); a script without that flag fails here.
``jobs.py --executor ray`` (the Ray section) runs in tests/ray, on the cluster the Ray
tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_"))


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
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_every_benchmark_runs_with_quick(script: Path) -> None:
    result = _run(script, "--quick", timeout=540)
    assert "unrecognized arguments: --quick" not in result.stderr, f"{script.name}: no --quick"
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
