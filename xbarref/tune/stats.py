"""Confidence intervals of the study: bootstrap over chips *and* test images.

A study accuracy is a mean over a (chips x images) matrix of hits. Both are samples:
the chips from the hardware distribution, the images from the data distribution. The
95 % intervals here resample both independently (a two-way bootstrap:
:func:`scipy.stats.bootstrap` with the chip indices and the image indices as two
independent samples, percentile method). A comparison of two mitigations is *paired*:
the difference of their hit matrices on the same chips and images is resampled.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["mean_ci", "paired_ci", "binomial_se", "intervals"]


def _counts(idx, size):
    """Per resample (row of ``idx``, shape (B, k)), how often each of ``size`` indices was
    drawn: (B, size) float counts (one ``bincount`` over offset indices)."""
    B = idx.shape[0]
    flat = (idx + size * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * size).reshape(B, size).astype(np.float64)


def _ci(M, rng, resamples, confidence=0.95):
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.size == 0:
        raise ValueError("expected a non-empty (chips, images) matrix")
    chips, images = M.shape
    mean = float(M.mean())
    if chips * images == 1 or np.all(M == M.flat[0]):
        return mean, mean, mean

    def statistic(ci, ii, axis=-1):
        ci = np.asarray(ci, dtype=np.intp)
        ii = np.asarray(ii, dtype=np.intp)
        if ci.ndim == 1:
            return M[np.ix_(ci, ii)].mean()
        # vectorized: ci (B, chips), ii (B, images); the mean over the resampled
        # (chip, image) grid is sum_c sum_i n_c m_i M[c, i] / (chips * images) with the
        # resample counts n (chips) and m (images)
        B = ci.shape[0]
        m = _counts(ii, images)
        n = _counts(ci, chips)
        # every term is an integer (counts times hits or hit differences), so the sum is
        # exact in float64 in any order: two BLAS-backed steps instead of a 3-operand einsum
        return np.einsum("bi,bi->b", n @ M, m) / (chips * images)

    if chips == 1 or images == 1:
        # one chip (or one image): only the other axis can be resampled
        v = M.ravel()

        def statistic(idx, axis=-1):
            return v[np.asarray(idx, dtype=np.intp)].mean(axis=-1)

        res = stats.bootstrap((np.arange(v.size),), statistic, vectorized=True, n_resamples=int(resamples),
                              batch=200, confidence_level=confidence, method="percentile", random_state=rng)
        lo, hi = res.confidence_interval
        return mean, float(lo), float(hi)
    res = stats.bootstrap((np.arange(chips), np.arange(images)), statistic, paired=False,
                          vectorized=True, n_resamples=int(resamples), batch=200,
                          confidence_level=confidence, method="percentile", random_state=rng)
    lo, hi = res.confidence_interval
    return mean, float(lo), float(hi)


def mean_ci(hits, rng, resamples=2000):
    """``(mean, low, high)``: the mean of a (chips, images) hit matrix and its 95 %
    two-way bootstrap interval."""
    return _ci(hits, rng, resamples)


def paired_ci(hits_a, hits_b, rng, resamples=2000):
    """``(difference, low, high)`` of ``mean(a) - mean(b)`` on the same chips and images,
    with its paired 95 % two-way bootstrap interval. The difference is *within noise*
    when the interval contains 0."""
    a = np.asarray(hits_a, dtype=np.float64)
    b = np.asarray(hits_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_ci: expected the same chips and images, got {a.shape} and {b.shape}")
    return _ci(a - b, rng, resamples)


def _interval(request):
    a, b, rng, resamples = request
    return mean_ci(a, rng, resamples) if b is None else paired_ci(a, b, rng, resamples)


def intervals(requests, jobs=1):
    """The intervals of many requests ``(hits_a, hits_b or None, rng, resamples)``, in
    order: :func:`mean_ci` of ``hits_a`` (``hits_b`` None) or :func:`paired_ci` of
    ``a - b``. ``jobs > 1`` spreads them over local processes
    (:func:`xbarref.sweep.backends.local_map`); every request carries its own generator,
    so the numbers do not depend on ``jobs``."""
    requests = list(requests)
    if jobs > 1 and len(requests) >= 4 * jobs:
        from xbarref.sweep.backends import local_map

        return local_map(_interval, requests, jobs)
    return [_interval(r) for r in requests]


def binomial_se(p, n):
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy on ``n`` images."""
    return float(np.sqrt(max(p * (1 - p), 0.0) / max(n, 1)))
