"""Vowel classification through an analog effect chain: backprop vs physics-aware training.

The physics-aware-training protocol (Wright et al., Nature 601, 549, 2022) on an
audio chain: the 12 formant features of each Hillenbrand vowel token (women, the
7 vowels ae ah aw er ih iy uw) pass a trainable digital input layer, become the
amplitudes of 8 tones (the drive waveform, 32 ms at 16 kHz), drive an overdrive
stage into a diode clipper whose knobs are trained, and the log energies of the
output in 7 frequency bands (with a learned per-band scale and offset) are the
class scores.

The "real" chain is a black box with component tolerances (every resistor,
capacitor and diode parameter off by up to +-5 %, drawn once from ``--seed``),
an output gain error and measurement noise, none known to the nominal model:

1. backprop on the nominal model (in silico), evaluated on the nominal model and on the real chain;
2. physics-aware training: forward on the real chain, backward through the nominal twin;
3. for reference, the same digital parts with no chain at all (tones straight into the bands).

Forward-forward (``physnn.training.ForwardForward``) is not compared: it trains a
``physical_network``, whose devices take a block's activations (with the label
written onto its first 7 entries) directly as their drive and whose goodness
comes from a digital linear map per block. Here the chain takes a 512-sample
waveform made by a tone encoder and the class scores are its band energies, so
forward-forward would need a different network, not a different training
method. It runs on the same vowels in ``examples/phyll_vowels.py`` (on the
measured acoustic cavity: 96.7 +- 2.4 %, see ``docs/training.md``).

Test accuracies (103 tokens; seeds 0, 1, 2; 60 epochs; seed 0 took 2.1 min CPU):

    noise (V rms)                         0.1 (default)         0.02
    backprop, on the nominal model        92.2 / 83.5 / 92.2    92.2 / 83.5 / 92.2
    backprop, on the real chain           54.4 / 57.3 / 65.0    94.2 / 86.4 / 92.2
    physics-aware, on the real chain      80.6 / 78.6 / 89.3    89.3 / 84.5 / 92.2
    no chain (digital parts only)         91.3 / 94.2 / 92.2

The +-5 % tolerances alone barely matter (the log band energies absorb them);
the noise does: a model trained noise-free leans on quiet bands that the real
chain's noise swamps, while physics-aware training sees the real outputs. The
chain does not beat the digital parts alone on this small task, nor the
baselines (same splits, seeds 0-2, mean ± sample std): logistic regression on
the formants 95.2 ± 2.6 %, the 127-parameter MLP 94.5 ± 2.3 %, the chain
replaced by a fixed random linear map 89.6 ± 3.0 %, against 82.8 ± 5.7 % for
physics-aware training on the real chain (docs/audio.md).

    python examples/vowels_audio.py                    # the default: seeds 0-2 with the baselines
                                                       # (~10 min CPU; over an hour wall at load ~15)
    python examples/vowels_audio.py --seeds 1 --no-baselines   # seed 0 of the table above
    python examples/vowels_audio.py --synthetic        # formants drawn from published statistics
    python examples/vowels_audio.py --epochs 20        # a quick look

With ``--baselines`` (the default) every seed also gets, on the same split:
logistic regression on the 12 raw formant features, an MLP with the physical
classifier's 123 trainable parameters (trained by ``physnn.training.fit``) and
the random-map ablation (the chain replaced by a fixed random linear map
512 -> 512 samples with the chain's output statistics on the training drives,
every digital part kept and trained as the physical model). The closing table
gives every test accuracy as mean ± sample std over ``--seeds``.

What to expect, measured on a busy 2-core machine (load ~9, so wall times are
inflated; CPU times are summed over threads). One seed (60 epochs, seed 0): backprop 92.2 % on the
nominal model, 54.4 % on the real chain; physics-aware 80.6 % on the real chain;
digital parts only 91.3 %; 124 s CPU, 8.5 min wall. Quick look (``--epochs 20``):
77.7 % / 53.4 % / 76.7 % / 90.3 %; 53 s CPU, 5.6 min wall. Writes
``results.json`` and ``accuracy.png`` (the four test accuracies) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from physnn import PhysicalLayer
from physnn.cli import torch_device
from physnn.data import PHYLL_VOWELS, load_vowel_formants, synthesize_vowel_formants
from physnn.devices import BlackBox
from physnn.devices.audio import DiodeClipper, EffectChain, OpAmpOverdrive
from physnn.devices.audio.encoding import BandEnergyReadout, ToneEncoder
from physnn.errors import DataNotFoundError
from physnn.training import digital_baselines, random_map_ablation, results_table, summarize

FS, T, TONES = 16000.0, 512, 8
BAND_EDGES = [150.0, 400.0, 800.0, 1400.0, 2200.0, 3200.0, 4800.0, 8000.0]  # 7 bands, one per vowel
TRAINABLE = ["overdrive:drive", "overdrive:level", "diode-clipper:drive", "diode-clipper:resistance",
             "diode-clipper:asymmetry"]
_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets")


def load(data_dir: str | None, synthetic: bool, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(features (N, 12) Hz, labels (N,), description of the source)."""
    if not synthetic:
        try:
            x, y, _ = load_vowel_formants(data_dir or os.environ.get("PHYSNN_DATA")
                                          or (_SHARED if os.path.isdir(_SHARED) else None))
            return x, y, "Hillenbrand (1995) formant table, women, 7 vowels"
        except DataNotFoundError as exc:
            print(f"NOTE: Hillenbrand table not found ({exc}); using SYNTHESIZED formants instead.")
    x, y, _ = synthesize_vowel_formants(45, seed=seed)
    return x, y, "synthesized formants (published Hillenbrand statistics)"


