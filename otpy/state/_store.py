"""``TransactionalState``: the StateProvider methods of a backend whose data lives in a
store outside the object (SQLite, Redis), written once over that store's transactions.

A backend implements :class:`Transaction` (look records up, stage changes) and runs
bodies in transactions: ``_reading`` for reads, ``_write`` for writes (commit or nothing;
a backend with optimistic concurrency runs a body again from the start when another
writer got there first, so a body only reads and stages through its transaction). This
class holds what every method does inside them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from otpy.clock import Clock
from otpy.errors import VariableExistsError, VariableNotFound
from otpy.state._export import build_export, parse_export
from otpy.state._provider import StateProvider
from otpy.state._records import (
    changes_between,
    check_identifier,
    check_metadata,
    check_updates,
    new_record,
    next_version,
    plan_batch,
)
from otpy.state._subscriptions import SubscriptionMethods, Subscriptions
from otpy.state._variable import Variable, VariableChange

__all__ = ["Transaction", "TransactionalState", "WriteBody"]

T = TypeVar("T")


class Transaction(ABC):
    """One transaction on a session's records: reads see one state of the store, staged
    changes are committed together (or not at all) when the body returns."""

    @abstractmethod
    def find(self, key: str) -> Variable | None:
        """The variable named ``key`` (if it is a valid name), else of id ``key``."""

    @abstractmethod
    def find_many(self, keys: Sequence[str]) -> dict[str, Variable]:
        """The variables of ``keys`` that exist, each under its id and under its name."""

    @abstractmethod
    def all(self) -> list[Variable]:
        """Every variable of the session, in registration order."""

    @abstractmethod
    def session(self) -> tuple[dict[str, Any], float]:
        """The session's metadata (a fresh dict) and creation time."""

    @abstractmethod
    def insert(self, record: Variable) -> None:
        """Stage a new variable (its name is free: the body looked it up)."""

    @abstractmethod
    def update(self, pairs: Sequence[tuple[Variable, Variable]]) -> None:
        """Stage ``(old, new)`` replacements of records the body read."""

    @abstractmethod
    def delete(self, record: Variable) -> None:
        """Stage the removal of a record the body read."""

    @abstractmethod
    def replace(self, records: Sequence[Variable], metadata: Mapping[str, Any]) -> None:
        """Stage replacing every variable (read with ``all``) and the session metadata."""


WriteBody = Callable[[Transaction, list[VariableChange]], T]
"""A write: reads and stages through the transaction, appends the changes it makes."""


class TransactionalState(SubscriptionMethods, StateProvider):
    """The StateProvider methods in terms of a backend's transactions.

    A subclass sets ``_session_id``, ``_clock`` and ``_subscriptions`` and implements
    ``_check_open``, ``_reading`` and ``_write`` (which also delivers the changes to the
    subscribers, after the commit and outside any lock), and the lifecycle methods.
    """

    _session_id: str
    _clock: Clock
    _subscriptions: Subscriptions

    @property
    def session_id(self) -> str:
        return self._session_id

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def _check_open(self) -> None:
        """Raise StateError (``closed_error``) after ``cleanup()``."""

    @abstractmethod
    def _reading(self, snapshot: bool = True) -> AbstractContextManager[Transaction]:
        """A read transaction; ``snapshot=False`` for one look-up (no consistency needed
        between several reads). StateError if closed or the store fails."""

    @abstractmethod
    def _write(self, body: WriteBody[T]) -> T:
        """Run ``body`` in one write transaction, commit, deliver its changes; return what
        ``body`` returned. Whatever ``body`` raises is raised and nothing is committed."""

    # -- reads -----------------------------------------------------------------------------

    def get_variable(self, name_or_id: str) -> Variable:
        with self._reading(snapshot=False) as tx:
            record = tx.find(check_identifier(name_or_id))
        if record is None:
            raise VariableNotFound(name_or_id, self._session_id)
        return record

    def get_variables(self, names_or_ids: Iterable[str]) -> dict[str, Variable]:
        if isinstance(names_or_ids, str):
            raise TypeError("get_variables takes a list of names or ids, not one str")
        keys = [check_identifier(key) for key in names_or_ids]
        with self._reading() as tx:
            found = tx.find_many(keys)
        return {key: found[key] for key in keys if key in found}

    def list_variables(self) -> list[Variable]:
        with self._reading() as tx:
            return tx.all()

    def export_state(self) -> dict[str, Any]:
        with self._reading() as tx:
            records = tx.all()
            metadata, created_at = tx.session()
        return build_export(
            session_id=self._session_id,
            records=records,
            backend=type(self).__name__,
            created_at=created_at,
            exported_at=self._clock.time(),
            session_metadata=metadata,
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
        self._check_open()
        record = new_record(
            name, type, value, constraints, metadata, description, self._clock.time()
        )

        def body(tx: Transaction, changes: list[VariableChange]) -> None:
            if tx.find(record.name) is not None:
                raise VariableExistsError(record.name, self._session_id)
            tx.insert(record)
            changes.append(VariableChange.registered(record))

        self._write(body)
        return record.id

    def set_variable(
        self, name_or_id: str, value: Any, metadata: Mapping[str, Any] | None = None
    ) -> Variable:
        check_identifier(name_or_id)

        def body(tx: Transaction, changes: list[VariableChange]) -> Variable:
            old = self._found(tx, name_or_id)
            checked = check_metadata(metadata, f"variable {old.name!r}")
            new = next_version(old, value, checked, self._clock.time())
            tx.update([(old, new)])
            changes.append(VariableChange.updated(old, new))
            return new

        return self._write(body)

    def update_variables(
        self, updates: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Variable]:
        check_updates(updates)
        checked = check_metadata(metadata, "update_variables")

        def body(tx: Transaction, changes: list[VariableChange]) -> dict[str, Variable]:
            current = tx.find_many([check_identifier(key) for key in updates])
            now = self._clock.time()
            plan = plan_batch(updates, current.get, checked, now, self._session_id)
            plan.raise_if_failed()
            tx.update([(old, new) for _key, old, new in plan.planned])
            changes.extend(VariableChange.updated(old, new) for _key, old, new in plan.planned)
            return {key: new for key, _old, new in plan.planned}

        return self._write(body)

    def delete_variable(self, name_or_id: str) -> None:
        check_identifier(name_or_id)

        def body(tx: Transaction, changes: list[VariableChange]) -> None:
            old = self._found(tx, name_or_id)
            tx.delete(old)
            changes.append(VariableChange.deleted(old))

        self._write(body)

    def import_state(self, exported: Mapping[str, Any]) -> None:
        parsed = parse_export(exported)

        def body(tx: Transaction, changes: list[VariableChange]) -> None:
            old = tx.all()
            metadata, _created_at = tx.session()
            metadata["imported_from"] = parsed.session_id
            tx.replace(parsed.records, metadata)
            changes.extend(changes_between(old, parsed.records))

        self._write(body)

    def _found(self, tx: Transaction, name_or_id: str) -> Variable:
        record = tx.find(name_or_id)
        if record is None:
            raise VariableNotFound(name_or_id, self._session_id)
        return record
