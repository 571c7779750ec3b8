"""AnthropicProvider through the real ``anthropic`` SDK against a fake Messages API on
127.0.0.1 (tests/fake_anthropic.py): what is sent, what comes back, how each failure maps,
that the SDK never retries by itself, that the key never leaks; then through the provider
registry's guard: Retry-After on the fake clock, the breaker and a fallback, RPM at the
server, and the server's rate-limit headers aligning the limiter."""

from __future__ import annotations

import datetime
import email.utils
import itertools
import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otpy._snapshot import Snapshot
from otpy.actors import ProviderRegistry, ProviderRegistryHandle
from otpy.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    InvalidRequestError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
    SpendLimitError,
)
from otpy.providers import (
    CompletionRequest,
    Message,
    ProviderTable,
    RateLimitReading,
    SimulatedProvider,
    Usage,
)
from otpy.providers._anthropic import AnthropicProvider
from otpy.providers._anthropic_map import rate_limits
from otpy.resilience import RateLimiter
from otpy.telemetry import Telemetry
from otpy.testing import FakeClock, wait_until
from otpy.testing.fake_anthropic import MODEL, FakeAnthropic, Reply, error, message, tool_use
from support import InThread

KEY = "otpy-test-key-3f9a7c1e5b2d4a6081"  # no known key shape: only the literal masks it
RESET_AT = datetime.datetime(2026, 11, 22, 8, tzinfo=datetime.UTC).timestamp()
LIMITS = {"rpm": 20, "max_attempts": 2, "timeout": None}
_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE")  # fmt: skip
_names = itertools.count()


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(clock=clock, expected_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def make(fake: FakeAnthropic) -> Iterator[Callable[..., AnthropicProvider]]:
    """Providers pointed at the fake (closed after the test)."""
    made: list[AnthropicProvider] = []

    def build(**kwargs: Any) -> AnthropicProvider:
        provider = AnthropicProvider(**{"api_key": KEY, "base_url": fake.url, **kwargs})
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make: Callable[..., AnthropicProvider]) -> AnthropicProvider:
    return make()


def ask(prompt: str = "hi", **fields: Any) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, **fields)


# -- one call -----------------------------------------------------------------------------


def test_a_call_sends_the_request_and_reports_usage_text_model_and_rate_limits(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.queue(
        message(
            "Paris.",
            model="claude-sonnet-4-6-20261001",
            input_tokens=20,
            output_tokens=3,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=4,
        )
    )
    history = (Message(role="user", content="Hi"), Message(role="assistant", content="Hello."))
    request = CompletionRequest(
        messages=history, prompt="Capital of France?", system="Be brief.",
        temperature=0.2, max_tokens=64, stop=("\n\n",),
    )  # fmt: skip
    completion = provider.complete(request)
    assert (completion.text, completion.model, completion.provider) == (
        "Paris.", "claude-sonnet-4-6-20261001", "anthropic",
    )  # fmt: skip
    assert completion.usage == Usage(input_tokens=124, output_tokens=3)  # cache counts as input
    assert completion.stop_reason == "end_turn" and completion.structured is None
    assert 0 < completion.latency < 5
    assert completion.rate_limits == (
        RateLimitReading(dimension="requests", limit=50, remaining=49, reset_at=RESET_AT),
        RateLimitReading(dimension="tokens", limit=90_000, remaining=89_999, reset_at=RESET_AT),
        RateLimitReading(dimension="input_tokens", limit=80_000, remaining=79_999,
                         reset_at=RESET_AT),
        RateLimitReading(dimension="output_tokens", limit=10_000, remaining=9_999,
                         reset_at=RESET_AT),
    )  # fmt: skip
    (sent,) = fake.requests
    assert sent.path == "/v1/messages" and sent.api_key == KEY
    assert sent.headers["anthropic-version"]  # the SDK's API version
    assert sent.body == {  # temperature is not sent: this API version refuses it (a 400)
        "model": MODEL,
        "max_tokens": 64,
        "system": "Be brief.",
        "stop_sequences": ["\n\n"],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital of France?"},
        ],
    }


