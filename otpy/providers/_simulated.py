"""The ``simulated`` provider: offline, deterministic, and able to misbehave on demand.

The embedded default provider: pipelines, the built-in steps, optimization jobs and benchmarks
run on it with no network and no key. Its answers and faults are a pure function of the
seed and the request, whatever the thread interleaving:

- A request's *fingerprint* is a stable hash (blake2b) of its content: conversation,
  system, model, temperature, max_tokens, stop and response_schema (not ``metadata``).
  ``attempt`` counts how many times that fingerprint was received before.
- The faults and the latency of a call are drawn from ``random.Random`` seeded with
  ``(seed, fingerprint, attempt)``: a retry of the same request is a fresh draw.
- The answer (the text, the structured instance) is drawn from ``(seed, fingerprint)``:
  every attempt that succeeds gives the same answer, so turning faults on never changes
  what a pipeline computes, only how many calls it takes.

One call: the request is recorded; an injected outcome, if one is queued, is consumed (an
exception is raised at once); the latency is slept on ``clock``; then a rate limit
(``rate_limit_rate``), an overload (``overload_rate``) and a server error
(``failure_rate``) are drawn in that order, one uniform draw each, the first hit raising
(so the overall share of overloads is ``(1 - rate_limit_rate) * overload_rate``); then the
answer is built and cut at a stop sequence or at ``max_tokens``.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from otpy._checks import is_finite_number
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import (
    ConfigurationError,
    InvalidRequestError,
    OverloadedError,
    RateLimitedError,
    ServerError,
)
from otpy.providers._base import (
    CAPABILITIES,
    Completion,
    CompletionRequest,
    Message,
    Provider,
    Usage,
)
from otpy.providers._prompt_formats import (
    FieldValues,
    answer_structured,
    read_structured_prompt,
)
from otpy.providers._schema_sample import UnsupportedSchema, invalid_text, sample_instance
from otpy.providers._simulated_parts import (
    Responses,
    SimulatedStats,
    bad,
    capabilities_of,
    cut,
    derive,
    fingerprint_of,
    input_chars,
    last_user_turn,
    latency_of,
    parse_json,
    rate,
    responses_of,
    text,
)
from otpy.providers._simulated_script import ScriptSource, ToolScript, script_of
from otpy.providers._tooling import ToolCall

__all__ = ["SimulatedProvider", "SimulatedStats"]

_NOTHING = object()  # the injection queue is empty
_SETTINGS = (
    "name", "seed", "model", "latency", "failure_rate", "rate_limit_rate", "overload_rate",
    "invalid_structured_rate", "retry_after", "responses", "capabilities", "clock",
    "keep_requests", "field_values", "tool_script",
)  # fmt: skip


class SimulatedProvider(Provider):
    """A deterministic offline LLM: answers, latency and faults derive from ``seed`` and
    the request (see the module docstring), so runs repeat exactly.

    ``latency`` is slept on ``clock`` per call (a ``(low, high)`` pair: uniform, seeded).
    ``responses`` fixes the text: a mapping from a substring of the last user turn (first
    match in insertion order, case-insensitive) to the answer, or a callable of the
    request; otherwise the text is ``"Simulated answer (<model>) to: <prompt> [<hash>]"``.
    With a ``response_schema`` and no fixed text the answer is a generated instance of the
    schema (``structured``, and ``text`` its JSON); a fixed text is returned as is, with
    ``structured`` its JSON parse or None. A DSPy adapter prompt with no fixed text is
    answered in the adapter's format, every output field filled (its value in
    ``field_values``, else a seeded one: ``otpy.providers._prompt_formats``).
    ``tool_script`` makes it call tools in a tool loop (see
    :mod:`otpy.providers._simulated_script`): deterministic, offline agents. ``inject``
    queues exact outcomes for the next calls. ``complete`` is safe from any number of
    threads; it blocks only on the latency.
    """

    capabilities: ClassVar[frozenset[str]] = CAPABILITIES

    def __init__(
        self,
        name: str = "simulated",
        *,
        seed: int = 0,
        model: str = "sim-1",
        latency: float | tuple[float, float] = 0.0,
        failure_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        overload_rate: float = 0.0,
        invalid_structured_rate: float = 0.0,
        retry_after: float = 1.0,
        responses: Responses | None = None,
        capabilities: Iterable[str] = CAPABILITIES,
        clock: Clock = SYSTEM_CLOCK,
        keep_requests: int = 10_000,
        field_values: FieldValues | None = None,
        tool_script: ScriptSource | ToolScript = None,
    ) -> None:
        self.name = text("name", name)
        if isinstance(keep_requests, bool) or not isinstance(keep_requests, int):
            raise bad("keep_requests", "an int", keep_requests)
        if keep_requests < 0:
            raise bad("keep_requests", "an int >= 0", keep_requests)
        self.keep_requests = keep_requests
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise bad("seed", "an int", seed)
        self.seed = seed
        self.model = text("model", model)
        self.latency = latency_of(latency)
        self.failure_rate = rate("failure_rate", failure_rate)
        self.rate_limit_rate = rate("rate_limit_rate", rate_limit_rate)
        self.overload_rate = rate("overload_rate", overload_rate)
        self.invalid_structured_rate = rate("invalid_structured_rate", invalid_structured_rate)
        if not is_finite_number(retry_after) or retry_after < 0:
            raise bad("retry_after", "seconds >= 0", retry_after)
        self.retry_after = float(retry_after)
        self._fixed, self._answer_with = responses_of(responses)
        if field_values is not None and not isinstance(field_values, Mapping):
            raise bad("field_values", "a mapping of output field names to values", field_values)
        self.field_values = field_values
        self.tool_script = script_of(tool_script)
        # Provider declares capabilities per class; this one is configured per instance.
        vars(self)["capabilities"] = capabilities_of(capabilities)
        if not isinstance(clock, Clock):
            raise bad("clock", "a Clock", clock)
        self.clock = clock
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._injected: deque[BaseException | None] = deque()
        self._reset_counters()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, clock: Clock | None = None
    ) -> SimulatedProvider:
        """Build one from a plain dict of the constructor's keyword names (as a YAML or
        JSON config gives them: ``latency`` may be a two-item list); ``clock``, if given,
        is the clock to use (the runtime's). An unknown key, a bad value, or a clock given
        both ways raises ConfigurationError naming it."""
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                f"simulated provider config must be a mapping, got {type(config).__name__}"
            )
        settings = dict(config)
        for key in settings:
            if key not in _SETTINGS:
                raise ConfigurationError(
                    f"unknown simulated provider setting {key!r} (known: {', '.join(_SETTINGS)})"
                )
        if isinstance(settings.get("latency"), list):
            settings["latency"] = tuple(settings["latency"])
        if clock is not None:
            if "clock" in settings:
                raise ConfigurationError(
                    "simulated provider config: 'clock' given both in the config and as an argument"
                )
            settings["clock"] = clock
        return cls(**settings)

    # -- the call ------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer ``request`` (or raise the injected or drawn fault), in the caller's
        thread, after sleeping the latency on ``clock``."""
        conversation = request.conversation()
        fingerprint = fingerprint_of(request, conversation)
        prompt = last_user_turn(conversation)
        with self._lock:
            self._calls += 1
            self._requests.append(request)
            seen = self._by_prompt.get(prompt)
            if seen is not None:
                self._by_prompt[prompt] = seen + 1
            elif len(self._by_prompt) < self.keep_requests:
                self._by_prompt[prompt] = 1
            attempt = self._attempts.get(fingerprint, 0)
            self._attempts[fingerprint] = attempt + 1
            injected = self._injected.popleft() if self._injected else _NOTHING
        try:
            if isinstance(injected, BaseException):
                raise injected
            return self._attempt(request, conversation, prompt, fingerprint, attempt)
        except Exception as exc:
            with self._lock:
                name = type(exc).__name__
                self._failures[name] = self._failures.get(name, 0) + 1
            raise

    def _attempt(
        self,
        request: CompletionRequest,
        conversation: tuple[Message, ...],
        prompt: str,
        fingerprint: str,
        attempt: int,
    ) -> Completion:
        draws = random.Random(derive(self.seed, fingerprint, str(attempt)))
        u_latency, u_limit, u_overload, u_fail, u_invalid = (draws.random() for _ in range(5))
        latency = self.latency
        if isinstance(latency, tuple):
            latency = latency[0] + u_latency * (latency[1] - latency[0])
        if latency > 0:
            self.clock.sleep(latency)
        why = f"simulated (attempt {attempt + 1} of this request)"
        if u_limit < self.rate_limit_rate:
            raise RateLimitedError(
                f"rate limited, {why}", provider=self.name, status=429,
                retry_after=self.retry_after,
            )  # fmt: skip
        if u_overload < self.overload_rate:
            raise OverloadedError(f"overloaded, {why}", provider=self.name, status=529)
        if u_fail < self.failure_rate:
            raise ServerError(f"internal server error, {why}", provider=self.name, status=500)

        model = request.model or self.model
        scripted = self.tool_script.turn(request, conversation) if self.tool_script else None
        calls: tuple[ToolCall, ...] = ()
        if scripted is not None:
            position, turn = scripted
            answer, structured, invalid = turn.text, None, False
            calls = turn.tool_calls(position)
            shown, stop_reason = answer, "tool_use" if calls else "end_turn"
        else:
            spoil = u_invalid < self.invalid_structured_rate
            answer, structured, invalid = self._answer(
                request, prompt, model, fingerprint, spoil, draws
            )
            shown, stop_reason = cut(answer, request)
        said = len(shown) + sum(len(c.name) + len(json.dumps(c.arguments)) for c in calls)
        usage = Usage(
            input_tokens=max(1, math.ceil(input_chars(request.system, conversation) / 4)),
            output_tokens=max(1, math.ceil(said / 4)),
        )
        with self._lock:
            self._completed += 1
            self._input_tokens += usage.input_tokens
            self._output_tokens += usage.output_tokens
            self._latency_total += latency
            self._invalid += int(invalid)
        return Completion(
            text=shown,
            tool_calls=calls,
            structured=structured if shown == answer else None,  # a cut JSON parses no more
            usage=usage,
            latency=latency,
            model=model,
            provider=self.name,
            stop_reason=stop_reason,
        )

    def _answer(
        self,
        request: CompletionRequest,
        prompt: str,
        model: str,
        fingerprint: str,
        invalid: bool,
        draws: random.Random,
    ) -> tuple[str, Any, bool]:
        """(text, structured, made invalid): the fixed text, a schema instance (or a text
        that breaks the schema when ``invalid``), or the default text."""
        fixed = self._fixed_text(request, prompt)
        schema = request.response_schema
        answer_seed = derive(self.seed, fingerprint, "answer")
        adapter_prompt = None
        if fixed is None:  # a DSPy adapter's prompt is answered in the adapter's format
            adapter_prompt = read_structured_prompt(request.system, prompt)
        if adapter_prompt is not None:
            try:
                rng = random.Random(answer_seed)
                fixed = answer_structured(adapter_prompt, rng, self.field_values)
            except UnsupportedSchema as exc:
                raise InvalidRequestError(f"output field: {exc}", provider=self.name) from exc
        if fixed is not None:
            return fixed, None if schema is None else parse_json(fixed), False
        if schema is None:
            shown = " ".join(prompt.split())[:60]
            return f"Simulated answer ({model}) to: {shown} [{answer_seed >> 32:08x}]", None, False
        try:
            structured = sample_instance(schema, random.Random(answer_seed))
        except UnsupportedSchema as exc:
            raise InvalidRequestError(
                f"response_schema: {exc}", provider=self.name, status=None
            ) from exc
        if invalid:
            return invalid_text(schema, structured, draws), None, True
        return json.dumps(structured), structured, False

    def _fixed_text(self, request: CompletionRequest, prompt: str) -> str | None:
        if self._answer_with is not None:
            answer = self._answer_with(request)
            if not isinstance(answer, str):
                raise ConfigurationError(
                    f"SimulatedProvider {self.name!r}: the responses callable returned "
                    f"{type(answer).__name__}, not str"
                )
            return answer
        lowered = prompt.lower()
        for key, answer in self._fixed:
            if key in lowered:
                return answer
        return None

    # -- testing hooks and statistics ----------------------------------------------------

    def inject(self, *outcomes: BaseException | None) -> None:
        """Queue outcomes for the next calls, one each in order (from any thread): an
        exception instance is raised by that call (after it is recorded, before any
        latency); ``None`` lets that call answer normally."""
        for index, outcome in enumerate(outcomes):
            if outcome is not None and not isinstance(outcome, BaseException):
                raise ConfigurationError(
                    f"inject: outcome {index} must be an exception instance or None, "
                    f"got {outcome!r}"
                )
        with self._lock:
            self._injected.extend(outcomes)

    @property
    def calls(self) -> int:
        """Requests received so far (answered or not)."""
        return self._calls

    @property
    def requests(self) -> list[CompletionRequest]:
        """A copy of the requests received since the last reset, in arrival order: the
        most recent ``keep_requests`` of them (the log is bounded, for long runs)."""
        with self._lock:
            return list(self._requests)

    def statistics(self) -> SimulatedStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return SimulatedStats(
                calls=self._calls,
                completed=self._completed,
                failures=dict(self._failures),
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
                invalid_structured=self._invalid,
                latency=self._latency_total,
                by_prompt=dict(self._by_prompt),
                pending_injections=len(self._injected),
            )

    def reset_statistics(self) -> None:
        """Zero the counters and clear the request log. The attempt count per request and
        the injection queue are behaviour, not statistics: they are kept."""
        with self._lock:
            self._reset_counters()

    def _reset_counters(self) -> None:
        self._calls = 0
        self._completed = 0
        self._failures: dict[str, int] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self._invalid = 0
        self._latency_total = 0.0
        self._by_prompt: dict[str, int] = {}
        self._requests: deque[CompletionRequest] = deque(maxlen=self.keep_requests)

    def __repr__(self) -> str:
        return f"<SimulatedProvider {self.name!r} seed={self.seed} model={self.model!r}>"
