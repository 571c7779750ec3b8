"""Fixtures of the pipeline tests: a runtime with the test step types, a scripted provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_steps import add_provider, reset, start
from provider_plugins import ScriptedProvider

from otpy import Runtime


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """A started runtime with the test step types registered (``pipeline_steps``)."""
    reset()
    with start() as runtime:
        yield runtime


@pytest.fixture
def p(rt: Runtime) -> ScriptedProvider:
    """A scripted provider named ``p`` in ``rt``."""
    return add_provider(rt, "p")
