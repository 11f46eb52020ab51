"""MNIST through a random scattering medium, trained by model-free forward-forward.

The physical layer is a multiple-scattering medium (as in optical random
projections, Saade et al., ICASSP 2016; Momeni et al. used optical and
microwave scatterers): a drive ``u`` (B, n_in) of non-negative amplitudes
(a spatial light modulator) passes a fixed complex Gaussian transmission
matrix ``T`` and a camera records speckle intensities ``|T u|^2`` (B, n_out),
with shot noise. The camera gives no gradients (a black box), so the network
is trained by forward-forward, never modelling the medium: 2 blocks
``linear(cat(medium(|h|/||h||), h))`` of ``--width`` units, the label overlaid
on the first 10 pixels, cosine goodness.

    python examples/mnist_forward_forward.py                  # 60k train, 10k test images, 4 epochs, 3 seeds
                                                              # with the baselines (~15-30 min)
    python examples/mnist_forward_forward.py --seeds 1 --no-baselines   # one physical run (~2-5 min)
    python examples/mnist_forward_forward.py --train 2000 --epochs 2 --seeds 1   # a quick look (~3 min)

With ``--baselines`` (the default) it also trains, on the same images: logistic
regression on the raw pixels (deterministic: computed once), an MLP with the
forward-forward network's trained parameter count (``physnn.training.fit``,
Adam, same epochs and batches) and the random-map ablation (each medium
replaced by a fixed random linear map of its shapes and output statistics,
trained by the same forward-forward); one table, mean ± sample std over seeds.

What to expect (test accuracy on the 10,000 test images). One physical run
(``--seeds 1 --no-baselines``): 89.0 %, 132 s on 2 cores (docs/training.md). Quick look: 83.5 %; 104 s of
training, 150 s in all, 19 s CPU (measured on a busy 2-core machine, load ~10).
With ``--train 5000 --test 2000`` (seeds 0-2, 27 min at load ~18):
forward-forward 81.6 ± 1.5 %, logistic regression 85.8 %, the matched MLP
90.0 ± 0.6 %, the random-map ablation 81.9 ± 1.0 %: the media add nothing.

Needs the MNIST IDX files in the data directory (``--data-dir`` or ``$PHYSNN_DATA``).
Writes ``curves.png``, ``history.csv`` / ``history.json`` and ``checkpoint.pt`` under ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from physnn import Device
from physnn.cli import torch_device
from physnn.data import load_mnist
from physnn.training import (
    Backprop,
    Drive,
    ForwardForward,
    count_parameters,
    fit,
    logistic_regression,
    matched_mlp,
    physical_network,
    random_map_ablation,
    results_table,
    summarize,
    trained_parameters,
)


class ScatteringMedium(Device):
    """Speckle intensities ``|T u|^2 * gain`` of a fixed random complex medium: ``(B, n_in) -> (B, n_out)``.

    Drives are amplitudes in [0, 1]; ``T`` has i.i.d. complex Gaussian entries of
    variance ``1 / n_in``, so a unit-norm drive gives intensities of mean 1.
    ``noise`` is the relative shot-noise std of each intensity (from the
    device's seeded generator). A black box: no gradients.
    """

    name = "scattering-medium"
    differentiable = False
    input_bounds = (0.0, 1.0)

    def __init__(self, n_in: int, n_out: int, *, noise: float = 0.01, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.in_shape, self.out_shape = (int(n_in),), (int(n_out),)
        self.noise = float(noise)
        g = torch.Generator().manual_seed(seed)
        scale = 1 / math.sqrt(2 * n_in)
        self.register_buffer("real", torch.randn(n_in, n_out, generator=g) * scale)
        self.register_buffer("imag", torch.randn(n_in, n_out, generator=g) * scale)

    @property
    def stochastic(self) -> bool:
        return self.noise > 0

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        u = x.to(self.real.dtype)
        intensity = (u @ self.real) ** 2 + (u @ self.imag) ** 2
        if self.noise > 0:
            shot = torch.randn(intensity.shape, generator=self.generator, dtype=intensity.dtype).to(intensity.device)
            intensity = intensity * (1 + self.noise * shot).clamp_min(0)
        return intensity.to(x.dtype)


def forward_forward(x_tr, y_tr, x_te, y_te, seed: int, args: argparse.Namespace, *, ablation: bool = False):
    """The 2-block network through scattering media (or random maps in their place) trained by forward-forward."""
    media = [ScatteringMedium(784, args.speckles, seed=seed), ScatteringMedium(args.width, args.speckles,
                                                                                seed=seed + 1)]
    net = physical_network(media, [args.width, args.width], seed=seed)
    if ablation:  # each map matched to its medium on unit-norm drives, as the network sends (images for block 0)
        drive, g = Drive("unit-norm"), torch.Generator().manual_seed(seed)
        net = random_map_ablation(net, seed=seed, drives={0: drive(x_tr[:512].cpu()),
                                                          1: drive(media[1].sample_inputs(512, generator=g))})
    method = ForwardForward(net.to(args.device), n_classes=10, theta=4.0, inner_steps=2, lr=1e-3, seed=seed)
    result = fit(method, (x_tr, y_tr), val=(x_te, y_te), epochs=args.epochs, batch_size=args.batch,
                 seed=seed, out_dir=None if ablation else f"{args.out}/seed{seed}", eval_train=False,
                 eval_batch_size=1000, progress=sys.stderr.isatty())  # a bar only on a terminal
    return method, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (None: $PHYSNN_DATA)")
    parser.add_argument("--train", type=int, default=60000, help="training images (the first N)")
    parser.add_argument("--test", type=int, default=10000, help="test images (the first N)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs")
    parser.add_argument("--width", type=int, default=400, help="units of each block's linear map")
    parser.add_argument("--speckles", type=int, default=400, help="camera pixels of each medium")
    parser.add_argument("--batch", type=int, default=100, help="images per training step")
    parser.add_argument("--seed", type=int, default=0, help="first seed: seeds the media, the network and the "
                                                            "negative labels")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                        help="also run logistic regression, the matched MLP and the random-map ablation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", type=torch_device, default="cpu", help="torch device of network, data: cpu or cuda")
    parser.add_argument("--out", default="mnist-ff", help="folder for curves.png, history and checkpoint per seed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (x_tr, y_tr), (x_te, y_te) = (load_mnist(args.data_dir, split=s) for s in ("train", "test"))
    flat = lambda x, n: torch.as_tensor(x[:n], dtype=torch.float32).reshape(min(n, len(x)), -1) / 255.0
    x_tr, x_te = flat(x_tr, args.train), flat(x_te, args.test)
    y_tr, y_te = torch.as_tensor(y_tr[:args.train], dtype=torch.long), torch.as_tensor(y_te[:args.test],
                                                                                          dtype=torch.long)
    x_tr, y_tr, x_te, y_te = (t.to(args.device) for t in (x_tr, y_tr, x_te, y_te))
    print(f"MNIST: {len(y_tr)} train / {len(y_te)} test images; 2 blocks through scattering media "
          f"({args.speckles} speckles each), {args.width} units")
    start = time.perf_counter()
    runs = []
    if args.baselines:  # a convex fit: the same for every seed
        runs.append({"model": "logistic regression (raw pixels)", "seed": args.seed,
                     **logistic_regression(x_tr, y_tr, x_te, y_te, max_iter=100)})
    for seed in range(args.seed, args.seed + args.seeds):
        method, result = forward_forward(x_tr, y_tr, x_te, y_te, seed, args)
        params = trained_parameters(method)
        acc = result.accounting
        print(f"seed {seed}: " + ", ".join(f"epoch {row['epoch']} {100 * row['val_accuracy']:.2f} %"
                                           for row in result.history)
              + f"; device calls: {acc['train_device_calls']} for training ({acc['train_device_samples']} samples), "
              f"{acc['eval_device_calls']} for evaluation", flush=True)
        runs.append({"model": "forward-forward through scattering media", "seed": seed, "parameters": params,
                     "test_accuracy": result.final("val_accuracy")})
        if not args.baselines:
            continue
        mlp = matched_mlp(params, 784, 10, seed=seed).to(args.device)
        run = fit(Backprop(mlp, lr=1e-3), (x_tr, y_tr), val=(x_te, y_te), epochs=args.epochs, batch_size=args.batch,
                  seed=seed, eval_train=False, eval_batch_size=1000, progress=False, plot=False)
        runs.append({"model": "matched MLP", "seed": seed, "parameters": count_parameters(mlp),
                     "test_accuracy": run.final("val_accuracy")})
        method, result = forward_forward(x_tr, y_tr, x_te, y_te, seed, args, ablation=True)
        runs.append({"model": "random-map ablation (forward-forward)", "seed": seed,
                     "parameters": trained_parameters(method), "test_accuracy": result.final("val_accuracy")})
        print(f"seed {seed}: matched MLP {100 * runs[-2]['test_accuracy']:.2f} %, random-map ablation "
              f"{100 * runs[-1]['test_accuracy']:.2f} %", flush=True)
    print("\n" + results_table(summarize(runs)))
    print(f"{args.train} training images, {args.epochs} epochs; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
