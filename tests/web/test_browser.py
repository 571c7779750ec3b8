"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright's
Python package; no browser download) watches a running job's progress advance, pauses it
with the page's button, sees no evaluation start while it is paused, resumes it and sees
it finish. The job's provider lets each evaluation through only when the test says so
(``web_support.Gate``), so every step waits on an event, never on a sleep. A screenshot
is saved as the test's artifact (its path is printed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def test_pause_and_resume_a_running_job_from_the_dashboard(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with served() as s:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(s.server.dashboard_url)
        assert s.server.token not in page.url  # the page keeps it and clears the address
        expect(page.locator("#stream")).to_have_text("live", timeout=WAIT_MS)

        job = s.start_job("watched")
        row = page.locator('tr[data-job="watched"]')
        count = row.locator(".count")
        expect(row.locator(".state")).to_have_text("running", timeout=WAIT_MS)
        s.gate.allow(1)
        expect(count).to_have_attribute("data-done", "1", timeout=WAIT_MS)
        s.gate.allow(2)  # the progress advances on the page
        expect(count).to_have_attribute("data-done", "3", timeout=WAIT_MS)
        assert s.gate.wait_entered(5)  # two more evaluations in flight, held at the gate

        row.locator('button[data-action="pause"]').click()
        expect(row.locator(".state")).to_have_text("paused", timeout=WAIT_MS)
        expect(row.locator('button[data-action="resume"]')).to_be_enabled()
        s.gate.allow(2)  # the two in flight finish and are kept
        expect(count).to_have_text("5/12", timeout=WAIT_MS)
        s.gate.allow(100)  # nothing holds an evaluation back now, but none may start
        assert not s.gate.wait_entered(6, timeout=0.5)
        assert job.status().state == "paused" and job.status().evaluations_done == 5
        expect(count).to_have_text("5/12")

        row.locator('button[data-action="resume"]').click()
        expect(row.locator(".state")).to_have_text("completed", timeout=WAIT_MS)
        expect(count).to_have_text("12/12")
        expect(page.locator("#plot polyline.best")).to_have_count(1)
        assert job.wait(10).state == "completed" and s.gate.entered == 12
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"dashboard screenshot: {shot}")
        assert shot.stat().st_size > 10_000 and errors == []
