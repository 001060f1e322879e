"""Train the bundled Fashion-MNIST CNN (xbarref/data/fashion_cnn.h5) in NumPy, from a seed.

Trains :func:`xbarref.nn.zoo.fashion_cnn` on the train split (55 000 images) of a
Fashion-MNIST dataset file written by ``xbarref data fashion-mnist`` (or, without
``--data``, read straight from the IDX files of the Debian package) with the hand-written
gradients: softmax cross-entropy, SGD with momentum 0.9, weight decay 5e-4, a cosine
learning-rate schedule, batch 128; minibatches and initial weights drawn from
``numpy.random.default_rng(seed)``. The input normalisation (mean and standard deviation
of the training pixels) is stored in the model. After every epoch it reports the
accuracy on the validation split (5 000 training images held out by the data import);
the test split is evaluated once, at the end. It logs the wall-clock and CPU time and the
machine's load average (the machine may be shared).

Usage::

    xbarref data fashion-mnist -o fm.h5
    python validation/train_fashion.py --data fm.h5 --seed 0 \\
        -o xbarref/data/fashion_cnn.h5 --log xbarref/data/fashion_cnn_training.log

Exit status 1 if the test accuracy is below ``--min-accuracy`` (default 0.90); the model
file is then not written.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

# One BLAS thread: on the shared 2-core machine a second OpenBLAS thread made a training
# step 5x slower (34 s instead of 6.7 s for 1024 images with other jobs running).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


class _Log:
    """Print lines and append them to a file (flushed at once, so a running log can be read)."""

    def __init__(self, path=None):
        self.handle = None if path is None else open(path, "w", encoding="utf-8")

    def __call__(self, line):
        print(line, flush=True)
        if self.handle is not None:
            self.handle.write(line + "\n")
            self.handle.flush()


def _load(path):
    from xbarref.io.data import load_dataset
    from xbarref.io.idx import load_fashion_mnist

    data = load_fashion_mnist() if path is None else load_dataset(path, dtype=np.float32)
    if not data.has_validation:
        raise SystemExit(f"{path}: the dataset has no validation split (write it with "
                         "`xbarref data fashion-mnist`)")
    return data


def train(data, seed=0, epochs=6, batch_size=128, lr=0.1, weight_decay=5e-4, log=print):
    """Train fashion_cnn on ``data``; returns (model, history, wall seconds, CPU seconds)."""
    from xbarref.nn import SGD, cosine_lr, fashion_cnn, fit

    rng = np.random.default_rng(seed)
    x = data.x_train
    normalization = dict(mean=[float(x.mean(dtype=np.float64))], std=[float(x.std(dtype=np.float64))])
    model = fashion_cnn(len(data.classes), classes=data.classes, normalization=normalization, rng=rng)
    optimizer = SGD(model.named_parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    wall, cpu = time.perf_counter(), time.process_time()
    history = fit(model, x, data.y_train, optimizer, epochs=epochs, batch_size=batch_size,
                  rng=rng, lr_schedule=cosine_lr(lr, epochs), x_val=data.x_val,
                  y_val=data.y_val, log=log)
    return model, history, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the bundled Fashion-MNIST CNN in NumPy.")
    parser.add_argument("--data", default=None, metavar="FM.h5",
                        help="dataset file from `xbarref data fashion-mnist` (default: read "
                             "the Debian package's IDX files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--min-accuracy", type=float, default=0.90)
    parser.add_argument("-o", "--output", help="model file to write (HDF5); omit to only train")
    parser.add_argument("--log", default=None, help="also write the log to this file")
    args = parser.parse_args(argv)

    from xbarref import __version__
    from xbarref.nn import run_inference

    log = _Log(args.log)
    log(f"train_fashion.py: xbarref {__version__}, numpy {np.__version__}, python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}")
    log(f"settings: seed {args.seed}, epochs {args.epochs}, batch {args.batch_size}, SGD lr "
        f"{args.lr} (cosine), momentum 0.9, weight decay {args.weight_decay}")
    data = _load(args.data)
    log(f"data: {args.data or 'Debian IDX files'}: {len(data.y_train)} train / "
        f"{len(data.y_val)} validation / {len(data.y_test)} test")
    load_start = os.getloadavg()
    log(f"load average at start (1/5/15 min): {load_start[0]:.2f} {load_start[1]:.2f} "
        f"{load_start[2]:.2f}")
    model, history, wall, cpu = train(data, args.seed, args.epochs, args.batch_size, args.lr,
                                      args.weight_decay, log=log)
    load_end = os.getloadavg()
    log(f"load average at end (1/5/15 min): {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    result = run_inference(model, data.x_test, data.y_test)
    log(f"fashion_cnn, seed {args.seed}: {model.num_parameters()} parameters, trained in "
        f"{wall:.1f} s wall-clock ({cpu:.1f} s CPU time of this process); validation accuracy "
        f"{history[-1]['val_accuracy']:.4f}; test accuracy {result.accuracy:.4f} "
        f"({result.n_correct}/{result.n_samples})")
    if result.accuracy < args.min_accuracy:
        log(f"test accuracy below {args.min_accuracy}: not writing the model")
        return 1
    if args.output:
        from xbarref.io.model import save_model
        save_model(model, args.output)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
