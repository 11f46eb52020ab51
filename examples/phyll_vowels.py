"""PhyLL on real measurements: vowels through the acoustic chaotic cavity, five ways.

Momeni et al., "Backpropagation-free training of deep physical neural networks",
Science 2023 (arXiv 2304.11042; code github.com/MomeniAli/PhyLL). The physical
system is their acoustic chaotic cavity, answered here from its 10,000 measured
input/output pairs (``physnn.devices.measured.phyll_cavity``, a black box,
20 -> 20). The task is theirs: the women's subset of the Hillenbrand formants
(7 vowels, 258 tokens, 12 formant features), each feature z-scored over the
whole set, the global minimum subtracted, 8 zeros prepended (20 inputs, the
first 7 carry the forward-forward label), a random 80/20 split per seed, full
batch, 200 epochs. Every network is 2 blocks ``linear(cat(cavity(|h|/||h||), h))``
(40 -> 20 each; the supervised ones end in 40 -> 7 logits), trained by

* model-free forward-forward (PhyLL's method; cosine goodness, theta = 4,
  10 inner Adam steps at lr 5e-4 per batch, as the authors' code),
* physics-aware training: forward on the cavity, backward through a neural
  twin fitted to cavity measurements (its cost is counted),
* backprop in silico: trained on that twin alone, evaluated on the cavity,
* zeroth-order (SPSA, 8 perturbations) on the cavity,
* a purely digital network (20 -> 20 -> 7, ReLU; no cavity),

and plain backprop is refused (the cavity is a black box). With ``--baselines``
(the default) the same splits also get what the physics must beat
(``physnn.training.baselines``): logistic regression on the raw 20 inputs, an
MLP with the supervised networks' 1,107 trainable parameters, and the
random-map ablation (each cavity replaced by a fixed random linear map of the
same shapes and output statistics, everything digital kept), trained by
forward-forward and by backprop. Test accuracy is the final epoch's, on the
cavity; mean ± sample std over seeds.

    python examples/phyll_vowels.py                      # 10 seeds, all methods and baselines (~2 h on 2 busy cores)
    python examples/phyll_vowels.py --first-seed 6 --seeds 4 --out part2   # a range of seeds (run ranges in parallel)
    python examples/phyll_vowels.py --seeds 1 --epochs 20 --methods forward-forward   # a quick look (~2 min)
    python examples/phyll_vowels.py --methods --baselines   # the baselines alone, 10 seeds (37 min at load ~18)

What to expect (test accuracy on the cavity, final epoch). Default, 10 seeds
(docs/training.md; 57 + 34 min as two parallel seed ranges on 2 busy cores):
forward-forward 96.7 +- 2.4 %, physics-aware 96.9 +- 2.6 %, backprop in silico
96.9 +- 2.6 %, zeroth-order 96.7 +- 2.4 %, digital 95.6 +- 2.7 %. Quick look,
seed 0: forward-forward 92.3 % after 20 epochs; 36 s of training, 116 s in all
(18 s CPU; measured on a busy 2-core machine, load ~10). The baselines on the
same 10 splits (docs/training.md): logistic regression on the raw inputs
97.7 ± 1.5 %, the 1,099-parameter MLP 96.0 ± 2.8 %, the random-map ablation
96.7 ± 1.8 % (forward-forward) and 97.9 ± 2.3 % (backprop): the cavity adds
nothing on this task (sample std; the physical figures above are population std).

Writes ``results.md`` (the table), ``results.json`` (every run) and per-method
curves under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from physnn.cli import torch_device
from physnn.data import load_vowel_formants
from physnn.devices.measured import phyll_cavity
from physnn.errors import GradientRouteError
from physnn.training import (
    Backprop,
    Drive,
    ForwardForward,
    NeuralTwin,
    PhysicsAware,
    ZerothOrder,
    digital_network,
    fit,
    fit_twin,
    logistic_regression,
    matched_mlp,
    physical_network,
    plot_comparison,
    random_map_ablation,
    results_table,
    summarize,
    trained_parameters,
)

METHODS = ("forward-forward", "physics-aware", "backprop-in-silico", "zeroth-order", "digital", "backprop")
#: What the physics must beat, on the same splits (``--baselines``).
BASELINES = ("logistic-regression", "matched-mlp", "random-map-forward-forward", "random-map-backprop")
SUPERVISED_PARAMETERS = 1107  # 2 blocks, 40 -> 20 and 40 -> 7: the matched MLP's budget
CLASSES = 7


def vowel_data(data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """PhyLL's preprocessing: per-feature z-score, minus the global minimum, 8 zeros prepended: (258, 20)."""
    x, y, _ = load_vowel_formants(data_dir, subset="phyll")
    x = (x - x.mean(0)) / x.std(0)
    x = x - x.min()
    x = np.concatenate([np.zeros((len(x), 8)), x], axis=1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:int(0.8 * n)], order[int(0.8 * n):]


