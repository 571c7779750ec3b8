"""What the optimization job tests share: a program with tuned variables, a trainset, a
search space, the answers of a simulated provider (counted per configuration, held at a
gate on demand), a step type that crashes, and a runtime set up with all of them.

The answers are a pure function of the request: the program asks ``"<instruction> Q:
<a>+<b>"`` at some temperature, and the answer is the right sum or a wrong one, decided by
a hash of (instruction, temperature, question) — unless the instruction says ``Always
right`` or ``Always wrong``. Two runs with the same seed therefore score every candidate
the same, in any process (``tests/job_worker.py`` uses them too).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import otpy
from otpy import Runtime
from otpy.clock import Clock
from otpy.optimize import SearchSpace, make_strategy, register_metric
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.steps import Step, StepContext, StepMetadata, StepResult
from otpy.testing import wait_until

PROVIDER = "sim"
"""The name the runtimes of these tests register their simulated provider under."""

QA = """\
name: qa
inputs:
  q: {type: string}
  mode: {type: string, default: ok}
steps:
  - name: check
    type: shaky
    value: "{{ inputs.mode }}"
  - name: answer
    type: claude
    temperature: "{{ vars.temperature }}"
    prompt: "{{ vars.instruction }} Q: {{ inputs.q }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""
"""The program: ``instruction`` and ``temperature`` are tuned; an example whose ``mode``
input is ``crash`` crashes in the ``shaky`` step (register it: :func:`start`)."""

