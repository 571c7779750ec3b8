"""Variable types: which values each type takes, which constraints, and checking both.

``TYPES`` maps each type name to a small validator object. ``define`` checks a variable's
definition (type and constraints; a bad one is a :class:`ConfigurationError`), ``validate``
checks a value against it (a bad one is an :class:`InvalidValueError` naming the variable,
the value and the rule) and returns the value to store. Every stored value is JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from otpy.errors import ConfigurationError, InvalidValueError
from otpy.state._values import (
    MAX_DEPTH,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    NotJSON,
    _plain_copy,
    check_name,
    is_valid_name,
    json_copy,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "Broken",
    "NotJSON",
    "SCALAR_TYPES",
    "TYPES",
    "ValueType",
    "check_name",
    "copy_value",
    "define",
    "is_valid_name",
    "json_copy",
    "validate",
]

SCALAR_TYPES: Final = ("boolean", "float", "integer", "string")


class Broken(Exception):
    """A value breaks ``rule``; ``ValueType.validate`` turns it into InvalidValueError."""

    def __init__(self, rule: str, detail: str = "") -> None:
        super().__init__(rule, detail)
        self.rule = rule
        self.detail = detail


def _same(value: Any, choice: Any) -> bool:
    """JSON equality: True is not 1, and None equals only None."""
    return bool(
        value == choice
        and isinstance(value, bool) == isinstance(choice, bool)
        and (value is None) == (choice is None)
    )


def _choose(value: Any, choices: list[Any]) -> Any:
    for choice in choices:
        if _same(value, choice):
            return choice
    raise Broken(f"choices {choices!r}")


def _json(value: Any, rule: str) -> Any:
    try:
        return json_copy(value)
    except NotJSON as exc:
        raise Broken(rule, str(exc)) from None


def _bad(variable: str, field: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"variable {variable!r}: constraint {field!r} {why}")


def _number(variable: str, key: str, raw: Any, *, integer: bool) -> int | float:
    if integer:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _bad(variable, key, f"must be an int, got {raw!r}")
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _bad(variable, key, f"must be a finite number, got {raw!r}")
    return float(raw)


def _length(variable: str, key: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise _bad(variable, key, f"must be an int >= 0, got {raw!r}")
    return int(raw)


class ValueType:
    """One variable type: ``coerce`` checks a value's type and returns what to store (a
    private copy), ``constrain`` checks that against the constraints; both raise Broken.
    Subclasses fill the class attributes; ``allowed`` lists the constraint keys."""

    name: ClassVar[str]
    allowed: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    copies: ClassVar[bool] = False
    """Values are mutable containers: stores copy them on the way in and out."""

    def coerce(self, value: Any) -> Any:
        raise NotImplementedError

    def constrain(self, value: Any, constraints: Mapping[str, Any]) -> Any:
        return value

    def validate(self, variable: str, value: Any, constraints: Mapping[str, Any]) -> Any:
        """The value to store, or InvalidValueError naming the variable, value and rule."""
        try:
            return self.constrain(self.coerce(value), constraints)
        except Broken as exc:
            raise InvalidValueError(variable, value, exc.rule, exc.detail) from None

    def define(self, variable: str, constraints: object) -> dict[str, Any]:
        """Normalised constraints, or ConfigurationError naming the bad field."""
        if not isinstance(constraints, Mapping):
            raise ConfigurationError(
                f"variable {variable!r}: field 'constraints' must be a dict, got {constraints!r}"
            )
        unknown = sorted(repr(key) for key in constraints if key not in self.allowed)
        if unknown:
            raise ConfigurationError(
                f"variable {variable!r}: constraint(s) {', '.join(unknown)} not allowed for "
                f"type {self.name!r}; allowed: {', '.join(self.allowed) or 'none'}"
            )
        for key in self.required:
            if key not in constraints:
                raise _bad(variable, key, f"is required for type {self.name!r}")
        defined = {key: self.define_one(variable, key, constraints[key]) for key in constraints}
        for low, high in (("min", "max"), ("min_length", "max_length")):
            if low in defined and high in defined and defined[low] > defined[high]:
                raise _bad(
                    variable, low, f"({defined[low]!r}) is greater than {high} ({defined[high]!r})"
                )
        if "choices" in defined:
            others = {key: item for key, item in defined.items() if key != "choices"}
            for choice in defined["choices"]:
                try:
                    self.constrain(choice, others)
                except Broken as exc:
                    raise _bad(
                        variable, "choices", f"holds {choice!r}, which breaks {exc.rule}"
                    ) from None
        return defined

    def define_one(self, variable: str, key: str, raw: Any) -> Any:
        if key in ("min", "max"):
            return _number(variable, key, raw, integer=self.name == "integer")
        if key in ("min_length", "max_length"):
            return _length(variable, key, raw)
        if key == "choices":
            if not isinstance(raw, list | tuple) or not raw:
                raise _bad(variable, key, f"must be a non-empty list, got {raw!r}")
            checked = []
            for item in raw:
                try:
                    checked.append(self.coerce(item))
                except Broken as exc:
                    raise _bad(variable, key, f"holds {item!r}, which breaks {exc.rule}") from None
            return checked
        raise AssertionError(key)  # pragma: no cover - every allowed key is handled

    def __repr__(self) -> str:
        return f"<variable type {self.name!r}>"


def _check_range(value: Any, constraints: Mapping[str, Any]) -> None:
    low = constraints.get("min")
    if low is not None and value < low:
        raise Broken(f"min {low!r}")
    high = constraints.get("max")
    if high is not None and value > high:
        raise Broken(f"max {high!r}")


def _check_length(value: Any, constraints: Mapping[str, Any]) -> None:
    low = constraints.get("min_length")
    if low is not None and len(value) < low:
        raise Broken(f"min_length {low!r}", f"length {len(value)}")
    high = constraints.get("max_length")
    if high is not None and len(value) > high:
        raise Broken(f"max_length {high!r}", f"length {len(value)}")


class FloatType(ValueType):
    name = "float"
    allowed = ("min", "max", "choices")

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Broken("type float")
        if not math.isfinite(value):
            raise Broken("type float", "not a finite number")
        return float(value)

    def constrain(self, value: Any, constraints: Mapping[str, Any]) -> Any:
        _check_range(value, constraints)
        if "choices" in constraints:
            _choose(value, constraints["choices"])
        return value


class IntegerType(FloatType):
    name = "integer"

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Broken("type integer")
        return int.__int__(value)


class StringType(ValueType):
    name = "string"
    allowed = ("min_length", "max_length", "pattern", "choices")

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise Broken("type string")
        return str.__str__(value)

    def define_one(self, variable: str, key: str, raw: Any) -> Any:
        if key != "pattern":
            return super().define_one(variable, key, raw)
        if not isinstance(raw, str):
            raise _bad(variable, key, f"must be a regular expression (str), got {raw!r}")
        try:
            re.compile(raw)
        except re.error as exc:
            raise _bad(variable, key, f"{raw!r} is not a valid regular expression: {exc}") from None
        return raw

    def constrain(self, value: Any, constraints: Mapping[str, Any]) -> Any:
        _check_length(value, constraints)
        pattern = constraints.get("pattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise Broken(f"pattern {pattern}")
        if "choices" in constraints:
            _choose(value, constraints["choices"])
        return value


class BooleanType(ValueType):
    name = "boolean"

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise Broken("type boolean")
        return bool(value)


class ChoiceType(ValueType):
    name = "choice"
    allowed = ("choices",)
    required = ("choices",)

    def coerce(self, value: Any) -> Any:
        if value is not None and not isinstance(value, str | int | float):
            raise Broken("type choice", "a choice is a JSON scalar")
        return _json(value, "type choice")

    def constrain(self, value: Any, constraints: Mapping[str, Any]) -> Any:
        if "choices" in constraints:  # always, once defined; a choice is stored as listed
            return _choose(value, constraints["choices"])
        return value


class ListType(ValueType):
    name = "list"
    allowed = ("min_length", "max_length", "item_type")
    copies = True

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise Broken("type list")
        return _json(value, "type list")

    def define_one(self, variable: str, key: str, raw: Any) -> Any:
        if key != "item_type":
            return super().define_one(variable, key, raw)
        if raw not in SCALAR_TYPES:
            raise _bad(variable, key, f"must be one of {', '.join(SCALAR_TYPES)}, got {raw!r}")
        return raw

    def constrain(self, value: Any, constraints: Mapping[str, Any]) -> Any:
        _check_length(value, constraints)
        item_type = constraints.get("item_type")
        if item_type is not None:
            checker = TYPES[item_type]
            for i, item in enumerate(value):
                try:
                    value[i] = checker.coerce(item)
                except Broken:
                    raise Broken(
                        f"item_type {item_type}", f"item [{i}] {item!r} is not of type {item_type}"
                    ) from None
        return value


class JsonType(ValueType):
    name = "json"
    copies = True

    def coerce(self, value: Any) -> Any:
        return _json(value, "type json")


TYPES: Final[Mapping[str, ValueType]] = {
    vtype.name: vtype
    for vtype in (
        BooleanType(),
        ChoiceType(),
        FloatType(),
        IntegerType(),
        JsonType(),
        ListType(),
        StringType(),
    )
}
"""Every variable type by name."""


def define(variable: str, type_name: object, constraints: object) -> dict[str, Any]:
    """Check a definition; return its normalised constraints (ConfigurationError if bad)."""
    if not isinstance(type_name, str) or type_name not in TYPES:
        raise ConfigurationError(
            f"variable {variable!r}: unknown type {type_name!r} in field 'type'; "
            f"allowed: {', '.join(TYPES)}"
        )
    return TYPES[type_name].define(variable, {} if constraints is None else constraints)


def validate(variable: str, type_name: str, value: Any, constraints: Mapping[str, Any]) -> Any:
    """The value to store for a defined variable (a private copy), or InvalidValueError."""
    return TYPES[type_name].validate(variable, value, constraints)


def copy_value(type_name: str, value: Any) -> Any:
    """``value`` itself for scalar types; a deep copy for ``list`` and ``json``."""
    return _plain_copy(value) if TYPES[type_name].copies else value
