"""The package's imports point down only: read from the source with :mod:`ast`.

Every ``import`` statement of every module under ``xbarref/`` is read, at module level and
inside functions alike (an import moved into a function to hide a cycle is still an
import). The packages stand on layers, lowest first; an import may reach its own
package or a lower layer, never a higher one, and private modules or names (a leading
underscore) are used only inside the package that defines them. Each rule is also run
on a small made-up graph that breaks it, so a checker that accepts everything fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "xbarref"

#: The layers, lowest first. ``xbarref`` itself (the root's ``__version__`` and lazy
#: shortcuts) may be imported from anywhere; top-level modules count as packages.
LAYERS = [
    {"xbarref.errors"},
    {"xbarref.checks", "xbarref._signals", "xbarref._compile_notice", "xbarref._malloc"},
    {"xbarref.circuit", "xbarref.nn"},
    {"xbarref.devices"},
    {"xbarref.io"},
    {"xbarref.config"},
    {"xbarref.mapping"},
    {"xbarref.sweep"},
    {"xbarref.tune", "xbarref.validate"},
    {"xbarref.data"},
    {"xbarref.commands"},
    {"xbarref.cli"},
]
LEVEL = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module, path):
    """(importer, imported module, imported name or None, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield module, alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    yield module, full, None, node.lineno
                else:
                    yield module, base, alias.name, node.lineno


def _all_imports():
    return [imp for module, path in sorted(MODULES.items()) for imp in _imports(module, path)
            if imp[1].startswith("xbarref")]


def _package(module):
    """``xbarref.io.h5`` -> ``xbarref.io``; ``xbarref.cli`` -> ``xbarref.cli``."""
    return ".".join(module.split(".")[:2])


def upward_imports(imports):
    """The imports that reach a higher layer than their importer's."""
    bad = []
    for importer, target, _name, line in imports:
        src, dst = _package(importer), _package(target)
        if dst == "xbarref" or src == dst:
            continue
        if LEVEL[dst] >= LEVEL[src]:
            bad.append(f"{importer}:{line} imports {target} ({dst} is not below {src})")
    return bad


def private_imports(imports):
    """Private modules or names taken from another package."""
    bad = []
    for importer, target, name, line in imports:
        if _package(importer) == _package(target):
            continue
        private_module = any(p.startswith("_") for p in target.split(".")[2:])
        private_name = name is not None and name.startswith("_") and name != "__version__"
        if target == "xbarref._signals":    # the root's own helper, shared by its subpackages
            private_module = False
        if private_module or private_name:
            bad.append(f"{importer}:{line} imports {target}{'.' + name if name else ''}")
    return bad


def module_cycles(imports):
    """Strongly connected sets of more than one module (imports in functions included)."""
    graph = {}
    for importer, target, _name, _line in imports:
        if target in MODULES and target != importer and target != "xbarref":
            graph.setdefault(importer, set()).add(target)
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    packages = {_package(m) for m in MODULES} - {"xbarref"}
    assert packages == set(LEVEL), packages ^ set(LEVEL)


def test_imports_point_down():
    assert upward_imports(_all_imports()) == []


def test_nothing_below_commands_imports_commands():
    bad = [imp for imp in _all_imports() if _package(imp[1]) in ("xbarref.commands", "xbarref.cli")
           and _package(imp[0]) not in ("xbarref.commands", "xbarref.cli")]
    assert bad == []


def test_no_private_helper_crosses_a_package():
    assert private_imports(_all_imports()) == []


def test_no_import_cycles():
    assert module_cycles(_all_imports()) == []


@pytest.mark.parametrize("check, imports", [
    (upward_imports, [("xbarref.io.model", "xbarref.data", "path", 1)]),
    (upward_imports, [("xbarref.tune.study", "xbarref.commands.infer", "load_inputs", 1)]),
    (private_imports, [("xbarref.sweep.spec", "xbarref.io._h5", "x", 1)]),
    (private_imports, [("xbarref.sweep.spec", "xbarref.io.h5", "_env_limit", 1)]),
    (module_cycles, [("xbarref.circuit.solve", "xbarref.circuit.newton", None, 1),
                     ("xbarref.circuit.newton", "xbarref.circuit.solve", None, 9)]),
])
def test_the_checks_can_fail(check, imports):
    assert check(imports) != []


def _raised_texts(path):
    """(line, text) of every string literal inside a ``raise`` statement of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def flag_messages(modules):
    import re

    flag = re.compile(r"(^|[\s`(])--[a-z]")
    return [f"{module}:{line}: {text!r}" for module, path in modules
            for line, text in _raised_texts(path) if flag.search(text)]


def test_library_messages_name_arguments_not_flags():
    library = [(m, p) for m, p in sorted(MODULES.items())
               if _package(m) not in ("xbarref.commands", "xbarref.cli")]
    assert flag_messages(library) == []


def test_flag_message_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(x):\n    raise ValueError(f"--report: {x!r} exists")\n')
    assert len(flag_messages([("bad", bad)])) == 1


def renames(modules):
    """Calls of ``os.replace`` / ``os.rename`` (a hand-written atomic write) in ``modules``."""
    found = []
    for module, path in modules:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("replace", "rename")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"):
                found.append(f"{module}:{node.lineno}")
    return found


#: The one atomic-write helper (the HDF5 writer of :mod:`xbarref.io.h5` commits through it).
ATOMIC_WRITERS = {"xbarref.io.atomic"}


def test_one_atomic_write_helper():
    others = [(m, p) for m, p in sorted(MODULES.items()) if m not in ATOMIC_WRITERS]
    assert renames(others) == []


def test_rename_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f(a, b):\n    os.replace(a, b)\n")
    assert renames([("bad", bad)]) == ["bad:4"]