def test_model_and_max_tokens_come_from_the_request_else_the_provider(
    make: Callable[..., AnthropicProvider], fake: FakeAnthropic
) -> None:
    p = make(model="claude-haiku-4-5", default_max_tokens=256)
    p.complete(ask())
    p.complete(ask(max_tokens=32, model="claude-opus-4-8"))
    bodies = [r.body for r in fake.requests]
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [
        ("claude-haiku-4-5", 256), ("claude-opus-4-8", 32),
    ]  # fmt: skip
    assert "system" not in bodies[0] and "stop_sequences" not in bodies[0]
    assert p.estimate_tokens(ask("abcd")) == 2 + 256  # reserves what it will ask for
    assert p.estimate_tokens(ask("abcd", max_tokens=8)) == 2 + 8
    assert AnthropicProvider(api_key=KEY).model == AnthropicProvider.DEFAULT_MODEL


@pytest.mark.parametrize(
    ("schema", "sent_schema", "arguments", "structured"),
    [
        (
            {"type": "object", "properties": {"city": {"type": "string"}}},
            {"type": "object", "properties": {"city": {"type": "string"}}},
            {"city": "Paris"},
            {"city": "Paris"},
        ),
        (
            {"type": "array", "items": {"type": "integer"}},
            {"type": "object", "properties": {"value": {"type": "array",
             "items": {"type": "integer"}}}, "required": ["value"]},
            {"value": [1, 2]},
            [1, 2],
        ),
    ],
    ids=["object", "wrapped"],
)  # fmt: skip
def test_structured_output_is_a_forced_tool_call(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    schema: dict[str, Any],
    sent_schema: dict[str, Any],
    arguments: Any,
    structured: Any,
) -> None:
    fake.queue(tool_use(arguments))
    completion = provider.complete(ask("Where?", response_schema=schema))
    assert completion.structured == structured
    assert completion.text == json.dumps(structured)
    assert completion.stop_reason == "tool_use"
    body = fake.requests[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}
    (tool,) = body["tools"]
    assert (tool["name"], tool["input_schema"]) == ("respond", sent_schema)


