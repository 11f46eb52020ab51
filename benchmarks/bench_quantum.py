"""Speed of physnn's quantum simulations, each next to its reference measured in the same run.

1. QuantumCircuit (angle encoding, 2 strongly entangling layers, <Z> on every
   wire, batch 256, float32) for n = 4, 8, 10 qubits: forward, and forward +
   backward (gradients of the weights and the inputs), as a ratio to a plain
   batched torch statevector simulation of the same circuit. Methods: physnn's
   default (``compiled``), PennyLane ``default.qubit`` backprop, and
   ``lightning.qubit`` adjoint (``--lightning``; it cannot broadcast).
2. DataReUploadingLinear (12544 -> 10, 7 qubits, 10 repetitions): one training
   step (forward + backward) with the eigendecomposition path, against the
   authors' dense matrix exponentials (every repetition) and a dense variant
   that exponentiates each sample's data block once.

Timings interleave the methods and report medians, so a busy machine slows all
of them alike.

    python benchmarks/bench_quantum.py [--repeats 7] [--lightning] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from physnn.devices.quantum import DataReUploadingLinear, QuantumCircuit


class TorchStatevector:
    """The reference: a plain batched statevector simulation of angle encoding + strongly entangling layers."""

    def __init__(self, n: int) -> None:
        self.n = n
        basis = torch.arange(2 ** n)
        self.z = (1 - 2 * ((basis[:, None] >> torch.arange(n - 1, -1, -1)) & 1)).float()
        self.cnots = {}

    def _cnot(self, control: int, target: int) -> torch.Tensor:
        if (control, target) not in self.cnots:
            i = torch.arange(2 ** self.n)
            flip = ((i >> (self.n - 1 - control)) & 1) << (self.n - 1 - target)
            self.cnots[control, target] = i ^ flip
        return self.cnots[control, target]

    def _one(self, psi: torch.Tensor, u: torch.Tensor, wire: int) -> torch.Tensor:
        s = psi.view(psi.shape[0], 2 ** wire, 2, 2 ** (self.n - wire - 1))
        return ((u[:, None] if u.dim() == 3 else u) @ s).flatten(1)

    def __call__(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, b = self.n, x.shape[0]
        psi = torch.zeros(b, 2 ** n, dtype=torch.complex64)
        psi[:, 0] = 1
        for j in range(n):
            c, s = torch.cos(x[:, j] / 2).to(psi.dtype), torch.sin(x[:, j] / 2).to(psi.dtype)
            psi = self._one(psi, torch.stack([c, -1j * s, -1j * s, c], -1).view(b, 2, 2), j)
        for layer in range(w.shape[0]):
            for j in range(n):
                phi, theta, omega = (w[layer, j, k].to(psi.dtype) for k in range(3))
                c, s = torch.cos(theta / 2), torch.sin(theta / 2)
                a, d = torch.exp(-0.5j * (phi + omega)), torch.exp(0.5j * (phi - omega))
                psi = self._one(psi, torch.stack([a * c, -d * s, d.conj() * s, a.conj() * c]).view(2, 2), j)
            r = layer % (n - 1) + 1
            for j in range(n):
                psi = psi[:, self._cnot(j, (j + r) % n)]
        return (psi.real ** 2 + psi.imag ** 2) @ self.z


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin after one warm-up call each."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def circuits(repeats: int, lightning: bool) -> None:
    print("## QuantumCircuit: angle encoding + 2 strongly entangling layers, <Z> on every wire, batch 256, float32\n")
    print("| n | method | forward (ms) | x reference | forward + backward (ms) | x reference |")
    print("|---|---|---|---|---|---|")
    for n in (4, 8, 10):
        _circuit_rows(n, repeats, lightning)


def _circuit_rows(n: int, repeats: int, lightning: bool) -> None:
    g = torch.Generator().manual_seed(n)
    x = torch.rand(256, n, generator=g) * 3.14
    w = torch.rand(2, n, 3, generator=g) * 6.28
    devices = {"physnn compiled (default)": QuantumCircuit(n),
               "PennyLane default.qubit backprop": QuantumCircuit(n, diff_method="backprop")}
    if lightning:
        devices["PennyLane lightning.qubit adjoint"] = QuantumCircuit(n, backend="lightning.qubit")
    _check_agreement(devices["physnn compiled (default)"], x, w, n)
    calls = {"reference": TorchStatevector(n), **{k: _as_function(d) for k, d in devices.items()}}

    def forward(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        return lambda: f(x, w)

    def step(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
            f(xx, ww).sum().backward()
        return run

    with torch.no_grad():
        fwd = interleaved({k: forward(f) for k, f in calls.items()}, repeats)
    both = interleaved({k: step(f) for k, f in calls.items()}, repeats)
    for k in calls:
        print(f"| {n} | {k} | {1e3 * fwd[k]:.2f} | {fwd[k] / fwd['reference']:.2f} | {1e3 * both[k]:.2f} | "
              f"{both[k] / both['reference']:.2f} |")


def _as_function(device: QuantumCircuit) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, w: device(x, {"weights": w})


def _check_agreement(compiled: QuantumCircuit, x: torch.Tensor, w: torch.Tensor, n: int) -> None:
    """physnn's default path against PennyLane default.qubit (float64 backprop): outputs and gradients."""
    pl = QuantumCircuit(n, diff_method="backprop")
    grads = []
    for device, dtype in ((compiled, torch.float32), (pl, torch.float64)):
        xx, ww = x.detach().to(dtype).clone().requires_grad_(), w.detach().to(dtype).clone().requires_grad_()
        y = device(xx, {"weights": ww})
        y.sum().backward()
        grads.append((y.detach().double(), xx.grad.double(), ww.grad.double()))
    diffs = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(*grads)]
    print(f"<!-- n={n}: compiled float32 vs default.qubit float64, max |diff| / max |value|: outputs "
          f"{diffs[0]:.1e}, input grads {diffs[1]:.1e}, weight grads {diffs[2]:.1e} -->")


