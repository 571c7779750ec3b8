"""The step table: registered step types as an immutable value, and the checks around it.

Plain, thread-free logic. The StepRegistry actor builds a new :class:`StepTable` on each
write (:func:`make_entry`, :meth:`StepTable.with_entry`, :meth:`StepTable.without`) and
publishes it; readers in any thread use the published table (``get``, ``list``,
:func:`validate_step`) without a lock, because nothing in a table ever changes.
"""

from __future__ import annotations

import builtins
import difflib
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

import pydantic

from otpy.errors import (
    ConfigurationError,
    DuplicateStepError,
    StepValidationError,
    UnknownStepError,
)
from otpy.steps._base import Step, StepMetadata

__all__ = ["NAME_PATTERN", "StepEntry", "StepTable", "StepValidator", "make_entry", "validate_step"]

StepValidator: TypeAlias = Callable[[dict[str, Any]], Mapping[str, Any] | None]
"""Extra check of a step config after ``step_cls.validate``: gets the validated dict and
returns a new mapping, or None to keep the dict as it is. Raise StepValidationError to
reject it; any other exception is reported as one."""

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
"""What a step type name looks like (the whole name must match)."""

SUGGESTION_CUTOFF = 0.6


@dataclass(frozen=True, slots=True)
class StepEntry:
    """One registered step type: its ``name``, class, optional extra ``validator``, its
    ``metadata`` and when it was registered (``registered_at``, the registry clock's epoch
    seconds). Run it with ``entry.step_cls().execute(config, context)``."""

    name: str
    step_cls: type[Step]
    validator: StepValidator | None
    metadata: StepMetadata
    registered_at: float