def test_a_text_answer_to_a_schema_has_no_structured_value(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.queue(message("I cannot.", stop_reason="refusal"))
    completion = provider.complete(ask(response_schema={"type": "object"}))
    assert (completion.text, completion.structured, completion.stop_reason) == (
        "I cannot.", None, "refusal",
    )  # fmt: skip


def test_rate_limit_headers_missing_or_malformed_are_left_out() -> None:
    prefix = "anthropic-ratelimit-"
    assert rate_limits({}) == ()
    readings = rate_limits({
        f"{prefix}requests-limit": "50", f"{prefix}requests-remaining": "lots",
        f"{prefix}requests-reset": "soon",
        f"{prefix}tokens-limit": "-1", f"{prefix}tokens-remaining": "x",  # all malformed
        f"{prefix}OUTPUT-TOKENS-remaining": "7",
        f"{prefix}output-tokens-reset": "2026-11-22T08:00:00",  # no zone: UTC
    })  # fmt: skip
    assert readings == (
        RateLimitReading(dimension="requests", limit=50),
        RateLimitReading(dimension="output_tokens", remaining=7, reset_at=RESET_AT),
    )


def test_a_malformed_rate_limit_header_never_fails_a_good_answer(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    bad = {
        "anthropic-ratelimit-requests-remaining": "many",
        "anthropic-ratelimit-tokens-reset": "?",
    }
    fake.queue(Reply(body=message("fine"), headers=bad))
    completion = provider.complete(ask())
    assert completion.text == "fine"
    by = {r.dimension: r for r in completion.rate_limits}
    assert (by["requests"].limit, by["requests"].remaining) == (50, None)
    assert by["tokens"].reset_at is None and by["tokens"].remaining == 89_999


# -- failures -----------------------------------------------------------------------------

_HTML = {"content-type": "text/html"}
_CASES: list[tuple[str, Reply, type[ProviderError], int | None, str]] = [
    ("429", error(429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                  {"retry-after": "12"}), RateLimitedError, 429, "exceeded your rate limit"),
    ("429-spend", error(429, "rate_limit_error", "Spend limit reached",
                        error_code="enforced_spend_limit_reached"), SpendLimitError, 429, "Spend"),
    ("400-credit", error(400, "invalid_request_error", "Your credit balance is too low to access "
                         "the Anthropic API."), SpendLimitError, 400, "credit balance"),
    ("402", error(402, "billing_error", "Payment required"), SpendLimitError, 402, "Payment"),
    ("401", error(401, "authentication_error", "invalid x-api-key"),
     AuthenticationError, 401, "authentication_error"),
    ("403", error(403, "permission_error", "Your API key does not have permission"),
     AuthenticationError, 403, "permission"),
    ("400", error(400, "invalid_request_error", "messages: roles must alternate"),
     InvalidRequestError, 400, "roles must alternate"),
    ("404", error(404, "not_found_error", "model: claude-nope"), InvalidRequestError, 404, "nope"),
    ("413", error(413, "request_too_large", "Request exceeds the maximum size"),
     InvalidRequestError, 413, "maximum size"),
    ("422", error(422, "invalid_request_error", "unprocessable"), InvalidRequestError, 422, "unp"),
    ("408", error(408, "timeout_error", "Request timed out"), ProviderTimeoutError, 408, "timed"),
    ("529", error(529, "overloaded_error", "Overloaded"), OverloadedError, 529, "Overloaded"),
    ("503", error(503, "api_error", "Service unavailable"), OverloadedError, 503, "unavailable"),
    ("500", error(500, "api_error", "Internal server error"), ServerError, 500, "Internal"),
    ("502-html", Reply(502, b"<html>Bad Gateway</html>", _HTML), ServerError, 502, "Bad Gateway"),
    ("200-bad-json", Reply(200, b'{"id": "msg_01", "type": "mess'),
     ServerError, 200, "malformed response: the body is not JSON"),
    ("200-html", Reply(200, b"<html>hello</html>", _HTML), ServerError, 200, "malformed response"),
    ("200-no-usage", Reply(200, {"id": "msg_01", "type": "message", "content": []}),
     ServerError, 200, "malformed response: not a Messages response (usage"),
    ("200-error-body", error(200, "api_error", "oops"), ServerError, 200, "malformed response"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "kind", "status", "says"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES]
)
def test_each_failure_maps_to_its_error_class_after_exactly_one_request(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    reply: Reply,
    kind: type[ProviderError],
    status: int | None,
    says: str,
) -> None:
    fake.queue(reply)
    with pytest.raises(ProviderError) as info:
        provider.complete(ask())
    exc = info.value
    assert type(exc) is kind, repr(exc)
    assert (exc.provider, exc.status) == ("anthropic", status)
    assert says in str(exc)
    assert exc.retryable == (kind in (RateLimitedError, OverloadedError, ServerError,
                                      ProviderTimeoutError))  # fmt: skip
    assert exc.__cause__ is None and exc.__suppress_context__  # no SDK object rides along
    assert len(fake.requests) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after-ms": "1500"}, 1.5, 1.5),
        ({"retry-after": "7"}, 7.0, 7.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25, 0.25),  # ms wins
        ({"retry-after": "in a while"}, None, None),
        ("http-date", 27.0, 31.0),  # an HTTP-date 30 s from now (wall clock, whole seconds)
    ],
    ids=["ms", "seconds", "ms-first", "garbage", "http-date"],
)
def test_retry_after_is_read_from_the_429(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    headers: dict[str, str] | str,
    low: float | None,
    high: float | None,
) -> None:
    if headers == "http-date":
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
        headers = {"retry-after": email.utils.format_datetime(when, usegmt=True)}
    assert isinstance(headers, dict)
    fake.queue(error(429, "rate_limit_error", "slow down", headers))
    with pytest.raises(RateLimitedError) as info:
        provider.complete(ask())
    after = info.value.retry_after
    if low is None:
        assert after is None
    else:
        assert after is not None and low <= after <= (high or low)


