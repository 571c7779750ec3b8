"""The JSON API over a real socket (httpx against ``rt.serve()``): every path of the
interface, the jobs, runs, providers, metrics, traces and agent routes, and errors as
JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import served

import otpy.sys

INTERFACE = {
    ("get", "/api/tree"),
    ("get", "/api/actors/{name}"),
    ("post", "/api/actors/{name}/suspend"),
    ("post", "/api/actors/{name}/resume"),
    ("get", "/api/jobs"),
    ("post", "/api/jobs"),
    ("get", "/api/jobs/{job_id}"),
    ("post", "/api/jobs/{job_id}/pause"),
    ("post", "/api/jobs/{job_id}/resume"),
    ("post", "/api/jobs/{job_id}/cancel"),
    ("post", "/api/pipelines/runs"),
    ("get", "/api/pipelines/runs/{run_id}"),
    ("get", "/api/providers"),
    ("get", "/api/events"),
    ("post", "/api/agent/chat"),
    ("get", "/api/agent/runs/{request_id}"),
    ("get", "/metrics"),
}

JOB_FILE = """\
job_id: {job_id}
program:
  name: tiny
  inputs: {{q: {{type: string}}}}
  steps:
    - name: answer
      type: claude
      prompt: "{{{{ vars.style }}}} {{{{ inputs.q }}}}"
space:
  style: ["A.", "B.", "C."]
trainset:
  - {{inputs: {{q: "hello"}}, expected: "hello"}}
