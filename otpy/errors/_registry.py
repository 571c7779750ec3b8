"""Errors of the step and provider registries."""

from __future__ import annotations

from collections.abc import Sequence

from otpy.errors._base import OtpyError

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


class StepValidationError(RegistryError, ValueError):
    """A step's configuration is invalid: ``step`` names the step (its ``name`` in the
    pipeline, or its type), ``field`` the offending field (``None`` for the whole step)."""

    def __init__(self, message: str, *, step: str | None = None, field: str | None = None) -> None:
        where = []
        if step is not None:
            where.append(f"step {step!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.step = step
        self.field = field


class UnknownStepError(RegistryError, LookupError):
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

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class DuplicateStepError(RegistryError):
    """``register_step`` with a name already registered (pass ``replace=True`` to swap)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"step type {name!r} is already registered; pass replace=True to replace it"
        )
        self.name = name


class UnknownProviderError(RegistryError, LookupError):
    """No provider registered under that name; ``known`` lists the registered ones."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        shown = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown provider {name!r} (registered: {shown})")
        self.name = name
        self.known = tuple(sorted(known))

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateProviderError(RegistryError):
    """``register_provider`` with a name already registered (pass ``replace=True``)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"provider {name!r} is already registered; pass replace=True to replace it"
        )
        self.name = name


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
