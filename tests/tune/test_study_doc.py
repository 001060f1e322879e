"""validation/study_doc.py: the report's tables replace the results block of the study page."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "validation", "study_doc.py")
spec = importlib.util.spec_from_file_location("study_doc", _PATH)
study_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_doc)

REPORT = """# xbarref study report

- wall time 1 s

## What this run shows

- new finding

## Paired comparisons

| scenario | protocol | comparison | a − b |
|---|---|---|---:|
| drift | same session | x | +1.0 |
| drift | later session | x | +2.0 |
| drift | later - same | x | +3.0 |

## Figures

![a](a.png)
"""

DOC = """# Study

intro

<!-- results:begin -->
### How these tables were made

hand-written timing

### What this run shows

- old finding

<!-- results:end -->

## Conclusions
"""


def test_splice_replaces_only_the_copied_part(tmp_path):
    (tmp_path / "report.md").write_text(REPORT)
    (tmp_path / "doc.md").write_text(DOC)
    assert study_doc.main([str(tmp_path / "report.md"), str(tmp_path / "doc.md")]) == 0
    text = (tmp_path / "doc.md").read_text()
    assert "hand-written timing" in text and "intro" in text and text.endswith("## Conclusions\n")
    assert "old finding" not in text and "- new finding" in text
    assert "### What this run shows" in text and "### Paired comparisons" in text
    assert "+2.0" in text and "+1.0" not in text and "+3.0" not in text
    assert "a.png" not in text and "wall time 1 s" not in text
    # idempotent: the same report again gives the same page
    assert study_doc.main([str(tmp_path / "report.md"), str(tmp_path / "doc.md")]) == 0
    assert (tmp_path / "doc.md").read_text() == text


def test_a_page_without_markers_is_refused(tmp_path):
    (tmp_path / "report.md").write_text(REPORT)
    (tmp_path / "doc.md").write_text("# nothing\n")
    with pytest.raises(SystemExit, match="results:begin"):
        study_doc.main([str(tmp_path / "report.md"), str(tmp_path / "doc.md")])
    assert (tmp_path / "doc.md").read_text() == "# nothing\n"