metric: contains
strategy: grid
"""


def test_the_openapi_schema_lists_every_path_of_the_interface() -> None:
    with served() as s:
        schema = s.anonymous.get("/openapi.json").json()
        published = {(m, p) for p, ops in schema["paths"].items() for m in ops}
        assert published >= INTERFACE
        assert s.anonymous.get("/").headers["content-type"].startswith("text/html")


def test_tree_and_an_actor_suspended_and_resumed() -> None:
    with served() as s:
        tree = s.anonymous.get("/api/tree").json()
        assert tree["root"]["name"] == f"{s.rt.name}.root"
        ids = [child["id"] for child in tree["root"]["children"]]
        assert "agent" in ids and "jobs" in ids
        name = f"{s.rt.name}.steps"
        status = s.anonymous.get(f"/api/actors/{name}").json()
        assert status["name"] == name and status["suspended"] is False
        assert s.client.post(f"/api/actors/{name}/suspend").json()["suspended"] is True
        assert otpy.sys.get_status(name).suspended
        assert s.client.post(f"/api/actors/{name}/resume").json()["suspended"] is False
        for missing in (f"{s.rt.name}.nobody", "otpy-elsewhere.steps"):
            response = s.anonymous.get(f"/api/actors/{missing}")
            assert response.status_code == 404 and "no actor named" in response.json()["error"]


def test_a_job_started_from_a_job_file_is_listed_steered_and_reported() -> None:
    with served() as s:
        response = s.client.post(
            "/api/jobs",
            content=JOB_FILE.format(job_id="from-file"),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["job_id"] == "from-file"
        s.rt.jobs.get("from-file").wait(10)
        listed = s.client.get("/api/jobs").json()["jobs"]
        assert [job["job_id"] for job in listed] == ["from-file"]
        job = s.client.get("/api/jobs/from-file").json()
        assert job["state"] == "completed" and job["evaluations_done"] == 3
        assert job["progress"] == 1.0 and job["tokens"] > 0
        trials = s.client.get("/api/jobs/from-file/trials").json()["trials"]
        assert [t["index"] for t in trials] == [0, 1, 2] and "examples" not in trials[0]
        best = s.client.get("/api/jobs/from-file/best").json()
        assert best["score"] == job["best_score"] and best["examples"]
        refused = s.client.post("/api/jobs/from-file/pause")
        assert refused.status_code == 409 and "completed" in refused.json()["error"]
        again = s.client.post("/api/jobs", json={"content": JOB_FILE.format(job_id="from-file")})
        assert again.status_code == 409 and "already exists" in again.json()["error"]


def test_pause_resume_and_cancel_a_running_job() -> None:
    with served() as s:
        job = s.start_job("steered")
        assert s.gate.wait_entered(2)
        paused = s.client.post("/api/jobs/steered/pause").json()
        assert paused["state"] == "paused"
        s.gate.allow(2)  # the two in flight finish; no further one starts
        assert s.gate.wait("in flight done", lambda: s.gate.passed == 2)
        resumed = s.client.post("/api/jobs/steered/resume").json()
        assert resumed["state"] == "running"
        cancelled = s.client.post("/api/jobs/steered/cancel").json()
        assert cancelled["state"] == "cancelled"
        assert job.wait(10).state == "cancelled"


def test_job_file_problems_are_422_naming_the_line_and_paths_stay_in_the_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "inside.jsonl").write_text('{"inputs": {"q": "x"}}\n')
    with served(base_dir=tmp_path) as s:
        typo = JOB_FILE.format(job_id="bad").replace("metric: contains", "metric: contain")
        bad = s.client.post("/api/jobs", content=typo)
        assert bad.status_code == 422
        assert "request.yaml:13:1: metric: unknown metric 'contain'" in bad.json()["error"]
        for field, value in (("program", "../outside.yaml"), ("trainset", "/etc/passwd")):
            response = s.client.post("/api/jobs", content=_set(JOB_FILE, field, value))
            assert response.status_code == 403, response.text
            assert "outside the server's folder" in response.json()["error"]
        dspy = "kind: dspy\nprogram: os:getcwd\nmetric: os:getcwd\ntrainset: t.jsonl\n"
        refused = s.client.post("/api/jobs", content=dspy)
        assert refused.status_code == 422 and "does not do" in refused.json()["error"]
        store = s.client.post("/api/jobs", content=JOB_FILE.format(job_id="y") + "store: x.db\n")
        assert store.status_code == 422 and "store" in store.json()["error"]
        text = _set(JOB_FILE.format(job_id="inside"), "trainset", "inside.jsonl")
        assert s.client.post("/api/jobs", content=text).status_code == 201


def _set(job_file: str, field: str, value: str) -> str:
    """``job_file`` (formatted) with its top-level ``field`` replaced by ``value``."""
    text = job_file.format(job_id="z") if "{job_id}" in job_file else job_file
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:
        if line.startswith(f"{field}:"):
            out.append(f"{field}: {value}")
            skipping = True
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out) + "\n"


def test_pipeline_runs_start_and_report(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(
        "name: echo\ninputs: {text: {type: string}}\n"
        "steps:\n  - {name: say, type: claude, prompt: '{{ inputs.text }}'}\n"
    )
    with served(base_dir=tmp_path) as s:
        started = s.client.post(
            "/api/pipelines/runs", json={"file": "echo.yaml", "inputs": {"text": "hi"}}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        s.server.context.runs.get(run_id).wait(10)  # type: ignore[union-attr]
        done = s.client.get(f"/api/pipelines/runs/{run_id}").json()
        assert done["status"] == "completed" and "hi" in done["text"]
        assert done["steps"][0]["name"] == "say"
        trace = s.client.get(f"/api/traces/{run_id}").json()
        assert trace["events"][0]["name"] == "pipeline.run.start"
        inline = s.client.post(
            "/api/pipelines/runs",
            json={"pipeline": {"name": "x", "steps": [{"name": "a", "type": "nope"}]}},
        )
        assert inline.status_code == 422 and "nope" in inline.json()["error"]
        as_path = s.client.post("/api/pipelines/runs", json={"pipeline": "echo.yaml"})
        assert as_path.status_code == 422  # text is never read as a file name
        outside = s.client.post("/api/pipelines/runs", json={"file": "../x.yaml"})
        assert outside.status_code == 403
        assert s.client.get("/api/pipelines/runs/nope").status_code == 404
        assert s.client.get("/api/traces/nope").status_code == 404


def test_a_pipeline_sent_in_the_request_stays_in_the_server_folder(tmp_path: Path) -> None:
    (tmp_path / "otpy.yaml").write_text("api_key: s3cret\n")  # the server's own files
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "brief.md").write_text("the brief")

    def reading(path: str, **fields: str) -> dict[str, Any]:
        step = {"name": "ask", "type": "claude", "prompt": [{"type": "file", "path": path}]}
        return {"pipeline": {"workflow": {"name": "x", **fields, "steps": [step]}}}

    with served(base_dir=tmp_path) as s:
        for field, value in (("workspace_dir", "/"), ("output_dir", "../out"),
                             ("checkpoint_dir", "/tmp")):  # fmt: skip
            refused = s.client.post("/api/pipelines/runs", json=reading("x", **{field: value}))
            assert refused.status_code == 403, (field, refused.text)
            assert f"{field} {value!r} is outside the server's folder" in refused.json()["error"]
        runs = {
            path: s.client.post("/api/pipelines/runs", json=reading(path, workspace_dir="work"))
            for path in ("brief.md", "../otpy.yaml")
        }
        for response in runs.values():
            assert response.status_code == 202, response.text
            s.server.context.runs.get(response.json()["run_id"]).wait(10)  # type: ignore[union-attr]
        read, escaped = (
            s.client.get(f"/api/pipelines/runs/{r.json()['run_id']}").json() for r in runs.values()
        )
        assert read["status"] == "completed" and "the brief" in read["text"]
        assert escaped["status"] == "failed" and "s3cret" not in json.dumps(escaped)
        assert "outside" in escaped["error"]["message"]


def test_providers_show_breaker_state_and_limiter_use_per_bucket() -> None:
    with served() as s:
        s.gate.open()
        s.rt.run_pipeline(
            "name: p\nsteps:\n  - {name: a, type: claude, provider: gated, prompt: hi}\n"
        )
        providers = {p["name"]: p for p in s.client.get("/api/providers").json()["providers"]}
        gated = providers["gated"]
        assert gated["breaker"]["state"] == "closed" and gated["healthy"] is True
        buckets = {b["dimension"]: b for b in gated["buckets"]}
        assert buckets["requests"]["limit"] == 6000 and buckets["requests"]["level"] >= 1
        assert 0 < buckets["tokens"]["used"] < 1
        assert providers["simulated"]["config"]["type"] == "simulated"


def test_metrics_as_json_and_prometheus_text() -> None:
    with served() as s:
        s.rt.telemetry.metrics.counter("web.test", kind="x").inc(3)
        metrics = s.client.get("/api/metrics").json()["metrics"]
        assert metrics["web.test{kind=x}"]["value"] == 3
        text = s.client.get("/metrics")
        assert text.headers["content-type"].startswith("text/plain")
        assert 'otpy_web_test_total{kind="x"} 3.0' in text.text


def test_the_agent_answers_through_the_api() -> None:
    with served() as s:
        accepted = s.client.post("/api/agent/chat", json={"message": "What is OTP?"})
        assert accepted.status_code == 202
        reply = accepted.json()
        assert reply["state"] == "running" and reply["pipeline"] == "chat"
        s.rt.chat.wait(reply["id"], 10)
        done = s.client.get(f"/api/agent/runs/{reply['id']}").json()
        assert done["state"] == "completed" and "What is OTP?" in done["response"]
        assert done["pipeline"] == "chat" and done["fallback_used"] is False
        assert done["duration"] > 0
        empty = s.client.post("/api/agent/chat", json={"message": "  "})
        assert empty.status_code == 422 and "message" in empty.json()["error"]
        missing = s.client.post("/api/agent/chat", json={})
        assert (
            missing.status_code == 422 and missing.json()["problems"][0]["where"] == "body.message"
        )
        assert s.client.get("/api/agent/runs/nope").status_code == 404


def test_an_unexpected_error_is_a_json_500_without_its_message_or_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with served() as s:

        def broken() -> None:
            raise RuntimeError("secret detail sk-ant-api03-abcdefghijklmnop")

        monkeypatch.setattr(s.rt.jobs, "list", broken)
        response = s.client.get("/api/jobs")
        assert response.status_code == 500
        body = response.json()
        assert body == {
            "error": "internal error (RuntimeError); the server's log has the details",
            "status": 500,
        }
        unknown = s.client.get("/api/nothing-here")
        assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"


def test_100_concurrent_status_requests_while_a_job_runs() -> None:
    with served() as s:
        job = s.start_job("busy", concurrency=4)
        s.gate.allow(3)
        assert s.gate.wait("3 done", lambda: s.gate.passed >= 3)

        async def hammer() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(base_url=s.server.url, limits=limits, timeout=20) as c:
                return await asyncio.gather(*(c.get("/api/jobs/busy") for _ in range(100)))

        responses = asyncio.run(hammer())
        assert all(r.status_code == 200 for r in responses)
        states = {(r.json()["state"], r.json()["job_id"]) for r in responses}
        assert states == {("running", "busy")}
        assert all(r.json()["evaluations_done"] >= 3 for r in responses)
        s.gate.open()
        assert job.wait(10).state == "completed"


def test_concurrent_chats_and_steering_leave_everything_consistent() -> None:
    """40 chat requests and 40 pause / resume requests at once: every request answered,
    every reply completed, and the job, resumed last, finishes with all its evaluations."""
    with served() as s:
        job = s.start_job("stormy", concurrency=4)
        s.gate.open()

        async def storm() -> tuple[list[httpx.Response], list[httpx.Response]]:
            auth = {"Authorization": f"Bearer {s.server.token}"}
            limits = httpx.Limits(max_connections=80)
            async with httpx.AsyncClient(
                base_url=s.server.url, headers=auth, limits=limits, timeout=20
            ) as c:
                chats = [c.post("/api/agent/chat", json={"message": f"question {i}?"})
                         for i in range(40)]  # fmt: skip
                steers = [c.post(f"/api/jobs/stormy/{('pause', 'resume')[i % 2]}")
                          for i in range(40)]  # fmt: skip
                answered = await asyncio.gather(*chats, *steers)
                return list(answered[:40]), list(answered[40:])

        chats, steers = asyncio.run(storm())
        assert all(r.status_code == 202 for r in chats)
        assert all(r.status_code in (200, 409) for r in steers)  # 409: it had already ended
        ids = {r.json()["id"] for r in chats}
        assert len(ids) == 40
        for reply_id in ids:
            assert s.rt.chat.wait(reply_id, 10).state == "completed"
        if job.status().state == "paused":
            s.client.post("/api/jobs/stormy/resume")
        final = job.wait(10)
        assert final.state == "completed" and final.evaluations_done == 12
