"""The load generator of ``benchmarks/web.py``, run as a process of its own so that the
server's process is measured alone: raw HTTP/1.1 over asyncio streams (keep-alive, no
client library in the way), one JSON document of results on stdout.

    python benchmarks/_webload.py status URL PATH --clients 50 --seconds 5
    python benchmarks/_webload.py sse URL --clients 100 --events 200 --token T

``status``: each client sends GET PATH back to back for the given seconds (or, with
``--interval S``, one every S seconds); prints every latency (ms) and the count of each
response status. ``sse``: each client opens
/api/events and reads ``bench`` events (their
data carries the server's ``time.monotonic()`` at broadcast; CLOCK_MONOTONIC is the same
clock in every process of the machine) until it has ``events`` of them; prints every
delivery latency (ms). Before reading, it prints ``ready`` on stderr once every client
has its ``hello``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from urllib.parse import urlsplit


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    return reader, writer, f"{parts.hostname}:{parts.port}"


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length bodies only); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                  if k.lower() == "content-length")  # fmt: skip
    await reader.readexactly(length)
    return status


async def status_load(
    url: str, path: str, clients: int, seconds: float, interval: float
) -> dict[str, object]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def client(offset: float) -> None:
        reader, writer, host = await _connect(url)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        await asyncio.sleep(offset)  # pollers are not in step with one another
        tick = time.monotonic()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await _response(reader)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if interval:  # open loop: the next request at the next tick, however long this took
                tick += interval
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
        writer.close()

    started = time.monotonic()
    spread = random.Random(7)
    await asyncio.gather(*(client(spread.uniform(0, interval)) for _ in range(clients)))
    return {"latencies": latencies, "statuses": statuses, "seconds": time.monotonic() - started}


async def sse_load(url: str, clients: int, events: int, token: str) -> dict[str, object]:
    latencies: list[float] = []
    ready = asyncio.Barrier(clients)

    async def client() -> None:
        reader, writer, host = await _connect(url)
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        got, kind = 0, ""
        while got < events:
            line = (await reader.readline()).decode().strip()
            if line.startswith("event:"):
                kind = line[6:].strip()
                if kind == "hello" and await ready.wait() == 0:
                    print("ready", file=sys.stderr, flush=True)
            elif line.startswith("data:") and kind == "bench":
                sent = json.loads(line[5:])["at"]
                latencies.append((time.monotonic() - sent) * 1000)
                got += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {"latencies": latencies, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("status", "sse"))
    parser.add_argument("url")
    parser.add_argument("path", nargs="?", default="/")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    if args.mode == "status":
        result = asyncio.run(
            status_load(args.url, args.path, args.clients, args.seconds, args.interval)
        )
    else:
        result = asyncio.run(sse_load(args.url, args.clients, args.events, args.token))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
