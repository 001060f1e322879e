"""The same tasks on a real dask.distributed LocalCluster (2 worker processes, loopback)."""

import os
import signal

import numpy as np
import pytest
import sweep_helpers as helpers
from conftest import tiny_spec_text

from xbarref.sweep import (collect, infer_task, loads_spec, make_tasks, read_task_file,
                           run_tasks, spec_tasks, task_path)

try:
    import distributed
except ImportError:  # the cluster fixture fails the tests (distributed_module in conftest.py)
    distributed = None


@pytest.fixture(scope="module")
def cluster(distributed_module):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cl:
        yield cl


def _tasks(n, **extra):
    return make_tasks([{"i": i, **extra} for i in range(n)], 21, keys=[{"i": i} for i in range(n)])


def _results(out_dir, tasks):
    return {t.id: read_task_file(task_path(out_dir, t.id))["result"] for t in tasks}


def _same(a, b):
    assert a.keys() == b.keys()
    for tid in a:
        assert a[tid].keys() == b[tid].keys()
        for name in a[tid]:
            assert np.array_equal(a[tid][name], b[tid][name]), (tid, name)


def test_synthetic_tasks_identical_locally_and_on_the_cluster(cluster, tmp_path):
    tasks = _tasks(6)
    local = run_tasks(tasks, helpers.random_task, tmp_path / "local", workers=1, progress=False)
    dask = run_tasks(tasks, helpers.random_task, tmp_path / "dask",
                     scheduler=cluster.scheduler_address, progress=False)
    assert dask.executor == f"dask {cluster.scheduler_address}" and dask.ok
    assert sorted(local.computed) == sorted(dask.computed)
    _same(_results(tmp_path / "local", tasks), _results(tmp_path / "dask", tasks))
    pids = {str(p) for p in cluster_pids(cluster)}
    workers = {read_task_file(task_path(tmp_path / "dask", t.id))["worker"].split(":")[1]
               for t in tasks}
    assert workers <= pids


def cluster_pids(cluster):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        return list(client.run(os.getpid).values())


def test_inference_sweep_identical_in_process_and_on_the_cluster(cluster, tmp_path, tiny_model):
    spec = loads_spec(tiny_spec_text(tiny_model, seeds=2))
    tasks = spec_tasks(spec)
    assert len(tasks) == 4
    run_tasks(tasks, infer_task, tmp_path / "local", workers=1, progress=False)
    report = run_tasks(tasks, infer_task, tmp_path / "dask", scheduler=cluster.scheduler_address,
                       progress=False)
    assert report.ok and len(report.computed) == 4
    a, b = _results(tmp_path / "local", tasks), _results(tmp_path / "dask", tasks)
    _same(a, b)
    # the seeds matter: the two seeds of a setting give different predictions
    preds = [a[t.id]["predictions"] for t in tasks if t.key["setting"] == tasks[0].key["setting"]]
    assert not np.array_equal(preds[0], preds[1])
    table = collect(tmp_path / "dask", tasks)
    assert table.column("accuracy") == [float(a[t.id]["accuracy"]) for t in tasks]


def test_scheduler_from_environment(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("XBARREF_SCHEDULER", cluster.scheduler_address)
    report = run_tasks(_tasks(2), helpers.random_task, tmp_path, progress=False)
    assert report.executor.startswith("dask ") and report.ok


def test_existing_client(cluster, tmp_path):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        report = run_tasks(_tasks(2), helpers.random_task, tmp_path, scheduler=client,
                           progress=False)
        assert report.executor == "dask client" and report.ok
        assert client.status == "running"  # a client passed in is left open


def test_failing_task_on_the_cluster(cluster, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    params = [{"i": i, "fail": f, "marks": str(marks)} for i, f in enumerate(["always", "once", "no"])]
    tasks = make_tasks(params, 0, keys=[{"i": i} for i in range(3)])
    report = run_tasks(tasks, helpers.flaky_task, tmp_path / "out",
                       scheduler=cluster.scheduler_address, retries=2, progress=False)
    assert [f.task_id for f in report.failed] == [tasks[0].id]
    assert report.failed[0].attempts == 3 and report.failed[0].params["fail"] == "always"
    assert sorted(report.computed) == sorted([tasks[1].id, tasks[2].id])


def test_interrupted_cluster_run_resumes(cluster, tmp_path):
    tasks = _tasks(6, sleep=0.3)

    def interrupt(task_id, outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, helpers.random_task, tmp_path, scheduler=cluster.scheduler_address,
                  progress=False, on_result=interrupt)
    done = os.listdir(tmp_path / "tasks")
    assert len(done) == 1
    report = run_tasks(tasks, helpers.random_task, tmp_path, scheduler=cluster.scheduler_address,
                       resume=True, progress=False)
    assert len(report.skipped) == 1 and len(report.computed) == 5


def test_killing_a_worker_mid_sweep_loses_nothing(cluster, tmp_path):
    """Runs last in this module: it kills one of the cluster's worker processes."""
    tasks = _tasks(8, sleep=0.4)
    run_tasks(tasks, helpers.random_task, tmp_path / "local", workers=1, progress=False)
    pids = cluster_pids(cluster)
    assert len(pids) == 2
    killed = []

    def kill_once(task_id, outcome):
        if not killed:
            # both workers are busy (8 tasks of 0.4 s on 2 workers): one dies mid-task
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = run_tasks(tasks, helpers.random_task, tmp_path / "dask",
                       scheduler=cluster.scheduler_address, progress=False, on_result=kill_once)
    assert killed
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert report.ok and sorted(report.computed) == sorted(t.id for t in tasks)
    _same(_results(tmp_path / "local", tasks), _results(tmp_path / "dask", tasks))
