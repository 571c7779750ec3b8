"""The routing agent: the ``ChatAgent`` GenServer (``<runtime>.agent``) and its handle
(``rt.chat``).

A request (``rt.chat.ask(text)``) is routed by :class:`otpy.agent.Router` — the
configured rules, else the LLM classifier (a one-step pipeline run like any other), else
the default route — and its pipeline runs as a supervised run under the runtime's runs
supervisor; the call returns the :class:`~otpy.agent.AgentReply` at once, ``running``.
Each attempt gets ``agent.timeout`` seconds of the runtime's clock; a run that fails, is
cancelled or times out degrades to its route's fallback (once per route: a chain of
fallbacks stops where it would loop). The mailbox only ever holds short messages: runs
report back by a cast when they finish, timers by a cast when they fire.

Replies live in an :class:`ChatCell` shared with the handle and with every incarnation:
``get`` and ``wait`` read it without a message; requests in flight when the agent crashed
are marked failed by the next incarnation.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otpy.actors._pipeline_runner import PipelineRun
from otpy.agent import (
    CLASSIFIER,
    AgentAttempt,
    AgentConfig,
    AgentReply,
    AgentState,
    AttemptStatus,
    RouteChoice,
    Router,
    classifier_pipeline,
    response_of,
)
from otpy.clock import Clock, TimerHandle
from otpy.errors import AgentError, CallTimeoutError, OtpyError
from otpy.supervision import ChildSpec, GenServer, NamedHandle
from otpy.telemetry import emit_safely

__all__ = ["ChatAgent", "ChatCell", "ChatHandle", "chat_child"]

StartRun = Callable[[Any, Mapping[str, Any]], PipelineRun]
"""How the agent starts a run: ``(pipeline source, inputs) -> PipelineRun`` (the
runtime's ``start_pipeline``)."""


class ChatCell:
    """The replies the agent and its handle share, newest last, at most ``keep`` of them
    finished (the oldest finished ones are forgotten first). Thread-safe."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._replies: OrderedDict[str, AgentReply] = OrderedDict()
        self._done: dict[str, threading.Event] = {}

    def publish(self, reply: AgentReply) -> None:
        with self._lock:
            self._replies[reply.id] = reply
            event = self._done.setdefault(reply.id, threading.Event())
            if reply.finished:
                event.set()
                self._forget_old()

    def _forget_old(self) -> None:
        finished = [key for key, r in self._replies.items() if r.finished]
        for key in finished[: max(0, len(finished) - self.keep)]:
            del self._replies[key]
            self._done.pop(key, None)

    def get(self, reply_id: str) -> AgentReply | None:
        with self._lock:
            return self._replies.get(reply_id)

    def event(self, reply_id: str) -> threading.Event | None:
        with self._lock:
            return self._done.get(reply_id)

    def recent(self, n: int) -> list[AgentReply]:
        with self._lock:
            return list(self._replies.values())[-n:] if n > 0 else []

    def unfinished(self) -> list[AgentReply]:
        with self._lock:
            return [reply for reply in self._replies.values() if not reply.finished]


@dataclass
class _Request:
    """A request in flight: its reply so far, the routes tried, the attempt running."""

    reply: AgentReply
    inputs: dict[str, Any]
    started: float
    tried: set[str] = field(default_factory=set)
    attempt: int = 0
    run: PipelineRun | None = None
    attempt_started: float = 0.0
    timer: TimerHandle | None = None


class ChatAgent(GenServer):
    """Routes requests to pipelines and runs them (see the module docstring). Calls:
    ``ask(message, inputs)``; casts from its runs and timers."""

    def __init__(
        self, config: AgentConfig, cell: ChatCell, start_run: StartRun, clock: Clock
    ) -> None:
        super().__init__()
        self.config = config
        self.router = Router(config)
        self.cell = cell
        self.start_run = start_run
        self.clock = clock
        self.requests: dict[str, _Request] = {}

    @classmethod
    def child_spec(
        cls, name: str, config: AgentConfig, cell: ChatCell, start_run: StartRun, clock: Clock
    ) -> ChildSpec:
        """A permanent child registered as ``name``, with the id ``agent``."""
        return ChildSpec.actor(cls, config, cell, start_run, clock, id="agent", register_as=name)

    def on_start(self) -> None:
        for reply in self.cell.unfinished():  # in flight when the previous incarnation crashed
            update = {"state": "failed", "error": "the agent restarted mid-request"}
            self.cell.publish(reply.model_copy(update=update))

    def on_stop(self) -> None:
        for request in list(self.requests.values()):
            if request.run is not None:
                request.run.cancel()
            self._end(request, "failed", error="the agent stopped")

    # -- calls ---------------------------------------------------------------------------

    def ask(self, message: str, inputs: Mapping[str, Any] | None = None) -> AgentReply:
        """Route ``message`` and start its pipeline; the reply, ``running``. AgentError
        for an empty or oversized message, bad inputs, or no route and no default."""
        if not isinstance(message, str) or not message.strip():
            raise AgentError("a request needs a message: non-empty text")
        if len(message) > self.config.max_message:
            raise AgentError(
                f"the message has {len(message)} characters; agent.max_message allows "
                f"{self.config.max_message}"
            )
        if inputs is not None and not isinstance(inputs, Mapping):
            raise AgentError(f"inputs must be a mapping, got {type(inputs).__name__}")
        choice = self.router.match(message)
        if choice is None and not self.router.classifies and self.router.default() is None:
            raise AgentError(
                "no agent route matches this request and agent.default is not set "
                f"(routes: {', '.join(self.router.routes)})"
            )
        reply = AgentReply(id=uuid.uuid4().hex[:12], message=message, started_at=self.clock.time())
        request = _Request(reply, dict(inputs or {}), self.clock.monotonic())
        self.requests[reply.id] = request
        if choice is not None:
            self._run(request, choice)
        elif self.router.classifies:
            self._run(request, RouteChoice(CLASSIFIER, "", classifier_pipeline(self.config)))
        else:
            default = self.router.default()
            assert default is not None
            self._run(request, default)
        return self.cell.get(reply.id) or request.reply

    # -- runs ----------------------------------------------------------------------------

    def _run(self, request: _Request, choice: RouteChoice) -> None:
        request.attempt += 1
        attempt = request.attempt
        classifying = choice.name == CLASSIFIER
        if not classifying:
            request.tried.add(choice.name)
            fallback = request.reply.pipeline is not None
            self._update(
                request,
                pipeline=choice.name,
                reason=choice.reason,
                fallback_used=request.reply.fallback_used or fallback,
            )
            emit_safely(
                "chat.routed",
                metadata={"request": request.reply.id, "pipeline": choice.name,
                          "reason": choice.reason},
            )  # fmt: skip
        inputs = {**request.inputs, self.config.input: request.reply.message}
        request.attempt_started = self.clock.monotonic()
        try:
            run = self.start_run(choice.source, inputs)
        except OtpyError as exc:  # a pipeline file changed under us, an input refused
            self._attempt(request, AgentAttempt(route=choice.name, status="failed",
                                                error=f"{type(exc).__name__}: {exc}",
                                                duration=0.0))  # fmt: skip
            self._after_failure(request, choice.name)
            return
        request.run = run
        self._attempt(request, AgentAttempt(route=choice.name, run_id=run.run_id))
        ref = self.actor_ref
        key = (request.reply.id, attempt)
        request.timer = self.clock.call_later(
            self.config.timeout, lambda: ref.cast(("agent.timeout", *key))
        )
        run.add_done_callback(lambda _run: ref.cast(("agent.done", *key)))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and len(message) == 3:
            kind, reply_id, attempt = message
            request = self.requests.get(reply_id)
            if kind in ("agent.done", "agent.timeout"):
                if request is not None and request.attempt == attempt:
                    (self._finished if kind == "agent.done" else self._timed_out)(request)
                return None
        return super().on_receive(message)

    def _finished(self, request: _Request) -> None:
        run = request.run
        assert run is not None
        if request.timer is not None:
            request.timer.cancel()
        route = request.reply.attempts[-1].route
        duration = self.clock.monotonic() - request.attempt_started
        try:
            result = run.wait(0)
        except (OtpyError, CallTimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._close_attempt(request, "failed", error, duration)
            self._after_failure(request, route)
            return
        if result.ok:
            self._close_attempt(request, "completed", None, duration)
            if route == CLASSIFIER:
                answer = result.outputs.get("route", result.text)
                choice = self.router.classified(answer) or self.router.default()
                if choice is None:
                    self._end(request, "failed", error=f"the classifier answered {answer!r}, "
                              "which names no route, and agent.default is not set")  # fmt: skip
                    return
                self._run(request, choice)
                return
            response = response_of(dict(result.outputs), result.text)
            self._end(request, "completed", response=response, outputs=dict(result.outputs))
            return
        error = str(result.error) if result.error is not None else f"the run was {result.status}"
        self._close_attempt(request, result.status, error, duration)
        self._after_failure(request, route)

    def _timed_out(self, request: _Request) -> None:
        run = request.run
        if run is None or run.done():
            return  # its done message is on its way
        run.cancel()
        request.attempt += 1  # its late done message is stale now
        route = request.reply.attempts[-1].route
        duration = self.clock.monotonic() - request.attempt_started
        self._close_attempt(
            request, "timed_out", f"no answer within {self.config.timeout:g} s", duration
        )
        self._after_failure(request, route)

    def _after_failure(self, request: _Request, route: str) -> None:
        if route == CLASSIFIER:
            default = self.router.default()
            if default is not None:
                self._run(request, default)
                return
            self._end(request, "failed", error="the classifier failed and agent.default is not set")
            return
        fallback = self.router.fallback(route, request.tried)
        if fallback is not None:
            self._run(request, fallback)
            return
        last = request.reply.attempts[-1]
        self._end(request, "failed", error=f"route {route!r}: {last.error or last.status}")

    # -- the reply -----------------------------------------------------------------------

    def _update(self, request: _Request, **changes: Any) -> None:
        request.reply = request.reply.model_copy(update=changes)
        self.cell.publish(request.reply)

    def _attempt(self, request: _Request, attempt: AgentAttempt) -> None:
        self._update(request, attempts=(*request.reply.attempts, attempt))

    def _close_attempt(
        self, request: _Request, status: AttemptStatus, error: str | None, duration: float
    ) -> None:
        *before, last = request.reply.attempts
        closed = last.model_copy(update={"status": status, "error": error, "duration": duration})
        self._update(request, attempts=(*before, closed))

    def _end(self, request: _Request, state: AgentState, **changes: Any) -> None:
        if request.timer is not None:
            request.timer.cancel()
        self.requests.pop(request.reply.id, None)
        duration = self.clock.monotonic() - request.started
        self._update(request, state=state, duration=duration, **changes)
        reply = request.reply
        emit_safely(
            "chat.finished",
            {"duration": duration},
            {"request": reply.id, "state": state, "pipeline": reply.pipeline or "",
             "fallback_used": reply.fallback_used},
        )  # fmt: skip


class ChatHandle:
    """What ``rt.chat`` is: :meth:`ask` starts a request, :meth:`get` and :meth:`wait`
    read its reply (no message to the agent), :meth:`recent` lists the last ones."""

    def __init__(self, name: str, cell: ChatCell, timeout: float | None) -> None:
        self.name = name
        self.cell = cell
        self._actor = NamedHandle(name, timeout=timeout)

    def ask(self, message: str, inputs: Mapping[str, Any] | None = None) -> AgentReply:
        """Route ``message`` to a pipeline and start it; returns the reply at once
        (``running``). Blocks on the agent's call only. AgentError for a bad request."""
        reply: AgentReply = self._actor.ask(message, inputs)
        return reply

    def get(self, reply_id: str) -> AgentReply:
        """The reply of request ``reply_id`` now; AgentError if there is none (never
        made, or forgotten: the agent keeps ``agent.keep`` finished requests)."""
        reply = self.cell.get(reply_id)
        if reply is None:
            raise AgentError(f"no agent request {reply_id!r}")
        return reply

    def wait(self, reply_id: str, timeout: float | None = None) -> AgentReply:
        """The reply once the request has ended; CallTimeoutError after ``timeout``."""
        event = self.cell.event(reply_id)
        if event is None:
            raise AgentError(f"no agent request {reply_id!r}")
        if not event.wait(timeout):
            raise CallTimeoutError(f"agent request {reply_id!r}", timeout)
        return self.get(reply_id)

    def recent(self, n: int = 50) -> list[AgentReply]:
        """The last ``n`` requests, oldest first."""
        return self.cell.recent(n)

    def __repr__(self) -> str:
        return f"ChatHandle({self.name!r})"


def chat_child(
    name: str, config: AgentConfig, start_run: StartRun, clock: Clock, timeout: float | None
) -> tuple[ChildSpec, ChatHandle]:
    """The routing agent of a runtime: its child spec (registered as ``name``, id
    ``agent``) and the handle that follows it across restarts."""
    cell = ChatCell(config.keep)
    return ChatAgent.child_spec(name, config, cell, start_run, clock), ChatHandle(
        name, cell, timeout
    )
