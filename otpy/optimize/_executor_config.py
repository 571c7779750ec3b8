"""``ExecutorConfig``: the runtime config's ``jobs.executor`` section — the executor a job
runs on when it names none, and how the Ray executor reaches its cluster."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ExecutorConfig"]


class ExecutorConfig(BaseModel):
    """``type``: the executor of the jobs that name none (``threads``, ``ray``, or a
    registered name); a bare name (``jobs.executor: ray``) is ``{type: ray}``.

    The Ray executor (``otpy[ray]``): ``address`` None starts a local Ray in this process
    the first time a job needs it (``num_cpus`` CPUs; None: the machine's), ``"auto"``
    joins the cluster this machine is a node of (``ray start``), ``"ray://host:10001"``
    connects through Ray Client; a Ray this process already started is used as it is.
    ``workers`` evaluation actors (None: one per CPU of the cluster) each reserve
    ``worker_cpus`` CPUs and run up to ``threads`` evaluations at once; ``retries``: how
    many times an evaluation whose worker died is sent again before it counts as failed;
    ``namespace`` and ``runtime_env`` (Ray's: ``working_dir``, ``py_modules``, ``pip``,
    ``env_vars``) are the workers'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(default="threads", min_length=1)
    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)
    workers: int | None = Field(default=None, ge=1)
    worker_cpus: float = Field(default=1.0, ge=0)
    threads: int = Field(default=32, ge=1, le=1024)
    retries: int = Field(default=3, ge=0)
    namespace: str = Field(default="otpy", min_length=1)
    runtime_env: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data
