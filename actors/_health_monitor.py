"""The HealthMonitor GenServer: checks every provider periodically and takes unhealthy ones
out of selection until they recover (the rule is :class:`otpy.providers.HealthRule`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from otpy._checks import is_finite_number
from otpy.clock import SYSTEM_CLOCK, Clock, TimerHandle
from otpy.errors import ConfigurationError, OtpyError
from otpy.providers import HealthRule, Provider, ProviderEntry, decide
from otpy.resilience import call_with_timeout
from otpy.supervision import ChildSpec, GenServer
from otpy.telemetry import emit_safely, redact_value

from ._provider_registry import ProviderRegistryHandle

__all__ = ["HealthChange", "HealthMonitor"]

_log = logging.getLogger("otpy.providers")

_TICK = "otpy.health_monitor.tick"


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A provider the monitor took out (``healthy`` False, with ``reason``) or put back
    (``probation``: after ``recover_after`` seconds out, with its stats reset)."""

    name: str
    healthy: bool
    reason: str = ""
    probation: bool = False


def _positive(what: str, value: object, *, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if not is_finite_number(value) or value <= 0:
        raise ConfigurationError(f"HealthMonitor: {what} must be a finite number > 0: {value!r}")


class HealthMonitor(GenServer):
    """Every ``interval`` seconds of ``clock`` it checks each registered provider against
    a :class:`~otpy.providers.HealthRule` (``error_rate``, ``min_calls``, ``latency_p99``,
    ``recover_after``), and calls ``providers.set_health`` only when a provider must leave
    or may rejoin selection, emitting ``provider.unhealthy`` / ``provider.recovered``.

    A provider's ``health_check()`` (optional method; raising or returning False fails it)
    runs in the monitor's thread, bounded by ``check_timeout`` seconds. The timer is
    re-armed after each check and cancelled when the monitor stops. It re-evaluates every
    provider, so a provider marked unhealthy by hand returns once it passes the rule.
    How long each provider has been out lives in the monitor: after a restart the count
    starts again. ``check_now()`` runs a check at once (tests, operators).
    """

    def __init__(
        self,
        providers: ProviderRegistryHandle,
        *,
        interval: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        error_rate: float = 0.5,
        min_calls: int = 10,
        latency_p99: float | None = None,
        recover_after: float = 30.0,
        check_timeout: float | None = 10.0,
    ) -> None:
        super().__init__()
        _positive("interval", interval)
        _positive("check_timeout", check_timeout, none_ok=True)
        self.rule = HealthRule(error_rate, min_calls, latency_p99, recover_after)
        self.providers = providers
        self.interval = float(interval)
        self.check_timeout = check_timeout
        self._clock = clock
        self._out_since: dict[str, float] = {}
        self._checking: dict[str, threading.Event] = {}  # set once that check returned
        self._timer: TimerHandle | None = None
        self.checks = 0

    @classmethod
    def child_spec(
        cls,
        name: str,
        providers_handle: ProviderRegistryHandle,
        *,
        interval: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        error_rate: float = 0.5,
        min_calls: int = 10,
        latency_p99: float | None = None,
        recover_after: float = 30.0,
        check_timeout: float | None = 10.0,
    ) -> ChildSpec:
        """A permanent child registered as ``name`` (also its id)."""
        return ChildSpec.actor(
            cls,
            providers_handle,
            register_as=name,
            interval=interval,
            clock=clock,
            error_rate=error_rate,
            min_calls=min_calls,
            latency_p99=latency_p99,
            recover_after=recover_after,
            check_timeout=check_timeout,
        )

    # -- lifecycle and the timer ------------------------------------------------------------

    def on_start(self) -> None:
        self._arm()

    def on_stop(self) -> None:
        self._disarm()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._disarm()

    def _arm(self) -> None:
        ref = self.actor_ref
        self._timer = self._clock.call_later(self.interval, lambda: ref.cast(_TICK))

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_receive(self, message: Any) -> Any:
        if message == _TICK:
            try:
                self.check_now()
            finally:
                self._arm()
            return None
        return super().on_receive(message)

    # -- checks ----------------------------------------------------------------------------

    def check_now(self) -> list[HealthChange]:
        """Check every provider now; returns the changes made (in name order)."""
        table = self.providers.table
        for name in [n for n in self._out_since if n not in table]:
            del self._out_since[name]
        for name in [n for n in self._checking if n not in table]:
            del self._checking[name]
        now = self._clock.monotonic()
        changes = []
        for entry in table.ordered:
            try:
                change = self._check(entry, now)
            except OtpyError as exc:  # the registry is down or the provider just left
                _log.warning("health check of provider %r not applied: %s", entry.name, exc)
                continue
            if change is not None:
                changes.append(change)
        self.checks += 1
        return changes

    def _check(self, entry: ProviderEntry, now: float) -> HealthChange | None:
        name = entry.name
        failure = self._probe(name, entry.provider)
        health = entry.health()
        if health.healthy:
            self._out_since.pop(name, None)
        else:
            self._out_since.setdefault(name, now)
        out_for = now - self._out_since.get(name, now)
        verdict = decide(health, self.rule, check_failure=failure, out_for=out_for)
        if verdict is None:
            return None
        if verdict.probation:
            entry.stats.reset()
        self.providers.set_health(name, verdict.healthy, verdict.reason, expected=entry)
        if verdict.healthy:
            self._out_since.pop(name, None)
            emit_safely(
                "provider.recovered",
                {"out_for": out_for},
                {"provider": name, "probation": verdict.probation},
            )
        else:
            self._out_since[name] = now
            emit_safely("provider.unhealthy", None, {"provider": name, "reason": verdict.reason})
        return HealthChange(name, verdict.healthy, verdict.reason, verdict.probation)

    def _probe(self, name: str, provider: Provider) -> str | None:
        """What the provider's own ``health_check`` says is wrong, or None (passed/none).

        A check that outlived its ``check_timeout`` is abandoned, not stopped (a thread
        cannot be); until it returns, the provider counts as failing its check and no
        second one is started, so a hung check costs one thread, not one per interval."""
        check = getattr(provider, "health_check", None)
        if not callable(check):
            return None
        previous = self._checking.get(name)
        if previous is not None and not previous.is_set():
            return "health_check still running (it timed out at an earlier check)"
        done = threading.Event()
        self._checking[name] = done

        def run() -> object:
            try:
                return check()
            finally:
                done.set()

        try:
            result = call_with_timeout(
                run, timeout=self.check_timeout, clock=self._clock, name=f"health_check:{name}"
            )
        except Exception as exc:
            return str(redact_value(f"{type(exc).__name__}: {exc}"))
        return "returned False" if result is False else None
