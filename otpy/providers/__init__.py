"""Providers: the LLMs steps call, behind one behaviour (``complete(request)``).

``simulated`` (offline, deterministic) is the embedded default; ``anthropic`` and
``gemini`` wrap the official SDKs.
"""

from otpy.providers._base import (
    CAPABILITIES,
    Completion,
    CompletionRequest,
    Message,
    Provider,
    ProviderGateway,
    Usage,
    estimate_tokens,
)

__all__ = [
    "CAPABILITIES",
    "Completion",
    "CompletionRequest",
    "Message",
    "Provider",
    "ProviderGateway",
    "Usage",
    "estimate_tokens",
]
