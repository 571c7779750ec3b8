"""What travels to Ray workers and what a worker makes of it, without a Ray cluster: the
checks at start, the worker setup (no key in it), and a worker's environment run in this
process (providers from config, keys of its own, jobs by reference, events sent back)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ray_support import PROGRAM, SPACE, TRAINSET, score
from step_plugins import Echo

import otpy
from otpy.clock import SYSTEM_CLOCK
from otpy.config import RuntimeConfig
from otpy.errors import ConfigurationError
from otpy.optimize import JobSpec, JobWork, evaluate_example
from otpy.pipelines import compile_pipeline

pytest.importorskip("ray")

from otpy.ray import WorkerEnv, job_payload, reference_of, worker_setup
from otpy.ray._travel import step_table, travel_warnings
from otpy.ray._worker_env import own_keys

ECHO = """\
name: echo
inputs:
  q: {type: string}
steps:
  - name: shout
    type: echo
    prompt: "{{ vars.instruction }} {{ inputs.q }}"
outputs:
  answer: "{{ steps.shout.output }}"
"""


def _work(program: str, metric: Any, table: Any = None) -> JobWork:
    table = table if table is not None else step_table({})
    plan = compile_pipeline(program, table)
    spec = JobSpec(
        job_id="j1", program=dict(plan.pipeline.source[2]) if plan.pipeline.source else {},
        space=SPACE, trainset=TRAINSET, metric=None,
    )  # fmt: skip
    return JobWork(spec, plan, metric, None, SYSTEM_CLOCK, table)


def test_references_exist_only_for_what_a_worker_can_import() -> None:
    def local(example: Any, result: Any) -> float:
        return 1.0

    assert reference_of(score) == "ray_support:score"
    assert reference_of(Echo) == "step_plugins:Echo"
    assert reference_of(local) is None
    assert reference_of(lambda e, r: 1.0) is None
    assert reference_of(3) is None


def test_a_metric_that_cannot_travel_is_refused_at_start_and_nothing_is_stored() -> None:
    with otpy.start({"name": "ray-refuse", "plugins": False, "jobs_store": ":memory:"}) as rt:
        with pytest.raises(ConfigurationError, match="cannot reach Ray workers") as caught:
            rt.jobs.start(PROGRAM, SPACE, TRAINSET, lambda e, r: 1.0, executor="ray")
        assert "<lambda>" in str(caught.value) and "executor 'threads'" in str(caught.value)
        assert rt.jobs.list() == []
        done = rt.jobs.start(PROGRAM, SPACE, TRAINSET, lambda e, r: 1.0, max_evaluations=1)
        assert done.wait(10).state == "completed"  # on threads it runs


def test_a_step_type_travels_by_reference_and_one_without_refuses_the_job() -> None:
    class Local(Echo):
        """Defined in a function: no reference reaches it."""

    payload = job_payload(_work(ECHO, score, step_table({"echo": (Echo, None)})))
    assert payload.steps == {"echo": ("step_plugins:Echo", None)}
    assert payload.metric == "ray_support:score" and payload.program["name"] == "echo"
    with pytest.raises(ConfigurationError, match="step type 'echo', which cannot reach"):
        job_payload(_work(ECHO, score, step_table({"echo": (Local, None)})))


def test_the_worker_setup_carries_no_key() -> None:
    config = RuntimeConfig.load(
        {
            "providers": {
                "claude": {
                    "type": "anthropic", "api_key": "sk-ant-secret-value-1234",
                    "options": {"model": "claude-x", "password": "hunter2"},
                    "limits": {"rpm": 50, "storage": "redis://127.0.0.1:1"},
                },
                "sim": {"options": {"seed": 4}},
            }
        }
    )  # fmt: skip
    setup = worker_setup(config)
    assert "secret-value" not in repr(setup) and "hunter2" not in repr(setup)
    assert setup.providers["claude"]["options"] == {"model": "claude-x"}
    assert setup.providers["claude"]["limits"]["storage"] == "redis://127.0.0.1:1"
    warning = travel_warnings(config, setup, ["claude", "sim", "mine"])
    assert "limited in memory" not in warning  # claude shares its limit on Redis
    assert "not made from the runtime config are not on Ray workers (mine)" in warning
    assert "the api_key of claude is not sent" in warning and "option password" in warning


def test_a_worker_reads_keys_from_its_own_config() -> None:
    environ = {"OTPY_PROVIDERS__CLAUDE__API_KEY": "sk-ant-own-1234567890", "HOME": "/x"}
    assert own_keys(environ) == {"claude": "sk-ant-own-1234567890"}
    assert own_keys({"HOME": "/x"}) == {}
    setup = worker_setup(RuntimeConfig.load({"providers": {"claude": {"type": "anthropic"}}}))
    env = WorkerEnv(setup, environ=environ)
    try:
        provider: Any = env.providers.get_provider("claude").provider
        assert provider._api_key.get_secret_value() == "sk-ant-own-1234567890"
    finally:
        env.close()


def test_a_worker_evaluates_as_the_thread_executor_and_sends_its_events_back() -> None:
    config = RuntimeConfig.load({"providers": {"simulated": {"options": {"seed": 3}}}})
    env = WorkerEnv(worker_setup(config))
    try:
        table = step_table({"echo": (Echo, None)})
        payload = job_payload(_work(PROGRAM, score, table))
        job = env.job("j1/a", lambda: payload)
        assert env.job("j1/a", lambda: pytest.fail("made twice")) is job
        configuration = {"instruction": "Be careful.", "temperature": 0.3}
        result, cost, events = env.evaluate(job, 1, TRAINSET[1], configuration)
        expected, _ = evaluate_example(
            job.plan, 1, TRAINSET[1], configuration, score,
            providers=env.providers, clock=SYSTEM_CLOCK,
        )  # fmt: skip
        assert result.score == expected.score is not None and result.tokens == expected.tokens
        assert cost == 0.0 and [e.name for e in events].count("provider.call") == 1
        env.forget("j1/a")
        assert env.job("j1/a", lambda: payload) is not job
    finally:
        env.close()


def test_an_executor_section_is_validated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    config = RuntimeConfig.load({"jobs": {"executor": "ray"}})
    assert config.jobs.executor.type == "ray" and config.jobs.executor.address is None
    with pytest.raises(ConfigurationError, match="threads"):
        RuntimeConfig.load({"jobs": {"executor": {"type": "ray", "threads": 0}}})
