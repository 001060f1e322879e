"""Task functions for the sweep tests (module level: pickled to worker processes)."""

import os
import time

import numpy as np

from xbarref.sweep import named_streams

CALLS = []


def random_task(params, seed):
    """A result drawn only from the task's seed, plus an optional sleep (seconds)."""
    rng = named_streams(seed, "values")["values"]
    time.sleep(params.get("sleep", 0.0))
    values = rng.standard_normal(int(params.get("n", 16))) * (1 + params["i"])
    return {"values": values, "total": float(values.sum()), "i": params["i"]}


def counting_task(params, seed):
    """``random_task`` in this process, recording each call; ``params['interrupt_at']``
    raises KeyboardInterrupt on that call number (an interrupted run)."""
    CALLS.append(params["i"])
    if params.get("interrupt_at") is not None and len(CALLS) == params["interrupt_at"]:
        raise KeyboardInterrupt
    return random_task(params, seed)


def flaky_task(params, seed):
    """Fails always when ``params['fail'] == 'always'``; fails on the first attempt only
    when ``'once'`` (attempts counted with marker files in ``params['marks']``, so it
    works across processes)."""
    mark = os.path.join(params["marks"], f"{params['i']}.{time.time_ns()}.{os.getpid()}")
    open(mark, "w").close()
    n = sum(1 for f in os.listdir(params["marks"]) if f.startswith(f"{params['i']}."))
    if params["fail"] == "always":
        raise RuntimeError(f"task {params['i']} is broken")
    if params["fail"] == "once" and n == 1:
        raise RuntimeError(f"task {params['i']} fails the first time")
    return random_task({"i": params["i"]}, seed)


def bad_result_task(params, seed):
    """Returns a list instead of a dict."""
    return [1, 2, 3]


def crashing_task(params, seed):
    """Kills its own worker process (as a segfault or the OOM killer would) the first
    time task 1 runs; marker files in ``params['marks']``."""
    if params["i"] == 1 and not os.listdir(params["marks"]):
        open(os.path.join(params["marks"], "crashed"), "w").close()
        os._exit(13)
    return random_task({"i": params["i"]}, seed)


def always_crashing_task(params, seed):
    """Task 0 kills its worker process every time; the others work."""
    if params["i"] == 0:
        os._exit(13)
    return random_task(params, seed)


def unpicklable_result_task(params, seed):
    """Task 0 returns something that cannot travel back from a worker process."""
    if params["i"] == 0:
        return {"x": lambda: 1}
    return random_task(params, seed)