def dense_once(layer: DataReUploadingLinear, x: torch.Tensor) -> torch.Tensor:
    """The same layer with each sample's data block exponentiated once by ``torch.linalg.matrix_exp``."""
    d = layer.data_matrix(x)
    blocks = layer.unitaries(x.dtype)
    data = torch.linalg.matrix_exp(0.5j * (d + d.transpose(-1, -2)).to(blocks.dtype) / layer.repetitions)
    psi = torch.full((x.shape[0], blocks.shape[-1]), blocks.shape[-1] ** -0.5, dtype=blocks.dtype)
    for r in range(layer.repetitions):
        psi = (data @ psi[..., None])[..., 0] @ blocks[r].transpose(0, 1)
    psi = psi[:, : layer.out_features]
    return psi.real ** 2 + psi.imag ** 2 + layer.bias


def reuploading(repeats: int, batch: int) -> None:
    print(f"\n## DataReUploadingLinear 12544 -> 10, 7 qubits, 10 repetitions: one training step, batch {batch}\n")
    torch.manual_seed(0)
    fast = DataReUploadingLinear(12544, 10, 7, 10)
    dense = DataReUploadingLinear(12544, 10, 7, 10, method="dense")
    dense.load_state_dict(fast.state_dict())
    x = torch.randn(batch, 12544) * 0.3
    variants = {"eigh (physnn default)": fast, "dense per repetition (authors)": dense,
                "dense once per sample": lambda v: dense_once(fast, v)}

    def step(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            xx = x.clone().requires_grad_()
            y = f(xx)
            y.square().sum().backward()
            return y.detach()
        return run

    outputs = {k: step(f)() for k, f in variants.items()}
    times = interleaved({k: step(f) for k, f in variants.items()}, repeats)
    base = times["eigh (physnn default)"]
    print("| method | step (s) | x eigh | max abs output difference to eigh |")
    print("|---|---|---|---|")
    for k in variants:
        diff = float((outputs[k] - outputs["eigh (physnn default)"]).abs().max())
        print(f"| {k} | {times[k]:.3f} | {times[k] / base:.1f} | {diff:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lightning", action="store_true", help="also time lightning.qubit adjoint (slow)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--linear-batch", type=int, default=50, help="batch of the DataReUploadingLinear step")
    parser.add_argument("--linear-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), medians of {args.repeats} interleaved repeats\n")
    circuits(args.repeats, args.lightning)
    reuploading(args.linear_repeats, args.linear_batch)


if __name__ == "__main__":
    main()
