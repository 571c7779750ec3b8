"""32 DSPy threads under a requests-per-minute limit: the provider's limiter makes them wait
(no 429, no error) and no minute ever holds more calls than the limit."""

from __future__ import annotations

import threading
from typing import Any

import dspy
from dspy_support import exact, examples, half_right, runtime, simulated

import otpy.dspy
from otpy.providers._prompt_formats import StructuredPrompt
from otpy.testing import FakeClock, wait_until


def test_thirty_two_threads_never_exceed_the_rpm_limit(clock: FakeClock) -> None:
    times: list[float] = []

    def answer(prompt: StructuredPrompt) -> str:
        times.append(clock.monotonic())  # when the call reached the provider
        return half_right(prompt)

    sim = simulated(field_values={"answer": answer}, clock=clock)
    rpm, count = 8, 40
    outcome: list[Any] = []
    with runtime(sim, clock=clock, limits={"rpm": rpm}) as rt:
        lm = otpy.dspy.lm(rt)
        evaluate = dspy.Evaluate(devset=examples(count), metric=exact, num_threads=32)

        def run() -> None:
            with dspy.context(lm=lm):
                outcome.append(evaluate(dspy.Predict("question -> answer")))

        worker = threading.Thread(target=run)
        worker.start()
        limiter = rt.providers.get_provider("sim").limiter
        assert limiter is not None

        def window_full() -> bool:
            # callers wait, the minute is used up, and every admitted call has reached the
            # provider: moving the clock now cannot change when a call happened
            stats = limiter.statistics()
            return (
                stats.waiting > 0
                and stats.buckets[0].remaining == 0
                and stats.acquired == len(times)
            )

        while worker.is_alive():
            wait_until(lambda: not worker.is_alive() or window_full(), 20, "a full minute")
            if not worker.is_alive():
                break
            admitted = limiter.statistics().acquired
            clock.advance(61)
            wait_until(lambda n=admitted: limiter.statistics().acquired > n, 20, "admissions")
        worker.join(10)
        waited = limiter.statistics().waited
    assert len(outcome) == 1 and outcome[0].score == 50.0  # every example answered
    assert len(times) == sim.calls == count
    busiest = max(sum(1 for t in times if t0 <= t < t0 + 60) for t0 in times)
    assert busiest == rpm  # reached, never exceeded, in any minute
    assert waited > 0  # the limiter made calls wait (no 429, no error)
    assert clock.monotonic() >= (count // rpm - 1) * 61  # 40 calls need five minutes
