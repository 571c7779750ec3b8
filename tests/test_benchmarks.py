"""Benchmarks do not rot: every script in ``benchmarks/`` runs to the end with ``--quick``
(its figures are not checked, only that it runs); a script without that flag fails here.
``jobs.py --executor ray`` (the Ray section) runs in tests/ray, on the cluster the Ray
tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_runs import BENCHMARKS, run_quick

SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_"))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_every_benchmark_runs_with_quick(script: Path) -> None:
    run_quick(script, timeout=540)
