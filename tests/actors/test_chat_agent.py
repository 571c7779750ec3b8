"""The routing agent (``rt.chat``) in a runtime: routes by rule, by classifier and by
default; a failed or timed-out pipeline degrades to its fallback; bad requests are
refused and the agent lives on; a crash mid-request fails that request, and the restarted
agent takes the next."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy import Runtime
from otpy.errors import AgentError, ConfigurationError
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.supervision import whereis
from otpy.testing import FakeClock, wait_until


def _pipeline(folder: Path, name: str, provider: str = "simulated") -> str:
    """A pipeline file answering the message on ``provider`` (never failing over)."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ninputs: {{message: {{type: string}}}}\ndefaults: {{failover: false}}\n"
        f"steps:\n  - {{name: reply, type: claude, provider: {provider}, "
        f"prompt: '{name}: {{{{ inputs.message }}}}'}}\n"
        "outputs: {response: '{{ steps.reply.text }}'}\n"
    )
    return str(path)


class Held:
    """Answers held until released (the ``responses`` of a provider that hangs)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: CompletionRequest) -> str:
        self.entered.set()
        self.release.wait(30)
        return "late"


@contextmanager
def agent_runtime(
    folder: Path, agent: dict[str, Any], *, clock: FakeClock | None = None
) -> Iterator[tuple[Runtime, Held]]:
    """A runtime whose agent has ``agent`` as its config, with providers ``simulated``,
    ``broken`` (every call fails), ``judge`` (answers the classifier with a route name),
    ``vague`` (answers it with no route's name) and ``held`` (answers when the test
    releases it)."""
    held = Held()
    providers = {
        "simulated": {},
        "broken": {"options": {"failure_rate": 1.0}, "limits": {"max_attempts": 1}, "priority": -1},
        "judge": {"options": {"responses": {"Routes:": "summarize"}}, "priority": -2},
        "vague": {"options": {"responses": {"Routes:": "none of those"}}, "priority": -2},
    }
    config = {
        "name": f"agent-{uuid.uuid4().hex[:8]}",
        "jobs_store": ":memory:",
        "plugins": False,
        "providers": providers,
        "agent": agent,
    }
    rt = otpy.start(config, clock=clock) if clock is not None else otpy.start(config)
    try:
        rt.providers.register_provider(
            "held", SimulatedProvider("held", responses=held), priority=-3,
            limits={"timeout": None, "max_attempts": 1},
        )  # fmt: skip
        yield rt, held
    finally:
        held.release.set()
        rt.stop()


def _routes(folder: Path) -> dict[str, Any]:
    return {
        "routes": [
            {"name": "summarize", "pipeline": _pipeline(folder, "summarize"),
             "keywords": ["summarize"], "fallback": "brief"},
            {"name": "broken", "pipeline": _pipeline(folder, "broken", "broken"),
             "keywords": ["break"], "fallback": "brief"},
            {"name": "slow", "pipeline": _pipeline(folder, "slow", "held"),
             "keywords": ["slowly"], "fallback": "brief"},
            {"name": "brief", "pipeline": _pipeline(folder, "brief")},
        ],
        "default": "brief",
    }  # fmt: skip


def test_a_rule_routes_the_request_and_the_reply_says_how(tmp_path: Path) -> None:
    with agent_runtime(tmp_path, _routes(tmp_path)) as (rt, _):
        reply = rt.chat.ask("Summarize the meeting notes", {})
        assert reply.state == "running" and reply.pipeline == "summarize"
        assert reply.reason == "keyword 'summarize'"
        done = rt.chat.wait(reply.id, 10)
        assert done.state == "completed" and done.fallback_used is False
        assert done.response.startswith("Simulated answer (sim-1) to: summarize: Summarize")
        assert done.duration is not None and done.duration > 0
        assert [(a.route, a.status) for a in done.attempts] == [("summarize", "completed")]
        assert rt.chat.get(reply.id) == done and rt.chat.recent(1) == [done]
        other = rt.chat.wait(rt.chat.ask("hello").id, 10)
        assert (other.pipeline, other.reason) == ("brief", "default")


def test_a_failed_pipeline_degrades_to_its_fallback(tmp_path: Path) -> None:
    with agent_runtime(tmp_path, _routes(tmp_path)) as (rt, _):
        done = rt.chat.wait(rt.chat.ask("break it please").id, 10)
        assert done.state == "completed" and done.fallback_used is True
        assert done.pipeline == "brief" and done.reason == "fallback of 'broken'"
        first, second = done.attempts
        assert (first.route, first.status) == ("broken", "failed")
        assert first.error is not None and "ServerError" in first.error
        assert (second.route, second.status) == ("brief", "completed")
        assert "brief: break it please" in done.response


def test_a_pipeline_that_times_out_degrades_to_its_fallback(tmp_path: Path) -> None:
    clock = FakeClock()
    agent = {**_routes(tmp_path), "timeout": 30}
    with agent_runtime(tmp_path, agent, clock=clock) as (rt, held):
        reply = rt.chat.ask("do it slowly")
        assert held.entered.wait(10) and reply.pipeline == "slow"
        clock.advance(29)
        assert rt.chat.get(reply.id).state == "running"
        clock.advance(1)  # the timer fires: the run is cancelled, the fallback runs
        done = rt.chat.wait(reply.id, 10)
        assert done.state == "completed" and done.fallback_used and done.pipeline == "brief"
        assert [(a.route, a.status) for a in done.attempts] == [
            ("slow", "timed_out"),
            ("brief", "completed"),
        ]
        assert done.attempts[0].error == "no answer within 30 s"
        held.release.set()  # the late answer of the slow run changes nothing
        runs = whereis(f"{rt.name}.runs")
        assert runs is not None
        wait_until(lambda: runs.count_children().active == 0)  # type: ignore[attr-defined]
        rt.chat.ask("summarize this")  # a call: handled after the late run's cast
        assert rt.chat.get(reply.id) == done


def test_the_classifier_routes_what_no_rule_matches(tmp_path: Path) -> None:
    agent = {**_routes(tmp_path), "classifier": {"provider": "judge"}}
    with agent_runtime(tmp_path, agent) as (rt, _):
        done = rt.chat.wait(rt.chat.ask("condense these notes for me").id, 10)
        assert (done.pipeline, done.reason) == ("summarize", "classifier")
        assert [a.route for a in done.attempts] == ["classifier", "summarize"]
        ruled = rt.chat.wait(rt.chat.ask("summarize now").id, 10)
        assert [a.route for a in ruled.attempts] == ["summarize"]  # a rule needs no classifier


def test_a_classifier_answer_naming_no_route_goes_to_the_default(tmp_path: Path) -> None:
    agent = {**_routes(tmp_path), "classifier": {"provider": "vague"}}
    with agent_runtime(tmp_path, agent) as (rt, _):
        done = rt.chat.wait(rt.chat.ask("what is this?").id, 10)
        assert (done.pipeline, done.reason) == ("brief", "default")


def test_bad_requests_are_refused_and_the_agent_lives_on(tmp_path: Path) -> None:
    agent = {"routes": [{"name": "s", "pipeline": _pipeline(tmp_path, "s"), "keywords": ["x"]}]}
    with agent_runtime(tmp_path, {**agent, "max_message": 50}) as (rt, _):
        ref = whereis(f"{rt.name}.agent")
        for message, problem in (
            ("", "non-empty text"),
            ("x" * 51, "the message has 51 characters; agent.max_message allows 50"),
            (
                "no rule for this",
                "no agent route matches this request and agent.default is not set",
            ),
        ):
            with pytest.raises(AgentError, match=problem):
                rt.chat.ask(message)
        with pytest.raises(AgentError, match="inputs must be a mapping"):
            rt.chat.ask("x", ["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(AgentError, match="no agent request 'nope'"):
            rt.chat.get("nope")
        assert whereis(f"{rt.name}.agent") is ref
        assert rt.chat.wait(rt.chat.ask("x marks it").id, 10).state == "completed"


def test_a_crash_mid_request_fails_it_and_the_restarted_agent_goes_on(tmp_path: Path) -> None:
    with agent_runtime(tmp_path, _routes(tmp_path)) as (rt, held):
        reply = rt.chat.ask("go slowly")
        assert held.entered.wait(10)
        ref = whereis(f"{rt.name}.agent")
        assert ref is not None
        ref.kill()
        failed = rt.chat.wait(reply.id, 10)
        assert failed.state == "failed" and failed.error == "the agent restarted mid-request"
        assert rt.chat.wait(rt.chat.ask("summarize again").id, 10).state == "completed"


def test_a_route_whose_pipeline_lacks_the_message_input_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninputs: {text: {type: string}}\nsteps:\n"
                   "  - {name: a, type: claude, prompt: '{{ inputs.text }}'}\n")  # fmt: skip
    agent = {"routes": [{"name": "bad", "pipeline": str(bad)}]}
    with pytest.raises(ConfigurationError) as raised:
        otpy.start({"name": "agent-bad", "jobs_store": ":memory:", "agent": agent})
    assert f"agent route 'bad' ({bad}): the pipeline has no input 'message'" in str(raised.value)
    missing = {"routes": [{"name": "gone", "pipeline": str(tmp_path / "gone.yaml")}]}
    with pytest.raises(ConfigurationError, match="agent route 'gone'"):
        otpy.start({"name": "agent-gone", "jobs_store": ":memory:", "agent": missing})
    assert whereis("agent-bad.root") is None and whereis("agent-gone.root") is None
