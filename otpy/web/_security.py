"""The server's gate, as ASGI middleware in front of the whole app: the Host check on a
loopback server, the bearer token, and the request-size cap.

- A mutating request (any method but GET, HEAD, OPTIONS) needs ``Authorization: Bearer
  <token>``; on a server bound to a non-loopback address every request does, except the
  dashboard's static shell (``/`` and ``/static/``: no data, no secret), which a browser
  loads before it can send a header. A token in the query string is never read. Tokens
  are compared in constant time (:func:`hmac.compare_digest`).
- A loopback server answers only requests whose Host is a loopback name (a web page of
  another site cannot reach it through DNS rebinding).
- A body over ``max_body`` bytes is refused with 413, by its Content-Length or as it
  streams in.
- Every response says: no sniffing, no framing, no referrer, scripts and styles from
  this server only (no inline script), no caching.

Refusals are JSON (``{"error": ..., "status": ...}``), never a traceback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = ["LOOPBACK_NAMES", "BodyTooLarge", "RequestGate", "is_loopback", "json_refusal"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC_SHELL: Final = ("/static/",)
_SAFETY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface only:
    ``localhost``, ``127.0.0.0/8``, ``::1``. A wildcard address (``0.0.0.0``, ``::``) is
    not: it listens on every interface."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def json_refusal(status: int, message: str) -> tuple[dict[str, Any], bytes]:
    """The start message and body of a JSON refusal."""
    body = json.dumps({"error": message, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="otpy"'))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class BodyTooLarge(Exception):
    """The body grew past the cap while it was read."""


class RequestGate:
    """ASGI middleware (see the module docstring) over ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        protect_reads: bool,
        max_body: int,
        hosts: frozenset[str] | None,
    ) -> None:
        if not token:
            raise ValueError("RequestGate needs a token")
        self.app = app
        self._token = token.encode()
        self.protect_reads = protect_reads
        self.max_body = max_body
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        started = False
        capped = _Capped(receive, self.max_body)

        async def watched_send(message: Message) -> None:
            nonlocal started
            if capped.exceeded:  # whatever the app made of it, the answer is 413
                if not started:
                    started = True
                    await _refuse(send, 413, self._too_large())
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *_SAFETY_HEADERS]
            await send(message)

        try:
            await self.app(scope, capped, watched_send)
        except Exception:  # answered (and logged) by the app's handler, re-raised by Starlette
            if not started:
                status = 413 if capped.exceeded else 500
                message = "internal error; the server's log has the details"
                await _refuse(send, status, self._too_large() if capped.exceeded else message)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.hosts is not None:
            host = _hostname(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                return 400, f"unexpected Host {host!r}: this server answers on loopback only"
        method = scope["method"]
        path = scope.get("path", "")
        public = method in _READS and (path == "/" or path.startswith(_PUBLIC_SHELL))
        if (method not in _READS or self.protect_reads) and not public:
            problem = self._auth_problem(headers.get(b"authorization"))
            if problem is not None:
                return 401, problem
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, "the Content-Length header is not a number"
            if size > self.max_body:
                return 413, self._too_large()
        return None

    def _auth_problem(self, header: bytes | None) -> str | None:
        """Why ``header`` does not authorize the request, or None if it does."""
        if header is None:
            return "this request needs the server's token: send Authorization: Bearer <token>"
        scheme, _, given = header.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            return "the Authorization header must be 'Bearer <token>'"
        if not hmac.compare_digest(given.strip(), self._token):
            return "the token is not this server's"
        return None

    def _too_large(self) -> str:
        return f"the request body is over the server's limit of {self.max_body} bytes"


class _Capped:
    """A ``receive`` that raises BodyTooLarge (and says so: ``exceeded``) once the body
    has grown past ``limit`` bytes."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.seen = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.exceeded = True
                raise BodyTooLarge(f"the request body is over {self.limit} bytes")
        return message


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lowercased name (the first of repeated ones)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(bytes(name).lower(), bytes(value))
    return found


def _hostname(host: str) -> str:
    """The name part of a Host header: ``[::1]:80`` -> ``::1``, ``localhost:8`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _refuse(send: Send, status: int, message: str) -> None:
    start, body = json_refusal(status, message)
    await send(start)
    await send({"type": "http.response.body", "body": body})
