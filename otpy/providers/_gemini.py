"""The ``gemini`` provider: Google's Gemini API through the official ``google-genai`` SDK.

One ``complete`` is one ``models.generate_content`` call, so one HTTP request: the SDK's
own retries stay off (no ``HttpRetryOptions``), and so do its automatic function calling
and automatic continuation. Retries, rate limits, the breaker and the per-call timeout are
the registry guard's job; this module maps the request in and the answer or the error out
(see :mod:`otpy.providers._gemini_map`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr, ValidationError

from otpy.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ServerError,
)
from otpy.providers._base import CAPABILITIES, Completion, CompletionRequest, Provider
from otpy.providers._gemini_map import (
    api_error,
    completion_of,
    config_of,
    contents_of,
    transport_errors,
)

if TYPE_CHECKING:
    from google import genai

__all__ = ["GeminiProvider"]

KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
"""Where a provider made without ``api_key`` looks for its key, in this order."""
DEFAULT_MODEL = "gemini-2.5-flash"
_SETTINGS = ("name", "api_key", "model", "base_url", "timeout", "capabilities")


class GeminiProvider(Provider):
    """Gemini through ``google.genai.Client(...).models.generate_content``.

    The key is ``api_key``, else the ``GEMINI_API_KEY`` then ``GOOGLE_API_KEY`` environment
    variable, read when the first call makes the SDK client: a provider without a key can
    be made and registered, and its ``complete`` raises AuthenticationError. The key is
    kept in a ``SecretStr`` and never appears in a repr, a log line or an error.
    ``base_url`` points the SDK elsewhere (a proxy, a fake server); ``timeout`` (seconds)
    is the SDK's own HTTP timeout per request. ``complete`` is safe from any number of
    threads (one SDK client, one connection pool) and blocks on the network.
    """

    capabilities: ClassVar[frozenset[str]] = CAPABILITIES
    # Gemini's limits are per minute ("21 requests within a minute" at an RPM of 20 is an
    # error): an exact rolling minute never sends more, whatever minutes Google counts.
    rate_limit_strategy: ClassVar[str] = "rolling-window"

    def __init__(
        self,
        name: str = "gemini",
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout: float = 600.0,
        capabilities: Iterable[str] = CAPABILITIES,
    ) -> None:
        self.name = _text("name", name)
        self.model = _text("model", model)
        if api_key is not None and not isinstance(api_key, str):
            raise _bad("api_key", "a string or None", type(api_key).__name__)
        self._api_key = SecretStr(api_key.strip()) if api_key and api_key.strip() else None
        if base_url is not None and not (
            isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
        ):
            raise _bad("base_url", "an http:// or https:// URL or None", base_url)
        self.base_url = base_url
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise _bad("timeout", "a number of seconds > 0", timeout)
        self.timeout = float(timeout)
        if isinstance(capabilities, str) or not all(isinstance(c, str) and c for c in capabilities):
            raise _bad("capabilities", "an iterable of non-empty strings", capabilities)
        # Provider declares capabilities per class; this one is configured per instance.
        vars(self)["capabilities"] = frozenset(capabilities)
        self._lock = threading.Lock()
        self._client: genai.Client | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GeminiProvider:
        """Build one from a plain dict of the constructor's keyword names (as a YAML or
        JSON config gives them). An unknown key or a bad value raises ConfigurationError."""
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                f"gemini provider config must be a mapping, got {type(config).__name__}"
            )
        for key in config:
            if key not in _SETTINGS:
                raise ConfigurationError(
                    f"unknown gemini provider setting {key!r} (known: {', '.join(_SETTINGS)})"
                )
        return cls(**dict(config))

    # -- the call ------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """One ``generateContent`` request for ``request``, in the caller's thread.

        Raises the ``otpy.errors`` ProviderError that says what went wrong (see
        :func:`otpy.providers._gemini_map.api_error` for the HTTP errors); a 200 whose
        body cannot be read is a retryable ServerError (status 200).
        """
        from google.genai import errors as genai_errors

        client = self._sdk_client()
        model = request.model or self.model
        timeouts, transport = transport_errors()
        started = time.monotonic()
        try:
            response = client.models.generate_content(
                model=model, contents=contents_of(request), config=config_of(request)
            )
        except genai_errors.APIError as exc:
            raise api_error(exc, self.name, time.time()) from exc
        except (json.JSONDecodeError, genai_errors.UnknownApiResponseError, ValidationError) as exc:
            raise ServerError(
                f"malformed response ({type(exc).__name__}: {_short(exc)})",
                provider=self.name,
                status=200,
            ) from exc
        except ValueError as exc:  # raised before sending: the SDK refused the request
            raise InvalidRequestError(
                f"the google-genai SDK refused the request: {_short(exc)}", provider=self.name
            ) from exc
        except timeouts as exc:
            raise ProviderTimeoutError(
                f"no answer within {self.timeout:g} s ({type(exc).__name__})", provider=self.name
            ) from exc
        except transport as exc:
            raise ProviderConnectionError(
                f"cannot reach the Gemini API ({type(exc).__name__}: {_short(exc)})",
                provider=self.name,
            ) from exc
        return completion_of(
            response,
            request,
            model=model,
            provider=self.name,
            latency=time.monotonic() - started,
        )

    def _sdk_client(self) -> genai.Client:
        """The one SDK client, made on first use (with the key found then)."""
        with self._lock:
            if self._closed:
                raise ProviderError("the provider is closed", provider=self.name)
            if self._client is None:
                key = self._key()
                if key is None:
                    raise AuthenticationError(
                        "no API key: pass api_key= or set GEMINI_API_KEY (or GOOGLE_API_KEY)",
                        provider=self.name,
                    )
                self._client = self._make_client(key)
            return self._client

    def _key(self) -> str | None:
        if self._api_key is not None:
            return self._api_key.get_secret_value()
        for variable in KEY_ENV_VARS:
            value = os.environ.get(variable, "").strip()
            if value:
                return value
        return None

    def _make_client(self, key: str) -> genai.Client:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.base_url,
            timeout=max(1, round(self.timeout * 1000)),  # milliseconds; no retry_options
        )
        try:
            return genai.Client(api_key=key, vertexai=False, http_options=options)
        except ValueError as exc:
            raise InvalidRequestError(
                f"cannot make the google-genai client: {_short(exc)}", provider=self.name
            ) from exc

    def close(self) -> None:
        """Close the SDK client's connections; a later ``complete`` raises ProviderError."""
        with self._lock:
            client, self._client, self._closed = self._client, None, True
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return f"<GeminiProvider {self.name!r} model={self.model!r}>"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _bad(argument: str, expected: str, value: Any) -> ConfigurationError:
    return ConfigurationError(f"GeminiProvider: {argument} must be {expected}, got {value!r}")


def _text(argument: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(argument, "a non-empty string", value)
    return value
