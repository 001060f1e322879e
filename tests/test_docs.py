"""Every shell block and Python snippet of README.md and docs/*.md runs as written.

Each page gets its own temporary folder holding the bundled example files
(``xbarref examples DIR``); its blocks run there in page order, so a block may use the
files an earlier block of the same page wrote. What is checked, by fence language:

``bash`` / ``sh`` / ``shell``
    Run with ``bash -e -o pipefail`` (``xbarref`` and ``python`` on the PATH are this
    interpreter with this checkout). Before that, ``bash -n`` and every ``xbarref``
    command's sub-command and flags against the real parser, and every
    ``python validation/X.py`` names a script that exists (with its ``--help`` run).
``python``
    Run as a script with ``python``; before that, compiled.
``toml``
    Parsed; a ``[sweep]`` table is also read as a sweep specification.
``text`` / ``console`` / ``output``
    Not run: synopses, printed output, formulas.

A block preceded by ``<!-- doc-test: skip-run REASON -->`` (the reason is required) is
not run but still gets every check above short of running. A fence without a language
fails: say what the block is. Independently of the blocks, the pages may not cite files
outside the repository or internal issue numbers, and every relative link and every
repository path in backticks must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")) + [ROOT / "xbarref" / "data" / "README.md"]
SHELL = {"bash", "sh", "shell"}
PYTHON = {"python", "py"}
TEXT = {"text", "console", "output", "toml-output"}
SKIP_RE = re.compile(r"<!--\s*doc-test:\s*skip-run\s+(?P<reason>\S.*?)\s*-->")
FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
BLOCK_TIMEOUT = 900  # seconds for one block


@dataclass
class Block:
    page: Path
    line: int          # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None   # reason, when the block is not run

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page):
    lines = page.read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info").strip()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        skip = None
        for back in range(start - 1, max(start - 4, -1), -1):  # the marker is just above
            if lines[back].strip():
                found = SKIP_RE.search(lines[back])
                skip = found.group("reason") if found else None
                break
        out.append(Block(page, start + 1, info.split()[0].lower() if info else "", "\n".join(body) + "\n", skip))
    return out


BLOCKS = [b for page in PAGES for b in _blocks(page)]
RUN_BLOCKS = [b for b in BLOCKS if b.lang in SHELL | PYTHON | {"toml"}]


# --- the environment the blocks run in ------------------------------------------------

_folders = {}


def _shims(base):
    """A bin folder whose ``xbarref`` and ``python`` are this interpreter and checkout."""
    bin_dir = base / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", f'exec "{sys.executable}" "$@"'),
                         ("python3", f'exec "{sys.executable}" "$@"'),
                         ("xbarref", f'exec "{sys.executable}" -c "import sys; from xbarref.cli '
                                     f'import main; sys.exit(main())" "$@"')):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{target}\n")
        path.chmod(0o755)
    return bin_dir


def _env(base):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PATH"] = os.pathsep.join([str(_shims(base)), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    env["XBARREF_REPO"] = str(ROOT)
    return env


def _folder(page, tmp_path_factory):
    """The page's working folder, with the bundled example files in it."""
    if page not in _folders:
        from xbarref.data import write_examples

        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", page.stem))
        write_examples(folder)
        _folders[page] = folder
    return _folders[page]


def _run(argv, block, cwd, env):
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: {block.lang} block ran longer than {BLOCK_TIMEOUT} s\n"
                    f"--- block ---\n{block.text}")
    if proc.returncode != 0:
        pytest.fail(f"{block.where}: {block.lang} block failed (exit status {proc.returncode}) "
                    f"in {cwd}\n--- block ---\n{block.text}--- stdout (end) ---\n"
                    f"{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-3000:]}",
                    pytrace=False)
    return proc


# --- static checks ---------------------------------------------------------------------

def _commands(text):
    """Simple commands of a shell block as argument lists (comments dropped, lines joined)."""
    text = re.sub(r"\\\n", " ", text)
    commands = []
    for line in text.split("\n"):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        current = []
        for word in words + [";"]:
            if word in (";", "&&", "||", "|", "do", "then", "else", "done", "fi", "&"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def _parse_xbarref(argv, where):
    from xbarref.cli import build_parser

    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            pytest.fail(f"{where}: `xbarref {' '.join(argv)}` is not a valid command: "
                        f"{err.getvalue().strip()}", pytrace=False)


def _check_shell(block):
    proc = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert proc.returncode == 0, f"{block.where}: shell syntax error: {proc.stderr}"
    for words in _commands(block.text):
        while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value cmd
            words = words[1:]
        if not words:
            continue
        if words[0] == "xbarref":
            _parse_xbarref(words[1:], block.where)
        elif words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
            script = ROOT / words[1]
            assert script.is_file(), f"{block.where}: {words[1]} is not a file of the repository"


def _check_static(block):
    if block.lang in SHELL:
        _check_shell(block)
    elif block.lang in PYTHON:
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as exc:
            pytest.fail(f"{block.where}: Python syntax error: {exc}", pytrace=False)
    elif block.lang == "toml":
        try:
            data = tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"{block.where}: not valid TOML: {exc}", pytrace=False)
        return data
    return None


# --- the tests -------------------------------------------------------------------------

