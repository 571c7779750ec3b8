"""Errors of the step and provider registries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from otpy.errors._base import OtpyError, PlainLookup, located

__all__ = [
    "DuplicateProviderError",
    "DuplicateStepError",
    "NoProviderAvailable",
    "RegistryError",
    "StepValidationError",
    "UnknownProviderError",
    "UnknownStepError",
]


class RegistryError(OtpyError):
    """An error of the step or provider registry (the registry itself carries on)."""


class _AlreadyRegistered(RegistryError):
    """A name given to ``register_*`` is taken; ``name`` is it."""

    kind: ClassVar[str] = "entry"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{self.kind} {name!r} is already registered; pass replace=True to replace it"
        )
        self.name = name


class StepValidationError(RegistryError, ValueError):
    """A step's configuration is invalid: ``step`` names the step (its ``name`` in the
    pipeline, or its type), ``field`` the offending field (``None`` for the whole step)."""

    def __init__(self, message: str, *, step: str | None = None, field: str | None = None) -> None:
        super().__init__(located(message, "step", step, field))
        self.step = step
        self.field = field


class UnknownStepError(RegistryError, PlainLookup):
    """No step type of that name; ``known`` lists the registered ones and ``suggestion``
    is the closest match (or ``None``)."""

    def __init__(
        self,
        name: str,
        known: Sequence[str] = (),
        suggestion: str | None = None,
        *,
        step: str | None = None,
        where: str | None = None,
    ) -> None:
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        shown = ", ".join(sorted(known)) or "none"
        prefix = f"step {step!r}, field 'type': " if step is not None else ""
        place = f" ({where})" if where else ""
        super().__init__(f"{prefix}unknown step type {name!r}{hint} (registered: {shown}){place}")
        self.name = name
        self.known = tuple(sorted(known))
        self.suggestion = suggestion
        self.step = step


class DuplicateStepError(_AlreadyRegistered):
    """``register_step`` with a name already registered (pass ``replace=True`` to swap)."""

    kind = "step type"


class UnknownProviderError(RegistryError, PlainLookup):
    """No provider registered under that name; ``known`` lists the registered ones."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        shown = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown provider {name!r} (registered: {shown})")
        self.name = name
        self.known = tuple(sorted(known))


class DuplicateProviderError(_AlreadyRegistered):
    """``register_provider`` with a name already registered (pass ``replace=True``)."""

    kind = "provider"


class NoProviderAvailable(RegistryError):
    """No registered, healthy provider has every capability asked for.

    ``capabilities`` is what was asked; ``excluded`` maps providers that have them but were
    left out to why (unhealthy, breaker open, excluded by the caller).
    """

    def __init__(self, capabilities: Sequence[str], excluded: dict[str, str] | None = None) -> None:
        wanted = ", ".join(capabilities) or "any capability"
        left = excluded or {}
        why = "; ".join(f"{name}: {reason}" for name, reason in left.items())
        more = f" ({why})" if why else ""
        super().__init__(f"no provider available with {wanted}{more}")
        self.capabilities = tuple(capabilities)
        self.excluded = dict(left)
