"""What the steps of one place in a run see.

A :class:`Frame` holds the results so far (``records``, ``status``, ``outputs``), the
run's variables, the current loop's frame and the step that ran last. The top of a run
has one; each iteration of a loop runs in a child frame (sharing the results and
variables, or — parallel iterations — its own copies).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Frame"]


@dataclass
class Frame:
    """What the steps of one place in a run see (see the module docstring)."""

    records: MutableMapping[str, Any]
    status: MutableMapping[str, str]
    outputs: MutableMapping[str, Any]
    variables: MutableMapping[str, Any]
    locals: dict[str, Any] | None = None
    loop: dict[str, Any] | None = None
    previous: str | None = None

    def child(self, values: Mapping[str, Any], *, isolated: bool) -> Frame:
        """A frame for one iteration of a loop with ``values`` as ``loop``."""
        parent = self.loop
        loop = {**values, "level": (parent or {}).get("level", -1) + 1, "parent": parent}
        if not isolated:
            return Frame(
                self.records, self.status, self.outputs, self.variables, {}, loop, self.previous
            )
        return Frame(
            ChainMap({}, self.records), ChainMap({}, self.status), ChainMap({}, self.outputs),
            ChainMap({}, self.variables), {}, loop, self.previous,
        )  # fmt: skip
