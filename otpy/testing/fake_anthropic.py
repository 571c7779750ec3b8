"""A fake Anthropic Messages API on 127.0.0.1, for tests that go through the real SDK.

    fake = FakeAnthropic(clock=clock).start()         # a fixture stops it after the test
    provider = AnthropicProvider(api_key=KEY, base_url=fake.url)
    fake.queue(error(429, "rate_limit_error", "slow down", {"retry-after": "7"}),
               message("hello"))                       # then echoes once the queue is empty
    fake.requests[0].body["system"], fake.requests[0].api_key, fake.requests[0].at

``POST /v1/messages`` answers in the wire format: a Messages body with the
``anthropic-ratelimit-*`` headers, or ``{"type": "error", "error": {...}}``. Like the API
(version 2026-10-21) it refuses a request without a key or ``anthropic-version``, without
``model`` / ``max_tokens`` / ``messages``, or with a sampling parameter (400), and a
conversation whose tool use does not pair up: a ``tool_use`` not answered by a
``tool_result`` in the next user turn, a ``tool_result`` for no ``tool_use`` of the turn
before, a repeated ``tool_use`` id, a tool without an object ``input_schema``. Scripted
replies are served in order; a reply with ``hold`` waits for that event before answering
(a slow answer: set it from the test). Every request is recorded with ``clock.time()`` at
its arrival when a clock is given.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otpy.clock import Clock

__all__ = [
    "MODEL",
    "RATE_LIMIT_HEADERS",
    "RESET",
    "FakeAnthropic",
    "Received",
    "Reply",
    "error",
    "message",
    "tool_calls",
    "tool_use",
]

MODEL = "claude-sonnet-4-6"
RESET = "2026-11-22T08:00:00Z"
"""When the default rate-limit windows reset (RFC 3339, as the API sends it)."""
_LIMITS = {"requests": 50, "tokens": 90_000, "input-tokens": 80_000, "output-tokens": 10_000}
RATE_LIMIT_HEADERS = {
    f"anthropic-ratelimit-{dimension}-{field}": value
    for dimension, limit in _LIMITS.items()
    for field, value in (("limit", str(limit)), ("remaining", str(limit - 1)), ("reset", RESET))
}
"""What every 200 carries: each limit, one less remaining, and the reset."""
_HOLD_LIMIT = 30.0  # a held reply never outlives a forgotten event by more than this


@dataclass
class Reply:
    """One scripted answer: ``body`` is JSON-encoded (``bytes`` are sent as they are)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None


@dataclass(frozen=True)
class Received:
    """A request as the server saw it: header names lower-cased, the JSON body decoded."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float | None

    @property
    def api_key(self) -> str | None:
        """The key sent, as ``x-api-key`` or ``Authorization: Bearer`` (the SDK's 2.x way)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


def message(
    text: str = "Hello!",
    *,
    model: str = MODEL,
    stop_reason: str = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 5,
    **usage: int,
) -> dict[str, Any]:
    """A Messages response body with one text block (``usage`` adds e.g. cache tokens)."""
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens, **usage}
    return _body([{"type": "text", "text": text}], model, stop_reason, counts)


def tool_use(arguments: Any, *, name: str = "respond", model: str = MODEL) -> dict[str, Any]:
    """A Messages response body calling tool ``name`` with ``arguments``."""
    block = {"type": "tool_use", "id": "toolu_01", "name": name, "input": arguments}
    return _body([block], model, "tool_use", {"input_tokens": 40, "output_tokens": 9})


_call_ids = itertools.count(1)


def tool_calls(
    *calls: tuple[str, dict[str, Any]],
    text: str = "",
    model: str = MODEL,
    input_tokens: int = 50,
    output_tokens: int = 20,
) -> dict[str, Any]:
    """A Messages response body with ``text`` (if any) then one ``tool_use`` block per
    ``(name, arguments)`` call, each with an id of its own (``toolu_fake_<n>``)."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for name, arguments in calls:
        blocks.append({"type": "tool_use", "id": f"toolu_fake_{next(_call_ids)}", "name": name,
                       "input": arguments})  # fmt: skip
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return _body(blocks, model, "tool_use", usage)


def error(status: int, kind: str, text: str, headers: dict[str, str] | None = None,
          **details: str) -> Reply:  # fmt: skip
    """An error in the API's format (``details`` become ``error.details``, e.g. error_code)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": text}}
    if details:
        body["error"]["details"] = details
    return Reply(status, body, dict(headers or {}))


