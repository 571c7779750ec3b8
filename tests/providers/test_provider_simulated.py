"""The simulated provider: deterministic answers and faults, latency on a fake clock,
truncation, usage, structured output from JSON Schemas, injection, statistics, config."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import math
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Annotated, Any, Literal, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter, create_model

from otpy.errors import (
    ConfigurationError,
    InvalidRequestError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from otpy.providers import (
    CAPABILITIES,
    CompletionRequest,
    Message,
    Provider,
    SimulatedProvider,
    SimulatedStats,
)
from otpy.providers._schema_sample import invalid_text, sample_instance
from otpy.testing import FakeClock
from support import InThread


def ask(prompt: str = "What is 2+2?", **fields: Any) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, **fields)


def outcome(provider: SimulatedProvider, request: CompletionRequest) -> str:
    """The text answered, or the name of the error raised."""
    try:
        return provider.complete(request).text
    except ProviderError as exc:
        return type(exc).__name__


class RecordingClock(FakeClock):
    """A clock whose ``sleep`` returns at once and records how long it was asked to."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []
        self._guard = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._guard:
            self.slept.append(seconds)


def within_binomial(count: int, n: int, p: float) -> bool:
    """``count`` is within 5 standard deviations of Binomial(n, p)'s mean."""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= 5 * sigma + 1


# -- determinism ----------------------------------------------------------------------------


def test_same_seed_and_request_give_the_identical_completion() -> None:
    request = ask(
        system="Be brief.", temperature=0.3, messages=(Message(role="user", content="hi"),)
    )
    first = SimulatedProvider(seed=7).complete(request)
    second = SimulatedProvider(seed=7).complete(request)
    assert first == second
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert first.text.startswith("Simulated answer (sim-1) to: What is 2+2? [")
    assert re.search(r"\[[0-9a-f]{8}\]$", first.text)
    assert (first.model, first.provider, first.stop_reason) == ("sim-1", "simulated", "end_turn")


def test_the_text_depends_on_seed_system_temperature_model_and_prompt() -> None:
    base = ask(system="Be brief.", temperature=0.5)
    variants = [
        base,
        base.model_copy(update={"system": "Think step by step."}),
        base.model_copy(update={"temperature": 1.0}),
        base.model_copy(update={"temperature": None}),
        base.model_copy(update={"model": "sim-2"}),
        base.model_copy(update={"prompt": "What is 3+3?"}),
        base.model_copy(update={"max_tokens": 99}),
    ]
    texts = [SimulatedProvider(seed=1).complete(r).text for r in variants]
    texts.append(SimulatedProvider(seed=2).complete(base).text)
    assert len(set(texts)) == len(texts)
    # metadata (trace ids and the like) is not part of what is asked
    tagged = base.model_copy(update={"metadata": {"trace": "abc"}})
    assert SimulatedProvider(seed=1).complete(tagged).text == texts[0]


def test_a_repeated_request_gets_the_same_answer() -> None:
    provider = SimulatedProvider(seed=3)
    texts = {provider.complete(ask()).text for _ in range(5)}
    assert len(texts) == 1


def _workload() -> list[CompletionRequest]:
    return [ask(f"question {i % 300}", temperature=(i % 3) / 2) for i in range(2400)]


def _faulty() -> SimulatedProvider:
    return SimulatedProvider(seed=11, failure_rate=0.3, rate_limit_rate=0.1, overload_rate=0.1)


@pytest.mark.parametrize("round_", range(3))
def test_sixteen_threads_get_what_a_sequential_run_gets(round_: int) -> None:
    requests = _workload()
    sequential = _faulty()
    expected = Counter((r.prompt, r.temperature, outcome(sequential, r)) for r in requests)
    concurrent = _faulty()
    got: list[tuple[Any, ...]] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def run(share: list[CompletionRequest]) -> None:
        start.wait()
        mine = [(r.prompt, r.temperature, outcome(concurrent, r)) for r in share]
        with lock:
            got.extend(mine)

    shares = [requests[(i + round_) % 16 :: 16] for i in range(16)]
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert Counter(got) == expected
    stats = concurrent.statistics()
    assert stats.calls == len(concurrent.requests) == len(requests)
    assert stats.completed + sum(stats.failures.values()) == stats.calls
    assert stats.failures == sequential.statistics().failures
    assert set(stats.failures) == {"ServerError", "RateLimitedError", "OverloadedError"}


# -- faults ---------------------------------------------------------------------------------


