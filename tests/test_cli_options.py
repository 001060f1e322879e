"""One way to say things: every command's help, --jobs, --no-progress, handler names."""

import argparse
import re

import numpy as np
import pytest

from xbarref.cli import build_parser, main
from xbarref.commands.options import default_jobs

LONG_COMMANDS = ["solve", "demo", "infer", "study", "sweep", ("golden", "make"), "spice-check", "compare",
                 ("data", "fashion-mnist"), ("golden", "run-approx")]
PARALLEL_COMMANDS = ["study", "sweep", ("golden", "make")]


def _subparsers(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subparsers(sub, prefix + (name,))


PARSERS = dict(_subparsers(build_parser()))


def _parser(name):
    return PARSERS[name if isinstance(name, tuple) else (name,)]


@pytest.mark.parametrize("name", sorted(PARSERS), ids=[" ".join(n) for n in sorted(PARSERS)])
def test_every_argument_is_described(name):
    parser = PARSERS[name]
    text = parser.format_help()
    assert parser.description, f"{name}: no description"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = "/".join(action.option_strings) or action.metavar or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{name}: {label} has no help"
        if action.option_strings and action.default is not None and not isinstance(action.default, bool):
            shown = parser._get_formatter()._get_help_string(action)
            assert "default" in shown.lower(), f"{name}: {label} does not state its default"
    assert "%(" not in text


def test_handlers_are_named_cmd_command():
    for name, parser in PARSERS.items():
        func = parser.get_default("func")
        if func is not None and func.__name__ != "<lambda>":
            assert func.__name__ == "cmd_" + name[-1].replace("-", "_"), (name, func.__name__)


@pytest.mark.parametrize("name", LONG_COMMANDS)
def test_long_commands_take_no_progress(name):
    assert "--no-progress" in _parser(name)._option_string_actions


@pytest.mark.parametrize("name", PARALLEL_COMMANDS)
def test_one_jobs_flag_with_one_default(name):
    parser = _parser(name)
    action = parser._option_string_actions["--jobs"]
    assert action.default is None  # resolved by options.check_jobs to default_jobs()
    assert f"the number of CPUs, {default_jobs()} here" in re.sub(r"\s+", " ", parser.format_help())
    assert "--workers" not in parser._option_string_actions or name == "sweep"


def test_sweep_workers_is_a_deprecated_alias(tmp_path, capsys):
    from xbarref.data import path

    code = main(["sweep", path("example_sweep.toml"), "-o", str(tmp_path / "a"), "--jobs", "1",
                 "--workers", "1"])
    assert code == 2 and "deprecated alias" in capsys.readouterr().err
    assert main(["sweep", path("example_sweep.toml"), "-o", str(tmp_path / "b"), "--workers", "0"]) == 2
    assert "deprecated" in capsys.readouterr().err
    assert main(["sweep", path("example_sweep.toml"), "-o", str(tmp_path / "c"), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_info_recognises_suites_and_candidates(capsys):
    from xbarref.data import path

    assert main(["info", path("example_suite.h5")]) == 0
    via_info = capsys.readouterr().out
    assert main(["golden", "info", path("example_suite.h5")]) == 0
    assert capsys.readouterr().out == via_info
    assert "16 cases" in via_info
    assert main(["info", path("example_candidate.h5")]) == 0
    out = capsys.readouterr().out
    assert "candidate outputs of 16 case(s)" in out and "first-order" in out
    assert main(["info", path("example_case.h5")]) == 0
    assert "M = 64 rows" in capsys.readouterr().out
