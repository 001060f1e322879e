"""``xbarref examples DIR``: copy the bundled example files into a folder.

The files (:mod:`xbarref.data`) are the ones the README's Quick start and the docs use:
a crossbar case, the digits CNN and its data set, a small golden suite with a
candidate's outputs on it, and a sweep specification.

Exit codes: 0 success, 2 bad input (DIR is a file, or holds a different file of the
same name).
"""

from __future__ import annotations


def register(subparsers):
    """Add ``examples`` to the ``xbarref`` parser."""
    p = subparsers.add_parser(
        "examples", help="copy the bundled example files (case, model, data, suite, ...) into DIR",
        description="Copy every file bundled with xbarref (xbarref.data) into DIR: "
                    "example_case.h5, digits_cnn.h5, digits.h5, example_suite.h5, "
                    "example_candidate.h5 and example_sweep.toml. Files already there and "
                    "identical are kept; a different file of the same name is an error.")
    p.add_argument("folder", metavar="DIR", help="folder to write (created if missing)")
    p.set_defaults(func=cmd_examples)


def cmd_examples(args):
    """``xbarref examples``: copy the bundled files and say what each is."""
    import os

    from xbarref.data import BUNDLED, names, write_examples

    paths = write_examples(args.folder)
    width = max(len(p) for p in paths)
    for name, path in zip(names(), paths):
        print(f"{path:<{width}}  {BUNDLED[name]}")
    print(f"wrote {len(paths)} files to {os.path.abspath(args.folder)}")
    return 0
