"""The executor with local processes and in this process: seeds, files, resume, retries."""

import json
import os

import numpy as np
import pytest
import sweep_helpers as helpers

from xbarref.errors import FileFormatError, XbarrefError
from xbarref.sweep import (Task, load_results, make_tasks, read_task_file, run_tasks, streams,
                           task_path, task_seed)


def _tasks(n=6, sweep_seed=3, **extra):
    return make_tasks([{"i": i, **extra} for i in range(n)], sweep_seed,
                      keys=[{"i": i} for i in range(n)])


def _values(out_dir, tasks):
    return {t.id: read_task_file(task_path(out_dir, t.id))["result"]["values"] for t in tasks}


class TestSeeds:
    def test_seed_depends_on_key_and_sweep_seed_only(self):
        a = task_seed(7, {"x": 1, "y": [1, 2]})
        b = task_seed(7, {"y": [1, 2], "x": 1})
        assert a.entropy == b.entropy
        assert task_seed(8, {"x": 1, "y": [1, 2]}).entropy != a.entropy
        assert task_seed(7, {"x": 2, "y": [1, 2]}).entropy != a.entropy

    def test_seed_independent_of_order_and_neighbours(self):
        forward = _tasks(5)
        backward = make_tasks([{"i": i} for i in reversed(range(8))], 3)
        by_id = {t.id: t.seed.entropy for t in backward}
        for t in forward:
            assert by_id[t.id] == t.seed.entropy

    def test_key_excludes_machine_specific_params(self):
        a = make_tasks([{"i": 1, "path": "/a"}], 0, keys=[{"i": 1}])[0]
        b = make_tasks([{"i": 1, "path": "/elsewhere"}], 0, keys=[{"i": 1}])[0]
        assert a.id == b.id and a.seed.entropy == b.seed.entropy

    def test_duplicate_keys_rejected(self):
        with pytest.raises(XbarrefError, match="same parameters as task 0"):
            make_tasks([{"i": 1}, {"i": 1}], 0)

    def test_bad_task_arguments(self):
        with pytest.raises(XbarrefError, match="task id"):
            Task("../escape", {"i": 1})
        with pytest.raises(XbarrefError, match="params"):
            Task("ok", {"i": object()})
        with pytest.raises(XbarrefError, match="sweep_seed"):
            Task("ok", {"i": 1}, -1)


class TestLocal:
    def test_in_process_and_pool_give_identical_results(self, tmp_path):
        tasks = _tasks(6)
        r1 = run_tasks(tasks, helpers.random_task, tmp_path / "one", workers=1, progress=False)
        r2 = run_tasks(tasks, helpers.random_task, tmp_path / "two", workers=2, progress=False)
        assert r1.executor == "in-process" and r2.executor == "local processes (2)"
        assert sorted(r1.computed) == sorted(r2.computed) == sorted(t.id for t in tasks)
        v1, v2 = _values(tmp_path / "one", tasks), _values(tmp_path / "two", tasks)
        for t in tasks:
            # bit-identical, and what the task's own seed gives
            assert np.array_equal(v1[t.id], v2[t.id])
            expect = streams(3, {"i": t.params["i"]}, "values")["values"].standard_normal(16)
            assert np.array_equal(v1[t.id], expect * (1 + t.params["i"]))
        workers = {read_task_file(task_path(tmp_path / "two", t.id))["worker"] for t in tasks}
        assert all(w.split(":")[1] != str(os.getpid()) for w in workers)

    def test_task_file_contents(self, tmp_path):
        t = _tasks(1)[0]
        run_tasks([t], helpers.random_task, tmp_path, workers=1, progress=False)
        stored = read_task_file(task_path(tmp_path, t.id))
        assert stored["task_id"] == t.id and stored["params"] == t.params
        assert stored["key"] == {"i": 0} and stored["sweep_seed"] == 3
        assert stored["result"]["i"] == 0 and stored["result"]["values"].shape == (16,)
        assert stored["seconds"] >= 0
        assert not [f for f in os.listdir(tmp_path / "tasks") if f.endswith(".tmp")]

    def test_load_results(self, tmp_path):
        tasks = _tasks(3)
        run_tasks(tasks[:2], helpers.random_task, tmp_path, workers=1, progress=False)
        got = load_results(tmp_path, tasks[:2])
        assert got.keys() == {tasks[0].id, tasks[1].id}
        assert np.array_equal(got[tasks[1].id]["values"], _values(tmp_path, tasks[1:2])[tasks[1].id])
        with pytest.raises(XbarrefError, match=f"task {tasks[2].id}.*no result file"):
            load_results(tmp_path, tasks)

    def test_damaged_task_file_is_recomputed_on_resume(self, tmp_path):
        tasks = _tasks(3)
        run_tasks(tasks, helpers.random_task, tmp_path, workers=1, progress=False)
        path = task_path(tmp_path, tasks[1].id)
        with open(path, "wb") as fh:
            fh.write(b"not hdf5")
        with pytest.raises(FileFormatError, match="not a readable HDF5"):
            read_task_file(path)
        report = run_tasks(tasks, helpers.random_task, tmp_path, workers=1, resume=True,
                           progress=False)
        assert report.computed == [tasks[1].id] and len(report.skipped) == 2

    def test_resume_into_another_sweep_is_refused(self, tmp_path):
        run_tasks(_tasks(2, sweep_seed=3), helpers.random_task, tmp_path, workers=1, progress=False)
        with pytest.raises(XbarrefError, match="sweep seed 3"):
            run_tasks(_tasks(2, sweep_seed=4), helpers.random_task, tmp_path, workers=1,
                      resume=True, progress=False)

    def test_bad_run_arguments(self, tmp_path):
        tasks = _tasks(2)
        with pytest.raises(XbarrefError, match="workers"):
            run_tasks(tasks, helpers.random_task, tmp_path, workers=0)
        with pytest.raises(XbarrefError, match="retries"):
            run_tasks(tasks, helpers.random_task, tmp_path, retries=-1)
        with pytest.raises(XbarrefError, match="duplicate task id"):
            run_tasks(tasks + tasks[:1], helpers.random_task, tmp_path)
        with pytest.raises(XbarrefError, match="scheduler"):
            run_tasks(tasks, helpers.random_task, tmp_path, scheduler="localhost:8786")
        (tmp_path / "file").write_text("x")
        with pytest.raises(XbarrefError, match="not a folder"):
            run_tasks(tasks, helpers.random_task, tmp_path / "file")

    def test_missing_dask_names_the_extra(self, tmp_path, monkeypatch):
        import sys

        monkeypatch.setitem(sys.modules, "distributed", None)
        with pytest.raises(XbarrefError, match=r"extra 'dask'"):
            run_tasks(_tasks(1), helpers.random_task, tmp_path, scheduler="tcp://127.0.0.1:1",
                      progress=False)

    def test_summary_table(self, tmp_path):
        report = run_tasks(_tasks(3), helpers.random_task, tmp_path, workers=1, progress=False)
        text = "\n".join(report.summary_lines())
        assert "computed now    3" in text and "failed          0" in text


