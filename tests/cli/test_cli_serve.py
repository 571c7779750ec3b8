"""``otpy serve``: the demo config serves a live job a person can pause and resume, and the
agent's routes; bad input is refused before anything serves."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from web_support import next_event, read_events

from otpy.__main__ import main

ROOT = Path(__file__).resolve().parent.parent.parent
OTPY = Path(sys.executable).parent / "otpy"


def test_serve_the_demo_config_with_a_live_job_until_ctrl_c() -> None:
    command = [str(OTPY), "serve", "examples/serve/otpy.yaml", "--port", "0",
               "--job", "examples/jobs/qa_tuning.yaml"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("started job ") and "qa_tuning.yaml" in lines[0]
        job_id = lines[0].split()[2]
        assert lines[1].startswith("otpy serve: runtime 'demo' on http://127.0.0.1:")
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/#token=(\S+)", lines[2])
        assert found is not None, lines
        url, token = found.groups()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
            job = client.get(f"/api/jobs/{job_id}").json()
            assert job["state"] == "running" and job["evaluations_total"] == 6
            assert client.post(f"/api/jobs/{job_id}/pause").json()["state"] == "paused"
            assert client.post(f"/api/jobs/{job_id}/resume").json()["state"] == "running"
            providers = {p["name"] for p in client.get("/api/providers").json()["providers"]}
            assert providers == {"slow", "chat"}
            with client.stream("GET", "/api/events") as stream:
                events = read_events(stream)
                next_event(events, "hello")
                ask = client.post("/api/agent/chat", json={"message": "tl;dr: OTP in a line"})
                assert ask.json()["pipeline"] == "summarize"
                next_event(events, "agent", lambda e: e["name"] == "chat.finished")
            reply = client.get(f"/api/agent/runs/{ask.json()['id']}").json()
            assert reply["state"] == "completed" and reply["reason"] == "keyword 'tl;dr'"
            assert "tl;dr: OTP in a line" in reply["response"]  # the simulated answer echoes it
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "otpy serve: stopping" in err and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_serving_off_loopback_without_a_token_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTPY_WEB__TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on '0.0.0.0' without a token" in err and "Traceback" not in err


def test_a_bad_job_file_is_refused_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("program: {}\nspace: {}\n")
    assert main(["serve", "--port", "0", "--job", str(job)]) == 2
    err = capsys.readouterr().err
    assert f"{job}" in err and "trainset" in err and "otpy serve: runtime" not in err
