"""Options shared by the sub-commands, so that each is said one way everywhere.

    HelpFormatter      --help shows every option's default (unless its help states it)
    default_jobs()     the default of every ``--jobs``: the CPUs this process may use
    add_jobs(p)        ``--jobs N``
    add_no_progress(p) ``--no-progress``
    check_jobs(args)   the ``--jobs`` value, checked (>= 1, at most max_jobs())
"""

from __future__ import annotations

import argparse
import os

from xbarref.errors import XbarrefError


class HelpFormatter(argparse.HelpFormatter):
    """Append ``(default: X)`` to an option's help unless the help already says it.

    Options whose default is ``None`` or ``False`` state in their help what the absence
    means; the formatter leaves them alone.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text.lower() or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return text + " (default: %(default)s)"


def default_jobs():
    """Default number of local worker processes: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_jobs(parser, what="tasks"):
    """Add ``--jobs N`` (local worker processes; 1 runs in this process)."""
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help=f"local worker processes that run the {what}; 1 runs them in this "
                             f"process (default: the number of CPUs, {default_jobs()} here); "
                             "ignored with --scheduler")


def add_no_progress(parser):
    """Add ``--no-progress`` (no progress bar or compile notice on standard error)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar and no compile notice on standard error")


def check_jobs(args):
    """The value of ``--jobs`` (its default when not given), checked to be >= 1."""
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise XbarrefError(f"--jobs: must be >= 1, got {jobs}")
    limit = max_jobs()
    if jobs > limit:
        from xbarref.errors import SizeLimitError

        raise SizeLimitError(f"--jobs: {jobs:,} local processes, above the limit of {limit:,} "
                             "(XBARREF_MAX_JOBS; default 8 x the CPUs, at least 16)")
    return jobs


def max_jobs():
    """The most local worker processes ``--jobs`` may ask for: 8 x :func:`default_jobs`,
    at least 16, unless the environment variable ``XBARREF_MAX_JOBS`` says otherwise."""
    from xbarref.checks import env_limit

    return env_limit("XBARREF_MAX_JOBS", max(16, 8 * default_jobs()))
