"""Write the bundled dataset ``xbarref/data/digits.h5`` (run once; the file is committed).

Source: the copy of the UCI "Optical Recognition of Handwritten Digits" data that
scikit-learn ships (``sklearn.datasets.load_digits``: the 1797-image ``optdigits.tes``
part, 8 x 8 images of integer pixel counts 0..16). scikit-learn is needed only to run
this script; it is not a run-time dependency of xbarref.

What it writes (layout: ``docs/data-format.md``):

- ``x`` = pixel / 16, float32, shape (N, 1, 8, 8), values in [0, 1] (exact: k / 16 is
  a binary fraction);
- a stratified train/test split, 1437 / 360, drawn from
  ``numpy.random.default_rng(SEED)``: for every class the test count is its share of
  360 by the largest-remainder rule, and that many of the class's samples are drawn
  without replacement; both splits are kept in the original order;
- ``/train/index`` and ``/test/index``: row of each sample in ``load_digits()``;
- class names "0".."9", the citation and the licence (CC BY 4.0).

Usage::

    python validation/make_digits.py [OUTPUT]   # default xbarref/data/digits.h5
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from xbarref.io.data import Dataset, load_dataset, save_dataset

SEED = 20261126
N_TEST = 360

CITATION = ("Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits "
            "[Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49")
LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
URL = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
DESCRIPTION = ("UCI optical recognition of handwritten digits, 1797 images of 8 x 8 pixel "
               "counts (0..16) from 13 writers (the optdigits.tes part, as shipped by "
               "scikit-learn's load_digits), scaled to [0, 1] by pixel / 16; stratified "
               f"train/test split of {1797 - N_TEST}/{N_TEST} drawn with "
               f"numpy.random.default_rng({SEED}) by validation/make_digits.py.")


def stratified_split(y, n_test, rng):
    """Return sorted (train_index, test_index) with per-class test counts proportional."""
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n_test / len(y)
    take = np.floor(exact).astype(int)
    remainder = exact - take
    # Largest remainders get one more; ties broken by class order (stable sort).
    for k in np.argsort(-remainder, kind="stable")[: n_test - take.sum()]:
        take[k] += 1
    test = []
    for cls, n in zip(classes, take):
        members = np.flatnonzero(y == cls)
        test.append(rng.choice(members, size=n, replace=False))
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    from sklearn.datasets import load_digits

    out = pathlib.Path(argv[0]) if argv else (
        pathlib.Path(__file__).resolve().parents[1] / "xbarref" / "data" / "digits.h5")
    digits = load_digits()
    pixels = np.asarray(digits.images)
    y = np.asarray(digits.target, dtype=np.int64)
    if pixels.shape != (1797, 8, 8) or pixels.min() < 0 or pixels.max() > 16:
        raise SystemExit(f"unexpected load_digits() data: shape {pixels.shape}")
    if not np.array_equal(pixels, np.rint(pixels)):
        raise SystemExit("unexpected load_digits() data: pixels are not whole numbers")
    x = (pixels / 16.0).astype(np.float32)[:, None, :, :]
    train, test = stratified_split(y, N_TEST, np.random.default_rng(SEED))
    data = Dataset(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test],
                   classes=[str(k) for k in range(10)], name="digits",
                   description=DESCRIPTION, citation=CITATION, licence=LICENCE, url=URL,
                   train_index=train, test_index=test)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(data, out)
    back = load_dataset(out)
    assert np.array_equal(back.x_train, x[train].astype(np.float64))
    assert np.array_equal(back.y_test, y[test])
    per_class = np.bincount(back.y_test, minlength=10)
    print(f"wrote {out} ({out.stat().st_size} bytes): train {len(train)}, test {len(test)}, "
          f"test per class {per_class.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
