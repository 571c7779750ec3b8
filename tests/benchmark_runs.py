"""Running a benchmark script's quick mode from the tests (tests/test_benchmarks.py, and the
Ray section's run in tests/ray): its figures are not checked, only that it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script: Path, *extra: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``script --quick *extra`` from the repository root: it has the flag, ends with 0 and
    prints no traceback (AssertionError otherwise, with the end of its output)."""
    done = subprocess.run(
        [sys.executable, str(script), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCHMARKS.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert "unrecognized arguments: --quick" not in done.stderr, f"{script.name}: no --quick"
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    return done
