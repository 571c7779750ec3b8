"""Correlation context: ids that follow nested work without being passed by hand, adopted
across threads with use_context, isolated between threads and asyncio tasks, and stamped
on log records by CorrelationFilter.

Threads synchronise on Barriers and Events (every wait bounded) and are always joined.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otpy.errors import ConfigurationError
from otpy.telemetry import (
    CorrelationFilter,
    Event,
    Telemetry,
    TraceContext,
    correlation,
    current_context,
    new_correlation_id,
    use_context,
)
from otpy.testing import FakeClock

WAIT = 5.0


def run_thread(target: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


# -- the context itself -----------------------------------------------------------------


def test_the_context_is_empty_outside_any_trace() -> None:
    assert current_context() == TraceContext(None, None)


def test_correlation_starts_or_adopts_an_id_and_restores_the_previous() -> None:
    with correlation() as outer:
        assert outer.correlation_id is not None
        assert current_context() == outer
        with correlation("job-42") as adopted:
            assert adopted == TraceContext("job-42", None)
            assert current_context() == adopted
        assert current_context() == outer
    assert current_context() == TraceContext()


def test_adopting_the_current_id_keeps_the_enclosing_span(hub: Telemetry) -> None:
    with hub.span("job") as job:
        with correlation(job.correlation_id) as same:
            assert same.span_id == job.span_id
        with correlation("another") as other:
            assert other.span_id is None
            assert hub.emit("x").parent_id is None


def test_new_correlation_ids_are_unique() -> None:
    ids = {new_correlation_id() for _ in range(1000)}
    assert len(ids) == 1000


@pytest.mark.parametrize("bad", ["", 42])
def test_correlation_refuses_a_bad_id(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="correlation_id"), correlation(bad):
        pass


def test_use_context_refuses_anything_but_a_trace_context() -> None:
    with pytest.raises(ConfigurationError, match="TraceContext"), use_context("abc"):  # type: ignore[arg-type]
        pass


def test_the_context_is_restored_when_the_body_raises(hub: Telemetry) -> None:
    with pytest.raises(RuntimeError), correlation("c1"), hub.span("s"):
        raise RuntimeError
    assert current_context() == TraceContext()


# -- nesting: a step inside an evaluation inside a job ----------------------------------


def test_three_levels_of_nesting_get_their_ids_without_passing_them(
    hub: Telemetry, clock: FakeClock
) -> None:
    def score_step(n: int) -> None:  # knows nothing about jobs or evaluations
        with hub.span("step", {"n": n}):
            clock.advance(0.5)
            hub.emit("step.scored", {"score": n / 10})

    def evaluate() -> None:
        with hub.span("evaluation"):
            for n in (1, 2):
                score_step(n)

    with correlation("job-7"), hub.span("job") as job:
        evaluate()

    events = {(e.name, e.metadata.get("n")): e for e in hub.store.query()}
    job_start = events[("job.start", None)]
    evaluation = events[("evaluation.start", None)]
    step1, step2 = events[("step.start", 1)], events[("step.start", 2)]
    assert all(e.correlation_id == "job-7" for e in events.values())
    assert job_start.event_id == job.span_id
    assert job_start.parent_id is None
    assert evaluation.parent_id == job.span_id
    assert step1.parent_id == step2.parent_id == evaluation.event_id
    scored = hub.store.query(name="step.scored")
    assert [e.parent_id for e in scored] == [step1.event_id, step2.event_id]

    (root,) = hub.store.trace_tree("job-7")
    assert root.render() == "\n".join(
        [
            "job.start",
            "  evaluation.start",
            "    step.start",
            "      step.scored",
            "      step.stop  duration=0.5s",
            "    step.start",
            "      step.scored",
            "      step.stop  duration=0.5s",
            "    evaluation.stop  duration=1s",
            "  job.stop  duration=1s",
        ]
    )
    assert hub.metrics.histogram("step.duration").count == 2


# -- threads ----------------------------------------------------------------------------


def test_a_worker_thread_joins_the_trace_with_use_context(hub: Telemetry) -> None:
    seen: dict[str, Any] = {}

    with hub.span("job") as job:
        captured = current_context()

        def worker() -> None:
            seen["before"] = current_context()
            with use_context(captured):
                seen["event"] = hub.emit("worker.done")
                with hub.span("worker.task") as task:
                    seen["task"] = task
            seen["after"] = current_context()

        run_thread(worker)

    assert seen["before"] == TraceContext()  # a new thread starts outside any trace
    assert seen["after"] == TraceContext()
    event: Event = seen["event"]
    assert (event.correlation_id, event.parent_id) == (job.correlation_id, job.span_id)
    assert seen["task"].parent_id == job.span_id
    assert seen["task"].correlation_id == job.correlation_id
    (root,) = hub.store.trace_tree(job.correlation_id)
    assert [c.event.name for c in root.children] == [
        "worker.done",
        "worker.task.start",
        "job.stop",
    ]


def test_threads_do_not_see_each_others_context(hub: Telemetry) -> None:
    inside = threading.Barrier(8)
    seen: dict[int, tuple[str, TraceContext, str | None]] = {}

    def work(slot: int) -> None:
        with correlation() as mine, hub.span(f"w{slot}"):
            inside.wait(WAIT)  # every thread is inside its own trace at once
            event = hub.emit("tick")
            seen[slot] = (mine.correlation_id or "", current_context(), event.correlation_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(seen) == 8
    for own, ctx, event_corr in seen.values():
        assert ctx.correlation_id == own == event_corr
    assert len({own for own, _, _ in seen.values()}) == 8
    assert current_context() == TraceContext()


# -- asyncio ----------------------------------------------------------------------------


def test_asyncio_tasks_are_isolated_and_inherit_their_creators_span(hub: Telemetry) -> None:
    async def evaluate(label: str, barrier: asyncio.Barrier) -> tuple[str, str | None, str]:
        with hub.span("evaluation", {"label": label}) as ev:
            await barrier.wait()  # both tasks are inside their spans at once
            event = hub.emit("scored", {"x": 1}, {"label": label})
            assert current_context().span_id == ev.span_id
            return ev.span_id, ev.parent_id, event.parent_id or ""

    async def tagged(tag: str, barrier: asyncio.Barrier) -> str | None:
        with correlation(tag):
            await barrier.wait()
            await asyncio.sleep(0)
            return current_context().correlation_id

    async def main() -> None:
        barrier = asyncio.Barrier(2)
        assert list(await asyncio.gather(tagged("a", barrier), tagged("b", barrier))) == [
            "a",
            "b",
        ]
        assert current_context() == TraceContext()
        with hub.span("job") as job:
            barrier = asyncio.Barrier(2)
            first, second = await asyncio.gather(evaluate("one", barrier), evaluate("two", barrier))
        for span_id, parent_id, event_parent in (first, second):
            assert parent_id == job.span_id
            assert event_parent == span_id
        assert first[0] != second[0]

    asyncio.run(main())


# -- logging ----------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(correlation_id)s %(span_id)s %(message)s"))
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger("tests.telemetry.context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_log_lines_carry_the_ids_of_the_innermost_span(
    hub: Telemetry, log_lines: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = log_lines
    logger.info("outside")
    with correlation("job-9"), hub.span("job") as job:
        logger.info("in job")
        with hub.span("step") as step:
            logger.info("in step")
        logger.info("extra", extra={"correlation_id": "given", "span_id": "mine"})
    assert stream.getvalue().splitlines() == [
        "- - outside",
        f"job-9 {job.span_id} in job",
        f"job-9 {step.span_id} in step",
        "given mine extra",
    ]


def test_log_lines_from_a_worker_that_adopted_the_context(
    hub: Telemetry, log_lines: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = log_lines
    with hub.span("job"), hub.span("evaluation") as evaluation:
        captured = current_context()

        def worker() -> None:
            logger.info("worker, no context")
            with use_context(captured):
                logger.info("worker, adopted")

        run_thread(worker)
    assert stream.getvalue().splitlines() == [
        "- - worker, no context",
        f"{evaluation.correlation_id} {evaluation.span_id} worker, adopted",
    ]


def test_the_filter_never_drops_a_record() -> None:
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "m", None, None)
    assert CorrelationFilter().filter(record) is True
    assert (record.__dict__["correlation_id"], record.__dict__["span_id"]) == ("-", "-")
