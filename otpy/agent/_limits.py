"""How far tools may go: sizes, output, Bash. The runtime config's ``tools`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ToolLimits"]


class ToolLimits(BaseModel):
    """The tool settings of a runtime (``tools:`` in its config).

    ``workspace``: the root of pipeline runs' workspaces when a run names none (relative
    to the directory the process runs in; default ``./workspace``, as pipeline_ex).
    ``max_read_bytes``: the most of one file Read, Edit and Grep read (a larger file is
    refused by Edit, cut by Read). ``max_write_bytes``: the largest file Write and Edit
    write. ``max_output_chars``: a tool result is cut there (the model sees the cut).
    ``max_results``: the most paths Glob, Grep and LS list. ``bash``: whether the ``Bash``
    tool exists at all (off by default; a step must also allow it); ``bash_timeout``: the
    longest a command runs (seconds) before it is killed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: str = "workspace"
    max_read_bytes: int = Field(default=1_000_000, gt=0)
    max_write_bytes: int = Field(default=1_000_000, gt=0)
    max_output_chars: int = Field(default=30_000, ge=200)
    max_results: int = Field(default=1_000, gt=0)
    bash: bool = False
    bash_timeout: float = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False)
