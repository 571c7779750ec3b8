"""GeminiProvider through the real google-genai SDK against a fake Gemini API on 127.0.0.1:
the request it sends, the answer it reads, every error mapping, the key kept secret, and
the provider behind a ProviderRegistry's guard (Retry-After waited out, breaker)."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from provider_plugins import ScriptedProvider

from otpy._snapshot import Snapshot
from otpy.actors import ProviderRegistry, ProviderRegistryHandle
from otpy.errors import (
    AuthenticationError,
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
from otpy.providers import CompletionRequest, Message, ProviderTable
from otpy.providers._gemini import GeminiProvider
from otpy.providers._gemini_map import retry_delay
from otpy.telemetry import Telemetry
from otpy.testing import FakeClock
from otpy.testing.fake_gemini import (
    FakeGemini,
    Reply,
    error,
    malformed,
    ok,
    quota_failure,
    retry_info,
    running,
)
from support import InThread

KEY = "gk-test-7f3a9c1e5d2b8a64"  # no known key shape: a leak would not be masked
QUOTA = "You exceeded your current quota, please check your plan and billing details."
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}
_names = itertools.count()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, base URL or mode from the machine's environment reaches these tests."""
    for variable in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_CLIENT_MODE",
        "GOOGLE_GENAI_HTTP_CLIENT",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with running() as server:
        yield server


@pytest.fixture
def provider(fake: FakeGemini) -> Iterator[GeminiProvider]:
    p = GeminiProvider(api_key=KEY, base_url=fake.base_url, timeout=10)
    yield p
    p.close()


@pytest.fixture
def registry(clock: FakeClock, hub: Telemetry) -> ProviderRegistryHandle:
    name = f"gemini{next(_names)}.providers"
    snapshot: Snapshot[ProviderTable] = Snapshot(ProviderTable())
    ProviderRegistry.start_named(name, snapshot, clock=clock)
    return ProviderRegistryHandle(name, snapshot, clock=clock, seed=7)


def ask(prompt: str = "hi", **fields: Any) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, **fields)


# -- a call and what it sends -------------------------------------------------------------


def test_a_call_succeeds_with_text_usage_model_and_stop_reason(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(ok("Four.", prompt_tokens=12, output_tokens=3, thoughts_tokens=5))
    completion = provider.complete(ask("2+2?"))
    assert completion.text == "Four."
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (12, 8)
    assert completion.model == "gemini-2.5-flash-001"  # modelVersion
    assert (completion.provider, completion.stop_reason) == ("gemini", "stop")
    assert completion.structured is None and completion.rate_limits == ()
    assert completion.latency >= 0
    (sent,) = fake.requests
    assert sent.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "2+2?"}]}],
        "generationConfig": {"maxOutputTokens": 1024},
    }


def test_settings_are_sent_as_the_api_expects(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.script(ok(model_version=None, finish_reason="MAX_TOKENS"))
    request = CompletionRequest(
        messages=(Message(role="user", content="Hi"), Message(role="assistant", content="Hello")),
        prompt="Answer as JSON",
        system="Be brief.",
        model="gemini-2.5-pro",
        temperature=0.3,
        max_tokens=64,
        stop=("END", "STOP"),
        response_schema=SCHEMA,
    )
    completion = provider.complete(request)
    assert completion.model == "gemini-2.5-pro"  # no modelVersion: the model asked for
    assert completion.stop_reason == "max_tokens"
    (sent,) = fake.requests
    assert sent.model == "gemini-2.5-pro"
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "Answer as JSON"}]},
    ]
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 64,
        "stopSequences": ["END", "STOP"],
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }


