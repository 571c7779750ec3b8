"""The event stream (SSE): job progress, restarts and agent requests reach a client; a
client that falls behind is dropped; stopping the server ends every stream."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
from web_support import next_event, read_events, served

from otpy.supervision import whereis
from otpy.web import EventHub


def test_the_stream_delivers_a_jobs_progress_to_its_end() -> None:
    with served() as s, s.anonymous.stream("GET", "/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response)
        assert next_event(events, "hello")["runtime"] == s.rt.name
        s.start_job("progress")
        running = next_event(events, "job", lambda d: d["job_id"] == "progress")
        assert running["state"] == "running" and running["evaluations_total"] == 12
        s.gate.allow(1)
        one = next_event(events, "job", lambda d: d["evaluations_done"] >= 1)
        assert one["progress"] == 1 / 12 and one["best_score"] == 1.0
        s.client.post("/api/jobs/progress/pause")
        next_event(events, "job", lambda d: d["state"] == "paused")
        s.gate.open()
        s.client.post("/api/jobs/progress/resume")
        done = next_event(events, "job", lambda d: d["state"] == "completed")
        assert done["evaluations_done"] == 12 and done["progress"] == 1.0


def test_restarts_and_agent_requests_are_streamed() -> None:
    with served() as s, s.anonymous.stream("GET", "/api/events") as response:
        events = read_events(response)
        next_event(events, "hello")
        compat = whereis(f"{s.rt.name}.compat")
        assert compat is not None
        compat.kill()
        restart = next_event(events, "restart")
        assert restart["name"] == "supervisor.child_restarted"
        assert f"{s.rt.name}.root" in restart["metadata"]["supervisor"]
        reply = s.client.post("/api/agent/chat", json={"message": "hello"}).json()
        routed = next_event(events, "agent")
        assert routed["name"] == "chat.routed" and routed["metadata"]["request"] == reply["id"]
        finished = next_event(events, "agent")
        assert finished["name"] == "chat.finished"
        assert finished["metadata"]["state"] == "completed"


def test_stopping_the_server_ends_every_stream() -> None:
    with served() as s:
        ended: list[str] = []
        connected = threading.Barrier(4)

        def listen() -> None:
            with httpx.Client(base_url=s.server.url, timeout=10) as client:
                with client.stream("GET", "/api/events") as response:
                    for line in response.iter_lines():
                        if line.startswith("event: hello"):
                            connected.wait(10)
                ended.append("ended")

        listeners = [threading.Thread(target=listen) for _ in range(3)]
        for thread in listeners:
            thread.start()
        connected.wait(10)  # every listener has its hello
        assert s.server.context.hub.clients == 3
        s.server.stop()
        for thread in listeners:
            thread.join(10)
        assert ended == ["ended"] * 3 and not s.server.running


class _Runtime:
    """Just enough of a runtime for an EventHub that is not started."""

    name = "stub"
    state = "running"
    jobs = None


def test_a_client_that_falls_behind_is_dropped() -> None:
    hub = EventHub(_Runtime(), queue_size=3)  # type: ignore[arg-type]

    async def scenario() -> list[Any]:
        stream = hub.stream()
        hello = await anext(stream)
        assert json.loads(hello["data"]) == {"runtime": "stub", "state": "running"}
        for n in range(5):
            hub.broadcast("job", {"n": n})
        received = [json.loads(item["data"])["n"] async for item in stream]
        return received

    received = asyncio.run(scenario())
    assert hub.dropped == 1 and hub.clients == 0
    assert received == [1, 2]  # its oldest event made room for the end of its stream
