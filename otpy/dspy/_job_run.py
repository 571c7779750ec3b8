"""``CompileRun``: one run of a DSPy job's compile (or evaluation), in a thread of its own.

The job's runner actor makes a run per incarnation and steers it through its
:class:`~otpy.calls.CallGate` (pause, resume, cancel; the budgets are the gate's). The
run's thread:

1. waits until the previous run of the job in this process (a crashed or hibernated
   incarnation's, cancelled) has no call in flight: its answers are journaled first, so
   this run replays them instead of paying for them again;
2. opens the job's call journal and counts what it holds as spent (``gate.restore``);
3. runs the optimizer's ``compile`` from its start on fresh copies of the program and the
   optimizer, with the job's seed, inside ``dspy.context(lm=..., callbacks=[...])`` and
   ``call_scope(gate, journal)``: journaled calls are answered from the journal at
   memory speed, the first call never answered is the first live one;
4. hands its :class:`CompileOutcome` to ``on_done`` (the runner's mailbox).

A stop (cancel, a budget) is raised in the compile's LLM calls as ``CallsStopped``, which
DSPy's error handling cannot swallow; a run whose runner is gone dies at its next call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy  # type: ignore[import-untyped]

from otpy.calls import CallGate, CallJournal, CallsStopped, JournalStore
from otpy.dspy._engine import SCOPE_KEY, CallScope
from otpy.dspy._job_parts import DSPyParts, compile_arguments, examples_of, fresh
from otpy.dspy._job_progress import CompileProgress
from otpy.optimize import JobSpec, LMCalls

__all__ = ["CompileOutcome", "CompileRun"]

logger = logging.getLogger("otpy.jobs")


@dataclass(frozen=True)
class CompileOutcome:
    """How a run ended: the compiled ``program``, or ``stopped`` by the gate, or ``error``
    (what the compile raised)."""

    program: Any = None
    stopped: CallsStopped | None = None
    error: BaseException | None = None


class CompileRun:
    """One run of the DSPy job ``spec`` (see the module docstring).

    ``parts``: its live objects; ``gate``: what its calls pass; ``progress``: the
    callback reporting its evaluations; ``journals``: the store of call journals;
    ``previous``: the run before it in this process (waited for, at most ``patience``
    seconds); ``on_done``: called once, in the run's thread, with the outcome."""

    def __init__(
        self,
        spec: JobSpec,
        parts: DSPyParts,
        gate: CallGate,
        progress: CompileProgress,
        journals: JournalStore,
        on_done: Callable[[CompileOutcome], None],
        *,
        previous: CompileRun | None = None,
        patience: float = 60.0,
    ) -> None:
        assert spec.dspy is not None
        self.spec = spec
        self.parts = parts
        self.gate = gate
        self.progress = progress
        self.journals = journals
        self.on_done = on_done
        self.previous = previous
        self.patience = patience
        self.note: str | None = "starting"
        self.done = threading.Event()
        self.thread = threading.Thread(
            target=self._main, name=f"otpy-dspy-{spec.job_id}", daemon=True
        )

    def start(self) -> None:
        """Start the run's thread (once)."""
        self.thread.start()

    @property
    def started(self) -> bool:
        return self.thread.ident is not None

    def stop(self) -> None:
        """Stop for good: the calls not started raise CallsCancelled (in flight finish)."""
        self.gate.cancel()

    @property
    def phase(self) -> str | None:
        """What the run does now (reading the journal, an optimizer, an evaluation)."""
        return self.note or self.progress.phase

    def calls(self) -> LMCalls:
        """Its LLM calls now (live ones over the job's life, replays of this run)."""
        totals = self.gate.totals()
        return LMCalls(
            calls=totals.calls,
            replayed=totals.replayed,
            in_flight=self.gate.in_flight,
            tokens=totals.tokens,
            cost=totals.cost,
        )

    def _main(self) -> None:
        outcome = CompileOutcome(error=RuntimeError("the run ended before it began"))
        try:
            previous = self.previous
            if previous is not None and previous.started:
                self.note = "waiting for the previous run's calls in flight"
                if not previous.gate.wait_quiet(self.patience):
                    logger.warning(
                        "job %s: the previous run still has LLM calls in flight after %g s; "
                        "going on (their answers, if they come, are not replayed)",
                        self.spec.job_id, self.patience,
                    )  # fmt: skip
                self.previous = None  # nothing of it is needed any more
            self.note = "reading the call journal"
            journal = CallJournal(self.journals, self.spec.job_id)
            self.gate.restore(journal.spent(self.gate.prices))
            self.note = None
            outcome = CompileOutcome(program=self._compile(journal))
        except CallsStopped as stop:
            outcome = CompileOutcome(stopped=stop)
        except BaseException as exc:  # the compile failed: the job fails with it
            outcome = CompileOutcome(error=exc)
        finally:
            self.note = None
            self.done.set()
            self.on_done(outcome)

    def _compile(self, journal: CallJournal) -> Any:
        spec = self.spec.dspy
        assert spec is not None
        parts = self.parts
        trainset = examples_of(self.spec.trainset)
        valset = examples_of(spec.valset) if spec.valset is not None else None
        settings: dict[str, Any] = {"lm": parts.lm, SCOPE_KEY: CallScope(self.gate, journal)}
        if spec.threads is not None:
            settings["num_threads"] = spec.threads
        program = fresh(parts.program)
        if parts.optimizer is None:  # the run's own evaluation: no callback needed
            devset = valset or trainset
            evaluate = dspy.Evaluate(devset=devset, metric=parts.metric, num_threads=spec.threads)
            began = self.progress.clock.monotonic()
            self.note = f"evaluating {len(devset)} examples"
            with dspy.context(**settings):
                result = evaluate(program)
            self.note = None
            self.progress.report(program, result.results, began)
            return program
        # an optimizer's evaluations are heard through a DSPy callback (it costs DSPy some
        # CPU per call of every module, LM and adapter: about 0.4 ms a call here)
        settings["callbacks"] = [*dspy.settings.get("callbacks", []), self.progress]
        with dspy.context(**settings):
            optimizer = fresh(parts.optimizer)
            arguments = compile_arguments(optimizer, trainset, valset, spec.compile_options)
            return optimizer.compile(program, **arguments)
