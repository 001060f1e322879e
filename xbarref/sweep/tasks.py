"""Task identity and seeds: stable ids, keyed seeds, named random streams.

A task is identified by its *key* (a JSON dict; by default its parameters). The key
fixes the task's id (:func:`task_id`) and, with the run seed, its
:class:`numpy.random.SeedSequence` (:func:`task_seed`): neither depends on the order of
the tasks, the back end or the number of workers.

One seeding scheme for every run
    A task draws from *named* streams spawned from its seed (:func:`named_streams`;
    :func:`streams` from the run seed and the key): the stream ``"programming"`` of a
    task is the same whatever other streams the task asks for and in whatever order,
    and two names give independent streams. A name is mapped to the spawn key of a
    child :class:`~numpy.random.SeedSequence` (the eight 32-bit words of the SHA-256 of
    the name), so adding a stream never shifts the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np

from xbarref.checks import check_int
from xbarref.errors import XbarrefError

__all__ = ["Task", "make_tasks", "task_seed", "task_id", "streams", "named_streams",
           "canonical", "check_seed"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}$")


def _words(text):
    """The eight little-endian 32-bit words of the SHA-256 of ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]


def canonical(params):
    """Canonical JSON of a parameter dict (sorted keys, no spaces); raises if not JSON-able."""
    if not isinstance(params, dict):
        raise XbarrefError(f"params: expected a dict, got {type(params).__name__}")
    for key in params:
        if not isinstance(key, str):
            raise XbarrefError(f"params: keys must be strings, got {key!r}")
    try:
        return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise XbarrefError(f"params: must hold only JSON values (str, int, finite float, bool, "
                           f"lists, dicts): {exc}") from None


def check_seed(sweep_seed):
    """``sweep_seed`` as an int, or raise naming it (an integer >= 0)."""
    return check_int("sweep_seed", sweep_seed, lo=0)


def task_seed(sweep_seed, params):
    """The individual seed of a task.

    Parameters
    ----------
    sweep_seed : int
        Master seed of the sweep (>= 0).
    params : dict
        The task's parameters (JSON values).

    Returns
    -------
    numpy.random.SeedSequence
        Entropy ``[sweep_seed, w0, ..., w7]`` where ``w`` are the eight 32-bit words of
        the SHA-256 digest of the canonical JSON of ``params``: the same parameters
        always give the same seed, whatever else is in the sweep.
    """
    sweep_seed = check_seed(sweep_seed)
    return np.random.SeedSequence([sweep_seed, *_words(canonical(params))])


def task_id(params, prefix=""):
    """A stable, file-name-safe id: ``prefix`` then the first 12 hex digits of the
    SHA-256 of the canonical parameters."""
    digest = hashlib.sha256(canonical(params).encode("utf-8")).hexdigest()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(prefix)).strip("_.")[:80]
    return f"{prefix}-{digest}" if prefix else digest


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes
    ----------
    id : str
        Stable id, also the name of the result file (letters, digits, ``_ . = + -``).
    params : dict
        JSON parameters handed to the task function.
    sweep_seed : int
        Master seed of the run; with :attr:`key` it fixes :attr:`seed`.
    key : dict or None
        What identifies the task: its seed and the resume check use it. ``None`` (the
        default) means ``params``. Give a key without machine-specific values (file
        paths) so that the seed does not change when the files move.
    """

    id: str
    params: dict
    sweep_seed: int = 0
    key: dict | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise XbarrefError(f"task id: {self.id!r} must be 1-200 letters, digits or _ . = + - "
                               "(it names a file)")
        canonical(self.params)
        if self.key is None:
            object.__setattr__(self, "key", self.params)
        canonical(self.key)
        object.__setattr__(self, "sweep_seed", check_seed(self.sweep_seed))

    @property
    def seed(self):
        """The task's :class:`numpy.random.SeedSequence` (``task_seed(sweep_seed, key)``)."""
        return task_seed(self.sweep_seed, self.key)

    def streams(self, *names):
        """Named random streams of this task (:func:`named_streams` of :attr:`seed`)."""
        return named_streams(self.seed, *names)


def make_tasks(param_list, sweep_seed=0, *, prefix=None, keys=None):
    """Tasks for a list of parameter dicts, with ids from :func:`task_id` of their keys.

    Parameters
    ----------
    param_list : iterable of dict
    sweep_seed : int
    prefix : callable(key) -> str, optional
        Readable start of each id (the digest keeps it unique).
    keys : iterable of dict, optional
        One identifying key per task (see :class:`Task`); default the params.

    Raises
    ------
    XbarrefError
        If two tasks have the same key.
    """
    param_list = list(param_list)
    keys = list(param_list if keys is None else keys)
    if len(keys) != len(param_list):
        raise XbarrefError(f"keys: expected {len(param_list)} keys, got {len(keys)}")
    tasks, seen = [], {}
    for i, (params, key) in enumerate(zip(param_list, keys)):
        tid = task_id(key, prefix(key) if prefix else "")
        if tid in seen:
            raise XbarrefError(f"tasks: task {i} has the same parameters as task {seen[tid]}: "
                               f"{canonical(key)}")
        seen[tid] = i
        tasks.append(Task(tid, dict(params), sweep_seed, dict(key)))
    return tasks


def named_streams(seed, *names):
    """Independent random streams, one per name, spawned from a task's seed.

    Parameters
    ----------
    seed : numpy.random.SeedSequence
        A task's seed (the ``seed`` argument of a task function, :attr:`Task.seed`).
    *names : str
        Stream names (non-empty, distinct), e.g. ``"programming"``, ``"read"``.

    Returns
    -------
    dict of str to numpy.random.Generator
        Stream ``name`` draws from the child ``SeedSequence(seed.entropy,
        spawn_key=seed.spawn_key + words(name))``: it depends on the seed and the name
        only, not on the other names or their order.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarref.sweep import named_streams
    >>> seed = np.random.SeedSequence(1)
    >>> a = named_streams(seed, "programming", "read")["programming"].random()
    >>> b = named_streams(seed, "programming")["programming"].random()
    >>> a == b
    True
    """
    if not isinstance(seed, np.random.SeedSequence):
        raise XbarrefError(f"seed: expected a numpy.random.SeedSequence, got {type(seed).__name__}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise XbarrefError(f"names: each stream name must be a non-empty string, got {name!r}")
    if len(set(names)) != len(names):
        raise XbarrefError(f"names: stream names must be distinct, got {list(names)}")
    return {name: np.random.default_rng(np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, *_words(name)))) for name in names}


def streams(run_seed, key, *names):
    """Named random streams of the task ``key`` of a run seeded ``run_seed``.

    ``named_streams(task_seed(run_seed, key), *names)``: the same key gives the same
    numbers in every run with that seed, whatever the other tasks are.

    Parameters
    ----------
    run_seed : int
        Master seed of the run (>= 0).
    key : dict
        The task's identifying key (JSON values).
    *names : str

    Returns
    -------
    dict of str to numpy.random.Generator
    """
    return named_streams(task_seed(run_seed, key), *names)
