"""Who holds a stored job's lease: its :class:`Owner` (a runtime in a process on a host),
recorded with the lease, so that another process reading the store can say where a job
runs, and tell a lease whose process died on this host from one that is alive."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Owner", "process_token"]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time)`` of process ``pid`` from ``/proc/<pid>/stat`` (Linux);
    None where there is no such file or it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode("ascii", "replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and ")", so split after the last ")"
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    except (IndexError, ValueError):
        return None


def process_token(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), which a PID
    reused by a later process does not share; None where it is unknown."""
    stat = _proc_stat(pid)
    return stat[1] if stat is not None else None


@dataclass(frozen=True, slots=True)
class Owner:
    """The runtime that holds a job's lease: its ``runtime`` name, ``pid`` and ``host``,
    a ``token`` (:func:`process_token`) that tells the process from a later one given the
    same PID (None when unknown), and ``id``, unique to this runtime's life (two runtimes
    of one name, one after the other in a process, have different ids)."""

    runtime: str
    pid: int
    host: str
    token: int | None = None
    id: str = ""

    @classmethod
    def current(cls, runtime: str) -> Owner:
        """This process, running runtime ``runtime`` (a new ``id`` each call)."""
        pid = os.getpid()
        return cls(runtime, pid, socket.gethostname(), process_token(pid), uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "pid": self.pid,
            "host": self.host,
            "token": self.token,
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Owner:
        """The owner :meth:`to_dict` gave (KeyError, TypeError or ValueError if malformed)."""
        token = data.get("token")
        return cls(
            str(data["runtime"]),
            int(data["pid"]),
            str(data["host"]),
            None if token is None else int(token),
            str(data.get("id") or ""),
        )

    def alive(self) -> bool | None:
        """Whether the owner's process still runs: True or False on this host, None
        (unknown) on another host, or on Windows for another process (where signal 0
        would terminate it rather than probe it). A zombie, or a process that started
        at another time than ``token`` says (a reused PID), is not the owner: False."""
        if self.host != socket.gethostname():
            return None
        if sys.platform == "win32":
            return True if self.pid == os.getpid() else None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, owned by another user
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc (not Linux): the PID is all there is to go on
        state, started = stat
        if state in ("Z", "X"):
            return False  # exited, not yet reaped by its parent
        return self.token is None or self.token == started

    def describe(self) -> str:
        """``runtime NAME, pid N on HOST``."""
        return f"runtime {self.runtime}, pid {self.pid} on {self.host}"
