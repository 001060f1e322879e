"""The compare report's scatter plots: no marker hides another (xbarref.validate.report)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarref.validate.report import _dodge, dodged

values = st.lists(st.sampled_from([0.05, 1.0, 2.5, 50.0]), min_size=2, max_size=30)


@settings(max_examples=80, deadline=None)
@given(values, st.booleans(), st.integers(0, 2**31 - 1))
def test_points_that_would_hide_each_other_are_spread(xs, log_x, seed):
    """Equal x and about equal error (y within 3 % of the y span): the points get
    distinct x, centred on the true value, at most 5 % of the x span wide, ordered by
    error; a point of equal x far from the others in y stays at its value."""
    x = np.array(xs)
    rng = np.random.default_rng(seed)
    err = 10.0 ** rng.choice([-16.0, -3.0, -3.01, -1.0], x.size)  # ties and near-ties
    use = np.ones(x.size, bool)
    out = _dodge(x, use, err, log_x)
    t, u = (np.log10(x), np.log10(out)) if log_x else (x, out)
    y = np.log10(err)
    span = float(t.max() - t.min()) or (1.0 if log_x else abs(float(t.max())))
    close = 0.03 * (float(y.max() - y.min()) or 1.0)
    for v in np.unique(t):
        for level in np.unique(y[t == v]):
            # the run of points at this x whose errors chain within `close` of this level
            members = (t == v) & (np.abs(y - level) <= 3 * close)
            if not np.any(np.abs(y[t == v] - level)[np.abs(y[t == v] - level) > 0] <= close) \
                    and np.sum((t == v) & (y == level)) == 1:
                lone = (t == v) & (y == level)
                assert np.allclose(u[lone], v, rtol=0, atol=1e-12)   # nothing to dodge
                continue
            assert abs(np.mean(u[members]) - v) <= 1e-9 * max(1.0, abs(v))  # centred
            assert np.all(np.abs(u[members] - v) <= 0.025 * span + 1e-12)     # <= 5 % wide
            assert np.unique(u[members]).size == members.sum()               # all visible
            order = np.argsort(u[members], kind="stable")
            assert np.all(np.diff(y[members][order]) >= 0)                   # ordered by error
    assert dodged(x, use, out) == bool(np.any(out != x))


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