def test_fault_rates_on_20000_distinct_requests_are_within_binomial_bounds() -> None:
    n, limit, overload, fail = 20_000, 0.05, 0.1, 0.2
    provider = SimulatedProvider(
        "sim-a", seed=5, rate_limit_rate=limit, overload_rate=overload, failure_rate=fail,
        retry_after=2.5,
    )  # fmt: skip
    errors: Counter[str] = Counter()
    for i in range(n):
        try:
            provider.complete(ask(f"distinct {i}"))
        except ProviderError as exc:
            errors[type(exc).__name__] += 1
            assert exc.provider == "sim-a"
            if isinstance(exc, RateLimitedError):
                assert (exc.status, exc.retry_after, exc.retryable) == (429, 2.5, True)
            elif isinstance(exc, OverloadedError):
                assert (exc.status, exc.retryable) == (529, True)
            else:
                assert isinstance(exc, ServerError) and exc.status == 500
    assert within_binomial(errors["RateLimitedError"], n, limit)
    assert within_binomial(errors["OverloadedError"], n, (1 - limit) * overload)
    assert within_binomial(errors["ServerError"], n, (1 - limit) * (1 - overload) * fail)
    assert provider.statistics().failures == dict(errors)
    assert provider.statistics().completed == n - sum(errors.values())


def test_faults_are_the_same_for_the_same_seed_and_differ_for_another() -> None:
    def faults(seed: int) -> list[bool]:
        provider = SimulatedProvider(seed=seed, failure_rate=0.5)
        return [outcome(provider, ask(f"q{i}")) == "ServerError" for i in range(200)]

    assert faults(1) == faults(1)
    assert faults(1) != faults(2)
    assert not any(faults_of(0.0)) and all(faults_of(1.0))


def faults_of(rate: float) -> list[bool]:
    provider = SimulatedProvider(failure_rate=rate, rate_limit_rate=0.0)
    return [outcome(provider, ask(f"q{i}")) == "ServerError" for i in range(100)]


def test_a_retry_of_the_same_request_is_a_fresh_draw_with_the_same_answer() -> None:
    clean = SimulatedProvider(seed=9)
    histories = []
    for _ in range(2):
        provider = SimulatedProvider(seed=9, failure_rate=0.5)
        history = []
        for i in range(100):
            request = ask(f"retry me {i}")
            attempts = [outcome(provider, request) for _ in range(12)]
            answers = [a for a in attempts if a != "ServerError"]
            assert answers, f"request {i} failed 12 times in a row"
            assert set(answers) == {clean.complete(request).text}
            history.append(attempts)
        histories.append(history)
    assert histories[0] == histories[1]
    first_tries = [h[0] for h in histories[0]]
    assert 20 < first_tries.count("ServerError") < 80
    assert any(h[0] == "ServerError" and h[1] != "ServerError" for h in histories[0])


def test_injected_outcomes_are_consumed_in_order_before_any_latency(clock: FakeClock) -> None:
    provider = SimulatedProvider(latency=5.0, clock=clock)
    boom = ServerError("injected", provider="simulated", status=503)
    limited = RateLimitedError("slow down", provider="simulated", status=429, retry_after=3.0)
    provider.inject(boom, None, limited)
    assert provider.statistics().pending_injections == 3
    first = InThread(provider.complete, ask("a"))
    with pytest.raises(ServerError) as raised:
        first.result()  # raised at once: the clock never moved
    assert raised.value is boom
    second = InThread(provider.complete, ask("b"))
    clock.wait_for_sleepers(1)
    clock.advance(5.0)
    assert second.result().text.startswith("Simulated answer")
    with pytest.raises(RateLimitedError) as raised_again:
        InThread(provider.complete, ask("c")).result()
    assert raised_again.value is limited
    fourth = InThread(provider.complete, ask("d"))
    clock.wait_for_sleepers(1)
    clock.advance(5.0)
    fourth.result()
    stats = provider.statistics()
    assert stats.failures == {"ServerError": 1, "RateLimitedError": 1}
    assert (stats.calls, stats.completed, stats.pending_injections) == (4, 2, 0)
    with pytest.raises(ConfigurationError, match="outcome 1"):
        provider.inject(None, "boom")  # type: ignore[arg-type]


# -- latency, truncation, usage ----------------------------------------------------------


def test_latency_is_slept_on_the_clock(clock: FakeClock) -> None:
    provider = SimulatedProvider(latency=2.5, clock=clock)
    call = InThread(provider.complete, ask())
    clock.wait_for_sleepers(1)
    clock.advance(2.4)
    assert not call.done.is_set()
    clock.advance(0.1)
    completion = call.result()
    assert completion.latency == 2.5
    assert provider.statistics().latency == 2.5


