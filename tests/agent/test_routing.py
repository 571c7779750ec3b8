"""The agent's routing rules and its configuration, without threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpy.agent import CHAT_ROUTE, Router, chat_pipeline, classifier_pipeline, response_of
from otpy.config import AgentConfig, RuntimeConfig
from otpy.errors import ConfigurationError


def _config(**agent: object) -> AgentConfig:
    routes = [
        {"name": "summarize", "pipeline": "s.yaml", "keywords": ["summarize", "tl;dr"],
         "fallback": "brief", "description": "condense a text"},
        {"name": "answer", "pipeline": "a.yaml", "pattern": r"\?\s*$", "fallback": "brief"},
        {"name": "brief", "pipeline": "b.yaml", "fallback": "answer"},
    ]  # fmt: skip
    return RuntimeConfig.load({"agent": {"routes": routes, **agent}}).agent


def test_the_first_matching_rule_wins_keywords_as_whole_words() -> None:
    router = Router(_config())
    choice = router.match("Please SUMMARIZE this: is it good?")
    assert choice is not None and (choice.name, choice.reason) == (
        "summarize",
        "keyword 'summarize'",
    )
    assert choice.source == "s.yaml"
    tldr = router.match("tl;dr of the thread")
    assert tldr is not None and tldr.name == "summarize"
    question = router.match("summarized already? what now?")  # 'summarized' is another word
    assert question is not None and question.name == "answer"
    assert question.reason == "pattern '\\\\?\\\\s*$'"
    assert router.match("hello there") is None


def test_default_classifier_answers_and_fallbacks() -> None:
    router = Router(_config(default="brief", classifier={"step": "claude"}))
    assert router.classifies
    default = router.default()
    assert default is not None and (default.name, default.reason) == ("brief", "default")
    for answer in ("answer", " 'Answer'. ", "I would pick answer here", "**answer**"):
        chosen = router.classified(answer)
        assert chosen is not None and chosen.name == "answer", answer
        assert chosen.reason == "classifier"
    assert router.classified("neither of those") is None
    first = router.classified("brief, or maybe summarize")
    assert first is not None and first.name == "brief"  # the name that comes first
    fallback = router.fallback("summarize", {"summarize"})
    assert fallback is not None and fallback.name == "brief"
    assert fallback.reason == "fallback of 'summarize'"
    assert router.fallback("brief", {"summarize", "brief", "answer"}) is None  # no loop
    assert Router(_config()).default() is None and not Router(_config()).classifies


def test_no_routes_means_the_built_in_chat_route() -> None:
    config = AgentConfig()
    choice = Router(config).match("anything at all")
    assert choice is not None and choice.name == CHAT_ROUTE
    assert choice.source == chat_pipeline(config)
    assert chat_pipeline(config)["steps"][0]["prompt"] == "{{ inputs.message }}"


def test_the_classifier_pipeline_lists_the_routes_and_takes_the_message() -> None:
    config = _config(classifier={"step": "gemini", "provider": "judge", "max_tokens": 5})
    pipeline = classifier_pipeline(config)
    step = pipeline["steps"][0]
    assert step["type"] == "gemini" and step["provider"] == "judge" and step["max_tokens"] == 5
    assert "- summarize: condense a text\n- answer\n- brief" in step["prompt"]
    assert "{{ inputs.message }}" in step["prompt"]
    assert pipeline["outputs"] == {"route": "{{ steps.classify.text }}"}
    braces = _config(classifier={}).model_copy(
        update={"routes": (_config().routes[0].model_copy(update={"description": "{{ x }}"}),)}
    )
    assert "{{ x }}" not in classifier_pipeline(braces)["steps"][0]["prompt"]


def test_response_of_a_pipeline() -> None:
    assert response_of({"response": "r", "other": 1}, "text") == "r"
    assert response_of({"only": [1, 2]}, "text") == [1, 2]
    assert response_of({}, "the text") == "the text"
    assert response_of({"a": 1, "b": 2}, "") == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("agent", "problem"),
    [
        ({"routes": [{"name": "a", "pipeline": "a.yaml", "pattern": "("}]},
         "routes[0] (a): pattern '(' is not a regular expression"),
        ({"routes": [{"name": "a", "pipeline": "a.yaml", "fallback": "b"}]},
         "routes[0] (a): fallback 'b' names no route (routes: a)"),
        ({"routes": [{"name": "a", "pipeline": "a.yaml"}], "default": "z"},
         "default 'z' names no route (routes: a)"),
        ({"routes": [{"name": "a", "pipeline": "x"}, {"name": "a", "pipeline": "y"}]},
         "routes[1]: a second route named 'a'"),
        ({"timeout": 0}, "agent.timeout"),
        ({"routes": [{"name": "a b", "pipeline": "x"}]}, "agent.routes.0.name"),
    ],
)  # fmt: skip
def test_bad_agent_configs_are_named(agent: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RuntimeConfig.load({"agent": agent})
    assert problem in str(raised.value)


def test_pipeline_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config_file = tmp_path / "conf" / "otpy.yaml"
    config_file.write_text(
        "agent:\n  routes:\n    - {name: a, pipeline: flows/a.yaml}\n"
        "    - {name: b, pipeline: /abs/b.yaml}\n"
    )
    routes = RuntimeConfig.from_yaml(config_file).agent.routes
    assert routes[0].pipeline == str(tmp_path / "conf" / "flows" / "a.yaml")
    assert routes[1].pipeline == "/abs/b.yaml"
    env = RuntimeConfig.from_env({"OTPY_CONFIG": str(config_file)}).agent.routes
    assert env[0].pipeline == routes[0].pipeline
