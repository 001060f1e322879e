"""``xbarref infer``: run a model file on a dataset file, print accuracy and timing."""

from __future__ import annotations

import sys

BUNDLED_MODEL = "digits_cnn.h5"


def bundled_model_path():
    """Path of the bundled digits CNN (``xbarref/data/digits_cnn.h5``, made by
    ``validation/train_digits.py --seed 0``); the same as ``xbarref.data.path("digits_cnn.h5")``."""
    from xbarref.data import path

    return path(BUNDLED_MODEL)


def register(subparsers):
    """Add ``infer`` to the ``xbarref`` parser."""
    from xbarref.commands.options import add_no_progress

    p = subparsers.add_parser(
        "infer",
        help="run a model on a dataset; print accuracy and timing",
        description="Run a model file (HDF5, docs/model-format.md) on the test split of a "
                    "dataset file (docs/data-format.md) in NumPy and print the accuracy, the "
                    "number of samples and the throughput. Without arguments: the bundled "
                    "digits CNN on the bundled UCI digits. With --hardware the Conv2d and "
                    "Linear layers run on simulated crossbars (with read noise every read is "
                    "a circuit solve: minutes for the bundled digits).",
    )
    p.add_argument("model", nargs="?", default=None, metavar="MODEL.h5",
                   help="model file (default: the bundled digits CNN, "
                        "xbarref.data.path(\"digits_cnn.h5\"))")
    p.add_argument("data", nargs="?", default=None, metavar="DATA.h5",
                   help="dataset file (default: the bundled UCI digits, "
                        "xbarref.data.path(\"digits.h5\"))")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to evaluate")
    p.add_argument("--samples", type=int, default=0, metavar="N",
                   help="evaluate the first N samples of the split (0 = all)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="samples per forward pass (also the step of the progress bar)")
    p.add_argument("--hardware", default=None, metavar="HW.toml",
                   help="run Conv2d/Linear layers on simulated hardware: a file from `xbarref "
                        "hardware` or a preset name (default: digital, no crossbars)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the hardware's random draws")
    add_no_progress(p)
    p.set_defaults(func=cmd_infer)


def load_inputs(model_path, data_path, split="test"):
    """Load the model and the chosen split of the dataset, checking they fit each other.

    Returns
    -------
    model : xbarref.nn.Model
    x, y : numpy.ndarray
    dataset : xbarref.io.data.Dataset
    """
    from xbarref.errors import XbarrefError
    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model

    model = load_model(bundled_model_path() if model_path is None else model_path)
    dataset = load_dataset(data_path)
    x, y = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_train, dataset.y_train)
    data_name = "bundled digits" if data_path is None else data_path
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise XbarrefError(f"DATA: samples of {data_name} have shape {tuple(x.shape[1:])}, the model "
                           f"expects input_shape {tuple(model.input_shape)}")
    if model.classes is not None and len(model.classes) != len(dataset.classes):
        raise XbarrefError(f"DATA: {data_name} has {len(dataset.classes)} classes, the model "
                           f"{len(model.classes)}")
    return model, x, y, dataset


def report(result, model, model_name, data_name, split, batch_size):
    """Lines printed by ``xbarref infer`` for an :class:`xbarref.nn.InferenceResult`."""
    return [
        f"model      {model_name} ({model.name or 'unnamed'}, {model.num_parameters()} parameters)",
        f"data       {data_name}, {split} split",
        f"samples    {result.n_samples}",
        f"accuracy   {result.accuracy:.4f} ({result.n_correct}/{result.n_samples})",
        f"time       {result.seconds:.4f} s ({result.samples_per_second:.0f} samples/s, "
        f"batch size {batch_size})",
    ]


def _infer_with_progress(model, x, y, batch_size, enabled):
    """:func:`xbarref.nn.run_inference` batch by batch, with a progress bar; the same
    batches (so the same random draws) as one call."""
    import numpy as np

    from xbarref.commands.progress import progress_bar
    from xbarref.nn import InferenceResult, run_inference

    parts = []
    with progress_bar(len(y), "inference", enabled, unit="samples") as bar:
        for lo in range(0, len(y), batch_size):
            parts.append(run_inference(model, x[lo:lo + batch_size], y[lo:lo + batch_size],
                                       batch_size))
            bar.update(parts[-1].n_samples)
    n_correct = sum(part.n_correct for part in parts)
    seconds = sum(part.seconds for part in parts)
    return InferenceResult(accuracy=n_correct / len(y), n_samples=len(y), n_correct=n_correct,
                           seconds=seconds, samples_per_second=len(y) / max(seconds, 1e-12),
                           predictions=np.concatenate([part.predictions for part in parts]))


def cmd_infer(args):
    """``xbarref infer``: accuracy and throughput of a model on a dataset."""
    from xbarref.commands.progress import compile_notice
    from xbarref.errors import XbarrefError

    if args.batch_size < 1:
        raise XbarrefError(f"--batch-size: must be >= 1, got {args.batch_size}")
    if args.samples < 0:
        raise XbarrefError(f"--samples: must be >= 0, got {args.samples}")
    model, x, y, _ = load_inputs(args.model, args.data, args.split)
    if args.samples:
        x, y = x[:args.samples], y[:args.samples]
    progress = not args.no_progress
    with compile_notice(enabled=progress):
        if args.hardware is not None:
            import numpy as np

            from xbarref.mapping import map_model

            if progress:
                print(f"programming the model onto {args.hardware} crossbars", file=sys.stderr,
                      flush=True)
            model = map_model(model, args.hardware, np.random.default_rng(args.seed))
        result = _infer_with_progress(model, x, y, args.batch_size, progress)
    if args.hardware is not None:
        print(f"hardware   {args.hardware} (seed {args.seed})")
    model_name = "bundled digits_cnn.h5" if args.model is None else args.model
    data_name = "bundled digits" if args.data is None else args.data
    for line in report(result, model, model_name, data_name, args.split, args.batch_size):
        print(line)
    return 0