def test_latency_range_is_a_seeded_uniform_draw() -> None:
    def latencies(seed: int) -> list[float]:
        clock = RecordingClock()
        provider = SimulatedProvider(seed=seed, latency=(0.1, 0.3), clock=clock)
        answered = [provider.complete(ask(f"q{i}")).latency for i in range(400)]
        assert answered == clock.slept
        return answered

    drawn = latencies(4)
    assert all(0.1 <= x <= 0.3 for x in drawn)
    assert min(drawn) < 0.11 and max(drawn) > 0.29
    assert drawn == latencies(4) and drawn != latencies(5)


def test_max_tokens_cuts_the_text() -> None:
    provider = SimulatedProvider(responses={"long": "x" * 100})
    completion = provider.complete(ask("a long one", max_tokens=5))
    assert completion.text == "x" * 20
    assert completion.stop_reason == "max_tokens"
    assert completion.usage.output_tokens == 5
    default = provider.complete(ask("anything else", max_tokens=3))
    assert len(default.text) == 12 and default.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("stop", "max_tokens", "text", "reason"),
    [
        (("STOP",), 100, "Hello ", "stop_sequence"),
        (("world", "STOP"), 100, "Hello ", "stop_sequence"),  # the earliest wins
        (("nowhere",), 100, "Hello STOP world", "end_turn"),
        (("world",), 2, "Hello ST", "max_tokens"),  # the stop lies beyond max_tokens
        (("STOP world",), 3, "Hello STOP w", "max_tokens"),  # it straddles the limit
        (("STOP",), 3, "Hello ", "stop_sequence"),  # it ends exactly at the limit
    ],
)
def test_stop_sequences_cut_the_text(
    stop: tuple[str, ...], max_tokens: int, text: str, reason: str
) -> None:
    provider = SimulatedProvider(responses={"": "Hello STOP world"})
    completion = provider.complete(ask("go", stop=stop, max_tokens=max_tokens))
    assert (completion.text, completion.stop_reason) == (text, reason)
    assert completion.usage.output_tokens == max(1, math.ceil(len(text) / 4))


def test_usage_counts_system_and_conversation_characters() -> None:
    provider = SimulatedProvider(responses={"": "123456789"})
    request = CompletionRequest(
        system="s" * 10,
        messages=(Message(role="user", content="u" * 7), Message(role="assistant", content="a")),
        prompt="p" * 3,
    )
    completion = provider.complete(request)
    assert completion.usage.input_tokens == math.ceil(21 / 4)
    assert completion.usage.output_tokens == 3
    empty = SimulatedProvider(responses={"": ""}).complete(ask(""))
    assert (empty.usage.input_tokens, empty.usage.output_tokens) == (1, 1)


def test_model_is_the_requested_one_or_the_default() -> None:
    provider = SimulatedProvider("mine", model="sim-large")
    assert provider.complete(ask()).model == "sim-large"
    assert "(sim-large)" in provider.complete(ask()).text
    completion = provider.complete(ask(model="other"))
    assert (completion.model, completion.provider) == ("other", "mine")


# -- fixed responses ------------------------------------------------------------------------


def test_responses_mapping_matches_the_last_user_turn_first_key_first() -> None:
    provider = SimulatedProvider(responses={"capital": "Paris", "FRANCE": "Bonjour"})
    assert provider.complete(ask("The CAPITAL of France?")).text == "Paris"
    assert provider.complete(ask("hello france")).text == "Bonjour"
    earlier = CompletionRequest(
        messages=(
            Message(role="user", content="capital?"),
            Message(role="assistant", content="which one"),
            Message(role="user", content="never mind"),
        ),
        system="capital france",
    )
    assert provider.complete(earlier).text.startswith("Simulated answer (sim-1) to: never mind")


def test_responses_callable_and_fixed_text_with_a_schema() -> None:
    seen: list[CompletionRequest] = []

    def answer(request: CompletionRequest) -> str:
        seen.append(request)
        return json.dumps({"echo": request.prompt})

    provider = SimulatedProvider(responses=answer)
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    completion = provider.complete(ask("ping", response_schema=schema))
    assert completion.structured == {"echo": "ping"}
    assert seen == [ask("ping", response_schema=schema)]
    prose = SimulatedProvider(responses={"": "not json"}).complete(ask(response_schema=schema))
    assert (prose.text, prose.structured) == ("not json", None)
    broken = SimulatedProvider(responses=lambda r: 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="returned int"):
        broken.complete(ask())
    assert broken.statistics().failures == {"ConfigurationError": 1}


