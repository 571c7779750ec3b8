"""Child process of the RedisState tests: writes to a shared session, then reports.

    python redis_writer.py URL PREFIX SESSION COUNT GO_KEY

Opens the session, pushes to ``GO_KEY:ready`` and waits (BLPOP, 30 s at most) for
``GO_KEY``, so that every writer starts at once. Then COUNT times: ``set_variable("counter",
i)`` and ``update_variables({"a": i, "b": i})``. Prints one JSON line: the versions each
call returned, ``{"counter": [...], "batch": [[a, b], ...]}``.
"""

from __future__ import annotations

import json
import sys

import redis

from otpy.state import RedisState


def main(url: str, prefix: str, session: str, count: int, go_key: str) -> None:
    state = RedisState(url, session, prefix=prefix)
    client = redis.Redis.from_url(url, socket_timeout=40)
    client.rpush(f"{go_key}:ready", "1")
    if client.blpop([go_key], timeout=30) is None:
        raise SystemExit("no go within 30 s")
    counter, batch = [], []
    for i in range(count):
        counter.append(state.set_variable("counter", i).version)
        result = state.update_variables({"a": i, "b": i})
        batch.append([result["a"].version, result["b"].version])
    state.cleanup()
    client.close()
    print(json.dumps({"counter": counter, "batch": batch}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
