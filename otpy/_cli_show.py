"""``otpy steps``, ``otpy providers`` and ``otpy schema``: what the runtime has registered,
and the pipeline JSON Schema for editors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from otpy._cli_common import EXIT_OK, Console, start_runtime, subcommand, table
from otpy.pipelines import Pipeline
from otpy.providers import ProviderEntry, ProviderHealth
from otpy.steps import StepEntry

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "add_show_parsers",
    "pipeline_schema",
    "providers_command",
    "schema_command",
    "steps_command",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def add_show_parsers(commands: Any) -> None:
    """The ``steps``, ``providers`` and ``schema`` subcommands on ``commands``."""
    steps = subcommand(
        commands,
        "steps",
        "the registered step types",
        "The registered step types: version, provider capabilities they use, "
        "required and optional fields, description.",
        handler=steps_command,
        config=True,
    )
    steps.add_argument("--capability", metavar="C", help="only step types that use C")
    steps.add_argument("--json", action="store_true", help="print a JSON list")
    providers = subcommand(
        commands,
        "providers",
        "the registered providers and their health",
        "The registered providers: capabilities, priority and health (healthy "
        "flag, circuit breaker state, error rate over the recent calls).",
        handler=providers_command,
        config=True,
    )
    providers.add_argument("--json", action="store_true", help="print a JSON list")
    schema = subcommand(
        commands,
        "schema",
        "the pipeline JSON Schema (for editors)",
        "Print the JSON Schema of a pipeline file, e.g. for an editor's YAML language server.",
    )
    schema.set_defaults(handler=schema_command)


def _step(entry: StepEntry) -> dict[str, Any]:
    meta = entry.metadata
    return {
        "name": entry.name,
        "version": meta.version,
        "capabilities": list(meta.capabilities),
        "required_fields": list(meta.required_fields),
        "optional_fields": list(meta.optional_fields),
        "description": meta.description,
    }


def steps_command(args: argparse.Namespace) -> int:
    """``otpy steps``: one block per step type (or a JSON list with ``--json``)."""
    out = Console()
    with start_runtime(args.config) as rt:
        entries = rt.steps.list_steps(args.capability)
    steps = [_step(entry) for entry in entries]
    if args.json:
        out.line(json.dumps(steps, indent=2))
        return EXIT_OK
    if not steps:
        wanted = f" using {args.capability!r}" if args.capability else ""
        out.line(f"no step types{wanted} are registered")
        return EXIT_OK
    for index, step in enumerate(steps):
        if index:
            out.line()
        capabilities = ", ".join(step["capabilities"]) or "none"
        out.line(f"{step['name']} {step['version']}  (capabilities: {capabilities})")
        out.line(f"  required: {', '.join(step['required_fields']) or '-'}")
        out.line(f"  optional: {', '.join(step['optional_fields']) or '-'}")
        if step["description"]:
            out.line(f"  {step['description']}")
    return EXIT_OK


def _provider(entry: ProviderEntry, health: ProviderHealth | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": entry.name,
        "type": type(entry.provider).__name__,
        "capabilities": sorted(entry.capabilities),
        "priority": entry.priority,
        "weight": entry.weight,
        "limits": entry.limits.model_dump(mode="json"),
    }
    if health is not None:
        data["health"] = {
            "healthy": health.healthy,
            "reason": health.reason,
            "breaker_state": health.breaker_state,
            "breaker_retry_in": health.breaker_retry_in,
            "error_rate": health.error_rate,
            "calls": health.calls,
            "latency_p50": health.latency_p50,
            "latency_p99": health.latency_p99,
            "in_flight": health.in_flight,
            "last_error": health.last_error,
        }
    return data


def providers_command(args: argparse.Namespace) -> int:
    """``otpy providers``: a table of providers with their health (or ``--json``)."""
    out = Console()
    with start_runtime(args.config) as rt:
        health = rt.providers.health()
        providers = [_provider(e, health.get(e.name)) for e in rt.providers.list_providers()]
    if args.json:
        out.line(json.dumps(providers, indent=2))
        return EXIT_OK
    if not providers:
        out.line("no providers are registered")
        return EXIT_OK
    rows = []
    for p in providers:
        h = p.get("health") or {}
        healthy = "yes" if h.get("healthy") else f"no ({h.get('reason') or '?'})"
        rows.append(
            [
                p["name"],
                p["type"],
                str(p["priority"]),
                healthy if h else "?",
                str(h.get("breaker_state", "?")),
                f"{h['error_rate']:.0%}" if h else "?",
                str(h.get("calls", "?")),
                ", ".join(p["capabilities"]),
            ]
        )
    headers = ("provider", "type", "priority", "healthy", "breaker", "errors", "calls")
    out.lines(table((*headers, "capabilities"), rows))
    return EXIT_OK


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file (``Pipeline.model_json_schema()``, 2020-12)."""
    return {"$schema": JSON_SCHEMA_DIALECT, **Pipeline.model_json_schema()}


def schema_command(args: argparse.Namespace) -> int:
    """``otpy schema``: the pipeline JSON Schema on stdout."""
    Console().line(json.dumps(pipeline_schema(), indent=2))
    return EXIT_OK