# -- statistics, log, config ----------------------------------------------------------------


def test_statistics_and_the_request_log() -> None:
    provider = SimulatedProvider(seed=2, failure_rate=0.4)
    requests = [ask(f"q{i % 5}") for i in range(50)]
    completions = []
    for request in requests:
        with contextlib.suppress(ServerError):
            completions.append(provider.complete(request))
    stats = provider.statistics()
    assert isinstance(stats, SimulatedStats)
    assert provider.requests == requests and provider.calls == 50 == stats.calls
    assert stats.completed == len(completions)
    assert stats.failures == {"ServerError": 50 - len(completions)}
    assert stats.input_tokens == sum(c.usage.input_tokens for c in completions)
    assert stats.output_tokens == sum(c.usage.output_tokens for c in completions)
    assert stats.by_prompt == {f"q{i}": 10 for i in range(5)}
    next_outcome = outcome(SimulatedProvider(seed=2, failure_rate=0.4), requests[0])
    provider.inject(None)
    provider.reset_statistics()
    cleared = provider.statistics()
    assert (cleared.calls, cleared.completed, cleared.failures, cleared.by_prompt) == (0, 0, {}, {})
    assert provider.requests == [] and cleared.pending_injections == 1
    # the attempt count survived the reset: the 11th try of q0 is not its first
    later = [outcome(provider, requests[0]) for _ in range(30)]
    fresh = SimulatedProvider(seed=2, failure_rate=0.4)
    replay = [outcome(fresh, requests[0]) for _ in range(40)]
    assert later[1:] == replay[11:40]
    assert replay[0] == next_outcome


def test_capabilities_are_per_instance() -> None:
    assert SimulatedProvider().capabilities == CAPABILITIES
    narrow = SimulatedProvider(capabilities=["text"])
    assert narrow.capabilities == frozenset({"text"})
    assert SimulatedProvider.capabilities == CAPABILITIES
    assert isinstance(narrow, Provider) and repr(narrow).startswith("<SimulatedProvider")


def test_from_config_builds_the_same_provider() -> None:
    config = {"name": "cfg", "seed": 4, "latency": [0.0, 0.0], "failure_rate": 0.2}
    built = SimulatedProvider.from_config(config)
    direct = SimulatedProvider("cfg", seed=4, failure_rate=0.2)
    requests = [ask(f"q{i}") for i in range(40)]
    assert [outcome(built, r) for r in requests] == [outcome(direct, r) for r in requests]
    clock = FakeClock()
    assert SimulatedProvider.from_config({}, clock=clock).clock is clock
    with pytest.raises(ConfigurationError, match="'clock' given both"):
        SimulatedProvider.from_config({"clock": clock}, clock=clock)
    with pytest.raises(ConfigurationError, match="unknown simulated provider setting 'fail_rate'"):
        SimulatedProvider.from_config({"fail_rate": 0.1})
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        SimulatedProvider.from_config([("seed", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("failure_rate", 1.5),
        ("rate_limit_rate", -0.1),
        ("overload_rate", "high"),
        ("invalid_structured_rate", float("nan")),
        ("latency", -1.0),
        ("latency", [0.5, 0.1]),
        ("latency", [0.1]),
        ("retry_after", -2),
        ("seed", "7"),
        ("model", ""),
        ("name", None),
        ("responses", 42),
        ("responses", {"key": 1}),
        ("capabilities", "text"),
        ("clock", "now"),
    ],
)
def test_invalid_settings_are_refused_naming_them(setting: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        SimulatedProvider.from_config({setting: value})


# -- structured output ----------------------------------------------------------------------


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 130},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_structured_output_is_a_deterministic_instance() -> None:
    request = ask("a person", response_schema=PERSON)
    first = SimulatedProvider(seed=1).complete(request)
    assert first == SimulatedProvider(seed=1).complete(request)
    assert json.loads(first.text) == first.structured
    assert {"name", "age"} <= set(first.structured) <= {"name", "age", "email"}
    assert 0 <= first.structured["age"] < 130
    others = {SimulatedProvider(seed=s).complete(request).text for s in range(10)}
    assert len(others) > 5


def test_a_cut_structured_answer_has_no_structured_value() -> None:
    completion = SimulatedProvider().complete(ask(response_schema=PERSON, max_tokens=2))
    assert completion.stop_reason == "max_tokens" and completion.structured is None


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"type": "string", "pattern": "^a+$"}, "'pattern'"),
        ({"not": {"type": "string"}}, "'not'"),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "'prefixItems'"),
        ({"type": "array", "items": [{"type": "string"}]}, "tuple validation"),
        ({"$ref": "https://example.com/schema.json"}, "https://example.com"),
        ({"$ref": "#/$defs/Missing", "$defs": {}}, "does not exist"),
        ({"type": "string", "format": "hostname-idn"}, "format 'hostname-idn'"),
        ({"type": "tuple"}, "type 'tuple'"),
        ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "'allOf' of 2"),
        ({"type": "object", "anyOf": [{"required": ["a"]}]}, "'type' beside 'anyOf'"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "empty integer range"),
        ({"type": "integer", "multipleOf": 7, "minimum": 1, "maximum": 6}, "multipleOf"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "maxLength 2 below"),
        ({"type": "array", "items": {"type": "boolean"}, "minItems": 3, "uniqueItems": True},
         "uniqueItems"),
        ({"$ref": "#/$defs/Loop", "$defs": {"Loop": {"type": "object", "required": ["next"],
          "properties": {"next": {"$ref": "#/$defs/Loop"}}}}}, "nesting deeper"),
    ],
)  # fmt: skip
def test_unsupported_schema_features_are_refused_naming_them(schema: Any, feature: str) -> None:
    provider = SimulatedProvider("sim-x")
    with pytest.raises(InvalidRequestError) as raised:
        provider.complete(ask(response_schema=schema))
    assert feature in str(raised.value)
    assert (raised.value.status, raised.value.provider) == (None, "sim-x")
    assert provider.statistics().failures == {"InvalidRequestError": 1}


