"""The Examples sections of the docstrings (numpydoc) run as doctests.

Every module of the package is imported and its docstrings' ``>>>`` examples are run
(in a temporary working folder, so examples that write files leave nothing behind).
"""

import doctest
import importlib
import pkgutil

import pytest

import xbarref

# Modules that need an optional extra to import; their doctests need it too.
NEEDS = {"xbarref.io.torch": "torch"}


def _modules():
    names = ["xbarref"]
    for info in pkgutil.walk_packages(xbarref.__path__, "xbarref."):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_some_modules_have_examples():
    """Guard against a collector that finds nothing (every test below would then pass)."""
    finder = doctest.DocTestFinder()
    found = sum(len([t for t in finder.find(importlib.import_module(name)) if t.examples])
                for name in ("xbarref.data", "xbarref.io.model"))
    assert found >= 2


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch, request):
    if name in NEEDS:
        request.getfixturevalue(f"{NEEDS[name]}_module")
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples and t.name.startswith(name)]
    failures = []
    for test in tests:
        if test.filename is not None and not str(test.filename).endswith(".py"):
            continue
        out = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append(f"{test.name} ({test.filename}:{test.lineno}):\n" + "".join(out))
    assert not failures, "\n".join(failures)