def make_entry(
    name: object,
    step_cls: object,
    validator: object = None,
    metadata: object = None,
    *,
    registered_at: float,
) -> StepEntry:
    """Check the arguments of ``register_step`` and build the entry.

    Raises ConfigurationError naming what is wrong: a name that is not a non-empty str
    matching :data:`NAME_PATTERN`, a ``step_cls`` that is not a concrete Step subclass, a
    validator that is not callable, metadata that is not None / StepMetadata / a dict of
    valid StepMetadata fields. ``metadata=None`` takes ``step_cls.metadata``.
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ConfigurationError(
            f"step type name {name!r} is invalid: it must be a str of letters, digits, "
            "'_', '.' or '-' that starts with a letter or '_'"
        )
    if not (isinstance(step_cls, type) and issubclass(step_cls, Step)):
        kind = "an instance" if isinstance(step_cls, Step) else "not a Step subclass"
        raise ConfigurationError(
            f"step type {name!r}: step_cls must be a subclass of otpy.steps.Step (the class "
            f"itself), got {step_cls!r} ({kind})"
        )
    abstract = sorted(getattr(step_cls, "__abstractmethods__", ()))
    if abstract:
        raise ConfigurationError(
            f"step type {name!r}: {step_cls.__qualname__} does not implement "
            f"{', '.join(abstract)} (still abstract)"
        )
    if validator is not None and not callable(validator):
        raise ConfigurationError(
            f"step type {name!r}: validator must be callable or None, got {validator!r}"
        )
    return StepEntry(
        name=name,
        step_cls=step_cls,
        validator=validator,
        metadata=_metadata(name, step_cls, metadata),
        registered_at=registered_at,
    )


def _metadata(name: str, step_cls: type[Step], metadata: object) -> StepMetadata:
    source = "metadata"
    if metadata is None:
        metadata = step_cls.metadata
        source = f"{step_cls.__qualname__}.metadata"
    if isinstance(metadata, StepMetadata):
        return metadata
    if not isinstance(metadata, Mapping):
        raise ConfigurationError(
            f"step type {name!r}: {source} must be a StepMetadata, a dict or None, got {metadata!r}"
        )
    try:
        return StepMetadata.model_validate(dict(metadata))
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "metadata"
        raise ConfigurationError(
            f"step type {name!r}: {source} field {field!r}: {error['msg']}"
        ) from exc


class StepTable:
    """An immutable set of step entries by name, with the names sorted.

    Every write makes a new table (``with_entry``, ``without``); the old one stays valid
    for whoever still reads it. ``get(name)`` is the hot path: a bound ``dict.get``
    (None if absent). Safe to read from any number of threads at once.
    """

    __slots__ = ("_by_capability", "_entries", "entries", "get", "names")

    _entries: dict[str, StepEntry]
    _by_capability: Mapping[str, tuple[str, ...]]
    get: Callable[[str], StepEntry | None]
    """The entry registered under a name, or None."""
    entries: Mapping[str, StepEntry]
    """Read-only view name -> entry."""
    names: tuple[str, ...]
    """Every registered name, sorted."""

    def __init__(self, entries: Mapping[str, StepEntry] | None = None) -> None:
        """A table of ``entries`` (name -> entry; each key must be its entry's name)."""
        table = dict(entries or {})
        for key, entry in table.items():
            if not isinstance(entry, StepEntry) or entry.name != key:
                raise ConfigurationError(f"step table key {key!r} does not hold its entry")
        index: dict[str, builtins.list[str]] = {}
        for name in sorted(table):
            for capability in table[name].metadata.capabilities:
                index.setdefault(capability, []).append(name)
        self._init(table, tuple(sorted(table)), {c: tuple(n) for c, n in index.items()})

    @classmethod
    def _make(
        cls,
        entries: dict[str, StepEntry],
        names: tuple[str, ...],
        by_capability: dict[str, tuple[str, ...]],
    ) -> StepTable:
        table = cls.__new__(cls)
        table._init(entries, names, by_capability)
        return table

    def _init(
        self,
        entries: dict[str, StepEntry],
        names: tuple[str, ...],
        by_capability: dict[str, tuple[str, ...]],
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_entries", entries)  # never changed once built
        setattr_(self, "entries", MappingProxyType(entries))
        setattr_(self, "get", entries.get)
        setattr_(self, "names", names)
        setattr_(self, "_by_capability", MappingProxyType(by_capability))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"StepTable is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"StepTable is immutable (cannot delete {name!r})")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        return f"StepTable({len(self.names)} step types)"

    def with_entry(self, entry: StepEntry, *, replace: bool = False) -> StepTable:
        """A new table with ``entry`` added (or swapped in, with ``replace``).

        Raises DuplicateStepError if the name is taken and ``replace`` is false.
        Costs one copy of the name index and of the entries dict (O(n)).
        """
        name = entry.name
        old = self._entries.get(name)
        if old is not None and not replace:
            raise DuplicateStepError(name)
        entries = dict(self._entries)
        entries[name] = entry
        names = self.names if old is not None else _insert(self.names, name)
        index = dict(self._by_capability)
        if old is not None:
            for capability in old.metadata.capabilities:
                _index_remove(index, capability, name)
        for capability in entry.metadata.capabilities:
            index[capability] = _insert(index.get(capability, ()), name)
        return StepTable._make(entries, names, index)

    def without(self, name: str) -> StepTable:
        """A new table without ``name`` (this table itself if there is no such name)."""
        old = self._entries.get(name)
        if old is None:
            return self
        entries = dict(self._entries)
        del entries[name]
        index = dict(self._by_capability)
        for capability in old.metadata.capabilities:
            _index_remove(index, capability, name)
        return StepTable._make(entries, _remove(self.names, name), index)

    def list(self, capability: str | None = None) -> builtins.list[StepEntry]:
        """Every entry, or those whose metadata lists ``capability``, sorted by name."""
        entries = self._entries
        names = self.names if capability is None else self._by_capability.get(capability, ())
        return [entries[name] for name in names]

    def capabilities(self) -> tuple[str, ...]:
        """Every capability some registered step type declares, sorted."""
        return tuple(sorted(self._by_capability))

    def closest(self, name: object) -> str | None:
        """The registered name most like ``name`` (a case-insensitive match first, then
        ``difflib.get_close_matches`` with cutoff 0.6), or None."""
        if not isinstance(name, str) or not self.names:
            return None
        folded = name.casefold()
        for known in self.names:
            if known.casefold() == folded:
                return known
        matches = difflib.get_close_matches(name, self.names, n=1, cutoff=SUGGESTION_CUTOFF)
        return matches[0] if matches else None

    def unknown(self, name: object) -> UnknownStepError:
        """The UnknownStepError for a lookup of ``name``: the known names and a suggestion."""
        return UnknownStepError(str(name), self.names, self.closest(name))

    def require(self, name: str) -> StepEntry:
        """The entry registered under ``name``; UnknownStepError (with a suggestion) if none."""
        try:
            entry = self.get(name)
        except TypeError:  # unhashable: no such step either
            entry = None
        if entry is None:
            raise self.unknown(name)
        return entry


def validate_step(table: StepTable, config: object) -> dict[str, Any]:
    """Validate a step config against ``table``: resolve ``config["type"]``, run the step
    class's ``validate``, then the entry's validator; returns the validated dict.

    Runs in the caller's thread. Raises StepValidationError naming the step (its
    ``name``, else its type) and the field; UnknownStepError for an unknown type. A
    ``validate`` or validator that raises anything but a StepValidationError is reported
    as a StepValidationError chained to what it raised.
    """
    if not isinstance(config, Mapping):
        raise StepValidationError(f"a step config must be a mapping, got {config!r}")
    label = config.get("name")
    step_type = config.get("type")
    if not isinstance(step_type, str) or not step_type:
        raise StepValidationError(
            f"needs a 'type' naming a registered step type, got {step_type!r}",
            step=None if label is None else str(label),
            field="type",
        )
    entry = table.require(step_type)
    step = str(label) if label is not None else step_type
    what = f"validate() of step type {step_type!r}"
    validated = _checked(step, what, entry.step_cls.validate, config)
    if validated is None:
        raise StepValidationError(f"{what} returned None, not the validated config", step=step)
    if entry.validator is not None:
        what = f"validator of step type {step_type!r}"
        changed = _checked(step, what, entry.validator, validated)
        if changed is not None:
            validated = changed
    return validated


def _checked(
    step: str, what: str, check: Callable[[Any], Any], config: Any
) -> dict[str, Any] | None:
    """``check(config)`` as a dict (None if it returned None); its non-validation errors
    and a result that is not a mapping become StepValidationError."""
    try:
        result = check(config)
    except StepValidationError:
        raise
    except Exception as exc:
        raise StepValidationError(f"{what} raised {type(exc).__name__}: {exc}", step=step) from exc
    if result is None:
        return None
    if not isinstance(result, Mapping):
        raise StepValidationError(
            f"{what} returned {type(result).__name__}, not a mapping or None", step=step
        )
    return dict(result)


def _insert(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    at = bisect_left(names, name)
    return names[:at] + (name,) + names[at:]  # noqa: RUF005 - faster than unpacking


def _remove(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    at = bisect_left(names, name)
    return names[:at] + names[at + 1 :]


def _index_remove(index: dict[str, tuple[str, ...]], capability: str, name: str) -> None:
    left = _remove(index[capability], name)
    if left:
        index[capability] = left
    else:
        del index[capability]
