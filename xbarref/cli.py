"""The ``xbarref`` command.

Each sub-command lives in a module of :mod:`xbarref.commands` that defines
``register(subparsers)``; it adds its parser and sets ``func(args) -> int`` as default.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from xbarref.errors import ConvergenceError, XbarrefError

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
]


def build_parser():
    from xbarref import __version__

    parser = argparse.ArgumentParser(
        prog="xbarref",
        description="Circuit-exact reference simulator for analog in-memory-computing crossbars.",
    )
    parser.add_argument("--version", action="version", version=f"xbarref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (XbarrefError, ConvergenceError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"xbarref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xbarref {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
