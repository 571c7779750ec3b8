"""The plans of jobs' programs: a program given as YAML text is compiled once for many jobs
(per step table and base_dir); a new step table, another base_dir or a program read from a
file (which may change) is compiled again."""

from __future__ import annotations

from pathlib import Path

from job_support import PLAIN_QA, QA, SPACE, Answers, Shaky, start, trainset, wait_status

from otpy.actors._job_kinds import Plans
from otpy.steps import StepTable


def table_of(rt: object) -> StepTable:
    return rt.steps.table  # type: ignore[attr-defined, no-any-return]


def test_one_text_is_compiled_once_per_table_and_base_dir(tmp_path: Path) -> None:
    rt, _ = start(tmp_path / "jobs.sqlite")
    with rt:
        plans, table = Plans(), table_of(rt)
        plan = plans.compile(QA, table, None)
        assert plans.compile(QA, table, None) is plan
        assert plans.compile(QA, table, tmp_path) is not plan  # another base_dir
        assert plans.compile(PLAIN_QA, table, None).pipeline.name == "plain_qa"
        rt.steps.register_step("shaky_too", Shaky)  # a new table: compiled against it
        again = plans.compile(QA, table_of(rt), None)
        assert again is not plan and again.table is table_of(rt)
        assert plans.compile(QA, table_of(rt), None) is again


def test_a_file_and_a_mapping_are_compiled_every_time(tmp_path: Path) -> None:
    rt, _ = start(tmp_path / "jobs.sqlite")
    with rt:
        plans, table = Plans(), table_of(rt)
        path = tmp_path / "qa.yaml"
        path.write_text(QA)
        first = plans.compile(str(path), table, None)
        path.write_text(PLAIN_QA)  # the file changed: the next job runs what it says now
        assert plans.compile(str(path), table, None).pipeline.name == "plain_qa"
        assert first.pipeline.name == "qa"
        mapping = {"name": "m", "steps": [{"name": "s", "type": "shaky", "value": "x"}]}
        assert plans.compile(mapping, table, None) is not plans.compile(mapping, table, None)


def test_it_keeps_the_programs_started_last(tmp_path: Path) -> None:
    rt, _ = start(tmp_path / "jobs.sqlite")
    with rt:
        plans, table = Plans(), table_of(rt)
        step = "\n  - {name: s, type: shaky, value: x}\n"
        texts = [f"name: p{n}\nsteps:{step}" for n in range(Plans.SIZE + 1)]
        kept = [plans.compile(text, table, None) for text in texts]
        assert plans.compile(texts[-1], table, None) is kept[-1]
        assert plans.compile(texts[0], table, None) is not kept[0]  # the oldest went


def test_jobs_of_one_text_started_around_a_new_step_type_each_run_their_own_table(
    tmp_path: Path,
) -> None:
    answers = Answers()
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    crashing = trainset(1, crash=(0,))
    with rt:
        before = rt.jobs.start(QA, SPACE, crashing, "exact_match", max_evaluations=1)
        assert before.wait(20).errors == 1  # the shaky step crashed the example

        class Calm(Shaky):
            def execute(self, step, context):  # type: ignore[no-untyped-def]
                return super().execute({**step, "value": "ok"}, context)

        rt.steps.register_step("shaky", Calm, replace=True)
        after = rt.jobs.start(QA, SPACE, crashing, "exact_match", max_evaluations=1)
        final = wait_status(after, lambda s: s.state == "completed", 20)
    assert (final.errors, final.evaluations_done) == (0, 1)
