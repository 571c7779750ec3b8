"""The StateProvider compliance suite: export, import, capabilities, subscriptions, a model.

See :mod:`otpy.testing.compliance`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otpy.errors import (
    StateError,
    VariableExistsError,
)
from otpy.state import EXPORT_FORMAT, LocalState, SQLiteState, StateProvider, VariableChange
from otpy.testing import FakeClock
from otpy.testing.compliance._cases import (
    StateFactory,
    malformed_cases,
    populate,
    records,
    run_threads,
)
from otpy.testing.compliance._model import run_model_check

__all__ = ["FlowCases"]


class FlowCases:
    """Export and import, capabilities, subscriptions, concurrency, a model."""

    # -- export and import -----------------------------------------------------------------

    def test_export_format(self, state: StateProvider, state_clock: FakeClock) -> None:
        populate(state, state_clock)
        state_clock.advance(2)
        exported = state.export_state()
        assert json.loads(json.dumps(exported)) == exported
        assert exported["format"] == EXPORT_FORMAT
        assert exported["session_id"] == "compliance"
        assert list(exported["variables"].values()) == records(state)
        assert exported["variable_index"] == {v.name: v.id for v in state.list_variables()}
        metadata = exported["metadata"]
        assert metadata["backend"] == type(state).__name__
        assert metadata["exported_at"] == state_clock.time()
        assert isinstance(metadata["created_at"], float)

    def test_round_trip_into_the_same_backend(
        self, state: StateProvider, make_state: StateFactory, state_clock: FakeClock
    ) -> None:
        populate(state, state_clock)
        target = make_state(session_id="target", clock=state_clock)
        target.register_variable("replaced", "integer", 1)
        target.import_state(json.loads(json.dumps(state.export_state())))
        assert records(target) == records(state)
        assert target.session_id == "target"
        assert target.export_state()["metadata"]["imported_from"] == "compliance"
        assert target.set_variable("steps", 9).version == state.get_variable("steps").version + 1

    @pytest.mark.parametrize("other", ["LocalState", "SQLiteState"])
    def test_round_trip_through_every_known_backend(
        self,
        state: StateProvider,
        make_state: StateFactory,
        state_clock: FakeClock,
        tmp_path: Path,
        other: str,
    ) -> None:
        populate(state, state_clock)
        middle: StateProvider = (
            LocalState("middle", clock=state_clock)
            if other == "LocalState"
            else SQLiteState(tmp_path / "middle.db", "middle", clock=state_clock)
        )
        try:
            middle.import_state(json.loads(json.dumps(state.export_state())))
            assert records(middle) == records(state)
            back = make_state(session_id="back", clock=state_clock)
            back.import_state(json.loads(json.dumps(middle.export_state())))
        finally:
            middle.cleanup()
        assert records(back) == records(state)
        assert back.get_variable("config").value == {"x": [1.5]}
        assert back.export_state()["metadata"]["imported_from"] == "middle"

    @pytest.mark.parametrize(("case", "break_it", "words"), malformed_cases())
    def test_malformed_export_refused_without_changes(
        self,
        state: StateProvider,
        make_state: StateFactory,
        state_clock: FakeClock,
        case: str,
        break_it: Callable[[dict[str, Any]], Any],
        words: list[str],
    ) -> None:
        populate(state, state_clock)
        exported = json.loads(json.dumps(state.export_state()))
        target = make_state(session_id="target", clock=state_clock)
        target.register_variable("keep", "integer", 1)
        before = target.export_state()
        broken = break_it(exported)
        with pytest.raises(StateError) as info:
            target.import_state(exported if broken is None else broken)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
        assert target.export_state() == before

    def test_import_tells_subscribers(
        self, state: StateProvider, make_state: StateFactory, state_clock: FakeClock
    ) -> None:
        state.register_variable("kept", "integer", 1)
        state.register_variable("gone", "integer", 1)
        target = make_state(session_id="target", clock=state_clock)
        target.import_state(state.export_state())
        state.set_variable("kept", 2)
        state.delete_variable("gone")
        state.register_variable("new", "integer", 1)
        seen: list[tuple[str, str, Any, Any]] = []
        target.subscribe("*", lambda c: seen.append((c.kind, c.name, c.old_value, c.new_value)))
        target.import_state(state.export_state())
        assert sorted(seen) == [
            ("deleted", "gone", 1, None),
            ("registered", "new", None, 1),
            ("updated", "kept", 1, 2),
        ]

    # -- capabilities ----------------------------------------------------------------------

    def test_capabilities(self, state: StateProvider) -> None:
        capabilities = state.capabilities()
        assert set(capabilities) == {"atomic_updates", "streaming", "persistence", "distribution"}
        assert all(isinstance(flag, bool) for flag in capabilities.values())
        assert isinstance(type(state).requires_bridge, bool)
        assert state.requires_bridge is type(state).requires_bridge

    # -- subscriptions ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("*", ["temp", "top_p", "job.1.temp", "Temp"]),
            ("temp", ["temp"]),
            ("t*", ["temp", "top_p"]),
            ("job.*.temp", ["job.1.temp"]),
            ("t?p_p", ["top_p"]),
            ("[tT]emp", ["temp", "Temp"]),
            ("x*", []),
        ],
    )
    def test_subscription_patterns(
        self, state: StateProvider, pattern: str, expected: list[str]
    ) -> None:
        seen: list[str] = []
        state.subscribe(pattern, lambda change: seen.append(change.name))
        for name in ("temp", "top_p", "job.1.temp", "Temp"):
            state.register_variable(name, "integer", 0)
        assert seen == expected

    def test_changes_carry_kind_values_version_metadata(self, state: StateProvider) -> None:
        seen: list[VariableChange] = []
        state.subscribe("*", seen.append)
        x_id = state.register_variable("x", "list", [1], metadata={"o": 1})
        state.set_variable("x", [1, 2], metadata={"by": "me"})
        state.delete_variable(x_id)
        assert [(c.kind, c.name, c.id, c.old_value, c.new_value, c.version) for c in seen] == [
            ("registered", "x", x_id, None, [1], 1),
            ("updated", "x", x_id, [1], [1, 2], 2),
            ("deleted", "x", x_id, [1, 2], None, 2),
        ]
        assert seen[1].metadata == {"o": 1, "by": "me"}

    def test_unsubscribe(self, state: StateProvider) -> None:
        seen: list[str] = []
        subscription = state.subscribe("*", lambda change: seen.append(change.name))
        state.register_variable("a", "integer", 0)
        assert state.unsubscribe(subscription) is True
        assert state.unsubscribe(subscription) is False
        assert state.unsubscribe("sub:never") is False
        state.register_variable("b", "integer", 0)
        assert seen == ["a"]

    def test_changes_arrive_in_commit_order(self, state: StateProvider) -> None:
        seen: list[tuple[str, int]] = []
        state.subscribe("*", lambda change: seen.append((change.name, change.version)))
        state.register_variable("a", "integer", 0)
        state.register_variable("b", "integer", 0)
        state.update_variables({"b": 1, "a": 1})
        state.set_variable("a", 2)
        assert seen == [("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3)]

    def test_failing_callback_is_logged_and_isolated(
        self, state: StateProvider, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(change: VariableChange) -> None:
            raise RuntimeError("subscriber bug")

        seen: list[str] = []
        state.subscribe("*", broken)
        state.subscribe("*", lambda change: seen.append(change.name))
        with caplog.at_level(logging.ERROR, logger="otpy.state"):
            state.register_variable("x", "integer", 0)
            assert state.set_variable("x", 1).version == 2
        assert seen == ["x", "x"]
        failures = [r for r in caplog.records if r.name == "otpy.state" and r.exc_info]
        assert len(failures) == 2
        assert "subscriber bug" in str(failures[0].exc_info[1])  # type: ignore[index]

    def test_callback_may_write_to_the_same_store(self, state: StateProvider) -> None:
        seen: list[tuple[str, int]] = []

        def follow(change: VariableChange) -> None:
            seen.append((change.name, change.version))
            if change.name == "leader" and change.kind == "updated":
                state.set_variable("follower", change.new_value)  # re-entrant write

        state.register_variable("leader", "integer", 0)
        state.register_variable("follower", "integer", 0)
        state.subscribe("*", follow)
        state.set_variable("leader", 1)
        state.set_variable("leader", 2)
        assert state.get_variable("follower").value == 2
        assert seen == [("leader", 2), ("follower", 2), ("leader", 3), ("follower", 3)]

    # -- concurrency -----------------------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, state: StateProvider) -> None:
        """16 threads x 200 writes: each sets its own variable and a shared one, and
        batch-updates its own with two shared ones; every write must count."""
        threads, writes = 16, 200
        for t in range(threads):
            state.register_variable(f"own.{t}", "integer", 0)
        state.register_variable("shared.a", "integer", 0)
        state.register_variable("shared.b", "integer", 0)
        seen: dict[str, list[int]] = {}
        state.subscribe("*", lambda c: seen.setdefault(c.name, []).append(c.version))
        barrier = threading.Barrier(threads)

        def work(t: int) -> None:
            barrier.wait(10)
            for i in range(writes):
                if i % 3 == 0:
                    state.set_variable(f"own.{t}", i)
                elif i % 3 == 1:
                    state.set_variable("shared.a", i)
                else:
                    state.update_variables({f"own.{t}": i, "shared.a": t, "shared.b": i})

        run_threads(threads, work)
        per_kind = [len(range(kind, writes, 3)) for kind in range(3)]
        final = {v.name: v.version for v in state.list_variables()}
        assert final == {
            **{f"own.{t}": 1 + per_kind[0] + per_kind[2] for t in range(threads)},
            "shared.a": 1 + threads * (per_kind[1] + per_kind[2]),
            "shared.b": 1 + threads * per_kind[2],
        }
        for name, versions in seen.items():  # every change, in commit order
            assert versions == list(range(2, final[name] + 1)), name

    @pytest.mark.parametrize("round_", range(20))
    def test_concurrent_registration_of_one_name_has_one_winner(
        self, state: StateProvider, round_: int
    ) -> None:
        threads = 8
        barrier = threading.Barrier(threads)
        won: list[str] = []
        lost: list[BaseException] = []

        def work(t: int) -> None:
            barrier.wait(10)
            try:
                won.append(state.register_variable("race", "integer", t))
            except VariableExistsError as exc:
                lost.append(exc)

        run_threads(threads, work)
        assert len(won) == 1 and len(lost) == threads - 1
        assert [v.id for v in state.list_variables()] == won

    def test_readers_never_see_a_torn_record(self, state: StateProvider) -> None:
        state.register_variable("x", "integer", 0, metadata={"i": 0})
        done = threading.Event()

        def work(t: int) -> None:
            if t == 0:
                try:
                    for i in range(1, 301):
                        state.set_variable("x", i, metadata={"i": i})
                finally:
                    done.set()
                return
            while not done.is_set():
                for record in (state.get_variable("x"), *state.get_variables(["x"]).values()):
                    assert record.metadata["i"] == record.value == record.version - 1

        run_threads(4, work)
        assert state.get_variable("x").version == 301

    # -- against a model -------------------------------------------------------------------

    def test_matches_a_dict_model(self, make_state: StateFactory) -> None:
        """Random register/set/batch/delete/import sequences against a dict (hypothesis)."""
        run_model_check(make_state)
