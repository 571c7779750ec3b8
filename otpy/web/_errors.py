"""Errors as JSON: every failure the API reports is ``{"error": message, "status": code}``
(a validation failure adds ``problems``), with the message redacted, never a traceback.

:class:`ApiError` is what handlers raise for a status of their choosing; an
:class:`~otpy.errors.OtpyError` maps to a status by its type; anything else is a 500 whose
message names only the exception's type (the traceback goes to the server's log)."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from otpy.errors import (
    AgentError,
    CallTimeoutError,
    ConfigurationError,
    JobError,
    NoProcessError,
    OtpyError,
    PipelineError,
    RegistryError,
    StateError,
)
from otpy.redaction import redact_value
from otpy.web._security import BodyTooLarge

__all__ = ["ApiError", "error_response", "install_error_handlers"]

logger = logging.getLogger("otpy.web")

_STATUS: Final[tuple[tuple[type[OtpyError], int], ...]] = (
    (NoProcessError, 404),
    (CallTimeoutError, 504),
    (ConfigurationError, 422),
    (RegistryError, 422),
    (StateError, 422),
    (AgentError, 422),
    (JobError, 409),
    (PipelineError, 409),
)


class ApiError(Exception):
    """A refusal with an HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    """The JSON error body every refusal uses (the message redacted)."""
    body = {"error": redact_value(message), "status": status, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="otpy"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _status_of(exc: OtpyError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a JSON body (see the module docstring)."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message)

    async def otpy_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OtpyError)
        return error_response(_status_of(exc), f"{type(exc).__name__}: {exc}")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, detail)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {
                "where": ".".join(str(part) for part in error.get("loc", ())),
                "problem": error.get("msg", ""),
            }
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        return error_response(422, f"invalid request: {summary}", problems=problems)

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return error_response(413, str(exc) or "the request body is too large")

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        logger.error("otpy web: %s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, f"internal error ({type(exc).__name__}); the server's log has the details"
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(OtpyError, otpy_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(Exception, crash)
