"""The second half of ``otpy demo``: the embedded runtime runs a YAML pipeline, then a
short optimization job that is paused, resumed and finished, all on the offline
simulated provider (no key, no server, nothing written to disk)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["run_runtime_demo"]

PIPELINE = """
name: triage
inputs: {ticket: {type: string}}
steps:
  - name: summary
    type: claude
    prompt: "Summarise this support ticket in one line: {{ inputs.ticket }}"
  - name: category
    type: gemini_instructor
    prompt: "Classify: {{ steps.summary.text }}"
    schema:
      type: object
      properties: {category: {type: string, enum: [bug, billing, question]}}
      required: [category]
  - name: reply
    type: claude
    when: "{{ steps.category.output.category }}"
    system: "{{ vars.tone }}"
    prompt: >-
      Draft a reply to a {{ steps.category.output.category }} ticket:
      {{ steps.summary.text }}
outputs:
  category: "{{ steps.category.output.category }}"
  reply: "{{ steps.reply.text }}"
"""

SPACE = {
    "tone": ["Be brief.", "Be warm and precise.", "Answer like a senior engineer."],
    "temperature": [0.0, 0.4, 0.8],
}

QA = """
name: qa
inputs: {question: {type: string}}
steps:
  - name: answer
    type: claude
    system: "{{ vars.tone }}"
    temperature: "{{ vars.temperature }}"
    prompt: "{{ inputs.question }}"
outputs: {answer: "{{ steps.answer.text }}"}
"""


def _metric(example: Mapping[str, Any], result: Any) -> float:
    """A stand-in score (the simulated answers are not real): shorter answers that still
    mention the question's words score higher."""
    text = result.text.lower()
    words = [w for w in str(example["inputs"]["question"]).lower().split() if len(w) > 3]
    hits = sum(1 for w in words if w in text) / max(1, len(words))
    return round(hits / (1 + len(text) / 400), 4)


def run_runtime_demo(say: Callable[[str], None]) -> bool:
    """Run the pipeline and the job; True if both ended as they should."""
    import otpy

    with otpy.start({"name": "otpy-demo", "jobs_store": ":memory:", "plugins": False}) as rt:
        say("4. a YAML pipeline on the embedded runtime (simulated provider, no key)")

        def progress(event: Any) -> None:
            if event.outcome is not None:
                o = event.outcome
                say(f"   {o.name:<9} {o.status:<7} {o.tokens:>4} tok  {o.provider or '-'}")

        result = rt.run_pipeline(
            PIPELINE,
            {"ticket": "I was charged twice for my subscription this month."},
            variables={"tone": "Be brief."},
            on_step=progress,
        )
        say(f"   {result.status}: category={result.outputs.get('category')!r}, "
            f"{result.tokens} tokens, run {result.run_id[:8]}")  # fmt: skip
        say("5. a short optimization job: 3 x 3 configurations, 4 examples each")
        trainset = [
            {"inputs": {"question": q}}
            for q in (
                "How do I reset my password?",
                "Why was my card declined?",
                "Can I export my data as CSV?",
                "Where are the release notes?",
            )
        ]
        job = rt.jobs.start(
            QA, SPACE, trainset, _metric, "grid", concurrency=4, seed=7, job_id="demo-job"
        )
        while job.status().evaluations_done < 3 and not job.status().finished:
            time.sleep(0.002)  # a demo watching a job, as a user's code would
        paused = job.pause()
        say(f"   paused after {paused.evaluations_done} evaluations "
            f"({paused.in_flight} examples in flight finish and are kept); resuming")  # fmt: skip
        job.resume()
        final = job.wait(timeout=60)
        best = job.best()
        say(f"   {final.state}: {final.evaluations_done}/{final.evaluations_total} "
            f"evaluations, {final.tokens} tokens, best score {final.best_score}")  # fmt: skip
        if best is not None:
            say(f"   best configuration: {best.configuration}")
        return result.ok and final.state == "completed" and best is not None
