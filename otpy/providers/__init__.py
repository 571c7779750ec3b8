"""Providers: the LLMs steps call, behind one behaviour (``complete(request)``).

``simulated`` (offline, deterministic) is the embedded default; ``anthropic`` and
``gemini`` wrap the official SDKs. Requests may offer tools (:class:`ToolSpec`) and
conversations carry tool calls and results (:class:`ToolCall`, :class:`ToolResult`) for
providers with the ``tools`` capability.
"""

from otpy.providers._anthropic import AnthropicProvider
from otpy.providers._base import (
    CAPABILITIES,
    Completion,
    CompletionRequest,
    Message,
    Provider,
    ProviderGateway,
    RateLimitReading,
    Usage,
    estimate_tokens,
)
from otpy.providers._gemini import GeminiProvider
from otpy.providers._health import (
    HealthRule,
    ProviderHealth,
    ProviderStats,
    StatsSnapshot,
    Verdict,
    decide,
)
from otpy.providers._limits import ProviderLimits
from otpy.providers._select import STRATEGIES
from otpy.providers._simulated import SimulatedProvider, SimulatedStats
from otpy.providers._table import ProviderEntry, ProviderTable, as_capabilities, make_entry
from otpy.providers._tooling import TOOL_NAME_PATTERN, ToolCall, ToolResult, ToolSpec
from otpy.providers._types import (
    PROVIDER_TYPES,
    ProviderType,
    make_provider,
    register_provider_type,
)
from otpy.providers._view import ProviderView

__all__ = [
    "CAPABILITIES",
    "AnthropicProvider",
    "PROVIDER_TYPES",
    "STRATEGIES",
    "TOOL_NAME_PATTERN",
    "Completion",
    "CompletionRequest",
    "GeminiProvider",
    "HealthRule",
    "Message",
    "Provider",
    "ProviderEntry",
    "ProviderGateway",
    "RateLimitReading",
    "ProviderHealth",
    "ProviderLimits",
    "ProviderStats",
    "ProviderTable",
    "ProviderType",
    "ProviderView",
    "SimulatedProvider",
    "SimulatedStats",
    "StatsSnapshot",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "Verdict",
    "as_capabilities",
    "decide",
    "estimate_tokens",
    "make_entry",
    "make_provider",
    "register_provider_type",
]