def test_blocks_found():
    """The collector sees the blocks (a broken collector would pass every test below)."""
    assert any(b.page.name == "README.md" and b.lang in SHELL for b in BLOCKS)
    assert any(b.lang in PYTHON for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_block_has_language(block):
    known = SHELL | PYTHON | TEXT | {"toml"}
    assert block.lang in known, (
        f"{block.where}: a code block needs a language after the fence, one of "
        f"{', '.join(sorted(known))} (text for synopses and printed output)")


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.where for b in RUN_BLOCKS])
def test_block_runs(block, tmp_path_factory):
    data = _check_static(block)
    if block.skip:
        pytest.skip(f"{block.where}: not run ({block.skip}); syntax and flags checked")
    cwd = _folder(block.page, tmp_path_factory)
    env = _env(cwd.parent / f"{cwd.name}-bin")
    if block.lang in SHELL:
        _run(["bash", "-e", "-o", "pipefail", "-c", block.text], block, cwd, env)
    elif block.lang in PYTHON:
        script = cwd.parent / f"{cwd.name}-block{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        _run([sys.executable, str(script)], block, cwd, env)
    elif block.lang == "toml" and "sweep" in data:
        from xbarref.sweep.spec import loads_spec

        loads_spec(block.text, source=block.where, folder=str(cwd))


def _synopses(text):
    """``xbarref ...`` lines of a text block, continuation lines (indented) joined."""
    out = []
    for line in text.split("\n"):
        stripped = line.strip().lstrip("$ ").strip()
        if stripped.startswith("xbarref "):
            out.append(stripped)
        elif out and line.startswith(" ") and stripped.startswith("["):
            out[-1] += " " + stripped
        elif stripped:
            out.append("")
    return [s for s in out if s]


def _check_synopsis(line, where):
    """Every ``--flag`` of a synopsis line exists for its sub-command."""
    from xbarref.cli import build_parser

    parser = build_parser()
    words = line.split()[1:]
    path = []
    while words:
        sub = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not sub or words[0] not in sub[0].choices:
            break
        parser = sub[0].choices[words[0]]
        path.append(words.pop(0))
    assert path or words[:1] == ["--version"], f"{where}: `{line}` names no sub-command"
    known = set(parser._option_string_actions)
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", " ".join(words)):
        assert flag in known, (f"{where}: `xbarref {' '.join(path)}` has no option {flag} "
                               f"(it has {', '.join(sorted(known))})")


TEXT_BLOCKS = [b for b in BLOCKS if b.lang in TEXT and "xbarref " in b.text]


@pytest.mark.parametrize("block", TEXT_BLOCKS, ids=[b.where for b in TEXT_BLOCKS])
def test_synopsis_flags_exist(block):
    """Synopses and printed command lines in text blocks use options that exist."""
    for line in _synopses(block.text):
        _check_synopsis(line, block.where)


# --- what the pages may cite --------------------------------------------------------------

FORBIDDEN = [
    (re.compile(r"\bissues?\s*#?\d+", re.I), "an internal issue number"),
    (re.compile(r"shared/(spec|DESIGN)"), "a file outside the repository"),
    (re.compile(r"(?<![\w/])DESIGN\.md"), "a file outside the repository (DESIGN.md)"),
    (re.compile(r"/work/"), "a path of the development machine"),
]
LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PATH_RE = re.compile(r"`((?:docs|validation|xbarref|tests)/[\w./-]+)`")


def _source_texts():
    for page in PAGES:
        yield page, page.read_text(encoding="utf-8")
    for path in sorted((ROOT / "xbarref").rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", [p for p, _ in _source_texts()],
                         ids=[str(p.relative_to(ROOT)) for p, _ in _source_texts()])
def test_no_outside_citations(page):
    problems = []
    for number, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                problems.append(f"{page.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}")
    assert not problems, "the docs and the package must stand alone:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_resolve(page):
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        for target in LINK_RE.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if ROOT not in path.parents or not path.exists():
                problems.append(f"{page.relative_to(ROOT)}:{number}: link {target!r} is not a file of the repository")
        for target in PATH_RE.findall(line):
            target = target.rstrip(".")
            if not (ROOT / target).exists():
                problems.append(f"{page.relative_to(ROOT)}:{number}: `{target}` is not a file of the repository")
    assert not problems, "\n".join(problems)


def test_static_checks_can_fail():
    """The checks above reject what they must (so a passing page means something)."""
    page = ROOT / "README.md"
    with pytest.raises(pytest.fail.Exception, match="not a valid command"):
        _check_static(Block(page, 1, "bash", "xbarref solve CASE.h5 --no-such-flag\n", None))
    with pytest.raises(pytest.fail.Exception, match="not a valid command"):
        _check_static(Block(page, 1, "bash", "cd x && xbarref no-such-command\n", None))
    with pytest.raises(AssertionError, match="not a file"):
        _check_static(Block(page, 1, "bash", "python validation/no_such_bench.py --quick\n", None))
    with pytest.raises(pytest.fail.Exception, match="syntax"):
        _check_static(Block(page, 1, "python", "def f(:\n", None))
    _check_static(Block(page, 1, "bash", "xbarref info example_case.h5  # fine\n", None))
    with pytest.raises(AssertionError, match="no option --workers"):
        _check_synopsis("xbarref golden make [--workers N] -o SUITE.h5", "x")
    _check_synopsis("xbarref golden make [--jobs N] [--no-progress] -o SUITE.h5", "x")
    assert FORBIDDEN[0][0].search("see issue 12") and not FORBIDDEN[0][0].search("the issues of a run")
    text = "<!-- doc-test: skip-run needs a cluster -->\n```bash\ndask worker\n```\n"
    assert SKIP_RE.search(text.split("\n")[0]).group("reason") == "needs a cluster"
