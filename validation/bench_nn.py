"""Benchmark: ResNet-20 (3 x 32 x 32, batch 128) in xbarref.nn vs PyTorch CPU, same run.

Times the eval-mode forward pass and a training-mode forward + backward (loss gradient
through every layer) of the same network with the same weights, in xbarref (float64)
and in PyTorch (float64 and float32), and prints a table with the ratios. The logits of
xbarref and PyTorch float64 are compared first, so the timed computations are the same.

Usage: python validation/bench_nn.py [--batch 128] [--repeat 5] [--threads 2] [--quick]
``--quick``: batch 4, one repeat (seconds; checks that the script runs).
``--threads`` sets both PyTorch's intra-op threads and the BLAS threads of NumPy (through
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS, before NumPy is imported).
Needs torch (the optional extra).
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def torch_resnet20(torch):
    """torchvision-style CIFAR ResNet-20 whose state-dict names match xbarref.nn.zoo.resnet20."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            cin = 16
            for stage, cout in enumerate((16, 32, 64), start=1):
                blocks = []
                for b in range(3):
                    blocks.append(Block(cin, cout, 2 if stage > 1 and b == 0 else 1))
                    cin = cout
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(x.mean(dim=(2, 3)))

    return ResNet20()


def best_time(fn, repeat):
    """Best wall-clock time of ``repeat`` calls after one warm-up call, in seconds."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--quick", action="store_true",
                        help="a small run that checks the script: --batch 4 --repeat 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeat = 4, 1
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from xbarref.nn import resnet20, softmax_cross_entropy

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = resnet20(rng=rng)
    for name, arr in model.named_buffers().items():  # non-trivial running statistics
        arr[...] = rng.uniform(0.5, 1.5, arr.shape) if name.endswith("var") else rng.normal(0, 0.1, arr.shape)
    x = rng.standard_normal((args.batch, 3, 32, 32))
    labels = rng.integers(0, 10, args.batch)

    tmodel = torch_resnet20(torch).double()
    state = {k: torch.from_numpy(v.copy()) for k, v in {**model.named_parameters(),
                                                         **model.named_buffers()}.items()}
    missing, unexpected = tmodel.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    tmodel.eval()
    xt64 = torch.from_numpy(x)
    with torch.no_grad():
        ref = tmodel(xt64).numpy()
    ours = model(x)
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"logits xbarref vs torch float64: max relative difference {rel:.2e}")

    def xb_forward():
        model(x)

    def xb_train():
        logits = model.forward(x, training=True)
        model.backward(softmax_cross_entropy(logits, labels)[1])

    def torch_forward(m, xt):
        def run():
            with torch.no_grad():
                m(xt)
        return run

    def torch_train(m, xt, yt):
        def run():
            m.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(m(xt), yt).backward()
        return run

    yt = torch.from_numpy(labels)
    tmodel32 = torch_resnet20(torch).float()
    tmodel32.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    xt32 = xt64.float()
    rows = []
    load_before = os.getloadavg()[0]
    for what, ours_fn, t64, t32, mode in [
        ("forward (eval)", xb_forward, torch_forward(tmodel, xt64), torch_forward(tmodel32, xt32), "eval"),
        ("forward+backward (train)", xb_train, torch_train(tmodel, xt64, yt), torch_train(tmodel32, xt32, yt), "train"),
    ]:
        for m in (tmodel, tmodel32):
            m.train(mode == "train")
        t_ours = best_time(ours_fn, args.repeat)
        t_64 = best_time(t64, args.repeat)
        t_32 = best_time(t32, args.repeat)
        rows.append((what, t_ours, t_64, t_32))
    model.release()

    print(f"\nResNet-20, batch {args.batch}, 3 x 32 x 32; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs, {args.threads} threads (torch and BLAS), torch {torch.__version__}, "
          f"numpy {np.__version__}, {platform.machine()}; load average before/after "
          f"{load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"| {'pass':26s} | xbarref f64 (s) | torch f64 (s) | torch f32 (s) | ratio vs f64 | ratio vs f32 |")
    print(f"|{'-' * 28}|{'-' * 17}|{'-' * 15}|{'-' * 15}|{'-' * 14}|{'-' * 14}|")
    for what, t_ours, t_64, t_32 in rows:
        print(f"| {what:26s} | {t_ours:15.3f} | {t_64:13.3f} | {t_32:13.3f} | {t_ours / t_64:12.2f} | "
              f"{t_ours / t_32:12.2f} |")


if __name__ == "__main__":
    main()
