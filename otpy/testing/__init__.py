"""Test helpers for otpy and for the code users build on it.

::

    clock = FakeClock()
    sup = Supervisor.start([...], clock=clock)
    clock.advance(6.0)          # the restart-intensity window slides; timers fire
    wait_idle()                 # every actor has handled everything sent so far
    stop_all()                  # in a fixture: leave nothing running for the next test
    with redis_server() as url: # a throwaway redis-server for shared rate limits
        RateLimiter([...], url)
    with override_provider(rt, "claude", SimulatedProvider(responses=["ok"])):
        rt.run_pipeline("flow.yaml")   # one test's stand-in for a real service
    timeline = saturate(limiter, clock, workers=16, seconds=300, cost=...)  # clock: TimedClock

Fake provider servers that speak each API's wire format on 127.0.0.1, for tests that go
through the real SDKs, are :mod:`otpy.testing.fake_anthropic` and
:mod:`otpy.testing.fake_gemini`; the test suite every state backend must pass is
:mod:`otpy.testing.compliance` (it needs pytest and hypothesis).
"""

from otpy.testing._clock import FakeClock
from otpy.testing._override import override_provider
from otpy.testing._redis import RedisUnavailable, redis_server
from otpy.testing._saturate import TimedClock, Timeline, saturate
from otpy.testing._waits import stop_all, wait_exit, wait_idle, wait_until

__all__ = [
    "FakeClock",
    "RedisUnavailable",
    "TimedClock",
    "Timeline",
    "override_provider",
    "redis_server",
    "saturate",
    "stop_all",
    "wait_exit",
    "wait_idle",
    "wait_until",
]
