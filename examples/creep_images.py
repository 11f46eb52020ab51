"""Reproduce "Let the Quantum Creep In" (Wang, Myers, Hollenberg, Parampalli, arXiv 2409.17583) on MNIST-style images.

Base model (no activations, no normalization, as in the paper):
Conv2d(1->32, 3x3) -> Conv2d(32->16, 3x3) -> Flatten -> Linear(12544->10);
images padded to 32x32 and scaled to [-1, 1]. Levels:

0. classical;
1. both convolutions become FlippedQuanv2d (2-qubit states, data as observable);
2. the linear layer too: DataReUploadingLinear, 7 qubits, 10 repetitions.

Two models, two protocols, each against the authors' own logs:

* ``--weights real`` (default): the physical model, real parameters, every block
  exactly unitary, as a QPU would run it; the authors' JAX protocol (Adam, batch
  1000, learning rate 5e-3, 100 epochs, 5 runs), whose logs give MNIST 92.07 /
  92.25 / 94.54 % and Fashion-MNIST 83.72 / 83.70 / 80.54 % (levels 0 / 1 / 2).
* ``--weights complex``: non-unitary (paper's PyTorch model). Its quantum
  parameters are complex tensors: once trained, the "unitaries" are not unitary
  and the level-2 outputs are not probabilities (its training loss, 0.076 on
  MNIST, is below log(1 + 9/e) = 1.46, the least any model whose logits are
  probabilities plus a bias can reach on 10 balanced classes). The paper's
  PyTorch protocol (batch 200, learning rate 5e-4, 50 epochs, 5 runs) gives the
  paper's table: MNIST 92.30 / 92.34 / 96.92 %, Fashion-MNIST 83.62 / 83.41 / 86.57 %.

Every table row, plot title and JSON row names the model. The short protocol
stops after 5 epochs and compares with the mean the authors logged after the
same epoch (a column of ``creep.md``). ``--baseline-seeds`` adds logistic
regression on the raw pixels, an MLP with level 2's parameter count trained
like the ladder, and level 1's random-map ablation (both convolutions frozen at
seeded random weights, only the linear layer trained), on the same split
(``baselines.md``, ``baselines.json``).

    python examples/creep_images.py                         # unitary, short protocol: 5 epochs, 1 seed
    python examples/creep_images.py --protocol full         # the authors' JAX protocol: 100 epochs, 5 seeds
    python examples/creep_images.py --weights complex       # the paper's PyTorch model, 5 epochs
    python examples/creep_images.py --datasets mnist --epochs 1 --train-size 10000 --test-size 2000 --threads 1

Cost on one thread (docs/quantum.md): a level-2 epoch takes about 4-5 CPU-minutes,
a level-0 or level-1 epoch 1-2. Measured (unitary, seed 0, 5 epochs; docs/quantum.md has the
curves): MNIST 91.72 / 91.43 / 75.46 % (levels 0 / 1 / 2) against the authors' JAX means of
91.97 / 91.24 / 76.29 % after the same epoch; Fashion-MNIST 83.25 / 81.26 / 66.30 % against
83.49 / 80.15 / 73.16 %. Logistic regression on the pixels: 92.3 % and 84.0 %. Writes ``creep.csv``, ``creep.json``,
``creep.md``, ``creep.png`` per model and dataset under ``--out/<weights>/<dataset>``.

Data: MNIST / Fashion-MNIST IDX files from --data-dir, else $PHYSNN_DATA (e.g. ../shared/datasets).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch
from torch import nn

from physnn.cli import torch_device
from physnn.data import load_mnist
from physnn.devices.quantum import DataReUploadingLinear, FlippedQuanv2d
from physnn.training import Backprop, fit
from physnn.training.baselines import logistic_regression, matched_mlp, results_table, summarize
from physnn.training.creep import Swap, build_level, count_parameters, run_creep

#: The authors' PyTorch logs (scripts/results of their repository): mean test accuracy (percent) of 5 runs
#: after each of these epochs, per level (0, 1, 2); batch 200, lr 5e-4. Epoch 50 is the paper's table.
AUTHORS_BY_EPOCH = {
    "mnist": {1: (91.55, 90.05, 93.76), 2: (91.92, 90.83, 95.27), 3: (92.00, 92.16, 95.71),
              4: (92.25, 92.17, 95.63), 5: (92.19, 92.01, 96.07), 10: (92.36, 92.32, 95.89),
              15: (92.23, 92.40, 96.64), 20: (92.25, 92.28, 96.73), 50: (92.30, 92.34, 96.92)},
    "fashion-mnist": {1: (83.50, 80.48, 80.47), 2: (83.73, 82.46, 82.86), 3: (83.88, 83.60, 83.95),
                      4: (83.74, 83.69, 83.90), 5: (83.83, 83.90, 84.67), 10: (83.96, 83.89, 85.20),
                      15: (83.97, 83.87, 85.95), 20: (83.87, 83.97, 86.12), 50: (83.62, 83.41, 86.57)},
}
#: The authors' JAX logs (real parameters, every block unitary; notebooks/eqx/*.json of
#: github.com/peiyong-addwater/Let-The-Quantum-Creep-In at 8feb80b, 5 runs per level): mean test accuracy
#: (percent) after each of these epochs, per level (0, 1, 2); batch 1000, lr 5e-3. Epoch 100 is their final figure.
AUTHORS_JAX_BY_EPOCH = {
    "mnist": {1: (90.28, 82.91, 16.30), 2: (91.61, 88.88, 30.18), 3: (91.57, 90.23, 48.82),
              4: (91.76, 90.79, 64.21), 5: (91.97, 91.24, 76.29), 6: (92.01, 91.30, 84.03),
              8: (92.10, 91.61, 90.35), 10: (92.06, 91.81, 91.93), 15: (92.06, 92.17, 92.45),
              20: (92.10, 92.29, 92.93), 50: (92.07, 92.25, 93.92), 100: (92.07, 92.25, 94.54)},
    "fashion-mnist": {1: (81.94, 75.19, 16.24), 2: (83.03, 78.67, 36.22), 3: (83.54, 80.21, 52.71),
                      4: (83.55, 80.74, 64.29), 5: (83.49, 80.15, 73.16), 6: (83.49, 81.84, 76.00),
                      8: (83.48, 82.45, 77.30), 10: (83.66, 82.89, 77.40), 15: (83.48, 83.68, 78.16),
                      20: (83.66, 83.78, 78.54), 50: (83.65, 83.94, 79.75), 100: (83.72, 83.70, 80.54)},
}
#: Per --weights: the model's label, the authors' protocol (batch, lr, full epochs) and their logs.
MODELS = {
    "real": {"label": "unitary (physical; authors' JAX model)", "batch": 1000, "lr": 5e-3, "full_epochs": 100,
             "logs": AUTHORS_JAX_BY_EPOCH},
    "complex": {"label": "non-unitary (paper's PyTorch model)", "batch": 200, "lr": 5e-4, "full_epochs": 50,
                "logs": AUTHORS_BY_EPOCH},
}
PROTOCOLS = {
    # epochs (None: the model's full protocol), seeds, training images (None: all 60,000), test images (None: 10,000)
    "short": {"epochs": 5, "seeds": 1, "train": None, "test": None},
    "full": {"epochs": None, "seeds": 5, "train": None, "test": None},
}


def base_model(channels: int = 1, device: str = "cpu") -> nn.Sequential:
    """The paper's classical network for 32x32 images, on the torch ``device``."""
    return nn.Sequential(nn.Conv2d(channels, 32, 3), nn.Conv2d(32, 16, 3), nn.Flatten(),
                         nn.Linear(16 * 28 * 28, 10)).to(device)