def _body(content: list[Any], model: str, stop: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": usage}  # fmt: skip


class FakeAnthropic:
    """The server: ``start()`` it, ``queue`` replies, read ``requests``, ``stop()`` it."""

    def __init__(self, clock: Clock | None = None, *, expected_key: str | None = None) -> None:
        self.clock = clock
        self.expected_key = expected_key
        self._replies: deque[Reply] = deque()
        self._received: list[Received] = []
        self._arrived = threading.Condition()
        self._ids = itertools.count(1)
        self._holds: list[threading.Event] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # shutdown() waits for the next poll
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held replies, stop serving and close the socket."""
        with self._arrived:
            holds = [*self._holds, *(r.hold for r in self._replies if r.hold is not None)]
        for hold in holds:
            hold.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def queue(self, *replies: Reply | dict[str, Any]) -> None:
        """Answer the next requests with these, in order (a dict is a 200 body)."""
        with self._arrived:
            self._replies.extend(r if isinstance(r, Reply) else Reply(body=r) for r in replies)

    @property
    def requests(self) -> list[Received]:
        with self._arrived:
            return list(self._received)

    def wait_requests(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Block (real time, an upper bound) until ``n`` requests arrived; return them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= n, timeout):
                raise TimeoutError(f"{len(self._received)} of {n} requests arrived")
            return list(self._received)

    def _answer(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        """Record the request and choose its reply (under the lock: arrival order)."""
        with self._arrived:
            at = self.clock.time() if self.clock is not None else None
            seen = Received(path, headers, body, at)
            self._received.append(seen)
            self._arrived.notify_all()
            refusal = self._refusal(seen)
            if refusal is not None:
                return refusal
            if self._replies:
                reply = self._replies.popleft()
                if reply.hold is not None:
                    self._holds.append(reply.hold)
                return reply
        return Reply(body=_echo(body))

    def _refusal(self, seen: Received) -> Reply | None:
        """What the API says to a request it does not accept, if this is one."""
        if seen.path != "/v1/messages":
            return error(404, "not_found_error", f"Not found: {seen.path}")
        key = seen.api_key
        if not key:
            return error(401, "authentication_error", "x-api-key header is required")
        if self.expected_key is not None and key != self.expected_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in seen.headers:
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        body = seen.body if isinstance(seen.body, dict) else {}
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return error(400, "invalid_request_error", f"{name}: Field required")
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                refused = f"{name}: Extra inputs are not permitted"
                return error(400, "invalid_request_error", refused)
        problem = _tool_problem(body)
        if problem is not None:
            return error(400, "invalid_request_error", problem)
        return None


def _blocks(message: Any, kind: str) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _tool_problem(body: dict[str, Any]) -> str | None:
    """What the API says about tools and tool use that do not fit together, if anything."""
    for index, tool in enumerate(body.get("tools") or []):
        schema = tool.get("input_schema") if isinstance(tool, dict) else None
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{index}.input_schema: Input should be an object schema"
    messages = body.get("messages") or []
    seen: set[str] = set()
    for index, message in enumerate(messages):
        uses = [b.get("id") for b in _blocks(message, "tool_use")]
        if any(use in seen for use in uses):
            return f"messages.{index}: tool_use ids must be unique"
        seen.update(u for u in uses if isinstance(u, str))
        results = [b.get("tool_use_id") for b in _blocks(message, "tool_result")]
        before = messages[index - 1] if index else None
        offered = {b.get("id") for b in _blocks(before, "tool_use")}
        if any(r not in offered for r in results):
            return (
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                "blocks; each must have a tool_use in the previous message"
            )
        if uses:
            after = messages[index + 1] if index + 1 < len(messages) else None
            answered = {b.get("tool_use_id") for b in _blocks(after, "tool_result")}
            if after is not None and not set(uses) <= answered:
                return (
                    f"messages.{index}: `tool_use` ids were found without `tool_result` "
                    "blocks immediately after"
                )
    return None


def _echo(body: Any) -> dict[str, Any]:
    """The answer when nothing is queued: the last user turn echoed back."""
    turns = body.get("messages", []) if isinstance(body, dict) else []
    last = turns[-1].get("content", "") if turns and isinstance(turns[-1], dict) else ""
    model = body.get("model", MODEL) if isinstance(body, dict) else MODEL
    return message(f"echo: {last}", model=model, input_tokens=len(str(last)) // 4 + 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 100 concurrent clients connect without SYN retries
    fake: FakeAnthropic

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is not the server's problem


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = self.server.fake
        reply = fake._answer(self.path, headers, body)
        if reply.hold is not None:
            reply.hold.wait(_HOLD_LIMIT)
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        sent = {"content-type": "application/json", "request-id": f"req_{next(fake._ids):04}"}
        if reply.status == 200:
            sent.update(RATE_LIMIT_HEADERS)
        sent.update(reply.headers)
        try:
            self.send_response(reply.status)
            for name, value in sent.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client went away (it timed out)

    def log_message(self, format: str, *args: Any) -> None:
        pass
