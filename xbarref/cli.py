"""The ``xbarref`` command.

Each sub-command lives in a module of :mod:`xbarref.commands` that defines
``register(subparsers)``; it adds its parser and sets ``func(args) -> int`` as default,
a function named ``cmd_<command>``. Options said by several commands (``--jobs``,
``--no-progress``) come from :mod:`xbarref.commands.options`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

from xbarref import _signals
from xbarref._malloc import tune_allocator
from xbarref.errors import ERRORS, OutputExistsError

# Modules that register sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "xbarref.commands.case",
    "xbarref.commands.data",
    "xbarref.commands.hardware",
    "xbarref.commands.infer",
    "xbarref.commands.golden",
    "xbarref.commands.compare",
    "xbarref.commands.study",
    "xbarref.commands.sweep",
    "xbarref.commands.examples",
]


class _Parser(argparse.ArgumentParser):
    """Every (sub-)parser shows the defaults of its options (see xbarref.commands.options)."""

    def __init__(self, *args, **kwargs):
        from xbarref.commands.options import HelpFormatter

        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser():
    from xbarref import __version__

    parser = _Parser(
        prog="xbarref",
        description="Circuit-exact reference simulator for analog in-memory-computing crossbars.",
        epilog="New here? `xbarref examples .` copies the bundled example files into this "
               "folder and `xbarref demo` solves the example crossbar; README.md's Quick start "
               "goes on from there. `xbarref COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"xbarref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _error_line(command, exc):
    """The one-line message for an error that reached the command."""
    if isinstance(exc, OutputExistsError) and exc.path is not None:
        return f"{exc.path}: exists; pass --overwrite to replace it"
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        what = exc.strerror or type(exc).__name__
        names = [n for n in (exc.filename, exc.filename2) if n is not None]
        if names:
            return f"{': '.join(os.fsdecode(n) for n in names)}: {what}"
        return str(exc) or what
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ERRORS):
        # a ValueError from below xbarref's own checks: say what kind it is
        text = f"{type(exc).__name__}: {text}"
    return text


def _quiet_broken_pipe():
    """After EPIPE on stdout: point stdout at /dev/null so the interpreter's final flush
    does not fail again (the reader went away; nothing more is written)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None):
    """Run the ``xbarref`` command; returns its exit status.

    0 success; 1 a check that failed (the command says which); 2 bad input, a failed
    computation or an operating-system error (one line on stderr naming the file or
    option); 130 Ctrl-C; 143 SIGTERM. A closed standard output (``xbarref ... | head``)
    ends the command quietly.
    """
    saved = _signals.install()
    tune_allocator()  # heap-kept temporaries for heavy inference (xbarref._malloc); no number changes
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    finally:
        _signals.restore(saved)  # called in-process (tests, notebooks): leave no handler behind


def _show_warning(message, category, filename, lineno, file=None, line=None):
    with contextlib.suppress(OSError, ValueError):
        print(f"xbarref: warning: {message}", file=sys.stderr)


def _run(argv):
    command = "?"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except KeyboardInterrupt as exc:  # also Terminated (SIGTERM)
        status = _signals.exit_status(exc)
        with contextlib.suppress(OSError, ValueError):
            print(f"xbarref {command}: {'terminated' if status == 143 else 'interrupted'}",
                  file=sys.stderr)
        return status
    except (*ERRORS, OSError, ValueError) as exc:
        with contextlib.suppress(OSError, ValueError):
            print(f"xbarref {command}: error: {_error_line(command, exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        with contextlib.suppress(OSError, ValueError):
            print(f"xbarref {command}: error: out of memory (a size above what this machine "
                  "can hold; see the size limits in docs/formats.md)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
