"""The compare report's scatter plots: no marker hides another (xbarref.validate.report)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarref.validate.report import _dodge, dodged

values = st.lists(st.sampled_from([0.0, 0.05, 1.0, 2.5, 50.0]), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(values, st.booleans(), st.integers(0, 2**31 - 1))
def test_equal_values_are_spread_around_their_value(xs, log_x, seed):
    x = np.array(xs) + (1e-3 if log_x else 0.0)  # positive on a log axis
    err = np.random.default_rng(seed).uniform(0, 1, x.size)
    use = np.ones(x.size, bool)
    out = _dodge(x, use, err, log_x)
    assert np.unique(out).size == x.size                      # every point its own place
    t, u = (np.log10(x), np.log10(out)) if log_x else (x, out)
    span = float(t.max() - t.min()) or 1.0
    for v in np.unique(t):
        same = t == v
        assert abs(np.mean(u[same]) - v) <= 1e-9 * max(1.0, abs(v))     # centred on the value
        assert np.all(np.abs(u[same] - v) <= 0.012 * span * x.size)    # and close to it
        order = np.argsort(u[same])                           # left to right by error
        assert np.all(np.diff(err[same][order]) >= 0)
    distinct = np.unique(x)
    if distinct.size > 1:                                     # clusters stay apart and in order
        for a, b in zip(distinct[:-1], distinct[1:]):
            if (np.log10(b) - np.log10(a) if log_x else b - a) > 0.012 * span * x.size:
                assert out[x == a].max() < out[x == b].min()
    assert dodged(x, use) == (distinct.size < x.size)


def test_unused_points_do_not_move():
    x = np.array([1.0, 1.0, 1.0, 2.0])
    use = np.array([True, True, False, True])
    out = _dodge(x, use, np.zeros(4), True)
    assert out[2] == 1.0 and out[0] != out[1] and out[3] == 2.0


def test_progress_counts_every_case_and_ends_at_every_plot(tmp_path):
    """The callbacks behind ``compare``'s bars: one call per case, one per plot, ending
    exactly at the total they announce (so a bar neither stops short nor overshoots)."""
    import xbarref.data
    from xbarref.validate.compare import compare_files
    from xbarref.validate.report import write_report

    cases, plots = [], []
    result = compare_files(xbarref.data.path("example_suite.h5"),
                           xbarref.data.path("example_candidate.h5"), tol=0.1,
                           progress=lambda d, t: cases.append((d, t)))
    assert [d for d, _ in cases] == list(range(1, len(result.cases) + 1))
    assert {t for _, t in cases} == {len(result.cases)}
    write_report(result, tmp_path / "r", progress=lambda d, t: plots.append((d, t)))
    written = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert [d for d, _ in plots] == list(range(1, plots[-1][1] + 1))
    assert plots[-1][1] == len(written) == 7        # no probes in this suite: no error maps