def test_a_boolean_false_subschema_is_refused() -> None:
    schema = {"type": "object", "properties": {"a": False}, "required": ["a"]}
    with pytest.raises(InvalidRequestError, match="the schema false"):
        SimulatedProvider().complete(ask(response_schema=schema))


def test_invalid_structured_answers_fail_the_schema() -> None:
    provider = SimulatedProvider(invalid_structured_rate=1.0)
    kinds: Counter[str] = Counter()
    for i in range(200):
        completion = provider.complete(ask(f"person {i}", response_schema=PERSON))
        assert completion.structured is None
        try:
            value = json.loads(completion.text)
        except ValueError:
            kinds["not json"] += 1
            continue
        assert check(PERSON, value), completion.text
        kinds["missing required"] += 1
    assert kinds["not json"] > 20 and kinds["missing required"] > 20
    assert provider.statistics().invalid_structured == 200
    some = SimulatedProvider(seed=3, invalid_structured_rate=0.3)
    bad = sum(
        some.complete(ask(f"p{i}", response_schema={"type": "integer"})).structured is None
        for i in range(3000)
    )
    assert within_binomial(bad, 3000, 0.3)
    assert some.statistics().invalid_structured == bad


# -- a small JSON Schema checker (the subset the sampler supports), independent of it ------


def check(schema: Any, value: Any, root: Any = None) -> list[str]:
    """Why ``value`` breaks ``schema`` (empty when it is valid)."""
    root = schema if root is None else root
    if schema is True:
        return []
    if schema is False:
        return ["false schema"]
    errors: list[str] = []
    if "$ref" in schema:
        node = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        errors += check(node, value, root)
    if "anyOf" in schema and not any(not check(s, value, root) for s in schema["anyOf"]):
        errors.append("anyOf: no branch matches")
    if "oneOf" in schema and sum(not check(s, value, root) for s in schema["oneOf"]) != 1:
        errors.append("oneOf: not exactly one branch matches")
    for sub in schema.get("allOf", []):
        errors += check(sub, value, root)
    if value is None and schema.get("nullable") is True:
        return errors
    if "const" in schema and not json_equal(value, schema["const"]):
        errors.append(f"const {schema['const']!r}")
    if "enum" in schema and not any(json_equal(value, v) for v in schema["enum"]):
        errors.append(f"enum {schema['enum']!r}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(is_type(value, t) for t in names):
            errors.append(f"type {types}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        errors += [f"required {r!r}" for r in schema.get("required", []) if r not in value]
        for key, item in value.items():
            sub = props.get(key, extra)
            errors += [f"{key}: {e}" for e in check(sub, item, root)]
    if isinstance(value, list):
        items = schema.get("items", True)
        for item in value:
            errors += check(items, item, root)
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1e9):
            errors.append("item count")
        if schema.get("uniqueItems") and len({canon(v) for v in value}) != len(value):
            errors.append("uniqueItems")
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 1e9):
            errors.append("length")
        if "format" in schema and not re.fullmatch(FORMAT_PATTERNS[schema["format"]], value):
            errors.append(f"format {schema['format']}")
    if is_type(value, "number"):
        errors += number_errors(schema, value)
    return errors


