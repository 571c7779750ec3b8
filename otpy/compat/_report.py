"""What a migration reports: :class:`Change` entries, collected per step by a recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from otpy.errors import StepValidationError

__all__ = ["Change", "Level", "MigrationResult", "Recorder"]

Level: TypeAlias = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Change:
    """One thing the migration did (or, in ``notes``, left as it was) to one field.

    ``step`` is the step's name (``steps[<index>]`` if it has none; None for the
    pipeline itself), ``field`` the legacy field's path, ``old`` and ``new`` its values
    (``new`` None when it was removed), ``note`` says what and why. ``level``: ``info``
    (same meaning in the new schema), ``warning`` (dropped or possibly different meaning:
    check it), ``error`` (something the migration could not carry over: the migrated
    pipeline differs until you act).
    """

    step: str | None
    field: str
    old: Any
    new: Any
    note: str
    level: Level = "info"

    def __str__(self) -> str:
        where = f"step {self.step!r}" if self.step is not None else "pipeline"
        return f"[{self.level}] {where}, {self.field}: {self.note}"

    @property
    def where(self) -> str:
        """``step 'x', field`` or ``field`` (for listings)."""
        return f"step {self.step!r}, {self.field}" if self.step is not None else self.field


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """The migrated ``config`` (a new dict; the input is never changed) and the report.

    ``changes`` lists what was rewritten: it is empty when the input needed nothing, so
    migrating a migrated config gives ``changes == []`` and the same config. ``notes``
    lists what was left as it is but needs attention (fields otpy does not know, step
    types it lacks); they are repeated on every run because they are still true.
    """

    config: dict[str, Any]
    changes: list[Change]
    notes: list[Change] = field(default_factory=list)
    pipeline_ex: bool = False
    """Whether the input was a pipeline_ex workflow document (``workflow:`` at the root)."""

    @property
    def inert(self) -> list[Change]:
        """The fields otpy ignores or that have no effect yet (warning-level notes)."""
        return [note for note in self.notes if note.level == "warning"]

    def warning(self, label: str) -> str | None:
        """The one warning a run of this document gives about its inert fields (None if
        there are none): how many, and each field with what otpy does instead."""
        inert = self.inert
        if not inert:
            return None
        count = f"{len(inert)} field{'s' if len(inert) != 1 else ''}"
        verb = "has" if len(inert) == 1 else "have"
        lines = [f"{label}: {count} of this document {verb} no effect in otpy:"]
        lines += [f"  {note}" for note in inert]
        return "\n".join(lines)

    @property
    def changed(self) -> bool:
        """Whether anything was rewritten."""
        return bool(self.changes)

    @property
    def errors(self) -> list[Change]:
        """The error-level entries of ``changes`` and ``notes``."""
        return [c for c in (*self.changes, *self.notes) if c.level == "error"]

    def report(self) -> str:
        """Every change and note, one per line (empty if there are none)."""
        return "\n".join(str(c) for c in (*self.changes, *self.notes))


class Recorder:
    """Collects the changes and notes of one migration, and names steps in errors."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.notes: list[Change] = []

    def change(
        self,
        step: str | None,
        field: str,
        old: Any,
        new: Any,
        note: str,
        level: Level = "info",
    ) -> None:
        self.changes.append(Change(step, field, old, new, note, level))

    def note(self, step: str | None, field: str, value: Any, note: str, level: Level) -> None:
        self.notes.append(Change(step, field, value, value, note, level))

    @staticmethod
    def invalid(step: str | None, field: str | None, message: str) -> StepValidationError:
        return StepValidationError(message, step=step, field=field)
