"""Correlation and span ids that follow the work: contextvars, copied per thread and task.

Each thread starts with an empty context and each asyncio task with a copy of its
creator's, so nested work (a step inside an evaluation inside a job) picks up its trace
without passing ids by hand. Actors run in their own threads: the caller captures
``current_context()`` and the worker adopts it with ``with use_context(ctx): ...``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from otpy.errors import ConfigurationError

__all__ = ["TraceContext", "correlation", "current_context", "new_correlation_id", "use_context"]


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Where the current code runs: its trace (``correlation_id``) and its innermost span
    (``span_id``); either may be ``None``. Immutable: capture it and pass it anywhere."""

    correlation_id: str | None = None
    span_id: str | None = None


EMPTY_CONTEXT = TraceContext()
CURRENT: ContextVar[TraceContext] = ContextVar("otpy_trace_context", default=EMPTY_CONTEXT)


def current_context() -> TraceContext:
    """The trace context of the calling thread or task (empty outside any trace)."""
    return CURRENT.get()


def new_correlation_id() -> str:
    """A fresh, globally unique correlation id (uuid4 hex)."""
    return uuid.uuid4().hex


def restore(token: Token[TraceContext], previous: TraceContext) -> None:
    """Undo a ``CURRENT.set``; falls back to setting ``previous`` when the token belongs to
    another context (a body entered in one task and left in another)."""
    try:
        CURRENT.reset(token)
    except (ValueError, RuntimeError):
        CURRENT.set(previous)


@contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[TraceContext]:
    """Run the body in a trace: a new correlation id, or ``correlation_id`` if given (to
    continue a trace started elsewhere, say a job id). Yields the context now current.

    Adopting the id that is already current changes nothing (the enclosing span stays the
    parent); any other id starts with no parent span. The previous context is back after.
    """
    if correlation_id is None:
        correlation_id = new_correlation_id()
    elif not isinstance(correlation_id, str) or not correlation_id:
        raise ConfigurationError(
            f"correlation_id must be a non-empty string, got {correlation_id!r}"
        )
    previous = CURRENT.get()
    ctx = (
        previous
        if previous.correlation_id == correlation_id
        else TraceContext(correlation_id, None)
    )
    token = CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        restore(token, previous)


@contextmanager
def use_context(ctx: TraceContext) -> Iterator[TraceContext]:
    """Adopt a captured context for the body (in a worker thread, a callback, a task);
    events and spans in the body join that trace. The previous context is back after."""
    if not isinstance(ctx, TraceContext):
        raise ConfigurationError(
            f"use_context needs a TraceContext (from current_context()), got {ctx!r}"
        )
    previous = CURRENT.get()
    token = CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        restore(token, previous)
