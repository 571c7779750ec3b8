"""Checkpoints of a pipeline with ``checkpoint_enabled``: after every top-level step the
run so far (results, variables, outcomes) goes to ``<checkpoint_dir>/<name>_latest.json``
(replaced atomically), so a run that failed or was killed can resume from its last
completed step (``otpy run --resume``, ``run_plan(progress=RunProgress(resume=True))``).

A checkpoint belongs to one pipeline (its config's fingerprint) and one set of inputs;
resuming with another is refused. A run that completes removes its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Final

from otpy.errors import ConfigurationError
from otpy.pipelines._schema import Pipeline

__all__ = ["Checkpoint", "checkpoint_path", "fingerprint"]

VERSION: Final = 1
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.\-]+")


def fingerprint(pipeline: Pipeline) -> str:
    """A hash of the pipeline's config (what a checkpoint is valid for)."""
    source = pipeline.source
    data = source[2] if source is not None else pipeline.model_dump(mode="json")
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def checkpoint_path(directory: Path, pipeline: str) -> Path:
    """``<directory>/<name>_latest.json`` (unsafe characters of the name as ``_``)."""
    return directory / f"{_UNSAFE.sub('_', pipeline)}_latest.json"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class Checkpoint:
    """The checkpoint file of one pipeline in ``directory``."""

    def __init__(self, directory: Path, pipeline: Pipeline) -> None:
        self.path = checkpoint_path(directory, pipeline.name)
        self.pipeline = pipeline
        self.fingerprint = fingerprint(pipeline)

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (completed, records, status, variables, outcomes, inputs,
        previous) atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"version": VERSION, "pipeline": self.pipeline.name,
                    "fingerprint": self.fingerprint, **_plain(state)}  # fmt: skip
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        temporary.replace(self.path)

    def load(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The saved state, or None if there is none. ConfigurationError when it is not
        this pipeline's (its config changed) or was made with other inputs, or unreadable."""
        if not self.path.exists():
            return None
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the checkpoint {self.path}: {exc}") from None
        if not isinstance(document, dict) or document.get("version") != VERSION:
            raise ConfigurationError(f"{self.path} is not an otpy checkpoint (version {VERSION})")
        if document.get("fingerprint") != self.fingerprint:
            raise ConfigurationError(
                f"the checkpoint {self.path} was made by another version of pipeline "
                f"{self.pipeline.name!r} (its file changed since): delete it to start over"
            )
        if document.get("inputs") != _plain(inputs):
            raise ConfigurationError(
                f"the checkpoint {self.path} was made with other inputs "
                f"({document.get('inputs')!r}): resume with the same inputs, or delete it"
            )
        return document

    def clear(self) -> None:
        """Remove the checkpoint (the run completed)."""
        self.path.unlink(missing_ok=True)
