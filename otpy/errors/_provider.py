"""A provider call that failed, by kind."""

from __future__ import annotations

from otpy.errors._base import OtpyError

__all__ = [
    "AuthenticationError",
    "InvalidRequestError",
    "OverloadedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "ServerError",
    "SpendLimitError",
]


class ProviderError(OtpyError):
    """A provider call failed. ``retryable`` says whether trying again can help;
    ``retry_after`` is the provider's own advice in seconds (Retry-After), if it gave one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f"provider {provider!r}" if provider else "provider"
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{where}{code}: {message}")
        self.provider = provider
        self.status = status
        self.retry_after = retry_after


class RateLimitedError(ProviderError):
    """429: the provider's rate limit was hit; wait ``retry_after`` and try again."""

    retryable = True


class OverloadedError(ProviderError):
    """529 (Anthropic ``overloaded_error``) or 503: the provider is overloaded."""

    retryable = True


class ServerError(ProviderError):
    """Another 5xx from the provider."""

    retryable = True


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The provider did not answer in time."""

    retryable = True


class ProviderConnectionError(ProviderError, ConnectionError):
    """The provider could not be reached."""

    retryable = True


class AuthenticationError(ProviderError):
    """401 / 403: the key is missing, wrong or lacks permission; retrying cannot help."""


class InvalidRequestError(ProviderError, ValueError):
    """400 / 404 / 413 / 422: the request itself is wrong; retrying cannot help."""


class SpendLimitError(ProviderError):
    """The account's credits, budget or quota are exhausted; retrying cannot help."""
