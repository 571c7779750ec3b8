"""otpy.testing for users' own tests: override_provider swaps one provider for a block."""

from __future__ import annotations

import pytest

import otpy
from otpy.errors import UnknownProviderError
from otpy.providers import SimulatedProvider
from otpy.testing import override_provider


def test_override_provider_swaps_for_the_block_and_puts_the_original_back() -> None:
    with otpy.start({"name": "t-override"}) as rt:
        original = rt.providers.get_provider("simulated")
        stand_in = SimulatedProvider("stand-in", responses={"": "from the stand-in"})
        with override_provider(rt, "simulated", stand_in) as entry:
            assert rt.providers.get_provider("simulated").provider is stand_in
            assert entry.capabilities == original.capabilities
            assert entry.limits == original.limits
            result = rt.run_pipeline(
                {"name": "p", "steps": [{"name": "a", "type": "claude", "prompt": "hi"}]},
                timeout=10,
            )
            assert result.text == "from the stand-in"
        restored = rt.providers.get_provider("simulated")
        assert restored.provider is original.provider
        assert restored.priority == original.priority


def test_override_provider_of_a_new_name_removes_it_afterwards() -> None:
    with otpy.start({"name": "t-override-new"}) as rt:
        with override_provider(rt, "extra", SimulatedProvider("extra")):
            assert rt.providers.get_provider("extra").provider.name == "extra"
        with pytest.raises(UnknownProviderError):
            rt.providers.get_provider("extra")


def test_override_provider_restores_even_when_the_block_raises() -> None:
    with otpy.start({"name": "t-override-raise"}) as rt:
        original = rt.providers.get_provider("simulated").provider
        with (
            pytest.raises(RuntimeError),
            override_provider(rt, "simulated", SimulatedProvider("x")),
        ):
            raise RuntimeError("boom")
        assert rt.providers.get_provider("simulated").provider is original