def chain(tolerance: float = 0.0, seed: int = 0) -> EffectChain:
    """Overdrive -> diode clipper; with ``tolerance``, every component off by a uniform factor in 1 +- tolerance."""
    rng = np.random.default_rng(seed)

    def part(value: float) -> float:
        return value * (1 + rng.uniform(-tolerance, tolerance)) if tolerance else value

    drive = OpAmpOverdrive(r1=part(4.7e3), c1=part(47e-9), rf=part(51e3), drive_pot=part(500e3), cf=part(51e-12),
                           saturation_current=part(2.52e-9), ideality=part(1.752), sample_rate=FS, num_samples=T)
    clip = DiodeClipper(capacitance=part(10e-9), thermal_voltage=part(0.02585), sample_rate=FS, num_samples=T)
    return EffectChain([drive, clip])


class BandScores(nn.Module):
    """Class scores from band log-energies: a learned scale and offset per band."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(bands))
        self.offset = nn.Parameter(torch.zeros(bands))

    def forward(self, log_energy: torch.Tensor) -> torch.Tensor:
        return self.scale * log_energy + self.offset


class AudioClassifier(nn.Module):
    """features (B, 12) -> Linear -> 8 tones -> physical layer -> 7 band log-energies -> scores (B, 7)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(12, TONES), ToneEncoder(TONES, num_samples=T, sample_rate=FS,
                                                                       amplitude=0.5))
        self.layer = layer
        self.readout = nn.Sequential(BandEnergyReadout(T, sample_rate=FS, edges=BAND_EDGES), BandScores(7))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.readout(self.layer(self.encoder(features)))


def accuracy(model: AudioClassifier, x: torch.Tensor, y: torch.Tensor, device=None) -> float:
    """Accuracy with the model's trained knobs, on ``device`` (default: the one it was trained on)."""
    layer = model.layer
    if device is not None:
        layer = PhysicalLayer(device, route="none", controls={k: v.detach().double() for k, v in
                                                              model.layer.control_values().items()})
    with torch.no_grad():
        scores = model.readout(layer(model.encoder(x)))
    return float((scores.argmax(1) == y).float().mean())


def train(model: AudioClassifier, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    params = [{"params": list(model.encoder.parameters()) + list(model.readout.parameters()), "lr": 0.02},
              {"params": list(model.layer.parameters()), "lr": 0.05}]
    opt = torch.optim.Adam(params)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(32):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def split(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split: a third of each vowel's tokens for testing; (train mask, test indices)."""
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: (labels == c).sum() // 3]
                           for c in np.unique(labels)])
    return ~np.isin(np.arange(len(labels)), test), test