class TestResume:
    def test_interrupted_run_resumes_with_only_the_missing_tasks(self, tmp_path):
        tasks = _tasks(6, interrupt_at=4)
        helpers.CALLS.clear()
        with pytest.raises(KeyboardInterrupt):
            run_tasks(tasks, helpers.counting_task, tmp_path / "run", workers=1, progress=False)
        assert len(helpers.CALLS) == 4
        done = sorted(os.listdir(tmp_path / "run" / "tasks"))
        assert len(done) == 3  # the 4th call was interrupted before returning
        first = list(helpers.CALLS[:3])
        helpers.CALLS.clear()
        report = run_tasks(_tasks(6, interrupt_at=None), helpers.counting_task, tmp_path / "run",
                           workers=1, resume=True, progress=False)
        assert sorted(helpers.CALLS) == sorted(set(range(6)) - set(first))
        assert len(report.skipped) == 3 and len(report.computed) == 3
        # identical to an uninterrupted run
        run_tasks(_tasks(6), helpers.random_task, tmp_path / "full", workers=1, progress=False)
        a, b = _values(tmp_path / "run", tasks), _values(tmp_path / "full", tasks)
        assert all(np.array_equal(a[k], b[k]) for k in a)

    def test_resume_on_a_pool_computes_only_deleted_tasks(self, tmp_path):
        tasks = _tasks(5)
        run_tasks(tasks, helpers.random_task, tmp_path, workers=1, progress=False)
        before = _values(tmp_path, tasks)
        gone = [tasks[0].id, tasks[3].id]
        for tid in gone:
            os.unlink(task_path(tmp_path, tid))
        report = run_tasks(tasks, helpers.random_task, tmp_path, workers=2, resume=True,
                           progress=False)
        assert sorted(report.computed) == sorted(gone) and len(report.skipped) == 3
        after = _values(tmp_path, tasks)
        assert all(np.array_equal(before[k], after[k]) for k in before)
        again = run_tasks(tasks, helpers.random_task, tmp_path, workers=2, resume=True,
                          progress=False)
        assert again.computed == [] and len(again.skipped) == 5


    def test_interrupting_a_pool_cancels_the_rest(self, tmp_path):
        tasks = _tasks(8, sleep=0.5)

        def interrupt(task_id, outcome):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_tasks(tasks, helpers.random_task, tmp_path, workers=2, progress=False,
                      on_result=interrupt)
        done = os.listdir(tmp_path / "tasks")
        assert 1 <= len(done) < 8
        report = run_tasks(tasks, helpers.random_task, tmp_path, workers=2, resume=True,
                           progress=False)
        assert len(report.skipped) == len(done) and len(report.computed) == 8 - len(done)


