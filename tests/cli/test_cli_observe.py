"""``otpy observe``: the runtime's tree, as text or one JSON document per snapshot."""

from __future__ import annotations

import json

import pytest

from otpy.__main__ import main


def test_observe_prints_the_tree_then_exits_after_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["observe", "--count", "2", "--interval", "0.01"]) == 0
    out = capsys.readouterr().out
    frames = out.strip().split("\n\n")
    assert len(frames) == 2
    first = frames[0].splitlines()
    assert first[0].startswith("otpy.root (Supervisor)  one_for_one  restarts 0/")
    assert any("otpy.steps (StepRegistry)  mailbox 0" in line for line in first)
    assert any("otpy.jobs (DynamicSupervisor)" in line for line in first)


def test_observe_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["observe", "--count", "1", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    tree = json.loads(line)
    root = tree["root"]
    assert root["strategy"] == "one_for_one" and root["suspended"] is False
    assert [c["id"] for c in root["children"]][:2] == ["steps", "providers"]
    jobs = next(c for c in root["children"] if c["id"] == "jobs")
    assert jobs["supervisor"]["children"] == []


def test_observe_refuses_a_bad_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["observe", "--interval", "0"]) == 2
    assert "--interval must be > 0" in capsys.readouterr().err
