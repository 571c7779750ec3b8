"""The reusable test suite every :class:`~otpy.state.StateProvider` backend must pass.

Needs pytest and hypothesis (otpy's ``dev`` extra). Subclass it in a test module (the name
must start with ``Test``) and provide the fixture ``state_factory``: a callable
``(session_id=None, clock=None) -> StateProvider`` returning a fresh, empty, open store on
each call (``clock=None`` meaning the backend's default). A backend whose data outlives the
object also overrides ``state_reopen``: a callable ``(state) -> StateProvider`` opening a
new object on the same data and session::

    class TestMyBackend(StateProviderCompliance):
        @pytest.fixture
        def state_factory(self, tmp_path):
            def make(session_id=None, clock=None):
                return MyState(tmp_path / uuid4().hex, session_id, clock=clock or SYSTEM_CLOCK)
            return make

        @pytest.fixture
        def state_reopen(self):
            return lambda state: MyState(state.path, state.session_id)

Every store the suite makes is cleaned up after each test.
"""

from __future__ import annotations

from otpy.testing.compliance._basics import BasicsCases
from otpy.testing.compliance._cases import (
    Reopen,
    StateFactory,
)
from otpy.testing.compliance._flow import FlowCases
from otpy.testing.compliance._values import ValuesCases

__all__ = ["Reopen", "StateFactory", "StateProviderCompliance"]


class StateProviderCompliance(BasicsCases, ValuesCases, FlowCases):
    """The behaviour of ``StateProvider``, test by test (see the module docstring)."""