def test_a_529_carries_its_retry_after_too(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.queue(error(529, "overloaded_error", "Overloaded", {"retry-after": "3"}))
    with pytest.raises(OverloadedError) as info:
        provider.complete(ask())
    assert info.value.retry_after == 3.0


def test_a_slow_answer_past_the_sdk_timeout_is_a_provider_timeout(
    make: Callable[..., AnthropicProvider], fake: FakeAnthropic
) -> None:
    gate = threading.Event()
    fake.queue(Reply(body=message("too late"), hold=gate))
    p = make(timeout=0.2)
    try:
        with pytest.raises(ProviderTimeoutError, match=r"no answer within 0\.2 s") as info:
            p.complete(ask())
    finally:
        gate.set()  # the client gave up: let the server answer into the void
    assert info.value.retryable and info.value.status is None
    assert len(fake.requests) == 1
    assert p.complete(ask("again")).text == "echo: again"  # the client still works


def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = AnthropicProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ProviderConnectionError, match="could not reach the API") as info:
            p.complete(ask())
    finally:
        p.close()
    assert info.value.retryable and "ConnectError" in str(info.value)


def test_a_missing_key_fails_the_call_not_the_constructor(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = AnthropicProvider(base_url=fake.url)  # configured, unused: fine
    blank = AnthropicProvider(api_key="", base_url=fake.url)
    try:
        for unkeyed in (p, blank):
            with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY") as info:
                unkeyed.complete(ask())
            assert not info.value.retryable and info.value.provider == "anthropic"
        assert fake.requests == []
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # read when the provider is first used
        assert p.complete(ask()).text == "echo: hi"
        assert fake.requests[0].api_key == KEY
    finally:
        p.close()
        blank.close()


def test_a_closed_provider_refuses_calls(provider: AnthropicProvider) -> None:
    provider.complete(ask())
    provider.close()
    provider.close()
    with pytest.raises(ProviderError, match="closed"):
        provider.complete(ask())


def test_the_key_never_reaches_logs_errors_or_reprs(
    provider: AnthropicProvider, fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.queue(
        message("ok"),
        error(401, "authentication_error", f"key {KEY} is not valid"),  # a server echoing it
        error(429, "rate_limit_error", "slow down", {"retry-after": "1"}),
        Reply(200, f"not json {KEY}".encode()),
    )
    provider.complete(ask(temperature=0.5))
    errors = []
    for _ in range(3):
        with pytest.raises(ProviderError) as info:
            provider.complete(ask())
        errors.append(info.value)
    assert "[REDACTED]" in str(errors[0])
    for exc in errors:
        shown = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
        assert KEY not in shown
    assert KEY not in repr(provider) and KEY not in repr(vars(provider))
    loggers = {r.name.split(".")[0] for r in caplog.records}
    assert {"anthropic", "httpx2", "httpcore2", "otpy"} <= loggers  # the SDK did log, at DEBUG
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage() and KEY not in str(record.exc_text)
    assert fake.requests[0].api_key == KEY  # it was sent, to the server only


# -- configuration ------------------------------------------------------------------------


def test_from_config_takes_the_constructor_names_and_refuses_others() -> None:
    p = AnthropicProvider.from_config(
        {"name": "claude", "api_key": KEY, "model": "claude-opus-4-8", "timeout": 30,
         "base_url": "http://127.0.0.1:9", "default_max_tokens": 100,
         "capabilities": ["text", "chat"]}
    )  # fmt: skip
    assert (p.name, p.model, p.timeout, p.base_url, p.default_max_tokens) == (
        "claude", "claude-opus-4-8", 30.0, "http://127.0.0.1:9", 100,
    )  # fmt: skip
    assert p.capabilities == {"text", "chat"}
    assert repr(p) == "<AnthropicProvider 'claude' model='claude-opus-4-8' at http://127.0.0.1:9>"
    for bad, says in (
        ({"temperature": 0.2}, "unknown anthropic provider setting 'temperature'"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"default_max_tokens": 0}, "default_max_tokens"),
        ({"model": ""}, "model"),
        ({"capabilities": []}, "capabilities"),
        ({"api_key": 12345678901234}, "api_key must be a string"),
    ):
        with pytest.raises(ConfigurationError, match=says) as info:
            AnthropicProvider.from_config(bad)
        assert "12345678901234" not in str(info.value)
    with pytest.raises(ConfigurationError, match="mapping"):
        AnthropicProvider.from_config(["name"])  # type: ignore[arg-type]


def test_base_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8")
    assert AnthropicProvider().base_url == "http://127.0.0.1:8"
    assert AnthropicProvider(base_url="http://127.0.0.1:7").base_url == "http://127.0.0.1:7"


# -- through the registry's guard -----------------------------------------------------------


@pytest.fixture
def registry(clock: FakeClock, hub: Telemetry) -> ProviderRegistryHandle:
    name = f"anthropic{next(_names)}.providers"
    snapshot = Snapshot(ProviderTable())
    ProviderRegistry.start_named(name, snapshot, clock=clock)
    return ProviderRegistryHandle(name, snapshot, clock=clock, seed=7)


def test_a_429_with_retry_after_is_waited_out_on_the_clock_and_retried_once(
    registry: ProviderRegistryHandle,
    make: Callable[..., AnthropicProvider],
    fake: FakeAnthropic,
    clock: FakeClock,
) -> None:
    registry.register_provider("claude", make(), limits=LIMITS)
    fake.queue(error(429, "rate_limit_error", "slow down", {"retry-after": "7"}))
    call = InThread(registry.complete, ask("wait for it"), provider="claude")
    clock.wait_for_sleepers(1)  # the retry waits the Retry-After on the fake clock
    assert len(fake.requests) == 1
    limiter = registry.get_provider("claude").limiter
    assert limiter is not None and limiter.statistics().paused_for == 7.0  # everyone backs off
    clock.advance(7)
    assert call.result().text == "echo: wait for it"
    first, second = fake.requests
    assert second.at is not None and first.at is not None and second.at - first.at == 7.0
    health = registry.health()["claude"]
    assert health.last_error is not None and health.last_error.startswith("RateLimitedError")


def test_five_500s_open_the_breaker_and_the_fallback_serves(
    registry: ProviderRegistryHandle,
    make: Callable[..., AnthropicProvider],
    fake: FakeAnthropic,
    clock: FakeClock,
) -> None:
    """One attempt per call here (max_attempts 1), so five calls are five 500s; then
    selection skips the open breaker and the lower-priority provider serves, and asking
    for the broken one by name is refused without a request."""
    limits = {**LIMITS, "max_attempts": 1, "fail_max": 5, "reset_timeout": 30}
    registry.register_provider("claude", make(name="claude"), priority=10, limits=limits)
    registry.register_provider("backup", SimulatedProvider("backup", clock=clock))
    fake.queue(*[error(500, "api_error", "Internal server error")] * 5)
    for _ in range(5):
        with pytest.raises(ServerError):
            registry.complete(ask())  # priority picks claude while its breaker is closed
    assert registry.health()["claude"].breaker_state == "open"
    assert registry.complete(ask()).provider == "backup"
    with pytest.raises(CircuitOpenError):
        registry.complete(ask(), provider="claude")
    assert len(fake.requests) == 5
    clock.advance(30)  # a probe is due; the server has recovered
    assert registry.complete(ask("back")).provider == "claude"
    assert registry.health()["claude"].breaker_state == "closed"


@pytest.mark.parametrize(
    "step",
    [60, 7, 13],
    ids=["minute-steps", "7s-steps", "13s-steps"],
)
def test_100_concurrent_calls_never_exceed_20_a_minute_at_the_server(
    registry: ProviderRegistryHandle,
    make: Callable[..., AnthropicProvider],
    fake: FakeAnthropic,
    clock: FakeClock,
    step: float,
) -> None:
    """The fake clock moves ``step`` seconds at a time, only when every admitted call has
    been answered and nobody else can be admitted; the server stamps each arrival with it.
    With 7 s steps the arrivals spread over the minute, so any 60 s window is checked."""
    registry.register_provider("claude", make(), limits=LIMITS)
    limiter = registry.get_provider("claude").limiter
    assert limiter is not None
    calls = [InThread(registry.complete, ask(f"q{i}"), provider="claude") for i in range(100)]
    try:
        for _ in range(200):
            wait_until(lambda: _settled(calls, fake, limiter), timeout=10, message="settled")
            if all(c.done.is_set() for c in calls):
                break
            clock.advance(step)
    finally:
        clock.advance(3600)  # whatever happened, let every caller finish
    results = [c.result() for c in calls]
    assert sorted(r.text for r in results) == sorted(f"echo: q{i}" for i in range(100))
    arrivals = sorted(r.at for r in fake.requests if r.at is not None)
    assert len(arrivals) == 100 and limiter.statistics().waited == 80
    busiest = max(sum(1 for a in arrivals if t <= a < t + 60) for t in arrivals)
    assert busiest <= 20, f"{busiest} requests reached the server within 60 s"
    assert busiest == 20  # and the limit was used, not undershot


def _settled(calls: list[InThread], fake: FakeAnthropic, limiter: RateLimiter) -> bool:
    """Everyone admitted has been answered, everyone else is queued, and nobody can be
    admitted before the clock moves: safe to advance it."""
    stats = limiter.statistics()
    done = sum(c.done.is_set() for c in calls)
    if not (stats.waiting + stats.acquired == len(calls) == stats.waiting + done):
        return False
    return len(fake.requests) == stats.acquired and (stats.waiting == 0 or limiter.wait_time() > 0)


def test_the_servers_rate_limit_headers_align_the_limiter(
    registry: ProviderRegistryHandle, make: Callable[..., AnthropicProvider], fake: FakeAnthropic
) -> None:
    registry.register_provider("claude", make(), limits=LIMITS)
    fake.queue(Reply(body=message(), headers={"anthropic-ratelimit-requests-remaining": "2"}))
    registry.complete(ask())
    limiter = registry.get_provider("claude").limiter
    assert limiter is not None
    stats = limiter.statistics()
    assert stats.aligned == {"requests": 17}  # 19 left by our count, 2 by the server's
    assert stats.buckets[0].remaining == 2


def test_the_key_never_reaches_the_logs_or_the_event_store(
    registry: ProviderRegistryHandle,
    make: Callable[..., AnthropicProvider],
    fake: FakeAnthropic,
    hub: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    registry.register_provider("claude", make(), limits=LIMITS)
    fake.queue(
        message("ok"),
        error(429, "rate_limit_error", f"slow down {KEY}", {"retry-after": "0"}),
        message("after the retry"),
        error(401, "authentication_error", f"key {KEY} is not valid"),
    )
    assert registry.complete(ask()).text == "ok"
    assert registry.complete(ask()).text == "after the retry"
    with pytest.raises(AuthenticationError) as info:
        registry.complete(ask())
    assert KEY not in str(info.value) and len(fake.requests) == 4
    events = hub.store.query()
    assert any(e.name == "provider.call" for e in events)
    for event in events:
        assert KEY not in repr(event.to_dict())
    health = registry.health()["claude"]
    assert health.last_error is not None and KEY not in health.last_error
    assert KEY not in caplog.text and caplog.records
