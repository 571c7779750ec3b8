"""``LocalState``: a session's variables in this process's memory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import VariableExistsError, VariableNotFound
from otpy.state._export import build_export, parse_export
from otpy.state._provider import StateProvider
from otpy.state._records import (
    changes_between,
    check_identifier,
    check_metadata,
    check_session_id,
    closed_error,
    new_record,
    next_version,
    plan_batch,
    public,
)
from otpy.state._subscriptions import SubscriptionMethods, Subscriptions
from otpy.state._types import TYPES
from otpy.state._variable import Variable, VariableChange

__all__ = ["LocalState"]

_COPIED = frozenset(name for name, vtype in TYPES.items() if vtype.copies)

# A cell holds a variable's current record; its id and its name both map to the same cell,
# so a write replaces the record for both keys in one store and a read is one dict lookup.
_Cell = list[Variable]


class LocalState(SubscriptionMethods, StateProvider):
    """Variables in process memory; gone with the process (or ``cleanup()``).

    Writes take an ``RLock``; ``get_variable`` reads without it (records are immutable and
    replaced in one step), the multi-variable reads take it for a consistent snapshot.
    Capabilities: atomic updates and in-process streaming; no persistence, no distribution.
    """

    requires_bridge: ClassVar[bool] = False

    def __init__(self, session_id: str | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._session_id = check_session_id(session_id)
        self._clock = clock
        self._lock = threading.RLock()
        self._subscriptions = Subscriptions()
        self._open = False
        self._cells: dict[str, _Cell] = {}
        self._order: dict[str, _Cell] = {}
        self._session_metadata: dict[str, Any] = {}
        self._created_at = 0.0
        self.init()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"LocalState(session_id={self._session_id!r}, {len(self._order)} variables, {state})"

    @property
    def session_id(self) -> str:
        return self._session_id

    def init(self) -> None:
        with self._lock:
            if self._open:
                return
            self._cells, self._order, self._session_metadata = {}, {}, {}
            self._created_at = self._clock.time()
            self._open = True

    def cleanup(self) -> None:
        with self._lock:
            self._open = False
            self._cells, self._order, self._session_metadata = {}, {}, {}
            self._subscriptions.clear()

    def capabilities(self) -> dict[str, bool]:
        self._check_open()
        return {
            "atomic_updates": True,
            "streaming": True,
            "persistence": False,
            "distribution": False,
        }

    # -- reads -----------------------------------------------------------------------------

    def get_variable(self, name_or_id: str) -> Variable:
        try:
            record = self._cells[name_or_id][0]
        except (KeyError, TypeError):
            self._missing(name_or_id)
        return public(record) if record.type in _COPIED else record

    def get_variables(self, names_or_ids: Iterable[str]) -> dict[str, Variable]:
        if isinstance(names_or_ids, str):
            raise TypeError("get_variables takes a list of names or ids, not one str")
        with self._lock:
            self._check_open()
            found = {}
            for key in names_or_ids:
                cell = self._cells.get(check_identifier(key))
                if cell is not None:
                    found[key] = public(cell[0])
            return found

    def list_variables(self) -> list[Variable]:
        with self._lock:
            self._check_open()
            return [public(cell[0]) for cell in self._order.values()]

    def export_state(self) -> dict[str, Any]:
        with self._lock:
            self._check_open()
            return build_export(
                session_id=self._session_id,
                records=[cell[0] for cell in self._order.values()],
                backend=type(self).__name__,
                created_at=self._created_at,
                exported_at=self._clock.time(),
                session_metadata=self._session_metadata,
            )

    # -- writes ----------------------------------------------------------------------------

    def register_variable(
        self,
        name: str,
        type: str,
        value: Any,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> str:
        with self._lock:
            self._check_open()
            record = new_record(
                name, type, value, constraints, metadata, description, self._clock.time()
            )
            if record.name in self._cells:
                raise VariableExistsError(record.name, self._session_id)
            cell = [record]
            self._cells[record.id] = self._cells[record.name] = self._order[record.id] = cell
            self._publish(lambda: [VariableChange.registered(record)])
        self._subscriptions.dispatch()
        return record.id

    def set_variable(
        self, name_or_id: str, value: Any, metadata: Mapping[str, Any] | None = None
    ) -> Variable:
        with self._lock:
            cell = self._cell(name_or_id)
            old = cell[0]
            checked = check_metadata(metadata, f"variable {old.name!r}")
            new = cell[0] = next_version(old, value, checked, self._clock.time())
            self._publish(lambda: [VariableChange.updated(old, new)])
        self._subscriptions.dispatch()
        return public(new)

    def update_variables(
        self, updates: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Variable]:
        with self._lock:
            self._check_open()
            checked = check_metadata(metadata, "update_variables")
            plan = plan_batch(updates, self._find, checked, self._clock.time(), self._session_id)
            plan.raise_if_failed()
            for _key, _old, new in plan.planned:
                self._cells[new.id][0] = new
            self._publish(
                lambda: [VariableChange.updated(old, new) for _, old, new in plan.planned]
            )
        self._subscriptions.dispatch()
        return {key: public(new) for key, _old, new in plan.planned}

    def delete_variable(self, name_or_id: str) -> None:
        with self._lock:
            old = self._cell(name_or_id)[0]
            del self._cells[old.id], self._cells[old.name], self._order[old.id]
            self._publish(lambda: [VariableChange.deleted(old)])
        self._subscriptions.dispatch()

    def import_state(self, exported: Mapping[str, Any]) -> None:
        parsed = parse_export(exported)
        with self._lock:
            self._check_open()
            old = [cell[0] for cell in self._order.values()]
            cells: dict[str, _Cell] = {}
            order: dict[str, _Cell] = {}
            for record in parsed.records:
                cells[record.id] = cells[record.name] = order[record.id] = [record]
            self._cells, self._order = cells, order
            self._session_metadata["imported_from"] = parsed.session_id
            self._publish(lambda: changes_between(old, parsed.records))
        self._subscriptions.dispatch()

    # -- helpers ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise closed_error(self, self._session_id)

    def _missing(self, name_or_id: object) -> NoReturn:
        check_identifier(name_or_id)
        self._check_open()
        raise VariableNotFound(str(name_or_id), self._session_id)

    def _cell(self, name_or_id: str) -> _Cell:
        """The cell of a variable, under the lock; StateError if closed, else NotFound."""
        cell = self._cells.get(check_identifier(name_or_id))
        if cell is None:
            self._missing(name_or_id)
        return cell

    def _find(self, name_or_id: str) -> Variable | None:
        cell = self._cells.get(name_or_id)
        return None if cell is None else cell[0]

    def _publish(self, changes: Callable[[], Iterable[VariableChange]]) -> None:
        """Queue a commit's changes for the subscribers (inside the lock, commit order)."""
        if self._subscriptions:
            self._subscriptions.enqueue(changes())
