"""``otpy.dspy.lm``: a ``dspy.LM`` on a runtime's providers, and ``call_scope``.

DSPy's own retries are off (``num_retries=0``): the provider's guard retries, honouring
Retry-After, and DSPy must not retry on top of it. DSPy's response cache is off by
default (``cache=False``): the call journal is what answers repeated runs, and DSPy's
cache would hide calls from the gate (budgets, accounting) and, on disk, make a resumed
run skip calls the journal counts on. Pass ``cache=True`` to have it anyway (then calls
it answers are neither journaled nor counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import dspy  # type: ignore[import-untyped]

from otpy.calls import CallGate, CallJournal
from otpy.clock import Clock
from otpy.dspy._engine import SCOPE_KEY, AsyncOtpyEngine, CallScope, OtpyEngine
from otpy.errors import ConfigurationError
from otpy.pipelines import ProviderDirectory
from otpy.providers import as_capabilities

__all__ = ["HasProviders", "bind", "call_scope", "lm"]


class HasProviders(Protocol):
    """What ``lm`` needs of a runtime (``otpy.Runtime`` has both)."""

    @property
    def providers(self) -> ProviderDirectory: ...

    @property
    def clock(self) -> Clock: ...


def lm(
    rt: HasProviders,
    provider: str | None = None,
    *,
    capability: str | Iterable[str] | None = None,
    failover: bool | None = None,
    **defaults: Any,
) -> dspy.LM:
    """A ``dspy.LM`` whose every call goes through ``rt``'s provider layer.

    ``provider`` names a registered provider (UnknownProviderError if none is);
    otherwise each call selects a healthy provider with ``capability`` (one name or
    several; default ``text``). ``failover`` (default: only when selecting by capability)
    moves a call whose provider failed to another capable provider. ``defaults`` are
    ``dspy.LM`` settings (``temperature``, ``max_tokens``, ``callbacks``, ``cache``...),
    plus ``model``: the provider-side model (default: the provider's own). Works with
    ``dspy.configure``, ``dspy.context``, ``Predict.set_lm``, sync and async calls and
    DSPy's thread pools. ConfigurationError for ``num_retries`` other than 0 (the guard
    retries) or a ``model_type`` other than ``chat``.
    """
    providers = rt.providers
    capabilities = tuple(sorted(as_capabilities(capability))) if capability is not None else ()
    if provider is not None:
        entry = providers.table.require(provider)
        missing = set(capabilities) - entry.capabilities
        if missing:
            raise ConfigurationError(
                f"provider {provider!r} lacks the capabilities {sorted(missing)} asked for"
            )
    elif not capabilities:
        capabilities = ("text",)
    if defaults.get("num_retries", 0) != 0:
        raise ConfigurationError(
            "otpy.dspy.lm: num_retries must stay 0: the provider's guard retries (set "
            "retries in the provider's limits)"
        )
    if defaults.get("model_type", "chat") != "chat":
        raise ConfigurationError(
            f"otpy.dspy.lm: model_type {defaults['model_type']!r} is not supported (chat only)"
        )
    model = defaults.pop("model", None)
    if model is not None and (not isinstance(model, str) or not model):
        raise ConfigurationError(f"otpy.dspy.lm: model must be a non-empty str, got {model!r}")
    engine = OtpyEngine(
        providers,
        provider=provider,
        capabilities=capabilities,
        model=model,
        failover=provider is None if failover is None else failover,
        clock=rt.clock,
    )
    defaults.setdefault("cache", False)
    defaults["num_retries"] = 0
    return dspy.LM(
        f"otpy/{engine.target}", engine=engine, async_engine=AsyncOtpyEngine(engine), **defaults
    )


def bind(program: Any, rt: HasProviders) -> int:
    """Give the otpy LMs of ``program`` (a ``dspy.Module``, or one ``dspy.LM``) that were
    loaded from a saved program ``rt``'s providers: each predictor's LM is replaced by a
    copy on ``rt``. Returns how many LMs were bound; other LMs are left alone."""
    if isinstance(program, dspy.LM):
        return 0 if _bound(program, rt) is program else 1
    count = 0
    for _, predictor in program.named_predictors():
        lm = getattr(predictor, "lm", None)
        if isinstance(lm, dspy.LM):
            bound = _bound(lm, rt)
            if bound is not lm:
                predictor.lm = bound
                count += 1
    return count


def _bound(lm: Any, rt: HasProviders) -> Any:
    engine = lm.engine
    if not isinstance(engine, OtpyEngine) or engine.providers is not None:
        return lm
    fresh = engine.bound_to(rt.providers, rt.clock)
    return lm.copy(engine=fresh, async_engine=AsyncOtpyEngine(fresh))


@contextmanager
def call_scope(
    gate: CallGate | None = None, journal: CallJournal | None = None
) -> Iterator[CallScope]:
    """Within the block, the LLM calls of every ``otpy.dspy.lm`` made in this thread (and
    in the threads DSPy starts from it: Evaluate, optimizers) pass ``gate`` and are
    recorded in, and answered from, ``journal``. Nested scopes replace the outer one."""
    if gate is not None and not isinstance(gate, CallGate):
        raise ConfigurationError(f"call_scope: gate must be a CallGate, got {gate!r}")
    if journal is not None and not isinstance(journal, CallJournal):
        raise ConfigurationError(f"call_scope: journal must be a CallJournal, got {journal!r}")
    scope = CallScope(gate, journal)
    with dspy.context(**{SCOPE_KEY: scope}):
        yield scope
