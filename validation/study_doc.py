"""Copy the tables of a study report into docs/study.md (the block between the markers).

Usage (from the repository root, after ``xbarref study -o study-out``)::

    python validation/study_doc.py study-out/report.md docs/study.md

Between ``<!-- results:begin -->`` and ``<!-- results:end -->`` of the document, the
hand-written part at the top (``### How these tables were made``, up to the first
copied heading) is kept; everything after it is replaced by the report's sections from
``## What this run shows`` up to (not including) ``## Figures``, one heading level
down. The paired-comparison table keeps its later-session rows (``comparisons.csv`` of
the run has all). The document is written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
FIRST = "## What this run shows"


def report_block(report_text):
    """The report's sections to copy, headings one level down."""
    lines = report_text.splitlines()
    try:
        start = lines.index(FIRST)
    except ValueError:
        raise SystemExit(f"study_doc: the report has no line {FIRST!r}") from None
    out, table = [], None
    for line in lines[start:]:
        if line.startswith("## Figures"):
            break
        if line.startswith("## "):
            table = line[3:]
            line = "#" + line
        elif table == "Paired comparisons" and line.startswith("| ") and " | " in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) > 1 and cells[1] not in ("protocol", "later session"):
                continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def splice(doc_text, block):
    """``doc_text`` with the copied part of its results block replaced by ``block``."""
    if doc_text.count(BEGIN) != 1 or doc_text.count(END) != 1:
        raise SystemExit(f"study_doc: the document needs exactly one {BEGIN} and one {END}")
    head, rest = doc_text.split(BEGIN)
    inner, tail = rest.split(END)
    keep = inner.split("\n#" + FIRST, 1)[0].rstrip("\n")
    return head + BEGIN + keep + "\n\n" + "\n".join(block) + "\n\n" + END + tail


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="report.md of a study run")
    p.add_argument("doc", help="the document to update (docs/study.md)")
    args = p.parse_args(argv)
    with open(args.report, encoding="utf-8") as fh:
        block = report_block(fh.read())
    with open(args.doc, encoding="utf-8") as fh:
        text = splice(fh.read(), block)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-study-doc-", dir=os.path.dirname(os.path.abspath(args.doc)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, args.doc)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"study_doc: {args.doc} now carries {len(block)} lines of {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
