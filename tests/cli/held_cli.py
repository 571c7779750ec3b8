"""``otpy`` whose simulated provider holds every call after the first N, until the process
ends (tests/cli/test_cli_jobs.py: Ctrl-C while a job cannot finish).

    python tests/cli/held_cli.py N ARGS...

Registers the provider type ``held`` (a SimulatedProvider that answers the first N calls
at once, as the default one does, and holds the rest), then runs ``otpy ARGS...``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any

from otpy.__main__ import main
from otpy.clock import Clock
from otpy.providers import CompletionRequest, Provider, SimulatedProvider, register_provider_type


class Held(SimulatedProvider):
    """Answers the first ``free`` calls; every later one waits for good."""

    def __init__(self, free: int, **options: Any) -> None:
        super().__init__(**options)
        self.free = free
        self.count = 0
        self.lock = threading.Lock()
        self.gate = threading.Event()  # never set: the process ends first

    def complete(self, request: CompletionRequest) -> Any:
        with self.lock:
            self.count += 1
            hold = self.count > self.free
        if hold:
            self.gate.wait()
        return super().complete(request)


def held(free: int) -> Any:
    def factory(name: str, options: Mapping[str, Any], clock: Clock) -> Provider:
        return Held(free, name=name, clock=clock, **options)

    return factory


if __name__ == "__main__":
    register_provider_type("held", held(int(sys.argv[1])))
    sys.exit(main(sys.argv[2:]))
