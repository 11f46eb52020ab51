"""``physnn demo``: train a vowel classifier through simulated hardware, on embedded defaults.

The "hardware" is a chain of 12 coupled pendula whose real components differ
from the nominal design (natural frequencies off by up to +-10 %, 20 % more
damping, measurement noise): a :class:`~physnn.devices.BlackBox` around a
perturbed :class:`~physnn.devices.CoupledPendula`. Its digital twin is the
nominal design. Vowels are synthesized from Hillenbrand et al. (1995) formant
statistics, so no file is needed. Each of the 12 formant features sets one
pendulum's initial angle; the couplings and angle offsets are trained, and a
digital linear readout maps the final angles to 7 vowels. The same network is
trained several ways and always evaluated on the hardware:

* backprop on the twin (in silico), then deployed on the hardware,
* physics-aware training: forward on the hardware, backward through the twin,
* zeroth-order (SPSA) training on the hardware alone,
* the hardware with frozen physics, only the readout trained,
* for reference, a digital linear classifier on the same features (no physics).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
from torch import nn

from .data import synthesize_vowel_formants
from .devices import BlackBox, CoupledPendula
from .layer import PhysicalLayer

PENDULA = 12
NOMINAL = {"omega": 2 * math.pi * 1.0, "damping": 0.1, "duration": 3.0, "steps": 36, "max_coupling": 20.0}
TOLERANCE = 0.10


def make_hardware(seed: int) -> tuple[BlackBox, CoupledPendula]:
    """The imperfect "real" pendula (black box) and their nominal twin."""
    g = torch.Generator().manual_seed(seed + 1000)
    spread = TOLERANCE * (2 * torch.rand(PENDULA, generator=g, dtype=torch.float64) - 1)
    real = CoupledPendula(PENDULA, **{**NOMINAL, "omega": (NOMINAL["omega"] * (1 + spread)).tolist(),
                                      "damping": 1.2 * NOMINAL["damping"]})
    return BlackBox(real, noise_std=0.01, seed=seed), CoupledPendula(PENDULA, **NOMINAL)


def run_demo(out: str | Path = "physnn-demo", epochs: int | None = None, seed: int = 0) -> list[dict]:
    """Train the ways listed above, print a table, and save plots and the table under ``out``."""
    # Tiny tensors: one thread avoids the intra-op thread pool's stalls when another job holds a core
    # (measured: 234 s with the default 2 threads beside a busy core, 15 s with one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(Path(out), epochs or 100, seed)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, epochs: int, seed: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test, classes = _vowel_split(seed)
    print(f"physnn demo: {len(classes)} vowels synthesized from Hillenbrand et al. (1995) formant statistics, "
          f"{len(y_train)} train / {len(y_test)} test tokens, 12 formant features -> 12 initial angles")
    print(f"hardware: {PENDULA} coupled pendula, omega +-{100 * TOLERANCE:.0f} %, damping +20 %, noise 0.01 rad; "
          f"twin = nominal design; {epochs} full-batch epochs each\n")

    hardware, twin = make_hardware(seed)
    torch.manual_seed(seed)
    readout = nn.Linear(PENDULA, len(classes))
    plans = [
        ("backprop on twin, run on hardware", twin, "autograd", {}),
        ("physics-aware (hardware fwd, twin bwd)", hardware, "twin", {"twin": twin}),
        ("zeroth-order SPSA on hardware", hardware, "zeroth_order", {"perturbations": 2, "epsilon": 0.05}),
        ("hardware, readout only", hardware, "none", {}),
    ]
    results, curves = [], {}
    for label, device, route, options in plans:
        model = PhysicalLayer(device, route, readout=copy.deepcopy(readout), **options)
        hardware.reset_counters()
        start = time.perf_counter()
        curves[label] = _train(model, x_train, y_train, epochs)
        seconds = time.perf_counter() - start
        calls = hardware.calls
        deployed = PhysicalLayer(hardware, "none", readout=model.readout)
        deployed.load_state_dict(model.state_dict())
        with torch.no_grad():
            acc = _accuracy(deployed(x_test), y_test)
        results.append({"method": label, "test accuracy on hardware": acc, "hardware calls": calls,
                        "seconds": seconds})
    digital = copy.deepcopy(nn.Linear(12, len(classes)))
    start = time.perf_counter()
    curves["digital linear (no physics)"] = _train(digital, x_train, y_train, epochs)
    with torch.no_grad():
        results.append({"method": "digital linear (no physics)", "test accuracy on hardware": _accuracy(
            digital(x_test), y_test), "hardware calls": 0, "seconds": time.perf_counter() - start})
    for r in results:
        print(f"  {r['method']:40s} test acc on hardware {100 * r['test accuracy on hardware']:5.1f} %   "
              f"hardware calls {r['hardware calls']:5d}   {r['seconds']:5.1f} s")
    _write(results, curves, out)
    print(f"\nresults and plots in {out.resolve()}")
    return results


def _vowel_split(seed: int):
    x, y, classes = synthesize_vowel_formants(60, seed=seed)
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.7 * len(y))
    tr, te = order[:n_train], order[n_train:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    x = 1.2 * torch.tanh((x - mean) / (2 * std))  # initial angles within +-1.2 rad
    return x[tr], y[tr], x[te], y[te], list(classes)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> list[float]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for _ in range(epochs):
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        history.append(_accuracy(logits.detach(), y))
    return history


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def _write(results: list[dict], curves: dict[str, list[float]], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| method | test accuracy on hardware | hardware calls | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {100 * r['test accuracy on hardware']:.1f} % | {r['hardware calls']} | "
              f"{r['seconds']:.1f} |" for r in results]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for label, acc in curves.items():
        ax.plot(acc, label=label)
    ax.set_xlabel("epoch (full batch)")
    ax.set_ylabel("training accuracy, as each method sees it")
    ax.set_title("training")
    ax.legend(fontsize=7)
    names = [r["method"] for r in results]
    accuracy = [100 * r["test accuracy on hardware"] for r in results]
    bars.barh(names, accuracy, color=[f"C{i}" for i in range(len(names))])
    for i, a in enumerate(accuracy):
        bars.text(a + 0.5, i, f"{a:.1f} %", va="center", fontsize=8)
    bars.set_xlim(0, 110)
    bars.invert_yaxis()
    bars.set_yticks(range(len(names)), [n.replace(" (", "\n(").replace(", run", ",\nrun") for n in names], fontsize=7)
    bars.set_xlabel("test accuracy on the hardware (%)")
    bars.set_title("deployed on the imperfect pendula")
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=120)
    plt.close(fig)
