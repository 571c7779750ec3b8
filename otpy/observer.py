"""``otpy.observer``: a typed snapshot of a whole supervision tree, as Erlang's observer.

::

    import otpy, otpy.observer

    with otpy.start() as rt:
        snapshot = otpy.observer.tree(rt)          # or a supervisor ref, or a name
        print("\\n".join(snapshot.render()))
        json.dumps(snapshot.to_dict())             # what the web layer serves

Each supervisor is read in its own thread between two messages (a system request, ahead
of the Down messages a crash storm queues), so its flags and children come from one
moment; each child's mailbox, suspended flag and current message are read without a
message. A sub-supervisor that exits or stays busy while the tree is read is shown with
``error`` set and no children, never half. Nothing here blocks on a worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from otpy.errors import CallTimeoutError, NoProcessError
from otpy.supervision.system import (
    ChildRow,
    ServerStatus,
    id_text,
    server_ref,
    status_of,
    supervisor_view,
)

__all__ = ["ChildNode", "SupervisorNode", "Tree", "tree"]

TIMEOUT = 5.0


class _Plain:
    """``to_dict()`` for the frozen dataclasses below: nested nodes become dicts."""

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON-ready values (nested nodes as dicts)."""
        out: dict[str, Any] = {}
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, _Plain):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, _Plain) else v for v in value]
            out[field.name] = value
        return out


@dataclass(frozen=True, slots=True)
class ChildNode(_Plain):
    """One child as its supervisor sees it: ``state`` running / restarting / terminated,
    ``restarts`` of its slot; the process fields (``name``, ``module``, ``mailbox``,
    ``suspended``, ``handling``, ``handled``) are None unless it is running. A running
    supervisor child has its ``supervisor`` node (or ``error`` saying why not)."""

    id: str
    kind: str
    restart: str
    state: str
    restarts: int
    alive: bool
    name: str | None = None
    module: str | None = None
    mailbox: int | None = None
    suspended: bool | None = None
    handling: str | None = None
    handled: int | None = None
    supervisor: SupervisorNode | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SupervisorNode(_Plain):
    """A supervisor: its strategy, its restart intensity (``restarts_in_window`` of
    ``max_restarts`` in ``max_seconds``: the intensity used), its own mailbox and
    suspended flag, and its children in start order."""

    name: str | None
    module: str
    strategy: str
    max_restarts: int
    max_seconds: float
    restarts_in_window: int
    mailbox: int
    suspended: bool
    children: tuple[ChildNode, ...]


@dataclass(frozen=True, slots=True)
class Tree(_Plain):
    """A snapshot: ``taken_at`` (epoch seconds), how long it took (``duration``), the
    ``root`` supervisor node."""

    taken_at: float
    duration: float
    root: SupervisorNode

    def nodes(self) -> list[SupervisorNode]:
        """Every supervisor node, depth first from the root."""
        found: list[SupervisorNode] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(c.supervisor for c in reversed(node.children) if c.supervisor)
        return found

    def render(self) -> list[str]:
        """The tree as indented text lines (what ``otpy observe`` prints)."""
        lines = [_supervisor_line(self.root, _label(self.root.name, self.root.module))]
        _render_children(self.root, "", lines)
        return lines


def tree(root: Any, *, timeout: float | None = TIMEOUT) -> Tree:
    """Snapshot the tree under ``root``: a supervisor ref, a registered name, or a handle
    such as a ``Runtime`` (its root supervisor). ``timeout`` bounds each supervisor's
    answer. NoProcessError if ``root`` is not alive; ConfigurationError if it is no
    supervisor; ServerBusyError if the root itself stays busy."""
    started, wall = time.perf_counter(), time.time()
    ref = server_ref(root, timeout=timeout)
    node = _supervisor(ref, timeout)
    return Tree(wall, time.perf_counter() - started, node)


def _supervisor(ref: Any, timeout: float | None) -> SupervisorNode:
    view = supervisor_view(ref, timeout=timeout)
    own = status_of(ref)
    children = tuple(_child(row, timeout) for row in view.children)
    return SupervisorNode(
        own.name,
        own.module,
        view.strategy,
        view.max_restarts,
        view.max_seconds,
        view.restarts_in_window,
        own.mailbox,
        own.suspended,
        children,
    )


def _child(row: ChildRow, timeout: float | None) -> ChildNode:
    ref = row.ref
    node = ChildNode(id_text(row.id), row.type, row.restart, row.state, row.restarts, False)
    if ref is None:
        return node
    status: ServerStatus = status_of(ref)
    node = _replace(
        node,
        alive=status.alive,
        name=status.name,
        module=status.module,
        mailbox=status.mailbox,
        suspended=status.suspended,
        handling=status.handling,
        handled=status.handled,
    )
    if row.type != "supervisor" or not status.alive:
        return node
    try:
        sub = _supervisor(ref, timeout)
    except NoProcessError:
        error = "exited while the tree was read"
    except CallTimeoutError as exc:
        error = str(exc)
    else:
        return _replace(node, supervisor=sub)
    return _replace(node, alive=ref.is_alive(), error=error)


def _replace(node: ChildNode, **changes: Any) -> ChildNode:
    values = {f.name: getattr(node, f.name) for f in fields(node)}
    values.update(changes)
    return ChildNode(**values)


def _label(name: str | None, module: str) -> str:
    short = module.rsplit(".", 1)[-1]
    return f"{name} ({short})" if name else short


def _supervisor_line(node: SupervisorNode, label: str) -> str:
    flags = " suspended" if node.suspended else ""
    return (
        f"{label}  {node.strategy}  restarts {node.restarts_in_window}/{node.max_restarts}"
        f" in {node.max_seconds:g}s  mailbox {node.mailbox}{flags}"
    )


def _render_children(node: SupervisorNode, indent: str, lines: list[str]) -> None:
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        branch, more = ("`- ", "   ") if last else ("|- ", "|  ")
        head = f"{indent}{branch}{child.id}  {child.kind} {child.restart} {child.state}"
        head += f"  restarts {child.restarts}"
        if child.supervisor is not None:
            sub = child.supervisor
            lines.append(f"{head}  " + _supervisor_line(sub, _label(sub.name, sub.module)))
            _render_children(child.supervisor, indent + more, lines)
            continue
        if child.module is not None:
            head += f"  {_label(child.name, child.module)}  mailbox {child.mailbox}"
            if child.suspended:
                head += " suspended"
            if child.handling is not None:
                head += f"  handling {child.handling}"
        if child.error is not None:
            head += f"  ({child.error})"
        lines.append(head)
