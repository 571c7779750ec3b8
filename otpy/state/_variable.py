"""The records a state store hands out: ``Variable`` and ``VariableChange``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from otpy.errors import ConfigurationError, InvalidValueError, StateError
from otpy.state._types import NotJSON, copy_value, define, is_valid_name, json_copy, validate

__all__ = [
    "FIELDS",
    "ChangeKind",
    "FrozenDict",
    "FrozenList",
    "Variable",
    "VariableChange",
    "freeze",
]

ChangeKind = Literal["registered", "updated", "deleted"]


def _read_only(self: object, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(
        f"{type(self).__name__} is read-only: a Variable's constraints and metadata never "
        "change in place (pass metadata to set_variable to change them)"
    )


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes; equal to (and JSON-encoded as) a plain dict."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: object) -> FrozenDict:
        return self


class FrozenList(list[Any]):
    """A list that refuses changes; equal to (and JSON-encoded as) a plain list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = clear = extend = insert = pop = remove = reverse = sort = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: object) -> FrozenList:
        return self


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON value (dicts and lists frozen; itself if frozen)."""
    if isinstance(value, FrozenDict | FrozenList):
        return value
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_thaw(item) for item in value]
    return value


FIELDS = (
    "id", "name", "type", "value", "constraints", "metadata", "description", "version",
    "created_at", "updated_at",
)  # fmt: skip
"""A variable's fields, in the order records and exports list them."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable of a session, as a store returned it: an immutable snapshot.

    ``version`` is 1 at registration and grows by one with every change; ``created_at``
    and ``updated_at`` are epoch seconds of the store's clock. ``constraints`` and
    ``metadata`` are read-only dicts. A ``list`` or ``json`` value is the caller's own
    copy: changing it changes nothing in the store until it is passed to ``set_variable``.
    """

    id: str
    name: str
    type: str
    value: Any
    constraints: dict[str, Any]
    metadata: dict[str, Any]
    description: str
    version: int
    created_at: float
    updated_at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "constraints", freeze(self.constraints))
        object.__setattr__(self, "metadata", freeze(self.metadata))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-serialisable data (the form ``export_state`` uses)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "value": _thaw(self.value),
            "constraints": _thaw(self.constraints),
            "metadata": _thaw(self.metadata),
            "description": self.description,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variable:
        """The variable ``to_dict`` described, checked field by field.

        Raises StateError naming the field (and variable) when a field is missing, has the
        wrong type, or the value breaks the variable's own type or constraints.
        """
        if not isinstance(data, Mapping):
            raise StateError(f"a variable must be a dict, got {type(data).__name__}")
        missing = [key for key in FIELDS if key not in data]
        if missing:
            raise StateError(f"variable {data.get('name')!r}: missing field(s) {missing}")
        name = data["name"]
        if not is_valid_name(name):
            raise StateError(f"variable {name!r}: field 'name' is not a valid variable name")
        _check(name, "id", data["id"], isinstance(data["id"], str) and data["id"] != "")
        _check(name, "id", data["id"], not is_valid_name(data["id"]), "must not look like a name")
        description, version = data["description"], data["version"]
        _check(name, "description", description, isinstance(description, str))
        _check(
            name,
            "version",
            version,
            isinstance(version, int) and not isinstance(version, bool) and version >= 1,
        )
        for stamp in ("created_at", "updated_at"):
            moment = data[stamp]
            _check(
                name,
                stamp,
                moment,
                isinstance(moment, int | float)
                and not isinstance(moment, bool)
                and math.isfinite(moment),
            )
        _check(name, "metadata", data["metadata"], isinstance(data["metadata"], Mapping))
        try:
            metadata = json_copy(dict(data["metadata"]))
        except NotJSON as exc:
            raise StateError(
                f"variable {name!r}: field 'metadata' is not JSON data ({exc})"
            ) from None
        try:
            constraints = define(name, data["type"], data["constraints"])
            value = validate(name, data["type"], data["value"], constraints)
        except (ConfigurationError, InvalidValueError) as exc:
            raise StateError(f"variable {name!r}: {exc}") from exc
        return cls(
            id=data["id"],
            name=name,
            type=data["type"],
            value=value,
            constraints=constraints,
            metadata=metadata,
            description=description,
            version=int(version),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
        )


def _check(name: str, field: str, value: Any, ok: bool, why: str = "has the wrong type") -> None:
    if not ok:
        raise StateError(f"variable {name!r}: field {field!r} {why}: {value!r}")


@dataclass(frozen=True, slots=True)
class VariableChange:
    """What a subscriber receives after a change was committed.

    ``kind`` is ``"registered"`` (``old_value`` None), ``"updated"`` or ``"deleted"``
    (``new_value`` None); ``version`` and ``metadata`` are the variable's after the change
    (its last ones for a deletion). One change object goes to every matching subscriber:
    do not mutate its values.
    """

    kind: ChangeKind
    name: str
    id: str
    old_value: Any
    new_value: Any
    version: int
    metadata: dict[str, Any]

    @classmethod
    def registered(cls, new: Variable) -> VariableChange:
        value = copy_value(new.type, new.value)
        return cls("registered", new.name, new.id, None, value, new.version, new.metadata)

    @classmethod
    def updated(cls, old: Variable, new: Variable) -> VariableChange:
        before, after = copy_value(old.type, old.value), copy_value(new.type, new.value)
        return cls("updated", new.name, new.id, before, after, new.version, new.metadata)

    @classmethod
    def deleted(cls, old: Variable) -> VariableChange:
        value = copy_value(old.type, old.value)
        return cls("deleted", old.name, old.id, value, None, old.version, old.metadata)
