"""Small argument checks shared across otpy's modules."""

from __future__ import annotations

import math
from typing import TypeGuard

import pydantic

__all__ = ["is_finite_number", "validation_problems"]


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float that is not a bool (``True`` is an int to Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validation_problems(
    exc: pydantic.ValidationError, *, prefix: str = "", empty: str = "(top level)"
) -> str:
    """Every error of ``exc`` as ``<prefix><dotted.field>: <message>``, joined by ``; ``
    (``empty`` stands for the field of an error about the whole model)."""
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in err['loc']) or empty}: {err['msg']}"
        for err in exc.errors()
    )
