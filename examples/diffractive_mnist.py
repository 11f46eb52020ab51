"""Lin et al. (Science 2018) five-layer phase-only diffractive network on MNIST, beside digital baselines.

The device is :class:`physnn.devices.optics.DiffractiveNetwork` at Lin et al.'s geometry by default
(lambda = 0.75 mm, 0.4 mm neurons, 200 x 200 per layer, 3 cm gaps, 5 phase-only layers, amplitude-
encoded digit, 10 detector squares); the class scores are the detector powers, normalized to sum 1
and scaled by a fixed temperature (no trainable digital part), trained by backprop (Adam) with
cross-entropy in :func:`physnn.training.fit`. Lin et al. report 91.75 % test accuracy in simulation.

Beside it, on the same split and seeds: logistic regression on the raw pixels and a one-hidden-layer
MLP with as many parameters as the masks (:mod:`physnn.training.baselines`). The trained masks are
written as PNG images to ``--out``.

    python examples/diffractive_mnist.py                         # Lin geometry, full MNIST, 10 epochs, 3 seeds
    python examples/diffractive_mnist.py --seeds 1 --epochs 1    # one epoch of it: 1.4 CPU-hours
    python examples/diffractive_mnist.py --n 50 --pitch 1.6e-3   # same 80 mm aperture, 4x coarser neurons
    python examples/diffractive_mnist.py --train 2000 --test 1000 --epochs 5   # a subset

Measured (shared 2-core CPU, 1 thread; docs/optics.md has the curves): one batch-32 step of the Lin
geometry costs 2.7 CPU-s. Lin geometry, all 60,000 / 10,000 digits, 1 epoch, seed 0 (``--seeds 1
--epochs 1``, 84 min of training): 91.16 % (Lin et al. 91.75 %; logistic regression 92.13 %, matched
MLP 97.93 %). Lin geometry, 1,000 train / 500 test digits, 10 epochs, 1 seed: 89.4 % (logistic
regression 87.0 %, matched MLP 89.0 %). 50 x 50 neurons of 1.6 mm, 10,000 / 2,000 digits, 5 epochs,
3 seeds: 88.4 +- 0.5 % (logistic regression 88.8 +- 0.5 %, MLP 92.9 +- 0.4 %).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from physnn import PhysicalLayer
from physnn.cli import torch_device
from physnn.data import load_mnist
from physnn.devices.optics import DiffractiveNetwork, PowerFractions
from physnn.training import Backprop, fit
from physnn.training.baselines import digital_baselines, results_table, summarize

LIN_ACCURACY = 0.9175


def mnist(split: str, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random samples of an MNIST split (all when count <= 0): images (N, 784) in [0, 1], labels."""
    images, labels = load_mnist(split=split)
    x = torch.as_tensor(images, dtype=torch.float32).reshape(len(images), -1) / 255
    y = torch.as_tensor(labels, dtype=torch.int64)
    if 0 < count < len(x):
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]
        x, y = x[keep], y[keep]
    return x, y


def save_masks(phase: torch.Tensor, out: Path) -> list[str]:
    """Each mask's phase (layers, n, n) in rad as ``mask_<k>.png`` (cyclic colour map); returns the paths."""
    paths = []
    for k, p in enumerate(phase.detach().cpu().numpy()):
        path = out / f"mask_{k + 1}.png"
        plt.imsave(path, np.mod(p, 2 * math.pi), cmap="twilight", vmin=0, vmax=2 * math.pi)
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="neurons per side (Lin: 200)")
    ap.add_argument("--pitch", type=float, default=0.4e-3, help="neuron pitch, m (Lin: 0.4 mm)")
    ap.add_argument("--spacing", type=float, default=30e-3, help="gap between planes, m (Lin: 30 mm)")
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--train", type=int, default=0, help="training subset size (0: all 60000)")
    ap.add_argument("--test", type=int, default=0, help="test subset size (0: all 10000)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--temperature", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--baseline-epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--log-every", type=int, default=100, help="a progress line on stderr every this many steps")
    ap.add_argument("--device", type=torch_device, default="cpu", help="torch device: cpu or cuda")
    ap.add_argument("--out", type=Path, default=Path("runs/diffractive_mnist"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        train, test = (tuple(t.to(args.device) for t in mnist(split, count, seed))
                       for split, count in (("train", args.train), ("test", args.test)))
        device = DiffractiveNetwork(args.n, args.layers, pitch=args.pitch, spacing=args.spacing)
        initial = torch.rand(device.controls[0].shape, generator=torch.Generator().manual_seed(seed))
        layer = PhysicalLayer(device, controls={"phase": 2 * math.pi * (0.1 + 0.8 * initial)}, seed=seed)
        model = nn.Sequential(layer, PowerFractions(args.temperature)).to(args.device)
        method = Backprop(model, lr=args.lr)
        start = time.time()
        run = fit(method, train, val=test, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                  out_dir=args.out / f"seed{seed}", eval_train=False, eval_batch_size=250, progress=True,
                  log_every=args.log_every)
        seconds = time.time() - start
        masks = save_masks(layer.control_values()["phase"], args.out / f"seed{seed}")
        curve = [round(float(row["val_accuracy"]), 4) for row in run.history]
        print(f"seed {seed}: test accuracy by epoch {curve} ({seconds:.0f} s); masks {masks}", flush=True)
        n_params = args.layers * args.n * args.n
        rows.append({"model": f"diffractive {args.layers} x {args.n}^2", "seed": seed, "parameters": n_params,
                     "test_accuracy": run.final("val_accuracy"), "curve": curve, "seconds": seconds})
        rows += digital_baselines(train, test, n_params=n_params, seed=seed, epochs=args.baseline_epochs,
                                  batch_size=128, lr=1e-3)
        (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                           "rows": rows}, indent=1))
    print(results_table(summarize(rows)))
    print(f"Lin et al. 2018 (simulation, 5 layers, 200 x 200, full MNIST): {100 * LIN_ACCURACY:.2f} %")


if __name__ == "__main__":
    main()
