"""``xbarref infer``: run a model file on a dataset file, print accuracy and timing."""

from __future__ import annotations

from xbarref.io.inputs import BUNDLED_MODEL, bundled_model_path, load_inputs  # noqa: F401  (re-exported)


def register(subparsers):
    p = subparsers.add_parser(
        "infer",
        help="run a model on a dataset; print accuracy and timing",
        description="Run a model file (HDF5, docs/model-format.md) on the test split of a "
                    "dataset file (docs/data-format.md) in NumPy and print the accuracy, the "
                    "number of samples and the throughput. Without arguments: the bundled "
                    "digits CNN on the bundled UCI digits.",
    )
    p.add_argument("model", nargs="?", default=None, metavar="MODEL.h5",
                   help="model file (default: the bundled digits CNN)")
    p.add_argument("data", nargs="?", default=None, metavar="DATA.h5",
                   help="dataset file (default: the bundled UCI digits)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to evaluate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="samples per forward pass (default: %(default)s)")
    p.add_argument("--hardware", default=None, metavar="HW.toml",
                   help="run Conv2d/Linear layers on simulated hardware: a file from `xbarref "
                        "hardware` or a preset name (default: digital)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the hardware's random draws (default: %(default)s)")
    p.set_defaults(func=run)


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


def run(args):
    from xbarref.nn import run_inference

    model, x, y, _ = load_inputs(args.model, args.data, args.split)
    if args.hardware is not None:
        import numpy as np

        from xbarref.mapping import map_model

        model = map_model(model, args.hardware, np.random.default_rng(args.seed))
    result = run_inference(model, x, y, args.batch_size)
    if args.hardware is not None:
        print(f"hardware   {args.hardware} (seed {args.seed})")
    model_name = "bundled digits_cnn.h5" if args.model is None else args.model
    data_name = "bundled digits" if args.data is None else args.data
    for line in report(result, model, model_name, data_name, args.split, args.batch_size):
        print(line)
    return 0
