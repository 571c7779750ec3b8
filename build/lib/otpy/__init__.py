"""otpy: Erlang/OTP-style supervised actors for Python, on Pykka.

The front door: everything public is importable from here. Supervision lives in
:mod:`otpy.supervision`, test helpers in :mod:`otpy.testing`.
"""

from otpy.clock import SYSTEM_CLOCK, Clock, SystemClock
from otpy.errors import (
    AlreadyPresentError,
    AlreadyStartedError,
    CallTimeoutError,
    ChildNotFoundError,
    ChildRestartingError,
    ChildRunningError,
    ChildSpecError,
    ConfigurationError,
    DuplicateChildError,
    MaxChildrenError,
    NameTakenError,
    NoProcessError,
    OtpyError,
    StartChildError,
    SupervisionError,
)
from otpy.log import SecretFilter, configure_logging
from otpy.supervision import (
    Backoff,
    ChildSpec,
    Down,
    DynamicSupervisor,
    GenServer,
    NamedHandle,
    ServerRef,
    Supervisor,
    whereis,
)

__version__ = "0.1.0"

__all__ = [
    "SYSTEM_CLOCK",
    "AlreadyPresentError",
    "AlreadyStartedError",
    "Backoff",
    "CallTimeoutError",
    "ChildNotFoundError",
    "ChildRestartingError",
    "ChildRunningError",
    "ChildSpec",
    "ChildSpecError",
    "Clock",
    "ConfigurationError",
    "Down",
    "DuplicateChildError",
    "DynamicSupervisor",
    "GenServer",
    "MaxChildrenError",
    "NameTakenError",
    "NamedHandle",
    "NoProcessError",
    "OtpyError",
    "SecretFilter",
    "ServerRef",
    "StartChildError",
    "SupervisionError",
    "Supervisor",
    "SystemClock",
    "__version__",
    "configure_logging",
    "whereis",
]
