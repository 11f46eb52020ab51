"""``physnn demo``: train a vowel classifier through simulated hardware, on embedded defaults.

The "hardware" is a chain of 12 coupled pendula whose real components differ
from the nominal design (natural frequencies off by up to +-10 %, 20 % more
damping, measurement noise): a :class:`~physnn.devices.BlackBox` around a
perturbed :class:`~physnn.devices.CoupledPendula`. Its digital twin is the
nominal design. Vowels are synthesized from Hillenbrand et al. (1995) formant
statistics, so no file is needed. Each of the 12 formant features sets one
pendulum's initial angle; the couplings and angle offsets are trained, and a
digital linear readout maps the final angles to 7 vowels. The same network is
trained by :func:`physnn.training.fit` with the library's methods, over several
seeds (each seed draws its own hardware, data split and initialization):

* :class:`~physnn.training.Backprop` ``(in_silico=True)``: backprop on the twin, then deployed on the hardware,
* :class:`~physnn.training.PhysicsAware`: forward on the hardware, backward through the twin,
* :class:`~physnn.training.ZerothOrder`: SPSA on the hardware alone,
* the hardware with frozen physics, only the readout trained (physics-aware, nothing to send back through the twin),
* for reference, a digital linear classifier on the same features (no physics, in silico only).

Every trained network is tested both in silico (on the twin) and on the
hardware. Forward-forward (:class:`~physnn.training.ForwardForward`) is not
among them: it writes the label onto the device's input (7 of its entries),
which these 12 pendula, one per formant feature, do not have room for;
``examples/phyll_vowels.py`` runs it on vowels.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data import synthesize_vowel_formants
from .device import Device
from .devices import BlackBox, CoupledPendula
from .errors import ConfigurationError
from .layer import PhysicalLayer
from .training import Backprop, Method, PhysicsAware, ZerothOrder, fit

PENDULA = 12
NOMINAL = {"omega": 2 * math.pi * 1.0, "damping": 0.1, "duration": 3.0, "steps": 36, "max_coupling": 20.0}
TOLERANCE = 0.10
LR = 0.05
EPOCHS = 60
SEEDS = 3


def make_hardware(seed: int) -> tuple[BlackBox, CoupledPendula]:
    """The imperfect "real" pendula (black box) and their nominal twin."""
    g = torch.Generator().manual_seed(seed + 1000)
    spread = TOLERANCE * (2 * torch.rand(PENDULA, generator=g, dtype=torch.float64) - 1)
    real = CoupledPendula(PENDULA, **{**NOMINAL, "omega": (NOMINAL["omega"] * (1 + spread)).tolist(),
                                      "damping": 1.2 * NOMINAL["damping"]})
    return BlackBox(real, noise_std=0.01, seed=seed), CoupledPendula(PENDULA, **NOMINAL)


@dataclass(frozen=True)
class Plan:
    """One way to train: a label, what it trains on, and how to build its method from (hardware, twin, readout)."""

    label: str
    trained_on: str
    build: Callable[[Device, Device, nn.Linear], Method]
    physical: bool = True


PLANS = (
    Plan("backprop in silico", "twin",
         lambda hw, twin, readout: Backprop(PhysicalLayer(hw, "none", twin=twin, readout=readout), lr=LR,
                                            in_silico=True)),
    Plan("physics-aware", "hardware fwd, twin bwd",
         lambda hw, twin, readout: PhysicsAware(PhysicalLayer(hw, "twin", twin=twin, readout=readout), lr=LR)),
    Plan("zeroth-order (SPSA)", "hardware",
         lambda hw, twin, readout: ZerothOrder(PhysicalLayer(hw, "zeroth_order", readout=readout), lr=LR,
                                               perturbations=2, epsilon=0.05)),
    Plan("readout only, physics frozen", "hardware",
         lambda hw, twin, readout: PhysicsAware(PhysicalLayer(hw, "twin", twin=twin, trainable=(), readout=readout),
                                                lr=LR)),
    Plan("digital linear, no physics", "digital", lambda hw, twin, readout: Backprop(readout, lr=LR), physical=False),
)


@dataclass
class Outcome:
    """One plan over all seeds: test accuracies (fractions) in silico and on the hardware, costs, curves."""

    plan: Plan
    in_silico: list[float] = field(default_factory=list)
    on_hardware: list[float] = field(default_factory=list)
    hardware_calls: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)


def run_demo(out: str | Path = "physnn-demo", epochs: int | None = None, seed: int = 0,
             seeds: int = SEEDS) -> list[dict]:
    """Train every plan on seeds ``seed .. seed + seeds - 1``, print the table and the lesson, save plot and table.

    Returns one dict per plan: ``method``, ``trained on``, the per-seed test accuracies (fractions)
    ``in silico`` and ``on hardware`` (empty for the digital baseline), ``hardware calls`` and ``seconds``
    (per seed).
    """
    # Tiny tensors: one thread avoids the intra-op thread pool's stalls when another job holds a core
    # (measured: 234 s with the default 2 threads beside a busy core, 15 s with one).
    if seeds < 1:
        raise ConfigurationError(f"run_demo needs seeds >= 1, got {seeds}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcomes = _run(Path(out), epochs or EPOCHS, list(range(seed, seed + seeds)))
    finally:
        torch.set_num_threads(threads)
    return [{"method": o.plan.label, "trained on": o.plan.trained_on, "in silico": o.in_silico,
             "on hardware": o.on_hardware, "hardware calls": o.hardware_calls, "seconds": o.seconds}
            for o in outcomes]


def _run(out: Path, epochs: int, seeds: list[int]) -> list[Outcome]:
    out.mkdir(parents=True, exist_ok=True)
    data = {seed: _vowel_split(seed) for seed in seeds}
    x_train, _, x_test, _, classes = data[seeds[0]]
    n_test = len(x_test)
    print(f"physnn demo: {len(classes)} vowels synthesized from Hillenbrand et al. (1995) formant statistics, "
          f"{len(x_train)} train / {len(x_test)} test tokens, 12 formant features -> 12 initial angles")
    print(f"hardware: {PENDULA} coupled pendula, omega +-{100 * TOLERANCE:.0f} %, damping +20 %, noise 0.01 rad; "
          f"twin = nominal design; {epochs} full-batch epochs per method; seeds {seeds[0]}-{seeds[-1]} "
          "(each: its own hardware, split and initialization)\n")
    outcomes = [Outcome(plan) for plan in PLANS]
    for seed in seeds:
        start = time.perf_counter()
        for outcome in outcomes:
            _train_once(outcome, seed, epochs, data[seed])
        print(f"  seed {seed}: test accuracy on hardware " + " / ".join(
            f"{100 * o.on_hardware[-1]:.1f}" for o in outcomes if o.plan.physical)
              + f" % ({', '.join(o.plan.label for o in outcomes if o.plan.physical)}); "
              f"{time.perf_counter() - start:.0f} s")
    table = _table(outcomes, seeds, n_test)
    print("\n" + table + "\n" + lesson(outcomes))
    (out / "results.md").write_text(table + "\n\n" + lesson(outcomes) + "\n")
    _plot(outcomes, out / "training.png")
    print(f"\nresults and plots in {out.resolve()}")
    return outcomes


def _train_once(outcome: Outcome, seed: int, epochs: int, data: tuple) -> None:
    """Fit ``outcome.plan`` on fresh hardware of ``seed``; append its test accuracies in silico and on the hardware."""
    x_train, y_train, x_test, y_test, classes = data
    hardware, twin = make_hardware(seed)
    torch.manual_seed(seed)
    method = outcome.plan.build(hardware, twin, nn.Linear(PENDULA, len(classes)))
    run = fit(method, (x_train, y_train), val=(x_test, y_test), epochs=epochs, seed=seed, eval_train=False,
              progress=False)
    outcome.curves.append([row["val_accuracy"] for row in run.history])
    outcome.seconds.append(run.accounting["time_s"])
    outcome.hardware_calls.append(int(run.accounting["train_device_calls"]))
    if not outcome.plan.physical:
        outcome.in_silico.append(run.final("val_accuracy"))
        return
    outcome.on_hardware.append(run.final("val_accuracy"))
    with _device_swapped(method.model, twin):
        outcome.in_silico.append(method.evaluate(x_test, y_test)["accuracy"])


@contextlib.contextmanager
def _device_swapped(layer: PhysicalLayer, device: Device) -> Iterator[None]:
    """Run ``layer`` on ``device`` (e.g. its twin) inside the block."""
    saved = layer.device
    layer.device = device
    try:
        yield
    finally:
        layer.device = saved


def _vowel_split(seed: int):
    """Train/test formant tokens: x (N, 12) float32 initial angles within +-1.2 rad, y (N,) int64, classes."""
    x, y, classes = synthesize_vowel_formants(60, seed=seed)
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.7 * len(y))
    tr, te = order[:n_train], order[n_train:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    x = 1.2 * torch.tanh((x - mean) / (2 * std))
    return x[tr], y[tr], x[te], y[te], list(classes)


def _pm(values: list[float]) -> str:
    """``mean +- std`` of accuracies (fractions) in percent; '-' when there are none."""
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * std:.1f} %"


def _table(outcomes: list[Outcome], seeds: list[int], n_test: int) -> str:
    lines = ["| method | trained on | test accuracy in silico (on the twin) | test accuracy deployed on the hardware | "
             "hardware calls in training | wall seconds per run |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.plan.label} | {o.plan.trained_on} | {_pm(o.in_silico)} | "
                     f"{_pm(o.on_hardware) if o.plan.physical else 'n/a (no physics)'} | "
                     f"{statistics.mean(o.hardware_calls):.0f} | {statistics.mean(o.seconds):.1f} |")
    lines.append(f"\nmean ± std over seeds {', '.join(map(str, seeds))}; one test token = "
                 f"{100 / n_test:.1f} points; the digital linear classifier runs in "
                 "silico on the raw features (its column is its own test accuracy, no twin involved)")
    return "\n".join(lines)


def lesson(outcomes: list[Outcome]) -> str:
    """One sentence drawn from the numbers: does training in silico transfer to the hardware?"""
    by_label = {o.plan.label: o for o in outcomes}
    silico = by_label["backprop in silico"]
    aware = [o for o in outcomes if o.plan.physical and o.plan.trained_on != "twin"]
    mean = {o.plan.label: 100 * statistics.mean(o.on_hardware) for o in aware}
    spread = max(100 * statistics.stdev(o.on_hardware) if len(o.on_hardware) > 1 else 0.0 for o in aware + [silico])
    deployed, on_twin = 100 * statistics.mean(silico.on_hardware), 100 * statistics.mean(silico.in_silico)
    lo, hi = min(mean.values()), max(mean.values())
    if lo - deployed > 2 * max(spread, 1.0):
        return (f"Lesson: backprop in silico scores {on_twin:.0f} % on its twin but only {deployed:.0f} % deployed on "
                f"the imperfect hardware, while the methods that train with the hardware in the loop reach "
                f"{lo:.0f}-{hi:.0f} % on it: a twin that is off by a few percent does not transfer, the hardware does.")
    return (f"Lesson: here backprop in silico ({on_twin:.0f} % on its twin) transfers to the hardware at "
            f"{deployed:.0f} %, within the spread of the methods that train with the hardware in the loop "
            f"({lo:.0f}-{hi:.0f} %): with these settings the twin is close enough.")


def _plot(outcomes: list[Outcome], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bars) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for i, o in enumerate(outcomes):
        curve = 100 * torch.tensor(o.curves).mean(0)
        where = "hardware" if o.plan.physical else "in silico"
        ax.plot(range(1, len(curve) + 1), curve, color=f"C{i}", label=f"{o.plan.label} ({where})")
    ax.set_xlabel("epoch (full batch)")
    ax.set_ylabel("test accuracy (%), mean over seeds")
    ax.set_title("test accuracy during training, on the hardware (digital: in silico)")
    ax.legend(fontsize=7)
    names = [o.plan.label for o in outcomes]
    for k, (key, shade, where) in enumerate([("in_silico", 0.4, "in silico (twin)"),
                                             ("on_hardware", 1.0, "on the hardware")]):
        for i, o in enumerate(outcomes):
            values = [100 * v for v in getattr(o, key)]
            if not values:
                continue
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            bars.barh(i + 0.4 * k - 0.2, mean, height=0.38, xerr=std, color=f"C{i}", alpha=shade,
                      label=where if i == 0 else None)
            bars.text(mean + std + 1, i + 0.4 * k - 0.2, f"{mean:.1f}", va="center", fontsize=7)
    bars.set_xlim(0, 115)
    bars.invert_yaxis()
    bars.set_yticks(range(len(names)), names, fontsize=7)
    bars.set_xlabel("final test accuracy (%), mean ± std over seeds")
    bars.set_title("in silico (light), on the hardware (dark)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
