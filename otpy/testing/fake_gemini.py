"""A fake Gemini API on 127.0.0.1 for the GeminiProvider tests: it answers
``POST /{version}/models/{model}:generateContent`` the way the real service does.

Each test scripts the answers: ``server.script(reply, ...)`` queues :class:`Reply` objects
(status, headers, a JSON body or raw bytes, and an optional ``gate`` event the answer waits
for); with the queue empty every call gets :func:`ok`. Every request is recorded (method,
path, headers with lower-case names, JSON body) in ``server.requests``.

Function calling: :func:`function_calls` scripts an answer calling functions. Like the
API, the fake refuses (400 INVALID_ARGUMENT) a request whose function call turn is not
followed by a user turn answering every call with a ``functionResponse`` of the same name,
or a function declaration whose ``parametersJsonSchema`` is not an object schema.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GATE_LIMIT = 10.0
"""The longest a gated answer waits (seconds): a test that forgets its gate never hangs."""

_ROUTE = re.compile(r"^/[^/]+/models/(?P<model>[^/:?]+):generateContent(?:\?.*)?$")
_REASONS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``body`` is JSON-encoded unless it is bytes (sent as is)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    gate: threading.Event | None = None


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it (``body`` is None when it was not JSON)."""

    method: str
    path: str
    model: str | None
    headers: dict[str, str]
    body: Any


def ok(
    text: str = "Hello from the fake",
    *,
    finish_reason: str = "STOP",
    prompt_tokens: int = 11,
    output_tokens: int = 7,
    thoughts_tokens: int | None = None,
    model_version: str | None = "gemini-2.5-flash-001",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A GenerateContentResponse with one candidate answering ``text``."""
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + (thoughts_tokens or 0),
    }
    if thoughts_tokens is not None:
        usage["thoughtsTokenCount"] = thoughts_tokens
    body: dict[str, Any] = {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "responseId": "fake-response-1",
    }
    if model_version is not None:
        body["modelVersion"] = model_version
    return Reply(200, body, headers or {})


def function_calls(
    *calls: tuple[str, dict[str, Any]],
    text: str | None = None,
    ids: bool = True,
    signature: str | None = None,
    prompt_tokens: int = 30,
    output_tokens: int = 12,
) -> Reply:
    """A GenerateContentResponse whose candidate calls functions: ``text`` first (if any),
    then one ``functionCall`` part per ``(name, args)``, each with an ``id`` (``call-<n>``)
    unless ``ids`` is false, the first carrying ``signature`` as its ``thoughtSignature``."""
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for index, (name, args) in enumerate(calls):
        call: dict[str, Any] = {"name": name, "args": args}
        if ids:
            call["id"] = f"call-{index + 1}"
        part: dict[str, Any] = {"functionCall": call}
        if signature is not None and index == 0:
            part["thoughtSignature"] = signature
        parts.append(part)
    body = {
        "candidates": [
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": "gemini-2.5-flash-001",
    }
    return Reply(200, body)


def _function_problem(body: Any) -> str | None:
    """What the API says about function calling that does not fit together, if anything."""
    if not isinstance(body, dict):
        return None
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            # the SDK sends some fields in snake_case: the API reads both spellings
            schema = declaration.get(
                "parametersJsonSchema", declaration.get("parameters_json_schema")
            )
            if (isinstance(schema, dict) and schema.get("type") == "object") or schema is None:
                continue
            name = declaration.get("name")
            return f"function {name!r}: parametersJsonSchema must describe an object"
    contents = body.get("contents") or []
    for index, content in enumerate(contents):
        calls = [p["functionCall"] for p in content.get("parts") or [] if "functionCall" in p]
        if not calls or index + 1 >= len(contents):
            continue
        following = contents[index + 1]
        answers = [
            p["functionResponse"] for p in following.get("parts") or [] if "functionResponse" in p
        ]
        if following.get("role") != "user" or sorted(a.get("name") for a in answers) != sorted(
            c.get("name") for c in calls
        ):
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
    return None


def error(
    code: int,
    message: str = "something went wrong",
    *,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error in Google's format: ``{"error": {"code", "message", "status", "details"}}``."""
    payload: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or _REASONS.get(code, "UNKNOWN"),
    }
    if details:
        payload["details"] = details
    return Reply(code, {"error": payload}, headers or {})


def retry_info(delay: str) -> dict[str, Any]:
    """A ``google.rpc.RetryInfo`` error detail (``delay`` like ``"7s"``)."""
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(quota_id: str) -> dict[str, Any]:
    """A ``google.rpc.QuotaFailure`` detail naming the exhausted quota."""
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": quota_id,
                "quotaValue": "10",
            }
        ],
    }


def malformed() -> Reply:
    """A 200 whose JSON body is cut short."""
    return Reply(200, b'{"candidates": [{"content": {"parts": [{"text": "cut')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connect at once (the default backlog is 5)


class FakeGemini:
    """The scriptable server; ``base_url`` is what the provider's ``base_url`` takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._requests: list[Recorded] = []
        self._arrived = threading.Condition(self._lock)
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-gemini", daemon=True
        )

    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._requests)

    def wait_calls(self, n: int, timeout: float = 5.0) -> None:
        """Block until ``n`` requests have arrived (raises TimeoutError otherwise)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"{len(self._requests)} of {n} requests arrived")

    def _take(self, recorded: Recorded, *, routed: bool) -> Reply:
        with self._lock:
            self._requests.append(recorded)
            self._arrived.notify_all()
            if not routed:
                return error(404, f"Method not found: {recorded.path}")
            problem = _function_problem(recorded.body)
            if problem is not None:
                return error(400, problem)
            return self._replies.popleft() if self._replies else ok()


def _handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            match = _ROUTE.match(self.path)
            recorded = Recorded(
                method="POST",
                path=self.path,
                model=match["model"] if match else None,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = fake._take(recorded, routed=match is not None)
            if reply.gate is not None:
                reply.gate.wait(GATE_LIMIT)
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout test): nobody to answer
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

    return Handler


@contextmanager
def running() -> Iterator[FakeGemini]:
    """A started :class:`FakeGemini`, shut down and closed on exit."""
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()
