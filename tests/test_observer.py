"""otpy.observer: a three-level tree read during a crash storm is consistent every time."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import otpy
import otpy.observer
from otpy.errors import NoProcessError
from otpy.observer import SupervisorNode, Tree
from otpy.supervision import ChildSpec, Supervisor
from otpy.supervision.system import server_ref
from otpy.testing import wait_until
from support import Worker

BIG = 10**6
LEAVES = ["w1", "w2", "w3"]


def leaf() -> Any:
    return Supervisor.start(
        [ChildSpec.actor(Worker, register_as=f"obs.leaf.{w}") for w in LEAVES],
        strategy="rest_for_one",
        max_restarts=BIG,
        name="obs.leaf",
    )


def middle() -> Any:
    return Supervisor.start(
        [
            ChildSpec.actor(Worker, register_as="obs.mid.a"),
            ChildSpec(id="leaf", start=leaf, type="supervisor"),
            ChildSpec.actor(Worker, register_as="obs.mid.b"),
        ],
        strategy="one_for_all",
        max_restarts=BIG,
        name="obs.mid",
    )


SHAPE = {
    "obs.root": ["obs.top", "mid"],
    "obs.mid": ["obs.mid.a", "leaf", "obs.mid.b"],
    "obs.leaf": [f"obs.leaf.{w}" for w in LEAVES],
}


def check(snapshot: Tree) -> int:
    """The invariants of one snapshot; returns how many supervisors it could read."""
    json.dumps(snapshot.to_dict())
    nodes = snapshot.nodes()
    for node in nodes:
        assert isinstance(node, SupervisorNode)
        assert node.name in SHAPE
        assert [c.id for c in node.children] == SHAPE[node.name]
        assert 0 <= node.restarts_in_window <= node.max_restarts
        for child in node.children:
            assert child.state in ("running", "restarting", "terminated")
            if child.state != "running":
                assert child.module is None and child.supervisor is None
            elif child.kind == "supervisor" and child.alive:
                assert (child.supervisor is None) != (child.error is None)
            if child.supervisor is not None:
                assert child.supervisor.name == {"mid": "obs.mid", "leaf": "obs.leaf"}[child.id]
    return len(nodes)


@pytest.mark.slow
def test_a_three_level_tree_read_during_a_crash_storm_is_consistent() -> None:
    root = Supervisor.start(
        [
            ChildSpec.actor(Worker, register_as="obs.top"),
            ChildSpec(id="mid", start=middle, type="supervisor"),
        ],
        max_restarts=BIG,
        name="obs.root",
    )
    stop = threading.Event()
    victims = ["obs.top", "obs.mid.a", "obs.mid.b", *SHAPE["obs.leaf"], "obs.leaf", "obs.mid"]
    crashes = 0

    def storm() -> None:
        nonlocal crashes
        i = 0
        while not stop.is_set():
            name = victims[i % len(victims)]
            i += 1
            try:
                ref = server_ref(name, timeout=2)  # waits while it is being restarted
            except NoProcessError:
                continue
            if ref.actor_class is Worker:
                ref.tell("die")
            else:
                ref.kill()
            crashes += 1
            ref.wait_exit(2)

    stormer = threading.Thread(target=storm)
    stormer.start()
    try:
        read = [check(otpy.observer.tree("obs.root")) for _ in range(150)]
    finally:
        stop.set()
        stormer.join(10)
    assert crashes > 30 and max(read) == 3
    wait_until(lambda: check(otpy.observer.tree(root)) == 3)
    final = otpy.observer.tree(root)
    wait_until(
        lambda: all(
            c.state == "running" and c.alive
            for n in otpy.observer.tree(root).nodes()
            for c in n.children
        )
    )
    assert sum(c.restarts for n in final.nodes() for c in n.children) > 0
    text = "\n".join(otpy.observer.tree(root).render())
    assert "obs.leaf (Supervisor)  rest_for_one" in text and "obs.mid.b (Worker)" in text
    root.stop()


def test_tree_of_a_runtime_and_its_refusals() -> None:
    with otpy.start({"name": "obs-rt"}) as rt:
        snapshot = otpy.observer.tree(rt)
        assert snapshot.root.name == "obs-rt.root"
        ids = [c.id for c in snapshot.root.children]
        assert ids == ["steps", "providers", "compat", "health", "jobs", "runs"]
        assert snapshot.to_dict()["root"]["children"][0]["module"].endswith("StepRegistry")
        with pytest.raises(otpy.ConfigurationError, match="not a supervisor"):
            otpy.observer.tree(rt.steps)
