"""Erlang/OTP supervision on Pykka: GenServers, supervisors, monitors and named actors.

Knows nothing of LLMs; imports only pykka, ``otpy.errors`` and ``otpy.clock``.
"""

from ._base import is_supervisor
from ._child import ChildCounts, ChildInfo, ChildState, SupervisorStats
from ._dynamic import DynamicSupervisor, DynamicSupervisorRef
from ._events import SupervisorEvent, SupervisorEventSink, add_event_sink, remove_event_sink
from ._exit import KILLED, NOPROC, NORMAL, SHUTDOWN, ExitReason, is_abnormal
from ._genserver import GenServer
from ._handle import NamedHandle, call, cast
from ._names import register, registered, unregister, whereis
from ._policy import Backoff, RestartIntensity, should_restart
from ._ref import Down, Monitor, ServerRef, ServerStats, handled_count
from ._spec import ChildSpec
from ._supervisor import Supervisor, SupervisorRef

__all__ = [
    "KILLED",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildState",
    "Down",
    "DynamicSupervisor",
    "DynamicSupervisorRef",
    "ExitReason",
    "GenServer",
    "Monitor",
    "NamedHandle",
    "RestartIntensity",
    "ServerRef",
    "ServerStats",
    "Supervisor",
    "SupervisorRef",
    "SupervisorEvent",
    "SupervisorEventSink",
    "SupervisorStats",
    "add_event_sink",
    "call",
    "cast",
    "handled_count",
    "is_supervisor",
    "is_abnormal",
    "register",
    "registered",
    "remove_event_sink",
    "should_restart",
    "unregister",
    "whereis",
]
