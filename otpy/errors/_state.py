"""Errors of the state stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from otpy.errors._base import OtpyError, PlainLookup

__all__ = [
    "BatchUpdateError",
    "InvalidValueError",
    "StateError",
    "VariableExistsError",
    "VariableNotFound",
]


class StateError(OtpyError):
    """A state store failed or was misused (closed, a malformed export, a broken file)."""


class VariableNotFound(StateError, PlainLookup):
    """No variable with that name or id in the session."""

    def __init__(self, identifier: str, session_id: str | None = None) -> None:
        where = f" in session {session_id!r}" if session_id is not None else ""
        super().__init__(f"no variable {identifier!r}{where}")
        self.identifier = identifier
        self.session_id = session_id


class VariableExistsError(StateError):
    """``register_variable`` with a name that is already registered in the session."""

    def __init__(self, name: str, session_id: str | None = None) -> None:
        where = f" in session {session_id!r}" if session_id is not None else ""
        super().__init__(
            f"variable {name!r} is already registered{where}; "
            "set_variable changes it, delete_variable removes it"
        )
        self.name = name
        self.session_id = session_id


class InvalidValueError(StateError, ValueError):
    """A value of the wrong type, or one that breaks a constraint of its variable.

    ``variable`` names the variable, ``value`` is the refused value and ``rule`` the
    rule it broke (``"type float"``, ``"max 2.0"``, ``"pattern ^[a-z]+$"``, ...).
    """

    def __init__(self, variable: str, value: Any, rule: str, detail: str = "") -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        more = f" ({detail})" if detail else ""
        super().__init__(f"variable {variable!r}: value {shown} breaks {rule}{more}")
        self.variable = variable
        self.value = value
        self.rule = rule


class BatchUpdateError(StateError):
    """A batch update failed for one or more variables.

    ``failures`` maps each failed name (or id) to its error; ``applied`` lists the
    variables that were changed anyway (always empty on an atomic backend, which
    applies all or nothing).
    """

    def __init__(self, failures: dict[str, BaseException], applied: Sequence[str] = ()) -> None:
        why = "; ".join(f"{name}: {exc}" for name, exc in failures.items())
        done = (
            f"; applied anyway: {', '.join(map(repr, applied))}"
            if applied
            else "; nothing was applied"
        )
        super().__init__(f"batch update failed for {len(failures)} variable(s): {why}{done}")
        self.failures = dict(failures)
        self.applied = list(applied)
