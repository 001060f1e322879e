"""Train the bundled digits CNN (xbarref/data/digits_cnn.h5) in NumPy, from a seed.

Trains :func:`xbarref.nn.zoo.digits_cnn` on the train split of the bundled UCI digits
(:func:`xbarref.io.data.load_dataset`) with the hand-written gradients: softmax
cross-entropy, SGD with momentum 0.9, weight decay 5e-4 and a cosine learning-rate
schedule, minibatches and initial weights drawn from ``numpy.random.default_rng(seed)``.
The input normalisation (mean and standard deviation of the training pixels) is stored
in the model. It then reports the test accuracy and writes the model file.

Usage::

    python validation/train_digits.py --seed 0 -o xbarref/data/digits_cnn.h5

Exit status 1 if the test accuracy is below ``--min-accuracy`` (default 0.97); the file
is then not written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# The products here are small (batch 64, 8 x 8 images): a second BLAS thread costs more in
# synchronisation than it gains, and on a loaded machine far more (measured 2.8 s vs 28.8 s
# for 3 epochs with another job running). Must be set before NumPy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def train(seed=0, epochs=12, batch_size=64, lr=0.1, log=print):
    """Train digits_cnn; returns (model, test InferenceResult, seconds of training)."""
    from xbarref.io.data import load_dataset
    from xbarref.nn import SGD, cosine_lr, digits_cnn, fit, run_inference

    data = load_dataset()
    rng = np.random.default_rng(seed)
    normalization = dict(mean=[float(data.x_train.mean())], std=[float(data.x_train.std())])
    model = digits_cnn(len(data.classes), classes=data.classes, normalization=normalization, rng=rng)
    optimizer = SGD(model.named_parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    start = time.perf_counter()
    fit(model, data.x_train, data.y_train, optimizer, epochs=epochs, batch_size=batch_size,
        rng=rng, lr_schedule=cosine_lr(lr, epochs), log=log)
    seconds = time.perf_counter() - start
    return model, run_inference(model, data.x_test, data.y_test), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the bundled digits CNN in NumPy.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--min-accuracy", type=float, default=0.97)
    parser.add_argument("-o", "--output", help="model file to write (HDF5); omit to only train")
    args = parser.parse_args(argv)

    model, result, seconds = train(args.seed, args.epochs, args.batch_size, args.lr)
    print(f"digits_cnn, seed {args.seed}: {model.num_parameters()} parameters, trained in "
          f"{seconds:.1f} s; test accuracy {result.accuracy:.4f} "
          f"({result.n_correct}/{result.n_samples})")
    if result.accuracy < args.min_accuracy:
        print(f"test accuracy below {args.min_accuracy}: not writing the model", file=sys.stderr)
        return 1
    if args.output:
        from xbarref.io.model import save_model
        save_model(model, args.output)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