def fitted_twin(cavity, x_train: torch.Tensor, seed: int, device: str) -> tuple[NeuralTwin, dict]:
    """A neural twin of the cavity, fitted where training drives it: unit-norm drives of
    the training data and of random measured drives (hidden activations look like those)."""
    drive = Drive("unit-norm")
    g = torch.Generator().manual_seed(seed)
    inputs = torch.cat([drive(x_train), drive(cavity.sample_inputs(3000, generator=g).to(device))])
    twin = NeuralTwin.like(cavity, hidden=128, seed=seed).to(device)
    report = fit_twin(cavity, twin, inputs=inputs, epochs=150, lr=3e-3, seed=seed)
    return twin, report.as_dict()


def run_method(name: str, cavity, data, seed: int, epochs: int, out: Path, *, plot: bool, device: str) -> dict:
    """Train method ``name`` on ``data`` (already on the torch ``device``) through the cavity; one results row."""
    (x_tr, y_tr), (x_te, y_te) = data
    twin_cost = {"device_calls": 0, "device_samples": 0}
    extra: dict = {}
    if name == "logistic-regression":
        return {"method": name, "seed": seed, **logistic_regression(x_tr, y_tr, x_te, y_te)}
    if name == "matched-mlp":
        method = Backprop(matched_mlp(SUPERVISED_PARAMETERS, 20, CLASSES, seed=seed).to(device), lr=1e-2)
    elif name == "random-map-forward-forward":
        method = ForwardForward(random_map_ablation(physical_network([cavity, cavity], [20, 20], seed=seed),
                                                    seed=seed).to(device),
                                n_classes=CLASSES, theta=4.0, inner_steps=10, lr=5e-4, seed=seed)
    elif name == "random-map-backprop":
        method = Backprop(random_map_ablation(physical_network([cavity, cavity], [20, CLASSES], seed=seed),
                                              seed=seed).to(device), lr=1e-2)
    elif name == "forward-forward":
        method = ForwardForward(physical_network([cavity, cavity], [20, 20], seed=seed).to(device),
                                n_classes=CLASSES, theta=4.0, inner_steps=10, lr=5e-4, seed=seed)
    elif name == "digital":
        method = Backprop(digital_network(20, [20, CLASSES], seed=seed).to(device), lr=1e-2)
    elif name == "zeroth-order":
        method = ZerothOrder(physical_network([cavity, cavity], [20, CLASSES], seed=seed).to(device), lr=1e-2,
                             perturbations=8, epsilon=1e-2)
    elif name == "backprop":
        try:
            Backprop(physical_network([cavity, cavity], [20, CLASSES], seed=seed))
        except GradientRouteError as exc:
            return {"method": name, "seed": seed, "error": str(exc).split(";")[0]}
        raise AssertionError("backprop through the measured cavity must be refused")
    else:
        twin, report = fitted_twin(cavity, x_tr, seed, device)
        twin_cost = {"device_calls": report["device_calls"], "device_samples": report["device_samples"]}
        extra["twin_nrmse"] = report["nrmse"]
        net = physical_network([cavity, cavity], [20, CLASSES], twins=[twin, twin], seed=seed).to(device)
        method = PhysicsAware(net, lr=1e-2) if name == "physics-aware" else Backprop(net, lr=1e-2, in_silico=True)
    torch.manual_seed(seed)
    result = fit(method, (x_tr, y_tr), val=(x_te, y_te), epochs=epochs, seed=seed, progress=False,
                 out_dir=out / f"{name}-seed{seed}", plot=plot)
    acc = result.accounting
    params = trained_parameters(method)
    return {"method": name, "seed": seed, "test_accuracy": result.final("val_accuracy"),
            "train_accuracy": result.final("train_accuracy"), "parameters": params,
            "train_device_calls": acc["train_device_calls"] + twin_cost["device_calls"],
            "train_device_samples": acc["train_device_samples"] + twin_cost["device_samples"],
            "eval_device_calls": acc["eval_device_calls"], "optimizer_steps": acc["optimizer_steps"],
            "parameter_updates": acc["parameter_updates"], "time_s": acc["time_s"], **extra,
            "history": result.history}