def run_seed(features: np.ndarray, labels: np.ndarray, seed: int, args: argparse.Namespace) -> list[dict]:
    """Every model on seed ``seed``'s split and real chain; one row per model."""
    rng = np.random.default_rng(seed)
    train_mask, test = split(labels, rng)  # then the real chain's gain error, from the same generator
    mean, std = features[train_mask].mean(0), features[train_mask].std(0)
    x = torch.as_tensor((features - mean) / std, dtype=torch.float64, device=args.device)
    y = torch.as_tensor(labels, device=args.device)
    xtr, ytr, xte, yte = x[train_mask], y[train_mask], x[test], y[test]
    nominal = chain()
    real = BlackBox(chain(args.tolerance, seed=seed + 1), noise_std=args.noise,
                    gain=1 + args.tolerance * (2 * rng.random() - 1), seed=seed + 2)

    def trained(layer: nn.Module) -> AudioClassifier:
        torch.manual_seed(seed)
        model = AudioClassifier(layer).double().to(args.device)
        train(model, xtr, ytr, args.epochs, seed)
        return model

    def row(model: str, accuracy: float, **extra) -> dict:
        return {"model": model, "seed": seed, "test_accuracy": accuracy, **extra}

    torch.manual_seed(seed)
    template = AudioClassifier(PhysicalLayer(nominal, route="autograd", trainable=TRAINABLE)).double()
    params = sum(p.numel() for p in template.parameters() if p.requires_grad)
    runs = []
    if args.physics:
        backprop = trained(PhysicalLayer(nominal, route="autograd", trainable=TRAINABLE))
        pat = trained(PhysicalLayer(real, route="twin", twin=nominal, trainable=TRAINABLE))
        runs += [row("backprop, on the nominal model", accuracy(backprop, xte, yte), parameters=params),
                 row("backprop, on the real chain", accuracy(backprop, xte, yte, device=real), parameters=params),
                 row("physics-aware, on the real chain", accuracy(pat, xte, yte), parameters=params,
                     real_device_calls=real.calls)]
    digital = trained(nn.Identity())
    runs.append(row("no chain (digital parts only)", accuracy(digital, xte, yte),
                    parameters=sum(p.numel() for p in digital.parameters())))
    if args.baselines:
        runs += digital_baselines((xtr, ytr), (xte, yte), n_params=params, seed=seed, epochs=args.epochs,
                                  batch_size=32)
        with torch.no_grad():
            drives = template.encoder(xtr.cpu())  # the drives the chain gets at initialization
        ablation = trained(random_map_ablation(template.layer, seed=seed, drives={0: drives}))
        runs.append(row("random-map ablation (chain -> fixed random linear map)", accuracy(ablation, xte, yte),
                        parameters=sum(p.numel() for p in ablation.parameters() if p.requires_grad)))
    for r in runs:
        r["test_tokens"] = len(yte)
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder holding hillenbrand1995/ (None: $PHYSNN_DATA)")
    p.add_argument("--synthetic", action="store_true", help="use synthesized formants")
    p.add_argument("--epochs", type=int, default=60, help="training epochs of each model (batches of 32)")
    p.add_argument("--tolerance", type=float, default=0.05, help="component tolerance of the real chain")
    p.add_argument("--noise", type=float, default=0.1, help="measurement noise of the real chain, V rms")
    p.add_argument("--seed", type=int, default=0, help="first seed: seeds the split, the real chain's parts and "
                                                       "the training")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="also run logistic regression, the matched MLP and the random-map ablation")
    p.add_argument("--physics", action=argparse.BooleanOptionalAction, default=True,
                   help="train through the chain (--no-physics: the digital models and the ablation alone, minutes)")
    p.add_argument("--out", default="runs/vowels_audio", help="folder for results.json and accuracy.png")
    p.add_argument("--device", type=torch_device, default="cpu", help="torch device of models, data: cpu or cuda")
    args = p.parse_args()
    start = time.time()
    features, labels, source = load(args.data_dir, args.synthetic, args.seed)
    print(f"data: {source}; {len(labels)} tokens, vowels {', '.join(PHYLL_VOWELS)}")
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        runs += run_seed(features, labels, seed, args)
        print(f"seed {seed}: " + "; ".join(f"{r['model']} {r['test_accuracy']:.1%}" for r in runs
                                           if r["seed"] == seed), flush=True)
    rows = summarize(runs)
    table = results_table(rows)
    by_model = {k: [r for r in runs if r["model"].startswith(k)] for k in ("backprop", "physics-aware", "no chain")}
    results = {"source": source, "tolerance": args.tolerance, "noise_v": args.noise, "test": runs[0]["test_tokens"],
               "backprop": by_model["backprop"], "physics_aware": by_model["physics-aware"],
               "digital_only": by_model["no chain"], "runs": runs, "table": table,
               "seconds": round(time.time() - start, 1)}
    print("\n" + table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    plot_accuracies(rows, results, os.path.join(args.out, "accuracy.png"))
    print(f"done in {results['seconds']:.0f} s; results.json and accuracy.png in {args.out}")


def plot_accuracies(rows: list[dict], results: dict, path: str) -> None:
    """Bar chart of the mean test accuracies (:func:`summarize` rows) with their std over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1))
    ax.barh([r["model"] for r in rows], [r["mean"] for r in rows], xerr=[r["std"] for r in rows],
            color=[f"C{i}" for i in range(len(rows))])
    for i, r in enumerate(rows):
        ax.text(r["mean"] + r["std"] + 1, i, r["text"], va="center", fontsize=7)
    ax.set_xlim(0, 130)
    ax.invert_yaxis()
    ax.set_xlabel(f"test accuracy (%), {results['test']} tokens, mean ± std over seeds")
    ax.set_title(f"noise {results['noise_v']} V rms, tolerance +-{100 * results['tolerance']:.0f} %", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