FORMAT_PATTERNS = {
    "date-time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)",
    "date": r"\d{4}-\d\d-\d\d",
    "time": r"\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)",
    "duration": r"P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?",
    "email": r"[^@\s]+@[^@\s]+\.[a-z]+",
    "uri": r"[a-z][a-z0-9+.-]*://\S+",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "hostname": r"[a-z0-9-]+(\.[a-z0-9-]+)*",
    "ipv4": r"(\d{1,3}\.){3}\d{1,3}",
    "ipv6": r"[0-9a-f:]+",
}


def number_errors(schema: dict[str, Any], value: float) -> list[str]:
    errors = []
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and (value < low or (ex_low is True and value == low)):
        errors.append("minimum")
    if high is not None and (value > high or (ex_high is True and value == high)):
        errors.append("maximum")
    if not isinstance(ex_low, bool | None) and value <= ex_low:
        errors.append("exclusiveMinimum")
    if not isinstance(ex_high, bool | None) and value >= ex_high:
        errors.append("exclusiveMaximum")
    step = schema.get("multipleOf")
    if step is not None and Fraction(repr(value)) % Fraction(repr(step)) != 0:
        errors.append("multipleOf")
    return errors


def is_type(value: Any, name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: (
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, float) and v.is_integer())
        ),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return checks[name](value)


def canon(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        return "[" + ",".join(canon(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{canon(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(value)


def json_equal(a: Any, b: Any) -> bool:
    return canon(a) == canon(b)


# -- the schema sampler on many schemas -----------------------------------------------------

SAMPLER_PROPS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
KNOWN_FORMATS = sorted(FORMAT_PATTERNS)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-50, 50),
    st.text(alphabet="abcxyz", max_size=4),
    st.floats(-1e3, 1e3).map(lambda x: round(x, 2)),
)


@st.composite
def bound_keywords(draw: st.DrawFn, low: float, high: float) -> dict[str, Any]:
    """Bounds low/high, each absent, inclusive, exclusive, or draft-4 exclusive."""
    out: dict[str, Any] = {}
    for value, inclusive, exclusive in ((low, "minimum", "exclusiveMinimum"),
                                        (high, "maximum", "exclusiveMaximum")):  # fmt: skip
        form = draw(st.sampled_from(["absent", "inclusive", "exclusive", "draft4"]))
        if form == "inclusive":
            out[inclusive] = value
        elif form == "exclusive":
            out[exclusive] = value
        elif form == "draft4":
            out[inclusive] = value
            out[exclusive] = True
    return out


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(-(10**6), 10**6))
    high = low + draw(st.integers(10, 10**4))
    if draw(st.booleans()):
        low, high = low + 0.5, high - 0.5  # type: ignore[assignment]
    schema: dict[str, Any] = {"type": "integer", **draw(bound_keywords(low, high))}
    if draw(st.booleans()):
        schema["multipleOf"] = draw(st.integers(1, 4))
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.floats(-1e6, 1e6))
    width = draw(st.floats(1e-6, 1e6))
    schema: dict[str, Any] = {"type": "number", **draw(bound_keywords(low, low + width))}
    step = draw(st.sampled_from([None, 0.5, 0.25, 0.1, 2, 3]))
    if step is not None and width >= 3 * step:
        schema["multipleOf"] = step
    return schema


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"type": "string", "format": draw(st.sampled_from(KNOWN_FORMATS))}
    schema: dict[str, Any] = {"type": "string"}
    low = draw(st.integers(0, 30))
    if draw(st.booleans()):
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = low + draw(st.integers(0, 10))
    return schema


leaf_schemas = st.one_of(
    integer_schemas(),
    number_schemas(),
    string_schemas(),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {}, True, {"title": "anything"}]),
    st.lists(scalars, min_size=1, max_size=4, unique_by=canon).map(lambda v: {"enum": v}),
    scalars.map(lambda v: {"const": v}),
    string_schemas().map(lambda s: {**s, "type": ["string", "null"]}),
    integer_schemas().map(lambda s: {**s, "nullable": True}),
    st.just({"type": ["integer", "string", "boolean"], "maxLength": 3, "minimum": 7}),
)

