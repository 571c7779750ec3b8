"""The ``anthropic`` provider: Claude through the official ``anthropic`` SDK (Messages API).

One attempt per ``complete`` (the registry's guard retries, rate-limits, breaks and times
out), so the SDK's own retries are off (``max_retries=0``). The mapping to and from the
API lives in :mod:`otpy.providers._anthropic_map`. The SDK is imported when the first call
makes the client (it takes about a second), not when otpy is imported.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from otpy.errors import AuthenticationError, ConfigurationError, ProviderError, ServerError
from otpy.providers._anthropic_map import (
    MalformedAnswer,
    dropped_sampling,
    map_error,
    message_params,
    parse_answer,
    rate_limits,
)
from otpy.providers._base import (
    CAPABILITIES,
    Completion,
    CompletionRequest,
    Provider,
    estimate_tokens,
)
from otpy.redaction import Redactor

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicProvider"]

_log = logging.getLogger("otpy.providers.anthropic")
_KEY_ENV = "ANTHROPIC_API_KEY"
_URL_ENV = "ANTHROPIC_BASE_URL"
_SETTINGS = ("name", "api_key", "model", "base_url", "timeout", "default_max_tokens",
             "capabilities")  # fmt: skip


class AnthropicProvider(Provider):
    """Claude through ``anthropic.Anthropic(...).messages`` (one client per provider, made
    at the first call, shared by every thread; ``close()`` closes it).

    ``api_key`` defaults to ``ANTHROPIC_API_KEY`` (read at the first call): a missing key
    raises :class:`~otpy.errors.AuthenticationError` from ``complete``, never from the
    constructor. The key is kept in a ``SecretStr`` and masked in every error message.
    ``base_url`` defaults to ``ANTHROPIC_BASE_URL``, else the SDK's. ``timeout`` (seconds)
    bounds each HTTP request inside the SDK. ``default_max_tokens``, if set, replaces
    ``max_tokens`` for requests that do not set it themselves.

    ``complete`` sends the conversation, ``system`` and ``stop`` (as ``stop_sequences``);
    ``temperature`` is not sent (the API version of this SDK refuses sampling parameters).
    A ``response_schema`` forces a call of a ``respond`` tool whose input is the answer;
    ``tools`` go as the API's tools, the answer's ``tool_use`` blocks come back as
    ``Completion.tool_calls``.
    The ``anthropic-ratelimit-*`` headers come back as ``Completion.rate_limits``.
    """

    DEFAULT_MODEL: ClassVar[str] = "claude-sonnet-4-6"
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES

    def __init__(
        self,
        name: str = "anthropic",
        *,
        api_key: str | SecretStr | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout: float = 600.0,
        default_max_tokens: int | None = None,
        capabilities: Iterable[str] = CAPABILITIES,
    ) -> None:
        self.name = _text("name", name)
        self.model = _text("model", model)
        if isinstance(api_key, str):
            api_key = SecretStr(api_key)
        elif api_key is not None and not isinstance(api_key, SecretStr):
            raise ConfigurationError("AnthropicProvider: api_key must be a string or None")
        self._api_key = api_key
        if base_url is not None:
            base_url = _text("base_url", base_url)
        self.base_url = base_url or os.environ.get(_URL_ENV) or None
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise _bad("timeout", "a number of seconds > 0", timeout)
        if not (math.isfinite(timeout) and timeout > 0):
            raise _bad("timeout", "a number of seconds > 0", timeout)
        self.timeout = float(timeout)
        if default_max_tokens is not None and (
            isinstance(default_max_tokens, bool)
            or not isinstance(default_max_tokens, int)
            or default_max_tokens <= 0
        ):
            raise _bad("default_max_tokens", "an int > 0 or None", default_max_tokens)
        self.default_max_tokens = default_max_tokens
        # Provider declares capabilities per class; this one is configured per instance.
        vars(self)["capabilities"] = _capabilities(capabilities)
        self._lock = threading.Lock()
        self._client: anthropic.Anthropic | None = None
        self._redactor: Redactor | None = None
        self._closed = False
        self._told_sampling = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AnthropicProvider:
        """Build one from a plain mapping of the constructor's keyword names (a config
        file's ``options`` plus ``name``, ``api_key``, ``model``). An unknown key or a bad
        value raises ConfigurationError naming it (never showing the key's value)."""
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                f"anthropic provider config must be a mapping, got {type(config).__name__}"
            )
        unknown = [key for key in config if key not in _SETTINGS]
        if unknown:
            raise ConfigurationError(
                f"unknown anthropic provider setting {unknown[0]!r} (known: {', '.join(_SETTINGS)})"
            )
        return cls(**dict(config))

    # -- the call ------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """One Messages API call, in the caller's thread (blocks on the network, at most
        ``timeout`` seconds per HTTP request). Raises the :mod:`otpy.errors` provider error
        for what went wrong: see :func:`~otpy.providers._anthropic_map.map_error`."""
        client, redact = self._connect()
        from anthropic import AnthropicError  # imported by _connect: a dict lookup now

        model = request.model or self.model
        params = message_params(request, model=model, max_tokens=self._max_tokens(request))
        self._tell_dropped(request)
        started = time.monotonic()
        try:
            raw = client.messages.with_raw_response.create(**params)
        except AnthropicError as exc:
            error = map_error(
                exc, provider=self.name, redact=redact, now=time.time(), timeout=self.timeout
            )
            raise error from None  # the SDK's error holds the request and its headers
        try:
            answer = parse_answer(raw.json(), request)
        except ValueError as exc:  # not JSON (JSONDecodeError), or not a Messages response
            reason = str(exc) if isinstance(exc, MalformedAnswer) else "the body is not JSON"
            raise ServerError(
                f"malformed response: {redact(reason)}", provider=self.name, status=raw.status_code
            ) from None
        headers = raw.headers
        return Completion(
            text=answer.text,
            tool_calls=answer.tool_calls,
            structured=answer.structured,
            usage=answer.usage,
            latency=time.monotonic() - started,
            model=answer.model or model,
            provider=self.name,
            stop_reason=answer.stop_reason,
            rate_limits=rate_limits(headers),
        )

    def estimate_tokens(self, request: CompletionRequest) -> int:
        """The base estimate, with the ``max_tokens`` this provider will actually ask for."""
        max_tokens = self._max_tokens(request)
        if max_tokens != request.max_tokens:
            request = request.model_copy(update={"max_tokens": max_tokens})
        return estimate_tokens(request)

    def close(self) -> None:
        """Close the SDK client (its connection pool); later calls raise ProviderError."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"<AnthropicProvider {self.name!r} model={self.model!r}{where}>"

    # -- helpers ---------------------------------------------------------------------------

    def _connect(self) -> tuple[anthropic.Anthropic, Callable[[str], str]]:
        """The client (made on first use) and the redaction for its key's messages."""
        with self._lock:
            if self._closed:
                raise ProviderError("the provider is closed", provider=self.name)
            if self._client is None or self._redactor is None:
                key = self._api_key.get_secret_value() if self._api_key is not None else ""
                key = key or os.environ.get(_KEY_ENV, "")
                if not key:
                    raise AuthenticationError(
                        f"no API key: pass api_key= or set {_KEY_ENV}", provider=self.name
                    )
                import anthropic

                self._redactor = Redactor(extra_secrets=[key])
                self._client = anthropic.Anthropic(
                    api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout
                )
            return self._client, self._redactor.text

    def _max_tokens(self, request: CompletionRequest) -> int:
        if self.default_max_tokens is None or "max_tokens" in request.model_fields_set:
            return request.max_tokens
        return self.default_max_tokens

    def _tell_dropped(self, request: CompletionRequest) -> None:
        if self._told_sampling:
            return
        dropped = dropped_sampling(request)
        if dropped:
            self._told_sampling = True
            _log.info(
                "provider %r: %s not sent: the Messages API version this SDK speaks "
                "accepts no sampling parameters",
                self.name,
                ", ".join(dropped),
            )


def _bad(argument: str, expected: str, value: Any) -> ConfigurationError:
    return ConfigurationError(f"AnthropicProvider: {argument} must be {expected}, got {value!r}")


def _text(argument: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(argument, "a non-empty string", value)
    return value


def _capabilities(value: Any) -> frozenset[str]:
    items = (value,) if isinstance(value, str) else value
    try:
        caps = frozenset(items)
    except TypeError:
        raise _bad("capabilities", "strings", value) from None
    if not caps or not all(isinstance(c, str) and c for c in caps):
        raise _bad("capabilities", "non-empty strings", value)
    return caps
