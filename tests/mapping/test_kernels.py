"""Numba read-out kernel against a plain NumPy statement of the same ADC."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from xbarref.devices import ADC
from xbarref.mapping._kernels import adc_accumulate


@given(P=st.integers(1, 6), S=st.integers(1, 3), n=st.integers(1, 7), bits=st.integers(2, 10),
       seed=st.integers(0, 2**31 - 1))
def test_adc_accumulate_matches_numpy(P, S, n, bits, seed):
    rng = np.random.default_rng(seed)
    I = rng.normal(size=(P, S * n)) * 2.0
    i_max = rng.uniform(0.0, 2.0, size=S * n)
    i_max[rng.random(S * n) < 0.2] = 0.0
    weight = rng.normal(size=S * n)
    adc = ADC(bits)
    L = adc.levels
    step = i_max / L
    inv = np.divide(1.0, step, out=np.zeros_like(step), where=step > 0)
    y = rng.normal(size=(P, n))
    expected = y + (adc.convert(I, i_max) / np.where(step > 0, step, 1.0) * weight).reshape(P, S, n).sum(axis=1)
    adc_accumulate(I, inv, L, weight, n, y)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