names = st.sampled_from(["a", "b", "c", "d/e", "f~g", "h i"])


@st.composite
def object_schemas(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    props = draw(st.dictionaries(names, children, max_size=4))
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    extra = draw(st.sampled_from(["absent", False, True, "schema"]))
    if extra == "schema":
        schema["additionalProperties"] = draw(children)
    elif extra != "absent":
        schema["additionalProperties"] = extra
    if extra is not False and draw(st.booleans()):
        required.append("not_listed")
    if required:
        schema["required"] = required
    return schema


@st.composite
def array_schemas(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(children)}
    low = draw(st.integers(0, 3))
    if draw(st.booleans()):
        schema["minItems"] = low
    if draw(st.booleans()):
        schema["maxItems"] = low + draw(st.integers(0, 3))
    if low <= 1 and draw(st.booleans()):
        schema["uniqueItems"] = True
    return schema


def one_of_distinct_types(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def branch(kind: str, child: Any) -> dict[str, Any]:
        if kind == "object":
            return {"type": "object", "properties": {"k": child}, "required": ["k"]}
        if kind == "array":
            return {"type": "array", "items": child}
        return {"type": kind}

    kinds = st.lists(
        st.sampled_from(["string", "integer", "boolean", "null", "object", "array"]),
        min_size=1, max_size=4, unique=True,
    )  # fmt: skip
    return st.builds(
        lambda ks, cs: {"oneOf": [branch(k, c) for k, c in zip(ks, cs, strict=False)]},
        kinds,
        st.lists(children, min_size=4, max_size=4),
    )


schema_trees = st.recursive(
    leaf_schemas,
    lambda children: st.one_of(
        object_schemas(children),
        array_schemas(children),
        st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}),
        one_of_distinct_types(children),
        children.map(lambda c: {"allOf": [c], "description": "one"}),
    ),
    max_leaves=12,
)


