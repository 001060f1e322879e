"""Small suites built from hand-chosen specifications for the validate tests."""

from xbarref.validate.generate import _spec, solve_case
from xbarref.validate.suite import Suite


def spec(M, N, regime="moderate", **kw):
    kw.setdefault("B", 4)
    return _spec(M, N, regime, **kw)


def tiny(M, N, r=1e-4, **kw):
    """Every resistance ``r`` ohm: IR drop ~ r G M N ~ 1e-6 of the outputs."""
    s = spec(M, N, "weak", r_wire=r, **kw)
    s["r_source"] = s["r_sink"] = r
    return s


def make(specs, seed=0, ngspice=False, preset="test"):
    """A Suite of the given (name, spec) pairs, solved in this process."""
    cases = [solve_case(name, s, [seed, i], ngspice=ngspice) for i, (name, s) in enumerate(specs)]
    return Suite(cases=cases, preset=preset, seed=seed, generator="tests")


def regimes_suite():
    """Cases from no IR drop to strong IR drop, linear and sinh, square and not."""
    return make([
        ("ideal_8x8", spec(8, 8, "ideal")),
        ("tiny_16x16", tiny(16, 16)),
        ("tiny_12x20", tiny(12, 20, pattern="quantized", inputs="bipolar")),
        ("strong_32x32", spec(32, 32, "strong")),
        ("strong_24x8_sinh", spec(24, 8, "strong", device="sinh", k=4.0)),
        ("nonuniform_16x24", spec(16, 24, "nonuniform", pattern="differential", inputs="bipolar")),
        ("row_1x12", spec(1, 12, "moderate", inputs="binary")),
        ("col_12x1", spec(12, 1, "moderate", pattern="sparse")),
    ])
