"""``CompileProgress``: a DSPy callback that tells a job what its compile is doing.

DSPy calls it (in whichever thread runs the optimizer, its evaluations or their
examples) at the start and end of every ``compile`` and every ``dspy.Evaluate``. From
that it keeps the job's *phase* (the optimizers running, nested, and the evaluation under
way) and turns every finished evaluation into an :class:`~otpy.optimize.Evaluation`: its
per-example scores, the evaluated program's instructions and demo counts, and — when it
is the best so far by :func:`~otpy.optimize.beats` — the program's saved state (DSPy's
JSON), so that a compile stopped by a budget still leaves its best program. Each
evaluation goes to ``sink`` (the job runner's mailbox).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from dspy.utils.callback import BaseCallback  # type: ignore[import-untyped]

from otpy.clock import Clock
from otpy.dspy._job_parts import program_json
from otpy.optimize import Evaluation, beats, score_of

__all__ = ["CompileProgress", "configuration_of"]

INSTRUCTIONS_KEPT = 400
"""Characters of a predictor's instructions an evaluation's configuration keeps."""


def configuration_of(program: Any) -> dict[str, Any]:
    """What sets an evaluated program apart: per predictor, its instructions (the first
    ``INSTRUCTIONS_KEPT`` characters) and how many demos it has."""
    configuration: dict[str, Any] = {}
    try:
        predictors = list(program.named_predictors())
    except Exception:  # not a module: nothing to tell
        return configuration
    for name, predictor in predictors:
        signature = getattr(predictor, "signature", None)
        instructions = str(getattr(signature, "instructions", "") or "")
        configuration[f"{name}.instructions"] = instructions[:INSTRUCTIONS_KEPT]
        configuration[f"{name}.demos"] = len(getattr(predictor, "demos", None) or ())
    return configuration


class CompileProgress(BaseCallback):  # type: ignore[misc]
    """The phase and evaluations of one run of a DSPy job (see the module docstring).

    ``best`` is the best evaluation checkpointed before (examples, score, index; a resumed
    job); ``sink`` receives each finished evaluation, in order (called under a lock: it
    must not block); ``clock`` times them. Thread-safe; DSPy swallows (and logs) what a
    callback raises, so nothing here stops the compile."""

    def __init__(
        self,
        sink: Callable[[Evaluation], None],
        clock: Clock,
        *,
        best: tuple[int, float, int] | None = None,
    ) -> None:
        super().__init__()
        self._sink = sink
        self.clock = clock
        self._lock = threading.Lock()
        self._best = best
        self._count = 0
        self._compiles: dict[str, str] = {}
        self._evaluations: dict[str, tuple[Any, int, float]] = {}

    @property
    def phase(self) -> str | None:
        """``Optimizer > Inner optimizer > evaluating N examples``, or None between."""
        with self._lock:
            parts = list(self._compiles.values())
            if self._evaluations:
                examples = list(self._evaluations.values())[-1][1]
                parts.append(f"evaluating {examples} examples")
            return " > ".join(parts) or None

    @property
    def evaluations(self) -> int:
        """Evaluations finished in this run."""
        with self._lock:
            return self._count

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self._compiles[call_id] = type(instance).__name__

    def on_compile_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        with self._lock:
            self._compiles.pop(call_id, None)

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        devset = inputs.get("devset") or getattr(instance, "devset", None) or ()
        with self._lock:
            self._evaluations[call_id] = (
                inputs.get("program"),
                len(devset),
                self.clock.monotonic(),
            )

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        with self._lock:
            started = self._evaluations.pop(call_id, None)
        results = getattr(outputs, "results", None)
        if started is None or exception is not None or not results:
            return  # stopped, or failed: nothing was scored
        self.report(started[0], results, started[2])

    def report(self, program: Any, results: Any, began: float) -> None:
        """An evaluation of ``program`` that began at ``began`` (the clock's) gave
        ``results`` (``(example, prediction, score)`` each): tell the sink."""
        scores = tuple(score_of(result[-1]) for result in results)
        score = sum(scores) / len(scores)
        with self._lock:  # numbered, judged and sent in one order
            index = self._count
            self._count += 1
            best = beats(len(scores), score, index, self._best)
            if best:
                self._best = (len(scores), score, index)
            self._sink(
                Evaluation(
                    index=index,
                    scores=scores,
                    configuration=configuration_of(program),
                    state=program_json(program) if best and program is not None else None,
                    duration=max(0.0, self.clock.monotonic() - began),
                )
            )