class TestFailures:
    def _flaky(self, tmp_path, fails):
        marks = tmp_path / "marks"
        marks.mkdir()
        params = [{"i": i, "fail": f, "marks": str(marks)} for i, f in enumerate(fails)]
        return make_tasks(params, 0, keys=[{"i": i} for i in range(len(fails))]), marks

    @pytest.mark.parametrize("workers", [1, 2])
    def test_failing_task_retried_then_reported_others_complete(self, tmp_path, workers):
        tasks, marks = self._flaky(tmp_path, ["no", "always", "once", "no"])
        report = run_tasks(tasks, helpers.flaky_task, tmp_path / "out", workers=workers,
                           retries=1, progress=False)
        attempts = [f.split(".")[0] for f in os.listdir(marks)]
        assert attempts.count("1") == 2 and attempts.count("2") == 2  # retried once each
        assert attempts.count("0") == 1 and attempts.count("3") == 1
        assert sorted(report.computed) == sorted([tasks[0].id, tasks[2].id, tasks[3].id])
        assert len(report.failed) == 1
        failure = report.failed[0]
        assert failure.task_id == tasks[1].id and failure.params["i"] == 1
        assert failure.attempts == 2 and "task 1 is broken" in failure.error
        assert report.retried == 2
        stored = json.loads((tmp_path / "out" / "failed.json").read_text())
        assert stored[0]["params"]["fail"] == "always"
        text = "\n".join(report.summary_lines())
        assert f"FAILED {tasks[1].id}" in text and '"fail":"always"' in text

    def test_no_retries(self, tmp_path):
        tasks, marks = self._flaky(tmp_path, ["once", "no"])
        report = run_tasks(tasks, helpers.flaky_task, tmp_path / "out", workers=1, retries=0,
                           progress=False)
        assert [f.task_id for f in report.failed] == [tasks[0].id]
        assert report.computed == [tasks[1].id]
        # resume retries only the failed task; it succeeds on its second attempt overall
        again = run_tasks(tasks, helpers.flaky_task, tmp_path / "out", workers=1, retries=0,
                          resume=True, progress=False)
        assert again.computed == [tasks[0].id] and again.ok
        assert not (tmp_path / "out" / "failed.json").exists()

    def test_dead_local_worker_process_rebuilds_the_pool(self, tmp_path):
        marks = tmp_path / "marks"
        marks.mkdir()
        tasks = make_tasks([{"i": i, "marks": str(marks)} for i in range(4)], 3,
                           keys=[{"i": i} for i in range(4)])
        report = run_tasks(tasks, helpers.crashing_task, tmp_path / "out", workers=2,
                           retries=0, progress=False)
        assert (marks / "crashed").exists()
        assert report.ok and report.restarts >= 1
        assert sorted(report.computed) == sorted(t.id for t in tasks)
        ref = _tasks(4)
        run_tasks(ref, helpers.random_task, tmp_path / "ref", workers=1, progress=False)
        a, b = _values(tmp_path / "out", tasks), _values(tmp_path / "ref", ref)
        assert all(np.array_equal(a[k], b[k]) for k in a)

    def test_task_that_always_kills_its_process_is_reported(self, tmp_path):
        tasks = _tasks(3)
        report = run_tasks(tasks, helpers.always_crashing_task, tmp_path, workers=2,
                           retries=0, progress=False)
        assert report.restarts == 4
        assert tasks[0].id in [f.task_id for f in report.failed]
        assert all("worker process died" in f.error for f in report.failed)
        assert len(report.computed) + len(report.failed) == 3

    def test_result_that_cannot_be_pickled_is_a_task_failure(self, tmp_path):
        tasks = _tasks(3)
        report = run_tasks(tasks, helpers.unpicklable_result_task, tmp_path, workers=2,
                           retries=0, progress=False)
        assert [f.task_id for f in report.failed] == [tasks[0].id]
        assert "pickle" in report.failed[0].error.lower()
        assert len(report.computed) == 2

    def test_lambda_needs_in_process(self, tmp_path):
        with pytest.raises(XbarrefError, match="module-level function"):
            run_tasks(_tasks(2), lambda p, s: {"x": 1}, tmp_path, workers=2, progress=False)
        report = run_tasks(_tasks(2), lambda p, s: {"x": 1}, tmp_path, workers=1, progress=False)
        assert report.ok

    def test_non_dict_result_is_a_task_failure(self, tmp_path):
        report = run_tasks(make_tasks([{"i": 0}], 0), helpers.bad_result_task, tmp_path,
                           workers=1, retries=0, progress=False)
        assert "must return a dict" in report.failed[0].error