PLAIN_QA = """\
name: plain_qa
inputs:
  q: {type: string}
steps:
  - name: answer
    type: claude
    temperature: "{{ vars.temperature }}"
    prompt: "{{ vars.instruction }} Q: {{ inputs.q }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""
"""The same program with built-in step types only (a fresh process can resume it)."""

INSTRUCTIONS = [
    "Answer briefly.",
    "Think step by step.",
    "Show the sum.",
    "Be careful.",
    "Double-check.",
    "Answer in digits.",
]
SPACE: dict[str, Any] = {"instruction": INSTRUCTIONS, "temperature": [0.0, 0.5, 1.0]}
"""18 configurations."""

Config = tuple[str, float | None]
"""A configuration as the provider sees it: (instruction, temperature)."""


def trainset(n: int, *, crash: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """``n`` sums ``{"inputs": {"q": "i+(i+1)"}, "expected": "2i+1"}``; the examples at
    the indexes ``crash`` crash their run (the ``shaky`` step)."""
    examples: list[dict[str, Any]] = []
    for i in range(n):
        inputs: dict[str, Any] = {"q": f"{i}+{i + 1}"}
        if i in crash:
            inputs["mode"] = "crash"
        examples.append({"inputs": inputs, "expected": str(2 * i + 1)})
    return examples


_QUESTION = re.compile(r"^(?P<instruction>.*) Q: (?P<a>-?\d+)\+(?P<b>-?\d+)$", re.DOTALL)


def answer(prompt: str, temperature: float | None) -> str:
    """The deterministic answer to a prompt of the program (see the module docstring)."""
    match = _QUESTION.match(prompt)
    if match is None:
        return "I do not know."
    instruction = match["instruction"]
    right = str(int(match["a"]) + int(match["b"]))
    if "Always right" in instruction:
        return right
    if "Always wrong" in instruction:
        return "wrong"
    digest = hashlib.blake2b(f"{prompt}|{temperature}".encode(), digest_size=4).digest()
    return right if int.from_bytes(digest, "big") % 3 else "wrong"


def configuration_of(request: CompletionRequest) -> Config:
    """(instruction, temperature) of a request the program made."""
    match = _QUESTION.match(request.prompt or "")
    instruction = match["instruction"] if match is not None else ""
    return instruction, request.temperature


def candidates(seed: int, n: int, space: Mapping[str, Any] = SPACE) -> list[Config]:
    """The configurations of the first ``n`` candidates of a random-search job with
    ``seed`` on ``space``, as the provider sees them."""
    strategy = make_strategy("random_search", SearchSpace.parse(space), seed=seed)
    return [config_key(c) for c in strategy.propose([], n, start=0, round=0)]


def config_key(configuration: Mapping[str, Any]) -> Config:
    """What :func:`configuration_of` gives for the requests of ``configuration``."""
    temperature = configuration.get("temperature")
    return str(configuration["instruction"]), None if temperature is None else float(temperature)


class Answers:
    """The ``responses`` callable of a simulated provider: answers with :func:`answer`,
    counts calls (``calls``; per configuration: ``per_config``), records the ``clock``
    time of each (``times``), and holds calls at a gate on demand.

    With ``hold_from`` set, every call after the first ``hold_from`` waits (in the
    provider's caller thread) until :meth:`release`; with ``free`` set, every call of a
    configuration not in it waits (calls of concurrent candidates reach the provider in
    no set order: ``free=candidates(seed, 1)`` lets candidate 0 finish, whatever the
    order). ``held`` counts the ones waiting. A call held 30 s (a test that forgot to
    release it) answers anyway.
    """

    def __init__(
        self,
        *,
        hold_from: int | None = None,
        free: Collection[Config] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.hold_from = hold_from
        self.free = None if free is None else set(free)
        self.clock = clock
        self.gate = threading.Event()
        self.changed = threading.Condition()
        self.calls = 0
        self.held = 0
        self.per_config: Counter[Config] = Counter()
        self.times: list[float] = []

    def __call__(self, request: CompletionRequest) -> str:
        with self.changed:
            self.calls += 1
            number = self.calls
            self.per_config[configuration_of(request)] += 1
            if self.clock is not None:
                self.times.append(self.clock.monotonic())
            hold = self.hold_from is not None and number > self.hold_from
            hold = hold or (self.free is not None and configuration_of(request) not in self.free)
            if hold:
                self.held += 1
            self.changed.notify_all()
        if hold:
            self.gate.wait(30)
            with self.changed:
                self.held -= 1
                self.changed.notify_all()
        return answer(request.prompt or "", request.temperature)

    def release(self) -> None:
        """Let every held call (and every later one) go on."""
        self.gate.set()

    def wait_for(self, what: str, predicate: Any, timeout: float = 10.0) -> None:
        """Block until ``predicate()`` (checked whenever a call begins or ends) holds."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise TimeoutError(f"{what}: not reached in {timeout} s ({self!r})")

    def wait_calls(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` calls have begun."""
        self.wait_for(f"{n} calls", lambda: self.calls >= n, timeout)

    def wait_held(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` calls are waiting at the gate."""
        self.wait_for(f"{n} held calls", lambda: self.held >= n, timeout)

    def snapshot(self) -> Counter[Config]:
        with self.changed:
            return Counter(self.per_config)

    def __repr__(self) -> str:
        return f"<Answers calls={self.calls} held={self.held}>"


class Shaky(Step):
    """``shaky``: answers its ``value``; crashes (a RuntimeError: a bug) when it is
    ``crash``."""

    metadata = StepMetadata(description="crashes on demand", required_fields=("value",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        if step["value"] == "crash":
            raise RuntimeError("the shaky step crashed")
        return StepResult(output=step["value"])


def _metric_raises_on_wrong(example: Mapping[str, Any], result: Any) -> float:
    """1.0 for the right answer; raises (a metric bug) for a wrong one."""
    text = str(getattr(result, "text", "") or "").strip()
    if text != str(example.get("expected")):
        raise ValueError(f"cannot score {text!r}")
    return 1.0


RAISING_METRIC = "job_support.raises_on_wrong"
register_metric(RAISING_METRIC, _metric_raises_on_wrong, replace=True)


def start(
    store: str | Path,
    answers: Answers | None = None,
    *,
    clock: Clock | None = None,
    limits: Mapping[str, Any] | None = None,
    name: str | None = None,
    jobs: Mapping[str, Any] | None = None,
) -> tuple[Runtime, SimulatedProvider]:
    """A runtime (a unique name, no plugins, jobs checkpointing to ``store``) with one
    simulated provider :data:`PROVIDER` answering with ``answers`` (a new
    :class:`Answers` if None; one attempt, no timeout, plus ``limits``) and the ``shaky``
    step type; ``jobs``: the config's ``jobs`` section. Stop it (``with rt:``) in the test."""
    config = {
        "name": name or f"jobs-{uuid.uuid4().hex[:8]}",
        "plugins": False,
        "providers": {},
        "jobs_store": str(store),
        "jobs": dict(jobs or {}),
    }
    rt = otpy.start(config, clock=clock) if clock is not None else otpy.start(config)
    try:
        provider = SimulatedProvider(
            PROVIDER,
            responses=answers if answers is not None else Answers(),
            **({"clock": clock} if clock is not None else {}),
        )
        rt.providers.register_provider(
            PROVIDER, provider, limits={"timeout": None, "max_attempts": 1, **(limits or {})}
        )
        rt.steps.register_step("shaky", Shaky)
    except BaseException:
        rt.stop()
        raise
    return rt, provider


def trials_of(status_or_trials: Any) -> list[tuple[int, Config, float | None, str]]:
    """``(index, configuration, score, status)`` of each trial, by index."""
    trials = sorted(status_or_trials, key=lambda t: t.index)
    return [(t.index, config_key(t.configuration), t.score, t.status) for t in trials]


def wait_status(handle: Any, predicate: Any, timeout: float = 10.0) -> Any:
    """Wait until ``predicate(handle.status())`` (a published cell: nobody signals its
    changes, so it is polled); the status, or TimeoutError."""

    def matched() -> Any:
        status = handle.status()
        return status if predicate(status) else None

    return wait_until(matched, timeout, f"the status of job {handle.id!r}")


# -- a job in another process (tests/job_worker.py) -----------------------------------------

WORKER = Path(__file__).with_name("job_worker.py")


def _read_lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")


@contextmanager
def job_worker(
    store: Path, job_id: str, seed: int = 21, *, pause: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """A process running job ``job_id`` (tests/job_worker.py: 2 candidates checkpointed,
    then held; paused too with ``pause``), yielded once it says so; SIGKILLed at the end
    (or earlier by the test)."""
    log = store.with_suffix(".log")
    args = [sys.executable, str(WORKER), str(store), job_id, str(seed), "2"]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*args, *(["pause"] if pause else [])],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        expected = "PAUSED" if pause else "CHECKPOINTED"
        while True:
            try:
                line = lines.get(timeout=30) or "(the worker ended)\n"
            except queue.Empty:
                line = "(no line within 30 s)\n"
            if not (pause and line.startswith("CHECKPOINTED")):
                break
        assert line.startswith(expected), line + log.read_text()
        yield process
    finally:
        kill_worker(process)
        reader.join(10)
        if process.stdout is not None:
            process.stdout.close()


def kill_worker(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(10)
