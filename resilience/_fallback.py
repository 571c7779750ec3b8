"""Fallback chains: try options in order (say, models or providers) until one serves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from otpy.errors import AllOptionsFailed, ConfigurationError
from otpy.resilience._events import EventSink, emit

__all__ = ["Fallback", "FallbackResult", "OptionFailure"]

T = TypeVar("T")


@dataclass(frozen=True)
class OptionFailure:
    """An option that failed: its name, its error and why (``"RateLimitedError: ..."``)."""

    option: str
    error: BaseException
    reason: str


@dataclass(frozen=True)
class FallbackResult(Generic[T]):
    """What served the call (``served_by``) and the options that failed before it."""

    value: T
    served_by: str
    failures: tuple[OptionFailure, ...] = ()


def _is_exception(error: BaseException) -> bool:
    return isinstance(error, Exception)


class Fallback(Generic[T]):
    """Options tried in order with the same arguments; the first that returns serves.

    ``options`` is a mapping or a sequence of ``(name, callable)`` pairs. An error for
    which ``fall_back_on`` is true (by default any ``Exception``, not e.g.
    ``KeyboardInterrupt``) moves on to the next option; any other error propagates at
    once. Emits ``fallback.fell_back`` and ``fallback.exhausted`` to ``on_event``.
    ``ConfigurationError`` for no options, a duplicate or empty name, or a non-callable.
    """

    def __init__(
        self,
        options: Sequence[tuple[str, Callable[..., T]]] | Mapping[str, Callable[..., T]],
        *,
        name: str = "fallback",
        fall_back_on: Callable[[BaseException], bool] = _is_exception,
        on_event: EventSink | None = None,
    ) -> None:
        pairs = list(options.items()) if isinstance(options, Mapping) else list(options)
        if not pairs:
            raise ConfigurationError(f"fallback {name!r}: give at least one option")
        seen: set[str] = set()
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ConfigurationError(
                    f"fallback {name!r}: an option must be a (name, callable) pair, not {pair!r}"
                )
            option, fn = pair
            if not isinstance(option, str) or not option:
                raise ConfigurationError(
                    f"fallback {name!r}: option names must be non-empty strings, not {option!r}"
                )
            if option in seen:
                raise ConfigurationError(f"fallback {name!r}: option {option!r} is given twice")
            if not callable(fn):
                raise ConfigurationError(f"fallback {name!r}: option {option!r} is not callable")
            seen.add(option)
        self.name = name
        self._options: tuple[tuple[str, Callable[..., T]], ...] = tuple(pairs)
        self._fall_back_on = fall_back_on
        self._on_event = on_event

    @property
    def options(self) -> tuple[str, ...]:
        """The option names, in the order they are tried."""
        return tuple(option for option, _ in self._options)

    def call(self, *args: Any, **kwargs: Any) -> FallbackResult[T]:
        """Call the options in order with these arguments until one returns.

        Blocks for as long as the options it calls. Returns the value with the option
        that served and the failures before it. Re-raises an error ``fall_back_on``
        rejects at once; raises ``AllOptionsFailed`` (``from`` the last error) when every
        option failed.
        """
        failures: list[OptionFailure] = []
        for index, (option, fn) in enumerate(self._options):
            try:
                value = fn(*args, **kwargs)
            except BaseException as error:
                if not self._fall_back_on(error):
                    raise
                failure = OptionFailure(option, error, f"{type(error).__name__}: {error}")
                failures.append(failure)
                if index + 1 < len(self._options):
                    emit(
                        self._on_event,
                        "fallback.fell_back",
                        self.name,
                        {"tried": index + 1},
                        from_option=option,
                        to_option=self._options[index + 1][0],
                        error=type(error).__name__,
                        reason=failure.reason,
                    )
                    continue
                emit(
                    self._on_event,
                    "fallback.exhausted",
                    self.name,
                    {"options": len(self._options)},
                    options=self.options,
                    errors=tuple(type(f.error).__name__ for f in failures),
                )
                raise AllOptionsFailed(
                    self.name, [(f.option, f.error) for f in failures]
                ) from error
            return FallbackResult(value, option, tuple(failures))
        raise AssertionError("unreachable: a fallback has at least one option")

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        """``call(...).value``: the value of the first option that serves."""
        return self.call(*args, **kwargs).value

    def __repr__(self) -> str:
        return f"Fallback({self.name!r}, options={list(self.options)})"
