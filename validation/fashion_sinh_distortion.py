"""Layer-by-layer dot-product distortion of the bundled Fashion-MNIST CNN on crossbars with
linear and sinh devices (the Fashion preset's tile 128, 1 ohm wires, 100 ohm drivers).

Every analog layer is fed the inputs it receives in the ideal network (``--images`` test
images, ``--rows`` rows per layer drawn with the study's keyed generator); the hardware
output is fitted per column on the ideal output (``xbarref.tune.distortion``), with
Newton solving every read of the sinh devices. Prints one line per scenario and layer and
the CPU time per scenario. A cheap stand-in for the ``sinh`` family of the study, whose
full run (BN recalibration, tuning and the test set through Newton) does not fit a
session (docs/study.md).

Usage::

    python validation/fashion_sinh_distortion.py --data fm.h5 [--images 8] [--rows 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SCENARIOS = ("tile 128, wires 1 ohm, drivers 100 ohm",
             "sinh k 2.5/V, tile 128, wires 1 ohm, drivers 100 ohm",
             "sinh k 4/V, tile 128, wires 1 ohm, drivers 100 ohm")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, metavar="FM.h5")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args(argv)

    import importlib.resources

    from xbarref.io.data import load_dataset
    from xbarref.io.model import load_model
    from xbarref.mapping import map_model
    from xbarref.tune.distortion import layer_distortion, layer_inputs
    from xbarref.tune.scenarios import bn_followed_layers, default_scenarios
    from xbarref.sweep import named_streams, task_seed
    from xbarref.tune.study import study_streams, task_key

    data = load_dataset(args.data, dtype=np.float32)
    model = load_model(os.fspath(importlib.resources.files("xbarref") / "data" / "fashion_cnn.h5"))
    scenarios = {s.name: s for s in default_scenarios(preset="fashion")}
    inputs = layer_inputs(model, data.x_test[:args.images], max_rows=args.rows,
                          rng=study_streams(0, task_key("distortion rows"), "rows")["rows"])
    bn = bn_followed_layers(model)
    print("scenario | layer | followed by BN | NMSE total | non-absorbable | absorbable")
    for name in SCENARIOS:
        wall, cpu = time.perf_counter(), time.process_time()
        # chip 0 of the study: the "chip" stream of the task keyed (scenario name, chip 0)
        chip = named_streams(task_seed(0, task_key("chip", name, 0)), "chip")["chip"]
        mapped = map_model(model, scenarios[name].hardware, chip)
        out = layer_distortion(mapped, inputs)
        shares = []
        for layer, (_y, _z, fit) in out.items():
            print(f"{name} | {layer} | {layer in bn} | {fit.nmse_total:.3e} | "
                  f"{fit.nonabsorbable:.3e} | {fit.absorbable:.4f}", flush=True)
            if layer in bn:
                shares.append((fit.nmse_total, fit.nonabsorbable, fit.absorbable))
        mean = np.mean(shares, axis=0)
        print(f"{name} | mean over BN-followed layers | | {mean[0]:.3e} | {mean[1]:.3e} | "
              f"{mean[2]:.4f}  ({time.perf_counter() - wall:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