def table(runs: list[dict]) -> str:
    """Test accuracy (mean ± sample std) of every method and baseline, then the physical methods' costs."""
    refused = [r for r in runs if "error" in r]
    text = results_table(summarize(runs, by="method"), by="method")
    text += "".join(f"| {r['method']} | refused: {r['error']} | - |\n" for r in refused[:1])
    lines = ["", "| method | device calls (training) | device samples (training) | digital parameter updates | "
             "wall time per run [s] |", "|---|---|---|---|---|"]
    for name in METHODS:
        rows = [r for r in runs if r["method"] == name and "error" not in r]
        if rows:
            mean = {k: np.mean([r[k] for r in rows]) for k in ("train_device_calls", "train_device_samples",
                                                                 "parameter_updates", "time_s")}
            lines.append(f"| {name} | {mean['train_device_calls']:,.0f} | {mean['train_device_samples']:,.0f} | "
                         f"{mean['parameter_updates']:,.0f} | {mean['time_s']:.1f} |")
    return text + ("\n".join(lines) + "\n" if len(lines) > 3 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding phyll/ and hillenbrand1995/ "
                                                         "(None: $PHYSNN_DATA)")
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (random 80/20 splits)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed")
    parser.add_argument("--epochs", type=int, default=200, help="full-batch epochs of every method")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS, help="methods to run")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                        help="also run " + ", ".join(BASELINES) + " on the same splits")
    parser.add_argument("--out", default="phyll-vowels", help="folder for results.md/.json and test_accuracy.png")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="torch device of the networks, twins and data: cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cavity = phyll_cavity(args.data_dir)
    print(f"cavity: {cavity.describe()['n_measured']} measured pairs, held-out NRMSE of its regressor "
          f"{cavity.holdout_report['nrmse']:.3f}")
    x, y = (t.to(args.device) for t in vowel_data(args.data_dir))
    runs = []
    names = list(args.methods) + (list(BASELINES) if args.baselines else [])
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        tr, te = (idx.to(args.device) for idx in split(len(y), seed))
        for name in names:
            run = run_method(name, cavity, ((x[tr], y[tr]), (x[te], y[te])), seed, args.epochs, out,
                             plot=seed == args.first_seed, device=args.device)
            runs.append(run)
            shown = run.get("error") or f"test {100 * run['test_accuracy']:.1f} %  ({run.get('time_s', 0):.0f} s)"
            print(f"seed {seed}  {name:20s} {shown}", flush=True)
        (out / "results.json").write_text(json.dumps(runs))
    text = table(runs)
    (out / "results.md").write_text(text)
    curves = {r["method"]: r["history"] for r in runs if r["seed"] == args.first_seed and "history" in r}
    plot_comparison(curves, out / "test_accuracy.png", ylabel="test accuracy on the cavity (%)",
                    title=f"PhyLL vowels on the measured cavity (seed {args.first_seed})")
    print("\n" + text)
    print(f"total {time.perf_counter() - start:.0f} s; results in {out.resolve()}")


if __name__ == "__main__":
    main()
