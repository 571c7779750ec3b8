"""``rt.serve()``: the web server in a background thread of this process.

::

    server = rt.serve()                       # 127.0.0.1, a free port, a new token
    server.url                                # "http://127.0.0.1:PORT"
    server.dashboard_url                      # the page, with the token in its fragment
    server.stop()                             # also done by rt.stop()

uvicorn serves the app on a socket bound here, in the caller's thread (so a taken port
raises at once), from a thread of its own running an asyncio loop (uvloop, and the
httptools parser, when installed: ``otpy[web]`` installs both where they exist).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn

from otpy.errors import ConfigurationError
from otpy.web._app import MAX_BODY, create_app
from otpy.web._protocol import WebRuntime
from otpy.web._security import is_loopback

__all__ = ["Server", "serve"]

logger = logging.getLogger("otpy.web")

START_TIMEOUT = 30.0
MIN_TOKEN = 16
"""Characters below which a given token is warned about."""


class Server:
    """A running web server (see the module docstring): ``url``, ``host``, ``port``,
    ``token`` (the bearer token mutating requests need), ``dashboard_url``, ``stop()``;
    also a context manager. Made by :func:`serve`."""

    def __init__(
        self,
        rt: WebRuntime,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_body: int = MAX_BODY,
        base_dir: str | Path | None = None,
    ) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ConfigurationError("the server's token must be a non-empty string")
        if token is not None and len(token) < MIN_TOKEN:
            logger.warning(
                "otpy web: a token of %d characters is easy to guess; use %d or more "
                "(secrets.token_urlsafe(32))",
                len(token),
                MIN_TOKEN,
            )
        if not is_loopback(host) and token is None:
            raise ConfigurationError(
                f"refusing to serve on {host!r} without a token: an address other than "
                "loopback is reachable from other machines; pass token=... (every request "
                "will need it)"
            )
        if not isinstance(max_body, int) or max_body < 1:
            raise ConfigurationError(f"max_body must be a positive number of bytes: {max_body!r}")
        self.token = token if token is not None else secrets.token_urlsafe(32)
        self.host = host
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        ready = threading.Event()
        app, self.context = create_app(
            rt, token=self.token, host=host, max_body=max_body, base_dir=base_dir, ready=ready
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"otpy-web-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or self._failure is not None:
            self.stop()
            raise ConfigurationError(f"the web server did not start: {self._failure!r}")

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (a wildcard bind's URL names the loopback address)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address with the token in the fragment (``#token=``): a
        browser never sends a fragment, and the page keeps it for its requests."""
        return f"{self.url}/#token={self.token}"

    def _run(self) -> None:
        factory = getattr(self._server.config, "get_loop_factory", lambda: None)()
        try:  # uvloop when it is installed (otpy[web] installs it where it exists)
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported to the starting thread, or logged
            self._failure = exc
            logger.exception("otpy web server on port %s stopped with an error", self.port)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def stop(self, timeout: float = 10.0) -> None:
        """End every event stream, stop accepting, let requests under way finish (3 s at
        most), and wait for the server's thread. Idempotent."""
        loop, hub = self._loop, self.context.hub
        if loop is not None and not loop.is_closed() and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(hub.stop(), loop).result(timeout)
            except Exception:
                logger.exception("otpy web: closing the event streams failed")
        self._server.should_exit = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._sock.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<otpy web Server {self.url} {'running' if self.running else 'stopped'}>"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port); ConfigurationError
    naming the address if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot serve on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)  # proto TCP: asyncio then sets TCP_NODELAY
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot serve on {host!r} port {port}: {exc.strerror}") from None
    return sock


def serve(
    rt: WebRuntime,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    **options: Any,
) -> Server:
    """Start a :class:`Server` for ``rt`` (``rt.serve()``): ``token`` None takes the
    config's ``web.token``, else a random one; ``max_body`` defaults to the config's
    ``web.max_body``; the other keywords are :class:`Server`'s."""
    web = rt.config.web
    if token is None and web.token is not None:
        token = web.token.get_secret_value()
    options.setdefault("max_body", web.max_body)
    return Server(rt, host=host, port=port, token=token, **options)
