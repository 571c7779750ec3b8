"""``Heartbeat``: one per runtime, it renews the leases of all the runtime's jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable

from otpy._timers import TimerQueue
from otpy.actors._job_record import JobRecord
from otpy.clock import TimerHandle
from otpy.optimize import JobStore

__all__ = ["Heartbeat"]

logger = logging.getLogger("otpy.jobs")


class Heartbeat:
    """Every ``lease_seconds / 3`` (of the clock, on ``timers``): renew the lease of every
    job of ``records()`` that holds one, running or paused, in one store transaction; a
    job whose lease another runtime has taken is told so (``JobRecord.lose``). A failed
    beat is logged and the next one tries again (the leases last three periods)."""

    def __init__(
        self, store: JobStore, timers: TimerQueue, records: Callable[[], list[JobRecord]]
    ) -> None:
        self.store = store
        self.timers = timers
        self.records = records
        self.period = store.lease_seconds / 3
        self.timer: TimerHandle | None = None
        self.stopped = False

    def schedule(self) -> None:
        if not self.stopped:
            self.timer = self.timers.call_later(self.period, self.beat)

    def beat(self) -> None:
        """One renewal (in the timer's thread)."""
        try:
            held = [(r, lease) for r in self.records() if (lease := r.held_lease())]
            lost = self.store.renew([lease for _, lease in held])
            mine = self.store.owner.id
            for record, lease in held:
                holder = lost.get(lease.job_id)
                if holder is not None and (holder.owner is None or holder.owner.id != mine):
                    record.lose(lease.epoch, holder.describe())  # (ours: a newer claim)
        except Exception:
            logger.exception("the job lease heartbeat failed; it tries again")
        finally:
            self.schedule()

    def cancel(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
