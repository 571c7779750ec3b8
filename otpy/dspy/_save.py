"""``save_pipeline``: a tuned PipelineModule written back as a YAML pipeline."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from otpy.dspy._pipeline_module import PipelineModule
from otpy.dspy._pipeline_steps import written_document
from otpy.errors import ConfigurationError
from otpy.pipelines import compile_pipeline

__all__ = ["save_pipeline"]

_HEADER = (
    "# Written by otpy.dspy.save_pipeline from pipeline {name!r}: each tuned step asks with\n"
    "# its optimized instructions (system) and demos (prompt). Run it with `otpy run`.\n"
)


def save_pipeline(module: PipelineModule, path: str | os.PathLike[str]) -> Path:
    """Write ``module``'s pipeline to ``path`` as YAML, each tuned step with its
    predictor's instructions as ``system`` and its demos, then its input fields, as
    ``prompt`` (see ``otpy.dspy._pipeline_steps``); every other step as it was. The
    document is compiled against the module's step types before it is written (a
    StepValidationError names what is wrong and nothing is written). Relative sub-pipeline
    paths are written as they were: save beside the original to keep them. Returns the
    path. Runs in the caller's thread."""
    if not isinstance(module, PipelineModule):
        raise ConfigurationError(f"save_pipeline needs a PipelineModule, got {module!r}")
    learned = {
        name: (predictor.signature.instructions, [_demo(d) for d in predictor.demos])
        for name, predictor in module.step_predictors.items()
    }
    document = written_document(module.pipeline, module.tuned, learned)
    compile_pipeline(document, module.plan.table, base_dir=module.plan.base_dir)
    text = _HEADER.format(name=module.pipeline.name) + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with multi-line strings as ``|`` blocks (prompts stay readable)."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _block)


def _demo(demo: Any) -> Mapping[str, Any]:
    """A demo (a ``dspy.Example`` or a mapping) as a plain mapping of its fields."""
    if isinstance(demo, Mapping):
        return dict(demo)
    to_dict = getattr(demo, "toDict", None)
    return dict(to_dict()) if callable(to_dict) else {}