def swap_plan(n_qubits: int = 7, repetitions: int = 10, complex_weights: bool = False) -> list[Swap]:
    """Level 1: both convolutions quantum; level 2: the linear layer too (``complex_weights``: the authors'
    PyTorch code, not unitary).

    Each replacement lands on the torch device of the layer it replaces.
    """
    def conv(m: nn.Module) -> nn.Module:
        return FlippedQuanv2d.from_conv(m, complex_weights=complex_weights).to(m.weight.device)

    def linear(m: nn.Module) -> nn.Module:
        return DataReUploadingLinear.from_linear(m, n_qubits, repetitions,
                                                 complex_weights=complex_weights).to(m.weight.device)

    return [Swap("quantum convolutions", {"0": conv, "1": conv}), Swap("+ quantum linear", {"3": linear})]


def images(kind: str, split: str, data_dir: str | None, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 32, 32)`` in [-1, 1] (zero-padded by 2 pixels, then scaled) and labels ``(N,)``."""
    x, y = load_mnist(data_dir, kind=kind, split=split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = torch.nn.functional.pad(torch.as_tensor(x, dtype=torch.float32), (2, 2, 2, 2)) / 255.0 * 2.0 - 1.0
    return x.unsqueeze(1), torch.as_tensor(y, dtype=torch.int64)


def random_convolutions(seed: int, device: str = "cpu") -> nn.Sequential:
    """The ablation of level 1: the base model with both convolutions frozen at seeded random weights
    (fixed random maps of the quantum convolutions' shapes); only the linear layer trains."""
    torch.manual_seed(seed)
    model = base_model(device=device)
    for conv in (model[0], model[1]):
        conv.requires_grad_(False)
    return model


def digital_baselines(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                      n_params: int, seeds: int, epochs: int, batch: int, lr: float) -> list[dict]:
    """Logistic regression on the raw pixels (deterministic: one fit), and for each seed, trained like the
    ladder (Adam, ``batch``, ``lr``, ``epochs``): an MLP with ``n_params`` parameters (one hidden ReLU layer)
    and level 1's random-map ablation (:func:`random_convolutions`)."""
    flat = [(x.reshape(len(x), -1), y) for x, y in (train, test)]
    rows = [{"model": "logistic regression (raw pixels)", "seed": 0,
             **logistic_regression(*flat[0], *flat[1], max_iter=100)}]
    for seed in range(seeds):
        mlp = matched_mlp(n_params, flat[0][0].shape[1], 10, seed=seed).to(train[0].device)
        ablation = random_convolutions(seed, device=train[0].device)
        for name, model, data in (("MLP, parameters matched to level 2", mlp, flat),
                                  ("level 1 ablation: fixed random convolutions, trained linear", ablation,
                                   (train, test))):
            run = fit(Backprop(model, lr=lr), data[0], val=data[1], epochs=epochs, batch_size=batch, seed=seed,
                      eval_train=False, eval_batch_size=5000, progress=False, plot=False)
            rows.append({"model": name, "seed": seed, "test_accuracy": run.final("val_accuracy"),
                         "parameters": count_parameters(model)})
    return rows


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the docstring's layout and shows every default."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="short",
                        help="short: 5 epochs, 1 seed; full: the authors' (100 epochs for real weights, 50 for "
                             "complex), 5 seeds; all images in both")
    parser.add_argument("--datasets", nargs="+", choices=sorted(AUTHORS_BY_EPOCH), default=["mnist", "fashion-mnist"],
                        help="datasets to run")
    parser.add_argument("--levels", nargs="*", type=int, default=[0, 1, 2], help="creep levels to train")
    parser.add_argument("--baseline-seeds", type=int, default=3,
                        help="seeds of the parameter-matched MLP and the random-map ablation (0: no baselines)")
    parser.add_argument("--weights", choices=sorted(MODELS), default="real",
                        help="real: exactly unitary quantum layers (physical), the authors' JAX protocol "
                             "(batch 1000, lr 5e-3); complex: " + MODELS["complex"]["label"] + ", the paper's "
                             "PyTorch protocol (batch 200, lr 5e-4)")
    parser.add_argument("--epochs", type=int, help="override the protocol's epochs")
    parser.add_argument("--seeds", type=int, help="override the protocol's number of seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="train seeds first-seed, first-seed + 1, ...")
    parser.add_argument("--train-size", type=int, help="override the protocol's training images")
    parser.add_argument("--test-size", type=int, help="override the protocol's test images")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ and fashion-mnist/ "
                                                         "(None: $PHYSNN_DATA)")
    parser.add_argument("--out", default="creep-images",
                        help="folder for creep.csv, creep.json, creep.md and creep.png (under <weights>/<dataset>)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's default)")
    parser.add_argument("--device", type=torch_device, default="cpu", help="torch device of models, data: cpu or cuda")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = MODELS[args.weights]
    p = dict(PROTOCOLS[args.protocol])
    overrides = {key: value for key, value in (("epochs", args.epochs), ("seeds", args.seeds),
                                               ("train", args.train_size), ("test", args.test_size))
                 if value is not None}
    p.update(overrides)
    p["epochs"] = p["epochs"] or spec["full_epochs"]
    print(f"{spec['label']}: protocol {args.protocol}{f' with overrides {overrides}' if overrides else ''}: {p}, "
          f"batch {spec['batch']}, lr {spec['lr']}")
    for kind in args.datasets:
        start = time.perf_counter()
        train, test = (tuple(t.to(args.device) for t in images(kind, split, args.data_dir, p[split]))
                       for split in ("train", "test"))
        out = Path(args.out) / args.weights / kind
        logs = spec["logs"][kind]
        references = {f"authors, {spec['full_epochs']} epochs": dict(enumerate(logs[spec["full_epochs"]]))}
        if p["epochs"] in logs and p["epochs"] != spec["full_epochs"]:
            references[f"authors after {p['epochs']} epochs"] = dict(enumerate(logs[p["epochs"]]))
        plan = swap_plan(complex_weights=args.weights == "complex")
        if args.levels:
            seeds = list(range(args.first_seed, args.first_seed + p["seeds"]))
            run_creep(functools.partial(base_model, device=args.device), plan, train, test, epochs=p["epochs"],
                      batch_size=spec["batch"], lr=spec["lr"], seeds=seeds, levels=args.levels,
                      out_dir=out, model=spec["label"], references=references)
        if args.baseline_seeds:
            n_params = count_parameters(build_level(base_model, plan, 2))
            rows = digital_baselines(train, test, n_params=n_params, seeds=args.baseline_seeds, epochs=p["epochs"],
                                     batch=spec["batch"], lr=spec["lr"])
            table = results_table(summarize(rows))
            out.mkdir(parents=True, exist_ok=True)
            (out / "baselines.md").write_text(f"Digital baselines, same split ({p['epochs']} epochs for the MLP, "
                                              f"batch {spec['batch']}, lr {spec['lr']}):\n\n{table}")
            (out / "baselines.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        print(f"{kind}: {time.perf_counter() - start:.0f} s in all")
        for name in ("creep.md", "baselines.md"):
            if (out / name).exists():
                print((out / name).read_text())


if __name__ == "__main__":
    main()
