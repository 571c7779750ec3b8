"""``LedgerState``: the state every job ledger moves through (running, paused, ended)."""

from __future__ import annotations

from otpy.optimize._job import JobState
from otpy.optimize._store import Checkpoint

__all__ = ["LedgerState"]


class LedgerState:
    """A ledger's ``state``: ``pause`` and ``resume`` move it between running and paused;
    ``end`` (the ledger's own) ends it; ``restore_state`` takes it from a checkpoint."""

    state: JobState = "running"

    def end(self, state: JobState, *, reason: str | None = None, error: str | None = None) -> None:
        raise NotImplementedError

    def pause(self) -> bool:
        """Start no new candidate (what is in flight finishes and is kept, and so do the
        other examples of the candidates already started); False unless running."""
        if self.state != "running":
            return False
        self.state = "paused"
        return True

    def resume(self) -> bool:
        """Go on after :meth:`pause`; False unless paused."""
        if self.state != "paused":
            return False
        self.state = "running"
        return True

    def restore_state(self, checkpoint: Checkpoint) -> None:
        """A finished checkpoint's job stays finished, a paused one paused."""
        if checkpoint.state in ("completed", "cancelled", "failed"):
            self.end(checkpoint.state, error=checkpoint.error)
        elif checkpoint.state == "paused":
            self.state = "paused"
