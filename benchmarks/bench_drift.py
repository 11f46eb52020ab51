"""Robustness to drift: the measured cavity's gain and offset change half-way through training.

The PhyLL vowel task on the acoustic cavity (``examples/phyll_vowels.py``), but
the cavity sits inside a :class:`~physnn.devices.BlackBox` whose output gain and
offset jump at the middle epoch (``y -> gain * y + offset``, default 0.5 and
+0.3: the cavity's outputs span about 0..1.9), as when a physical system warms
up or an amplifier ages. Three methods train the same architecture:

* model-free forward-forward: its digital maps keep learning from the drifted measurements;
* physics-aware training: forward on the drifted cavity, backward through the
  (now stale) twin fitted before training;
* backprop in silico: trained on that twin alone, deployed on the cavity: it
  never sees the drift, so nothing corrects it (the control).

Test accuracy on the (drifting) cavity is recorded every epoch and plotted.

    python benchmarks/bench_drift.py                 # 1 seed, 240 epochs (~7 min on 2 busy cores)
    python benchmarks/bench_drift.py --epochs 40     # a quick look

Writes ``drift.png`` (test accuracy per epoch, drift marked) and ``drift.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from phyll_vowels import CLASSES, fitted_twin, split, vowel_data  # noqa: E402

from physnn.devices import BlackBox  # noqa: E402
from physnn.devices.measured import phyll_cavity  # noqa: E402
from physnn.training import (  # noqa: E402
    Backprop,
    Callback,
    ForwardForward,
    PhysicsAware,
    fit,
    physical_network,
    plot_comparison,
)


class Drift(Callback):
    """Sets ``device.gain`` / ``device.offset`` to the drifted values from epoch ``at`` (0-based) on.

    It depends only on the epoch number, so a resumed run drifts at the same epoch."""

    def __init__(self, device: BlackBox, *, at: int, gain: float, offset: float) -> None:
        self.device, self.at = device, int(at)
        self.before, self.after = (device.gain, device.offset), (float(gain), float(offset))

    def on_epoch_start(self, epoch: int, method) -> None:
        self.device.gain, self.device.offset = self.after if epoch >= self.at else self.before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=240)
    parser.add_argument("--gain", type=float, default=0.5)
    parser.add_argument("--offset", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench-drift")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = vowel_data(args.data_dir)
    tr, te = split(len(y), args.seed)
    train, test = (x[tr], y[tr]), (x[te], y[te])
    cavity = phyll_cavity(args.data_dir)
    twin, _ = fitted_twin(cavity, train[0], args.seed)  # fitted before training, on the undrifted cavity
    at = args.epochs // 2
    histories, summary = {}, {}
    for name in ("forward-forward", "physics-aware", "backprop-in-silico"):
        hardware = BlackBox(cavity)
        if name == "forward-forward":
            method = ForwardForward(physical_network([hardware, hardware], [20, 20], seed=args.seed),
                                    n_classes=CLASSES, seed=args.seed)
        else:
            net = physical_network([hardware, hardware], [20, CLASSES], twins=[twin, twin], seed=args.seed)
            method = PhysicsAware(net, lr=1e-2) if name == "physics-aware" else Backprop(net, lr=1e-2,
                                                                                       in_silico=True)
        start = time.perf_counter()
        result = fit(method, train, val=test, epochs=args.epochs, seed=args.seed, eval_train=False, progress=False,
                     callbacks=[Drift(hardware, at=at, gain=args.gain, offset=args.offset)])
        acc = [row["val_accuracy"] for row in result.history]
        summary[name] = {"before_drift": acc[at - 1], "right_after_drift": acc[at], "lowest_after_drift": min(acc[at:]),
                         "final": acc[-1], "seconds": time.perf_counter() - start}
        histories[name] = result.history
        print(f"{name:20s} test accuracy: before drift {100 * acc[at - 1]:5.1f} %, first epoch after "
              f"{100 * acc[at]:5.1f} %, final {100 * acc[-1]:5.1f} %  ({summary[name]['seconds']:.0f} s)", flush=True)
    plot_comparison(histories, out / "drift.png", events=[(at + 0.5, f"gain x{args.gain:g}, offset {args.offset:+g}")],
                    title="Cavity drift half-way: test accuracy on the drifting device",
                    ylabel="test accuracy on the cavity (%)")
    (out / "drift.json").write_text(json.dumps({"settings": vars(args), "summary": summary,
                                                "histories": histories}, indent=1))
    print(f"plot and data in {out.resolve()}")


if __name__ == "__main__":
    main()
