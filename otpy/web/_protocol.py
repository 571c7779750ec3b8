"""What the web layer needs of a runtime (:class:`otpy.Runtime` is one): typed as a
protocol so that ``otpy.runtime`` can import the web layer for ``rt.serve()`` without a
cycle."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from otpy.actors import ChatHandle, JobsHandle, PipelineRun, ProviderRegistryHandle
from otpy.config import RuntimeConfig
from otpy.pipelines import StepEvent
from otpy.supervision import SupervisorRef
from otpy.telemetry import Telemetry

__all__ = ["WebRuntime"]


class WebRuntime(Protocol):
    """A running runtime as the server sees it."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> RuntimeConfig: ...

    @property
    def state(self) -> str: ...

    @property
    def jobs(self) -> JobsHandle: ...

    @property
    def providers(self) -> ProviderRegistryHandle: ...

    @property
    def chat(self) -> ChatHandle: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def supervisor(self) -> SupervisorRef: ...

    def start_pipeline(
        self,
        source: Any,
        inputs: Mapping[str, Any] | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        on_step: Callable[[StepEvent], None] | None = None,
        workspace: str | os.PathLike[str] | None = None,
    ) -> PipelineRun: ...
