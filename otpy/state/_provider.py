"""The ``StateProvider`` behaviour: what every state backend does, method by method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from otpy.state._subscriptions import ChangeCallback
from otpy.state._variable import Variable

__all__ = ["StateProvider"]


class StateProvider(ABC):
    """A session's typed, versioned variables that survive as long as the backend keeps them.

    A backend is an object: the constructor takes an optional ``session_id`` (default: a
    fresh uuid4 hex) and a keyword ``clock`` (default ``SYSTEM_CLOCK``; timestamps are its
    ``time()``), and calls ``init()`` so the store is usable at once. Every method is safe
    to call from many threads. After ``cleanup()`` every method but ``init``/``cleanup``
    raises ``StateError`` saying the store is closed.

    Variables have a name (``^[A-Za-z_][A-Za-z0-9_.\\-/]*$``, at most 200 characters) and
    an id the store makes (never a valid name, so a lookup tries the id, then the name).
    Types: ``float``, ``integer``, ``string``, ``boolean``, ``choice``, ``list``, ``json``
    (see ``otpy.state._types``). Every value is JSON. ``list``/``json`` values are copied
    on the way in and out.

    Writing a backend: reuse ``otpy.state._records`` (checking and building records,
    planning batches, diffing imports), ``otpy.state._export`` (the export format) and
    ``otpy.state._subscriptions`` (in-process change delivery), and run
    ``otpy.testing.compliance.StateProviderCompliance`` against it.
    """

    requires_bridge: ClassVar[bool] = False
    """True if the store lives outside this process and is reached through a bridge."""

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> None:
        """Open the store (the constructor already did). Idempotent; after ``cleanup()`` it
        opens again: a persistent backend then sees its data again, others start empty."""

    @abstractmethod
    def cleanup(self) -> None:
        """Close the store: drop subscriptions, release connections. Idempotent."""

    @property
    @abstractmethod
    def session_id(self) -> str:
        """The session this store holds (its own, even after ``import_state``)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- one variable ----------------------------------------------------------------------

    @abstractmethod
    def register_variable(
        self,
        name: str,
        type: str,
        value: Any,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> str:
        """Define a variable with its initial value (version 1); return its new id.

        Raises ``ConfigurationError`` for a bad definition (name, type, a constraint not
        allowed for the type or with a bad value, non-JSON metadata), ``InvalidValueError``
        for a bad initial value, ``VariableExistsError`` if the name is taken. Subscribers
        get a ``"registered"`` change.
        """

    @abstractmethod
    def get_variable(self, name_or_id: str) -> Variable:
        """The variable with that id, else that name; ``VariableNotFound`` if none."""

    @abstractmethod
    def set_variable(
        self, name_or_id: str, value: Any, metadata: Mapping[str, Any] | None = None
    ) -> Variable:
        """Change a variable's value; return the new record.

        The value is checked against the type and constraints (``InvalidValueError``, and
        nothing changes), the version grows by one, ``updated_at`` is the clock's time and
        ``metadata`` is merged into the variable's metadata. ``VariableNotFound`` if it does
        not exist. Subscribers get an ``"updated"`` change.
        """

    @abstractmethod
    def delete_variable(self, name_or_id: str) -> None:
        """Remove a variable; ``VariableNotFound`` if none. Subscribers get ``"deleted"``."""

    # -- many variables --------------------------------------------------------------------

    @abstractmethod
    def get_variables(self, names_or_ids: Iterable[str]) -> dict[str, Variable]:
        """The variables found, keyed by the identifier as given; missing ones skipped."""

    @abstractmethod
    def update_variables(
        self, updates: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Variable]:
        """Set many variables at once; return the new records keyed as given.

        Every entry is checked first. If any fails (``VariableNotFound``,
        ``InvalidValueError``, or a variable given twice, by name and by id) it raises
        ``BatchUpdateError`` whose ``failures`` names every failed entry. With
        ``capabilities()["atomic_updates"]`` nothing was applied; without it the good
        entries were applied and are listed in ``applied``. An empty batch returns ``{}``.
        """

    @abstractmethod
    def list_variables(self) -> list[Variable]:
        """Every variable, in registration order."""

    # -- export / import -------------------------------------------------------------------

    @abstractmethod
    def export_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot in the ``"otpy.state/1"`` format (see ``_export``)."""

    @abstractmethod
    def import_state(self, exported: Mapping[str, Any]) -> None:
        """Replace this store's variables with an export's (ids, versions, timestamps kept).

        The export is checked completely first: a malformed one raises ``StateError``
        naming the field or variable and changes nothing. The replacement is atomic. The
        session id stays this store's own; the session metadata records ``imported_from``.
        Subscribers get the changes (deleted, registered, updated variables).
        """

    # -- capabilities and subscriptions ----------------------------------------------------

    @abstractmethod
    def capabilities(self) -> dict[str, bool]:
        """Exactly ``atomic_updates``, ``streaming``, ``persistence``, ``distribution``."""

    @abstractmethod
    def subscribe(self, pattern: str, callback: ChangeCallback) -> str:
        """Receive a ``VariableChange`` for every committed change of a variable whose name
        matches ``pattern`` (``fnmatch`` wildcards); returns the subscription id.

        Callbacks run after the change is committed, outside the store's lock, in commit
        order, in the writing thread (or another writer's thread that is delivering at the
        time). A callback may write to the store. A callback that raises is logged on the
        ``otpy.state`` logger; the writer never sees the error.
        """

    @abstractmethod
    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; True if it existed."""
