"""The :mod:`otpy.errors` class for a provider's HTTP error answer, one rule for every
provider (each provider's map reads its own signals out of its SDK's exception)."""

from __future__ import annotations

from typing import Any

from otpy.errors import (
    AuthenticationError,
    InvalidRequestError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
    SpendLimitError,
)

__all__ = ["status_error"]


def status_error(
    status: int,
    message: str,
    *,
    provider: str,
    retry_after: float | None = None,
    spent: bool = False,
    rate_limited: bool = False,
    overloaded: bool = False,
    unauthenticated: bool = False,
) -> ProviderError:
    """The ProviderError for an HTTP error answer with ``status`` (0 if none).

    In order: ``spent`` (credits or a quota that will not come back soon) is a
    SpendLimitError; 429 or ``rate_limited`` a RateLimitedError; 503 / 529 or
    ``overloaded`` an OverloadedError; another 5xx (or no 4xx status at all) a
    ServerError; 401 / 403 or ``unauthenticated`` an AuthenticationError; 408 a
    ProviderTimeoutError; any other 4xx an InvalidRequestError. ``retry_after`` (seconds,
    the provider's advice) is kept on the error.
    """
    args: dict[str, Any] = {"provider": provider, "status": status, "retry_after": retry_after}
    if spent:
        return SpendLimitError(message, **args)
    if status == 429 or rate_limited:
        return RateLimitedError(message, **args)
    if status in (503, 529) or overloaded:
        return OverloadedError(message, **args)
    if status >= 500 or status < 400:
        return ServerError(message, **args)
    if status in (401, 403) or unauthenticated:
        return AuthenticationError(message, **args)
    if status == 408:
        return ProviderTimeoutError(message, **args)
    return InvalidRequestError(message, **args)
