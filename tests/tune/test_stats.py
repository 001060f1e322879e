"""Two-way bootstrap intervals over chips and images."""

import numpy as np
import pytest

from xbarref.tune.stats import binomial_se, mean_ci, paired_ci


def test_interval_width_matches_the_binomial_for_iid_hits():
    rng = np.random.default_rng(0)
    hits = rng.random((10, 360)) < 0.9
    m, lo, hi = mean_ci(hits, np.random.default_rng(1), 2000)
    assert lo < m < hi and m == hits.mean()
    se = binomial_se(0.9, hits.size)
    # iid chips: the two-way bootstrap resamples chips and images; its width is about
    # sqrt(2) x the binomial one (both axes carry the same variance), well within 1-3x
    assert 2 * 1.96 * se < hi - lo < 3 * 2 * 1.96 * se


def test_chip_to_chip_spread_widens_the_interval():
    rng = np.random.default_rng(0)
    p = np.clip(0.8 + 0.1 * rng.standard_normal((10, 1)), 0, 1)        # chips differ
    hits = rng.random((10, 360)) < p
    _, lo, hi = mean_ci(hits, np.random.default_rng(1), 2000)
    flat = rng.random((10, 360)) < hits.mean()
    _, lo2, hi2 = mean_ci(flat, np.random.default_rng(1), 2000)
    assert hi - lo > 1.5 * (hi2 - lo2)


def test_paired_differences():
    rng = np.random.default_rng(3)
    a = rng.random((10, 360)) < 0.9
    assert paired_ci(a, a, np.random.default_rng(1)) == (0.0, 0.0, 0.0)
    b = a.copy()
    b[:, :36] = False                                                  # a few images lost on every chip
    d, lo, hi = paired_ci(a, b, np.random.default_rng(1))
    assert d == pytest.approx((a.mean() - b.mean()))
    assert 0 < lo <= d <= hi
    noise = rng.random((10, 360)) < 0.9
    _, lo, hi = paired_ci(a, noise, np.random.default_rng(1))
    assert lo < 0 < hi                                                 # same distribution: within noise
    with pytest.raises(ValueError):
        paired_ci(a, a[:5], np.random.default_rng(1))


def test_one_chip_resamples_images_only():
    hits = np.random.default_rng(0).random((1, 200)) < 0.7
    m, lo, hi = mean_ci(hits, np.random.default_rng(1), 1000)
    assert lo < m < hi and hi - lo < 0.2


def test_intervals_on_processes_are_the_intervals_in_this_process():
    from xbarref.tune.stats import intervals

    rng = np.random.default_rng(5)
    reqs = []
    for i in range(9):
        A = rng.random((3, 40)) < 0.8
        B = None if i % 2 else rng.random((3, 40)) < 0.7
        reqs.append((A, B, np.random.default_rng(100 + i), 200))
    one = intervals(reqs, jobs=1)
    # fresh generators: the requests above were consumed by the first call
    reqs2 = [(a, b, np.random.default_rng(100 + i), n) for i, (a, b, _g, n) in enumerate(reqs)]
    two = intervals(reqs2, jobs=2)
    assert one == two and len(one) == 9
    assert all(lo <= m <= hi for m, lo, hi in one)
