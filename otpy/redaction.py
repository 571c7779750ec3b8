"""Secret redaction, for logs, telemetry events and error texts: API keys never reach a
log, the event store, a subscriber or a stored record.

A text is masked by :func:`mask` (known key shapes — Anthropic ``sk-ant-…``, Google
``AIza…`` —, ``api_key=…`` / ``Authorization: Bearer …`` pairs, and given literal
values); :class:`Redactor` also masks the values of the provider key environment
variables and walks dicts, lists and tuples, replacing values under keys that look secret
whole. This module sits below both :mod:`otpy.log` and :mod:`otpy.telemetry`.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_ENV_VARS",
    "Redactor",
    "is_secret_key",
    "mask",
    "redact_value",
    "secret_literals",
]

REDACTED = "[REDACTED]"
SECRET_ENV_VARS = ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
"""The provider key environment variables whose values are masked wherever they appear."""

_KEY_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),  # Anthropic
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google
    re.compile(
        r"(?i)\b(api[_-]?key|x-api-key|x-goog-api-key|authorization|password|passwd|secret"
        r"|(?:access|auth|refresh|session)[_-]?token)"
        r"([\"'=: ]+)((?:bearer|basic|token)\s+)?([^\s\"',}]+)"
    ),
)

# The password of a URL's user part: redis://user:secret@host, postgres://:secret@host.
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)[^\s/@]+@")


def secret_literals(extra: Iterable[str] = ()) -> list[str]:
    """The values to mask literally: the provider key environment variables' values (read
    now) and ``extra``, longest first; values shorter than 8 characters are left out."""
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    return sorted({v for v in (*values, *extra) if len(v) >= 8}, key=len, reverse=True)


def mask(text: str, literals: Sequence[str] = ()) -> str:
    """``text`` with every known key shape, ``key=value`` secret pair, URL password
    (``redis://user:secret@host``) and each of ``literals`` replaced by ``[REDACTED]``."""
    for secret in literals:
        text = text.replace(secret, REDACTED)
    text = _KEY_PATTERNS[0].sub(REDACTED, text)
    text = _KEY_PATTERNS[1].sub(REDACTED, text)
    text = _KEY_PATTERNS[2].sub(
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text
    )
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)


# Keys are compared lowercased with "-" read as "_": "X-Api-Key" is "x_api_key".
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "x_goog_api_key",
        "authorization",
        "proxy_authorization",
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "private_key",
        "secret_key",
    }
)
# ... and any key ending in one of these: "anthropic_api_key", "github_token", "db_password".
# ("max_tokens" or "input_tokens" do not match: they end in "_tokens".)
_SECRET_SUFFIXES = ("_api_key", "_apikey", "_token", "_secret", "_password", "_private_key")

_MAX_DEPTH = 32  # deeper (or cyclic) structures are replaced by their redacted repr
_CLEAN_CACHE_SIZE = 4096  # strings known to hold no secret, so they are checked once
_CLEAN_CACHE_MAX_LEN = 512


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``Authorization``, ``x-api-key``,
    ``password``, ``token``, ``anthropic_api_key``, ...; case-insensitive, ``-`` = ``_``)."""
    normal = key.strip().lower().replace("-", "_").replace(" ", "_")
    return normal in _SECRET_KEYS or normal.endswith(_SECRET_SUFFIXES)


class Redactor:
    """Redacts strings and nested values (see the module docstring).

    The provider key environment variables are read when the redactor is made.
    Thread-safe. Strings found clean are remembered (a bounded set; only clean ones, so no
    secret is kept), which makes repeated metadata values nearly free.
    """

    __slots__ = ("_clean", "_literals")

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        self._literals = secret_literals(extra_secrets)
        self._clean: set[str] = set()

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]`` (the same object if clean)."""
        if text in self._clean:
            return text
        redacted = mask(text, self._literals)
        if redacted == text:
            if len(text) <= _CLEAN_CACHE_MAX_LEN:
                if len(self._clean) >= _CLEAN_CACHE_SIZE:
                    self._clean.clear()
                self._clean.add(text)
            return text
        return redacted

    def value(self, value: Any) -> Any:
        """``value`` redacted: strings, and recursively dicts (and other mappings), lists
        and tuples. Unchanged values come back as the same object (no copy); a changed
        container comes back as a new one (a mapping as a plain ``dict``)."""
        return self._value(value, 0)

    def mapping(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        """A new plain dict: ``mapping`` with secret-looking keys' values replaced and every
        other value redacted (nested containers are copied only if something changed)."""
        out: dict[str, Any] = {}
        for key, item in mapping.items():
            if type(key) is str and is_secret_key(key):
                out[key] = REDACTED
            else:
                out[key] = self._value(item, 1)
        return out

    def _value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is int or kind is float or kind is bool or value is None:
            return value
        if depth >= _MAX_DEPTH:
            return self.text(repr(value))
        if isinstance(value, Mapping):
            return self._mapping(value, depth + 1)
        if isinstance(value, list | tuple):
            return self._sequence(value, depth + 1)
        if isinstance(value, str):  # a str subclass
            return self.text(value)
        return value

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> Any:
        out: dict[Any, Any] = {}
        changed = False
        for key, item in mapping.items():
            new = REDACTED if type(key) is str and is_secret_key(key) else self._value(item, depth)
            changed = changed or new is not item
            out[key] = new
        return out if changed else mapping

    def _sequence(self, seq: list[Any] | tuple[Any, ...], depth: int) -> Any:
        items = [self._value(item, depth) for item in seq]
        if all(new is old for new, old in zip(items, seq, strict=True)):
            return seq
        if isinstance(seq, list):
            return items
        make = getattr(seq, "_make", None)  # a namedtuple keeps its type
        return make(items) if make is not None else tuple(items)


_default_lock = threading.Lock()
_default: tuple[tuple[str | None, ...], Redactor] | None = None


def _module_redactor() -> Redactor:
    """A shared redactor, made again whenever a provider key environment variable changes."""
    global _default
    env = tuple(os.environ.get(name) for name in SECRET_ENV_VARS)
    current = _default
    if current is not None and current[0] == env:
        return current[1]
    with _default_lock:
        if _default is None or _default[0] != env:
            _default = (env, Redactor())
        return _default[1]


def redact_value(value: Any) -> Any:
    """``value`` with every API key masked: strings through :func:`mask`,
    dicts / lists / tuples recursively, values under secret-looking keys (``api_key``,
    ``authorization``, ``password``, ``token``, ...) replaced by ``"[REDACTED]"``. Other
    values pass through; an unchanged value comes back as the same object."""
    return _module_redactor().value(value)
