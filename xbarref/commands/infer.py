"""``xbarref infer``: run a model file on a dataset file, print accuracy and timing."""

from __future__ import annotations

import sys

from xbarref.io.inputs import BUNDLED_MODEL, bundled_model_path, load_inputs  # noqa: F401  (re-exported)


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
                   help="samples per forward pass")
    p.add_argument("--hardware", default=None, metavar="HW.toml",
                   help="run Conv2d/Linear layers on simulated hardware: a file from `xbarref "
                        "hardware` or a preset name (default: digital, no crossbars)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the hardware's random draws")
    add_no_progress(p)
    p.set_defaults(func=cmd_infer)


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


class _CountingMatmul:
    """A layer's matrix-product operator that reports the work of every call.

    ``forward`` calls the wrapped operator and then ``report(rows x weight)``; for a layer
    on simulated hardware ``weight`` is its number of tiles, so the work counts crossbar
    tile reads (what the run's time is made of). Nothing else changes: the results are
    those of the wrapped operator.
    """

    def __init__(self, inner, weight, report):
        self.inner, self.weight, self.report = inner, weight, report

    def forward(self, x2d, w2d):
        y = self.inner.forward(x2d, w2d)
        self.report(len(x2d) * self.weight)
        return y

    def backward(self, grad_y2d):
        return self.inner.backward(grad_y2d)


def _rows_per_sample(digital, sample):
    """Rows of the matrix product of each Conv2d / Linear layer for one sample."""
    rows = []
    layers = [layer for _, layer in digital.layers_of_kind("conv2d", "linear")]
    inner = [layer.matmul for layer in layers]
    for k, layer in enumerate(layers):
        layer.matmul = _CountingMatmul(inner[k], 1, rows.append)
    try:
        digital(sample[:1])
    finally:
        for layer, op in zip(layers, inner):
            layer.matmul = op
    return rows


def _infer_with_progress(model, x, y, batch_size, enabled, digital=None):
    """:func:`xbarref.nn.run_inference` batch by batch, with a progress bar; the same
    batches (so the same random draws) as one call.

    With ``digital`` (the model before :func:`xbarref.map_model`; ``model`` is then its
    mapped copy) the bar advances with every Conv2d / Linear pass on the crossbars,
    weighted by the tile reads it makes, so that the time left is meaningful within a
    batch too; otherwise it advances batch by batch.
    """
    import numpy as np

    from xbarref.commands.progress import progress_bar
    from xbarref.nn import InferenceResult, run_inference

    mapped = [layer for _, layer in model.layers_of_kind("conv2d", "linear")]
    by_layer = digital is not None and enabled and len(y) > 0 and all(
        hasattr(getattr(layer.matmul, "matrix", None), "tiles") for layer in mapped)
    parts = []
    if by_layer:
        tiles = [len(layer.matmul.matrix.tiles) for layer in mapped]
        rows = _rows_per_sample(digital, x)
        total = len(y) * sum(r * t for r, t in zip(rows, tiles))
        bar = progress_bar(total, "inference", enabled, unit="tile reads")
        bar.bar_format = "{l_bar}{bar}| [{elapsed} elapsed, {remaining} left]"
        inner = [layer.matmul for layer in mapped]
        for layer, op, t in zip(mapped, inner, tiles):
            layer.matmul = _CountingMatmul(op, t, bar.update)
    else:
        bar = progress_bar(len(y), "inference", enabled, unit="samples")
    try:
        for lo in range(0, len(y), batch_size):
            parts.append(run_inference(model, x[lo:lo + batch_size], y[lo:lo + batch_size],
                                       batch_size))
            if not by_layer:
                bar.update(parts[-1].n_samples)
    finally:
        bar.close()
        if by_layer:
            for layer, op in zip(mapped, inner):
                layer.matmul = op
    n_correct = sum(part.n_correct for part in parts)
    seconds = sum(part.seconds for part in parts)
    return InferenceResult(accuracy=n_correct / len(y), n_samples=len(y), n_correct=n_correct,
                           seconds=seconds, samples_per_second=len(y) / max(seconds, 1e-12),
                           predictions=np.concatenate([part.predictions for part in parts]))


def cmd_infer(args):
    """``xbarref infer``: accuracy and throughput of a model on a dataset."""
    from xbarref.commands.progress import compile_notice
    from xbarref.errors import XbarrefError

    if not 0 <= args.seed < 2**63:
        raise XbarrefError(f"--seed: must be an integer in [0, 2**63), got {args.seed}")
    if args.batch_size < 1:
        raise XbarrefError(f"--batch-size: must be >= 1, got {args.batch_size}")
    if args.samples < 0:
        raise XbarrefError(f"--samples: must be >= 0, got {args.samples}")
    model, x, y, _ = load_inputs(args.model, args.data, args.split)
    if args.samples:
        x, y = x[:args.samples], y[:args.samples]
    progress = not args.no_progress
    digital = None
    with compile_notice(enabled=progress):
        if args.hardware is not None:
            import numpy as np

            from xbarref.mapping import map_model

            if progress:
                print(f"programming the model onto {args.hardware} crossbars", file=sys.stderr,
                      flush=True)
            digital = model
            model = map_model(model, args.hardware, np.random.default_rng(args.seed))
        result = _infer_with_progress(model, x, y, args.batch_size, progress, digital)
    if args.hardware is not None:
        print(f"hardware   {args.hardware} (seed {args.seed})")
    model_name = "bundled digits_cnn.h5" if args.model is None else args.model
    data_name = "bundled digits" if args.data is None else args.data
    for line in report(result, model, model_name, data_name, args.split, args.batch_size):
        print(line)
    return 0