def test_structured_output_is_parsed_and_an_unparseable_one_keeps_the_text(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(ok('{"answer": 4}'), ok("four, I think"), ok('{"answer": 4}'))
    assert provider.complete(ask(response_schema=SCHEMA)).structured == {"answer": 4}
    unparsed = provider.complete(ask(response_schema=SCHEMA))
    assert (unparsed.structured, unparsed.text) == (None, "four, I think")
    assert provider.complete(ask()).structured is None  # no schema asked: text only


def test_usage_missing_from_the_answer_is_estimated(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    body = ok("12345678").body
    del body["usageMetadata"]
    fake.script(Reply(200, body))
    usage = provider.complete(ask("x" * 40)).usage
    assert (usage.input_tokens, usage.output_tokens) == (10, 2)


# -- errors -------------------------------------------------------------------------------

ERRORS = [
    # reply, error class, HTTP status, retry_after
    (error(429, QUOTA, details=[quota_failure("GenerateRequestsPerMinutePerProjectPerModel"),
                                retry_info("26s")]), RateLimitedError, 429, 26.0),
    (error(429, "Resource has been exhausted (e.g. check quota)."), RateLimitedError, 429, None),
    (error(429, "slow down", details=[retry_info("1.5s")]), RateLimitedError, 429, 1.5),
    (error(429, "slow down", details=[retry_info("7s")], headers={"Retry-After": "3"}),
     RateLimitedError, 429, 3.0),  # the header wins over RetryInfo
    (error(429, QUOTA), SpendLimitError, 429, None),
    (error(429, QUOTA, details=[quota_failure("GenerateRequestsPerDayPerProjectPerModel"),
                                retry_info("36s")]), SpendLimitError, 429, 36.0),
    (error(429, "Your prepayment credits are depleted."), SpendLimitError, 429, None),
    (error(503, "The model is overloaded. Please try again later."), OverloadedError, 503, None),
    (error(500, "An internal error has occurred."), ServerError, 500, None),
    (error(504, "Deadline exceeded."), ServerError, 504, None),
    (Reply(502, b"<html><body>Bad Gateway</body></html>"), ServerError, 502, None),
    (error(401, "Request had invalid authentication credentials."), AuthenticationError, 401,
     None),
    (error(403, "Permission denied: consumer has been suspended."), AuthenticationError, 403,
     None),
    (error(400, "API key not valid. Please pass a valid API key.", details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
     AuthenticationError, 400, None),
    (error(400, "* GenerateContentRequest.contents: contents is not specified"),
     InvalidRequestError, 400, None),
    (error(404, "models/nope is not found for API version v1."), InvalidRequestError, 404, None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "cls", "status", "retry_after"), ERRORS)
def test_each_error_maps_to_its_class_and_the_sdk_does_not_retry(
    provider: GeminiProvider,
    fake: FakeGemini,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    fake.script(reply)
    with pytest.raises(ProviderError) as info:
        provider.complete(ask())
    assert type(info.value) is cls
    assert (info.value.provider, info.value.status) == ("gemini", status)
    assert info.value.retry_after == retry_after
    assert fake.calls == 1  # one request per failing call: the SDK's retries are off
    assert KEY not in str(info.value) and KEY not in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("details", "seconds"),
    [
        ([retry_info("7s")], 7.0),
        ([retry_info("0.5s")], 0.5),
        ([retry_info("1.500s")], 1.5),
        ([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
           "retryDelay": {"seconds": 2, "nanos": 500_000_000}}], 2.5),
        ([quota_failure("PerMinute"), retry_info("12s")], 12.0),
        ([retry_info("soon")], None),
        ([retry_info("-3s")], None),
        ([quota_failure("PerMinute")], None),
        ([], None),
    ],
)  # fmt: skip
def test_retry_delay_parsing(details: list[dict[str, Any]], seconds: float | None) -> None:
    assert retry_delay(details) == seconds


def test_a_malformed_200_is_a_retryable_server_error(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(malformed(), Reply(200, {}))
    for _ in range(2):
        with pytest.raises(ServerError, match="malformed response") as info:
            provider.complete(ask())
        assert info.value.status == 200 and info.value.retryable
    assert fake.calls == 2


def test_a_blocked_prompt_or_answer_is_an_invalid_request(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    blocked_prompt = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    blocked_answer = ok("").body
    blocked_answer["candidates"][0] = {"finishReason": "SAFETY", "index": 0}
    fake.script(Reply(200, blocked_prompt), Reply(200, blocked_answer))
    with pytest.raises(InvalidRequestError, match=r"prompt was blocked.*SAFETY"):
        provider.complete(ask())
    with pytest.raises(InvalidRequestError, match="finish reason SAFETY") as info:
        provider.complete(ask())
    assert not info.value.retryable


def test_a_slow_answer_past_the_timeout(fake: FakeGemini) -> None:
    gate = threading.Event()
    fake.script(Reply(200, ok().body, gate=gate))
    p = GeminiProvider(api_key=KEY, base_url=fake.base_url, timeout=0.2)
    try:
        with pytest.raises(ProviderTimeoutError, match=r"no answer within 0\.2 s") as info:
            p.complete(ask())
        assert info.value.retryable and info.value.provider == "gemini"
        assert fake.calls == 1
        assert fake.requests[0].headers["x-server-timeout"] == "1"  # the SDK's own timeout
    finally:
        gate.set()
        p.close()


def test_connection_refused() -> None:
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = GeminiProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        with pytest.raises(ProviderConnectionError, match="cannot reach") as info:
            p.complete(ask())
        assert info.value.retryable and info.value.provider == "gemini"
    finally:
        p.close()


# -- keys ---------------------------------------------------------------------------------


def test_a_missing_key_fails_the_call_not_the_constructor(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = GeminiProvider(base_url=fake.base_url)  # configured, unused: fine
    with pytest.raises(AuthenticationError, match=r"GEMINI_API_KEY.*GOOGLE_API_KEY") as info:
        p.complete(ask())
    assert not info.value.retryable and info.value.provider == "gemini"
    assert fake.calls == 0
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    p.complete(ask())  # the environment is read when the client is first made
    p.close()
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")  # wins over GOOGLE_API_KEY
    q = GeminiProvider(base_url=fake.base_url)
    q.complete(ask())
    q.close()
    r = GeminiProvider(api_key=KEY, base_url=fake.base_url)  # the argument wins over both
    r.complete(ask())
    r.close()
    keys = [req.headers["x-goog-api-key"] for req in fake.requests]
    assert keys == ["from-google-env", "from-gemini-env", KEY]


def test_the_key_never_reaches_logs_errors_reprs_or_events(
    fake: FakeGemini,
    registry: ProviderRegistryHandle,
    hub: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for logger in ("google_genai", "httpx", "httpx2", "httpcore", "httpcore2", "otpy"):
        caplog.set_level(logging.DEBUG, logger=logger)
    p = GeminiProvider(api_key=KEY, base_url=fake.base_url, timeout=10)
    registry.register_provider("gemini", p, limits={"timeout": None, "max_attempts": 1})
    fake.script(
        ok(),
        error(401, "API key not valid."),
        error(429, QUOTA),
        error(500, "boom"),
        malformed(),
        error(400, "bad request"),
    )
    seen: list[str] = [repr(registry.complete(ask()))]
    for _ in range(5):
        with pytest.raises(ProviderError) as info:
            registry.complete(ask())
        seen += [str(info.value), repr(info.value), str(info.value.__cause__)]
    assert fake.calls == 6 and all(r.headers["x-goog-api-key"] == KEY for r in fake.requests)
    seen += [repr(p), str(vars(p)), repr(registry.health()), repr(registry.get_provider("gemini"))]
    seen += [repr(event) for event in hub.store.query()]
    seen += [caplog.text, *(str(record.__dict__) for record in caplog.records)]
    assert hub.store.query(name="provider.call")  # the calls were recorded
    assert any("httpx2" in r.name or "google_genai" in r.name for r in caplog.records)
    assert not [text for text in seen if KEY in text]
    p.close()


# -- configuration, threads, close --------------------------------------------------------


def test_from_config_and_bad_settings(fake: FakeGemini) -> None:
    p = GeminiProvider.from_config(
        {"name": "g2", "model": "gemini-2.5-pro", "base_url": fake.base_url, "timeout": 30,
         "capabilities": ["text", "chat"], "api_key": KEY}
    )  # fmt: skip
    assert (p.name, p.model, p.timeout, p.capabilities) == (
        "g2", "gemini-2.5-pro", 30.0, frozenset({"text", "chat"})
    )  # fmt: skip
    assert GeminiProvider.capabilities == GeminiProvider().capabilities  # class default kept
    assert p.complete(ask()).provider == "g2"
    p.close()
    for bad in (
        {"apikey": KEY},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"model": ""},
        {"base_url": "127.0.0.1:80"},
        {"capabilities": "text"},
        {"api_key": 123},
    ):
        with pytest.raises(ConfigurationError):
            GeminiProvider.from_config(bad)
    with pytest.raises(ConfigurationError):
        GeminiProvider.from_config(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_one_client_serves_concurrent_calls_and_close_ends_it(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    results = [InThread(provider.complete, ask(f"q{i}")) for i in range(8)]
    assert all(r.result().text == "Hello from the fake" for r in results)
    assert fake.calls == 8
    provider.close()
    provider.close()  # idempotent
    with pytest.raises(ProviderError, match="closed"):
        provider.complete(ask())
    assert fake.calls == 8


# -- behind the registry's guard ----------------------------------------------------------


def test_a_429_retry_delay_is_waited_out_on_the_clock_and_retried_once(
    fake: FakeGemini, registry: ProviderRegistryHandle, clock: FakeClock, hub: Telemetry
) -> None:
    p = GeminiProvider(api_key=KEY, base_url=fake.base_url, timeout=10)
    limits = {"rpm": 60, "tpm": 100_000, "timeout": None, "max_attempts": 3}
    registry.register_provider("gemini", p, limits=limits)
    fake.script(error(429, "slow down", details=[retry_info("7s")]), ok("after the wait"))
    call = InThread(registry.complete, ask())
    clock.wait_for_sleepers(1)
    assert fake.calls == 1
    clock.advance(6.5)
    assert fake.calls == 1 and not call.done.is_set()
    clock.advance(0.5)
    assert call.result().text == "after the wait"
    assert fake.calls == 2
    (event,) = hub.store.query(name="provider.call")
    assert event.measurements["attempts"] == 2 and event.metadata["outcome"] == "ok"
    p.close()


def test_five_500s_open_the_breaker_and_selection_skips_gemini(
    fake: FakeGemini, registry: ProviderRegistryHandle
) -> None:
    started = time.monotonic()
    p = GeminiProvider(api_key=KEY, base_url=fake.base_url, timeout=10)
    limits = {"timeout": None, "max_attempts": 1, "fail_max": 5, "reset_timeout": 30}
    registry.register_provider("gemini", p, priority=10, limits=limits)
    registry.register_provider("spare", ScriptedProvider("spare"), limits=limits)
    fake.script(*(error(500, "internal") for _ in range(5)))
    for _ in range(5):
        with pytest.raises(ServerError):
            registry.complete(ask())  # priority picks gemini while its breaker is closed
    assert registry.health()["gemini"].breaker_state == "open"
    assert registry.select().name == "spare"
    assert registry.complete(ask()).provider == "spare"  # the fallback serves
    assert fake.calls == 5
    p.close()
    assert time.monotonic() - started < 10