@st.composite
def json_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A tree of the supported subset, some of its subschemas moved into $defs (or
    definitions) and referenced from where they were."""
    tree = draw(schema_trees)
    container = draw(st.sampled_from(["$defs", "definitions"]))
    defs: dict[str, Any] = {}

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = dict(node)
        if "properties" in out:
            out["properties"] = {k: walk(v) for k, v in out["properties"].items()}
        for key in ("items", "additionalProperties"):
            if isinstance(out.get(key), dict):
                out[key] = walk(out[key])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in out:
                out[key] = [walk(v) for v in out[key]]
        if draw(st.booleans()):
            name = f"D{len(defs)}"
            defs[name] = out
            return {"$ref": f"#/{container}/{name}"}
        return out

    walked = walk(tree)
    root: dict[str, Any] = {} if walked is True else walked
    if defs:
        root = {**root, container: defs}
    return root


@SAMPLER_PROPS
@given(schema=json_schemas(), seed=st.integers(0, 2**64))
def test_sampled_instances_satisfy_generated_schemas(schema: dict[str, Any], seed: int) -> None:
    value = sample_instance(schema, random.Random(seed))
    assert check(schema, value) == [], json.dumps(value)
    assert sample_instance(schema, random.Random(seed)) == value
    bad = invalid_text(schema, value, random.Random(seed))
    try:
        parsed = json.loads(bad)
    except ValueError:
        return
    assert check(schema, parsed), f"{bad} should break the schema"


class Tree(BaseModel):
    value: Annotated[int, Field(ge=0, le=9)]
    children: list[Tree] = []
    parent: Tree | None = None


HANDMADE = [
    TypeAdapter(Tree).json_schema(),
    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
     "exclusiveMaximum": True},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 1e-10},
    {"type": "number", "minimum": -1e300, "maximum": 1e300},
    {"type": "number", "multipleOf": 0.1, "minimum": 0.05, "maximum": 0.35},
    {"type": "integer", "maximum": -5},
    ONE_INTEGER := {"type": "integer", "minimum": 1.5, "maximum": 2.5},
    DRAFT4_ONE := {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 2,
                   "exclusiveMaximum": True},
    {"type": "string", "enum": ["a", 1, None, "b", True]},
    {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2, "maxItems": 2,
     "uniqueItems": True},
    NO_ITEMS := {"type": "array", "items": False},
    {"definitions": {"P": {"type": "object", "properties": {"x": {"type": ["integer", "null"]}},
                           "required": ["x"]}},
     "type": "array", "items": {"$ref": "#/definitions/P"}, "minItems": 1},
    CONSTANT := {"$defs": {"a/b": {"const": {"nested": [1, 2.5, None]}}}, "$ref": "#/$defs/a~1b"},
    {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "integer"}], "title": "id"},
    {"type": "object", "additionalProperties": {"type": "boolean"}},
    {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(8)}},
    {"type": "string", "format": "date-time", "nullable": True},
    {"properties": {"implied": {"maxLength": 2}}, "required": ["implied"]},
    {"type": "string", "minLength": 500},
    {},
]  # fmt: skip


SINGLE_VALUED = (ONE_INTEGER, DRAFT4_ONE, NO_ITEMS, CONSTANT)


@pytest.mark.parametrize("schema", HANDMADE, ids=range(len(HANDMADE)))
def test_sampled_instances_satisfy_handmade_schemas(schema: dict[str, Any]) -> None:
    values = [sample_instance(schema, random.Random(seed)) for seed in range(60)]
    for value in values:
        assert check(schema, value) == [], json.dumps(value)
    distinct = len({canon(v) for v in values})
    assert distinct == 1 if any(schema is one for one in SINGLE_VALUED) else distinct > 1


def test_a_recursive_pydantic_model_validates() -> None:
    for seed in range(50):
        value = sample_instance(TypeAdapter(Tree).json_schema(), random.Random(seed))
        Tree.model_validate_json(json.dumps(value), strict=True)


model_ids = itertools.count()


def model_of(fields: list[tuple[Any, bool]]) -> Any:
    spec: dict[str, Any] = {
        f"f{i}": (tp, ...) if required else (tp | None, None)
        for i, (tp, required) in enumerate(fields)
    }
    return create_model(f"Generated{next(model_ids)}", **spec)


python_leaves = st.one_of(
    st.sampled_from([
        int, float, str, bool, type(None), datetime.date, datetime.datetime, datetime.time,
        uuid.UUID, Literal["red", "green"], Literal[1, 2, 3], set[int], frozenset[str],
    ]),
    st.builds(lambda lo, w: Annotated[int, Field(ge=lo, le=lo + w)],
              st.integers(-100, 100), st.integers(0, 50)),
    st.builds(lambda lo, w, m: Annotated[int, Field(gt=lo, lt=lo + w, multiple_of=m)],
              st.integers(-100, 100), st.integers(10, 50), st.integers(1, 3)),
    st.builds(lambda lo, w: Annotated[float, Field(ge=lo, lt=lo + w)],
              st.floats(-100, 100), st.floats(0.5, 50)),
    st.builds(lambda lo, w: Annotated[str, Field(min_length=lo, max_length=lo + w)],
              st.integers(0, 10), st.integers(0, 10)),
)  # fmt: skip

python_types = st.recursive(
    python_leaves,
    lambda children: st.one_of(
        children.map(lambda t: list[t]),  # type: ignore[valid-type]
        st.builds(
            lambda t, lo, w: Annotated[list[t], Field(min_length=lo, max_length=lo + w)],  # type: ignore[valid-type]
            children,
            st.integers(0, 3),
            st.integers(0, 3),
        ),
        children.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        children.map(lambda t: t | None),
        st.tuples(children, children).map(lambda ts: Union[ts]),  # noqa: UP007
        st.lists(st.tuples(children, st.booleans()), min_size=1, max_size=4).map(model_of),
    ),
    max_leaves=8,
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(tp=python_types, seed=st.integers(0, 2**64))
def test_sampled_instances_validate_with_pydantic(tp: Any, seed: int) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(tp)
    schema = adapter.json_schema()
    value = sample_instance(schema, random.Random(seed))
    adapter.validate_json(json.dumps(value), strict=True)
    assert check(schema, value) == [], json.dumps(value)


def test_the_request_log_and_prompt_counts_are_bounded() -> None:
    provider = SimulatedProvider(keep_requests=3)
    for i in range(10):
        provider.complete(CompletionRequest(prompt=f"q{i}"))
    provider.complete(CompletionRequest(prompt="q0"))
    assert [r.prompt for r in provider.requests] == ["q8", "q9", "q0"]
    stats = provider.statistics()
    assert stats.calls == 11 and stats.by_prompt == {"q0": 2, "q1": 1, "q2": 1}
    with pytest.raises(ConfigurationError, match="keep_requests"):
        SimulatedProvider(keep_requests=-1)
    assert SimulatedProvider.from_config({"keep_requests": 0}).keep_requests == 0
