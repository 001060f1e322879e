"""``xbarref.sweep.run``: the one call from tasks to results (parts folder, resume, failures)."""

import os

import numpy as np
import pytest
import sweep_helpers as helpers

from xbarref.errors import XbarrefError
from xbarref.sweep import make_tasks, run, task_path


def _tasks(n=4, **extra):
    return make_tasks([{"i": i, **extra} for i in range(n)], 3, keys=[{"i": i} for i in range(n)])


def _temporary_parts(folder):
    return [f for f in os.listdir(folder) if f.startswith(".tmp-xbarref-parts-")]


def test_results_of_every_task_and_no_temporary_folder_left(tmp_path):
    tasks = _tasks()
    done = run(tasks, helpers.random_task, workers=1, progress=False, temp_parent=str(tmp_path))
    assert sorted(done.results) == sorted(t.id for t in tasks) and done.parts_dir is None
    assert done.report.ok and sorted(done.report.computed) == sorted(done.results)
    assert _temporary_parts(tmp_path) == []
    for t in tasks:  # what the task function returns for that task's named stream
        np.testing.assert_array_equal(done.results[t.id]["values"],
                                      helpers.random_task(t.params, t.seed)["values"])


def test_given_parts_folder_is_kept_and_resumed(tmp_path):
    tasks = _tasks()
    parts = tmp_path / "parts"
    first = run(tasks, helpers.random_task, parts, workers=1, progress=False)
    assert first.parts_dir == str(parts)
    assert all(os.path.isfile(task_path(parts, t.id)) for t in tasks)
    os.unlink(task_path(parts, tasks[2].id))
    again = run(tasks, helpers.random_task, parts, workers=1, progress=False, resume=True)
    assert again.report.computed == [tasks[2].id] and len(again.report.skipped) == 3
    for t in tasks:
        np.testing.assert_array_equal(again.results[t.id]["values"], first.results[t.id]["values"])


def test_failures_raise_one_error_naming_each_after_the_others_are_stored(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    fails = ["no", "always", "no", "always"]
    tasks = make_tasks([{"i": i, "fail": f, "marks": str(marks)} for i, f in enumerate(fails)], 0,
                       keys=[{"i": i} for i in range(len(fails))])
    parts = tmp_path / "parts"
    with pytest.raises(XbarrefError) as err:
        run(tasks, helpers.flaky_task, parts, workers=1, progress=False, retries=0, desc="demo",
            noun="case", label=lambda t: f"case {t.params['i']}")
    text = str(err.value)
    assert text.startswith("demo: 2 case(s) failed; the 2 other case(s) are stored in")
    assert "case 1: RuntimeError: task 1 is broken" in text and "case 3:" in text
    assert sorted(os.listdir(parts / "tasks")) == sorted(f"{t.id}.h5" for t in tasks[::2])
    done = run(tasks, helpers.flaky_task, parts, workers=1, progress=False, retries=0,
               resume=True, check=False)
    assert sorted(done.results) == sorted(t.id for t in tasks[::2])
    assert sorted(f.task_id for f in done.report.failed) == sorted(t.id for t in tasks[1::2])


def test_temporary_folder_removed_also_on_failure(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = make_tasks([{"i": 0, "fail": "always", "marks": str(marks)}], 0)
    with pytest.raises(XbarrefError, match="1 task\\(s\\) failed:"):
        run(tasks, helpers.flaky_task, workers=1, progress=False, retries=0,
            temp_parent=str(tmp_path))
    assert _temporary_parts(tmp_path) == []


def test_resume_needs_a_parts_folder():
    with pytest.raises(XbarrefError, match="resume: needs parts_dir"):
        run(_tasks(1), helpers.random_task, resume=True, progress=False)
