"""The quantum layers of "Let the Quantum Creep In" (Wang, Myers, Hollenberg, Parampalli, arXiv 2409.17583).

Both are plain ``nn.Module`` s with the input and output types of the classical
layer they replace, so they drop into any PyTorch network:

* :class:`FlippedQuanv2d` replaces ``nn.Conv2d`` (the paper's FlippedQuanv3x3);
* :class:`DataReUploadingLinear` replaces ``nn.Linear`` (the paper's level-2 layer).

Parameters are real, so every trainable block is exactly unitary and each layer
is a circuit that a QPU can run. The authors' PyTorch code, which produced the
paper's published numbers, stores them as complex tensors instead: the imaginary
parts start at zero, Adam trains them, and ``exp(i sum_k (a_k + i b_k) P_k)``
stops being unitary (states lose their norm, "probabilities" grow without bound).
``complex_weights=True`` reproduces that model, with the imaginary parts as a
second real parameter ``weight_imag`` (Adam on a complex tensor is Adam on its
real and imaginary parts); it is not a physical circuit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigurationError
from .paulis import pauli_combination
from .unitary import divided_differences, special_unitary


def pauli_exp_i(theta: torch.Tensor, n_qubits: int, theta_imag: torch.Tensor | None = None, *,
                dense: bool = False) -> torch.Tensor:
    """``exp(i sum_k (theta_k + i theta_imag_k) P_k)`` ``(..., 2**n, 2**n)`` from real ``(..., 4**n - 1)``.

    Without ``theta_imag`` this is :func:`special_unitary` (one eigendecomposition,
    or a dense ``matrix_exp`` with ``dense=True``); with it, the generator is not
    Hermitian and the result ``exp(i A - B)`` is not unitary (the authors' complex
    parameters), computed by ``matrix_exp``.
    """
    if theta_imag is None and not dense:
        return special_unitary(theta, n_qubits)
    generator = pauli_combination(theta, n_qubits)
    if theta_imag is not None:
        generator = generator + 1j * pauli_combination(theta_imag, n_qubits)
    return torch.linalg.matrix_exp(1j * generator)


def _imaginary_part(weight: torch.Tensor, complex_weights: bool) -> nn.Parameter | None:
    """The authors' imaginary parts (zero at initialization, as theirs), or ``None`` for real weights."""
    return nn.Parameter(torch.zeros_like(weight)) if complex_weights else None


class FlippedQuanv2d(nn.Module):
    """A quantum convolution with the data as the observable (the paper's FlippedQuanv3x3).

    For each (output, input) channel pair a ``q``-qubit state
    ``|psi> = exp(i sum_k theta_k P_k) |0...0>`` (``q = ceil(log2 kernel_size)``,
    ``4**q - 1`` real parameters) is measured with the observable built from each
    ``k x k`` patch: zero-padded to ``2**q x 2**q`` (bottom and right) and
    symmetrized, ``S = (P + P^T) / 2``. The output is the mean over input
    channels of ``<psi|S|psi>``, plus a bias. ``complex_weights=True``: the
    authors' non-unitary variant (module docstring).

    Because ``<psi|S|psi> = sum_ab Re(conj(psi_a) psi_b) P_ab``, the layer *is* a
    linear ``Conv2d`` whose kernel is the top-left ``k x k`` block of
    ``Re(psi psi^dagger)`` divided by the number of input channels; ``forward``
    uses that identity. :meth:`circuit` gives the same numbers from a PennyLane
    circuit on any PennyLane device.

    Shapes: ``(B, C_in, H, W)`` -> ``(B, C_out, H_out, W_out)``, as ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, *, complex_weights: bool = False) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ConfigurationError(f"FlippedQuanv2d: kernel_size must be >= 1, got {kernel_size}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.n_qubits = max(1, math.ceil(math.log2(kernel_size)))
        # Initialization of the authors' code: standard normal parameters and bias.
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 4 ** self.n_qubits - 1))
        self.weight_imag = _imaginary_part(self.weight, complex_weights)
        self.bias = nn.Parameter(torch.randn(out_channels))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, complex_weights: bool = False) -> FlippedQuanv2d:
        """A fresh quantum layer with the shape of a square-kernel ``nn.Conv2d`` (weights are not copied)."""
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        if len({*k}) != 1 or len({*s}) != 1 or isinstance(p, str) or len({*p}) != 1 or conv.groups != 1 \
                or conv.dilation != (1, 1):
            raise ConfigurationError(f"FlippedQuanv2d replaces square, ungrouped, undilated convolutions with equal "
                                     f"stride and padding; got {conv}")
        return cls(conv.in_channels, conv.out_channels, k[0], s[0], p[0], complex_weights=complex_weights)

    def states(self) -> torch.Tensor:
        """The channel-pair states ``(C_out, C_in, 2**q)`` (complex; normalized unless ``complex_weights``)."""
        return pauli_exp_i(self.weight, self.n_qubits, self.weight_imag)[..., :, 0]

    def kernel(self) -> torch.Tensor:
        """The equivalent ``Conv2d`` kernel ``(C_out, C_in, k, k)``: ``Re(psi psi^dagger)[:k, :k] / C_in``."""
        psi = self.states()
        k = self.kernel_size
        outer = (psi.conj()[..., :k, None] * psi[..., None, :k]).real
        return outer / self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H_out, W_out)``."""
        return F.conv2d(x, self.kernel().to(x.dtype), self.bias.to(x.dtype), stride=self.stride,
                        padding=self.padding)

    def circuit(self, out_channel: int, in_channel: int, *, backend: str = "default.qubit",
                shots: int | None = None, diff_method: str = "auto", seed: int | None = None) -> Any:
        """The PennyLane circuit of one channel pair as a device, with its parameters.

        Returns ``(device, controls)``: a :class:`~physnn.devices.quantum.QuantumCircuit`
        with data-as-observable encoding (input: a flattened ``2**q x 2**q``
        zero-padded patch, output ``(1,)``) and the controls that hold this pair's
        parameters, so ``device(patches, controls)`` gives ``<psi|S|psi>`` for
        each patch on ``backend``.
        """
        from .circuit import QuantumCircuit

        if self.weight_imag is not None:
            raise ConfigurationError("FlippedQuanv2d.to_circuit: complex_weights=True makes the states "
                                     "non-normalized: no circuit prepares them")
        device = QuantumCircuit(self.n_qubits, encoding="observable", ansatz="special_unitary", layers=1,
                                backend=backend, shots=shots, diff_method=diff_method, seed=seed)
        return device, {"weights": self.weight[out_channel, in_channel].detach().reshape(1, -1)}

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-padded patches as the circuit's inputs: ``(B, C_in, H, W)`` -> ``(B, C_in, L, 4**q)``
        (``L`` output positions in row-major order)."""
        k, dim = self.kernel_size, 2 ** self.n_qubits
        cols = F.unfold(x, k, padding=self.padding, stride=self.stride)  # (B, C_in * k * k, L)
        cols = cols.unflatten(1, (self.in_channels, k, k)).permute(0, 1, 4, 2, 3)
        return F.pad(cols, (0, dim - k, 0, dim - k)).flatten(-2)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, n_qubits={self.n_qubits}"
                + (", complex_weights=True" if self.weight_imag is not None else ""))


def _apply_real(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``v @ z`` for real matrices ``v`` ``(B, N, N)`` and complex vectors ``z`` ``(B, N)``, as one real product."""
    return torch.view_as_complex((v @ torch.view_as_real(z)).contiguous())


class _ReUpload(torch.autograd.Function):
    """``psi_R = U_R E ... U_1 E |+>`` with ``E = exp(i t (D + D^T) / 2)`` per sample, never forming ``E``.

    Forward: one symmetric eigendecomposition ``V diag(l) V^T`` per sample;
    each ``E psi = V (exp(i t l) * (V^T psi))`` costs two matrix-vector products.
    Backward: the gradient of ``E`` is a sum of ``R`` outer products, so in the
    eigenbasis it is ``H C^H`` (``N x R`` factors); the Daleckii-Krein formula
    maps it to ``D`` with one ``V (.) V^T`` product.
    """

    @staticmethod
    def forward(ctx: Any, d: torch.Tensor, blocks: torch.Tensor, t: float) -> torch.Tensor:
        evals, v = torch.linalg.eigh((d + d.mT) / 2)
        phase = torch.polar(torch.ones_like(evals), evals * t).to(blocks.dtype)
        psi = torch.full(evals.shape, evals.shape[-1] ** -0.5, dtype=blocks.dtype, device=d.device)
        coords, after = [], []
        for r in range(blocks.shape[0]):
            coords.append(_apply_real(v.mT, psi))           # V^T psi_{r-1}
            after.append(_apply_real(v, phase * coords[-1]))  # a_r = E psi_{r-1}
            psi = after[-1] @ blocks[r].mT                     # psi_r = U_r a_r
        ctx.save_for_backward(evals, v, phase, blocks, torch.stack(coords, -1), torch.stack(after))
        ctx.t = t
        return psi

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, None]:
        evals, v, phase, blocks, coords, after = ctx.saved_tensors
        grad_blocks = torch.empty_like(blocks)
        rotated = []
        g = grad
        for r in reversed(range(blocks.shape[0])):
            grad_blocks[r] = g.mT @ after[r].conj()
            h = _apply_real(v.mT, g @ blocks[r].conj())  # V^T (U_r^H g)
            rotated.append(h)
            g = _apply_real(v, phase.conj() * h)         # E^H U_r^H g
        grad_d = None
        if ctx.needs_input_grad[0]:
            h = torch.stack(rotated[::-1], -1)           # (B, N, R)
            inner = (h @ coords.conj().mT) * divided_differences(evals, ctx.t, h.dtype).conj()
            grad_d = v @ inner.real @ v.mT
            grad_d = (grad_d + grad_d.mT) / 2
        return grad_d, grad_blocks, None


def reupload(d: torch.Tensor, blocks: torch.Tensor, t: float) -> torch.Tensor:
    """Data re-uploading: ``U_R E ... U_1 E |+>`` with ``E = exp(i t (D + D^T) / 2)``.

    Args:
        d: real data matrices ``(B, N, N)``.
        blocks: the trainable unitaries ``(R, N, N)`` (complex, same precision as ``d``).
        t: evolution time of each data block (``1 / R`` in the paper).

    Returns:
        Final states ``(B, N)`` (complex), differentiable in ``d`` and ``blocks``.
    """
    return _ReUpload.apply(d, blocks, float(t))


class DataReUploadingLinear(nn.Module):
    """A quantum linear layer by data re-uploading (the paper's level-2 layer).

    The input ``x`` (``in_features``) is zero-padded to ``4**q`` entries and
    reshaped (row-major) to a ``2**q x 2**q`` matrix ``D``; ``H_x = (D + D^T) / 2``.
    Starting from ``|+>^q``, ``repetitions`` R times: apply ``exp(i H_x / R)``,
    then a trainable ``exp(i sum_k theta_rk P_k)`` (``4**q - 1`` real parameters
    per repetition). The output is the probability of each of the first
    ``out_features`` basis states, plus a bias.

    ``method="eigh"`` (default) diagonalizes each sample's ``H_x`` once (the data
    unitary does not depend on the weights), applies ``exp(i H_x / R)`` in that
    eigenbasis without forming it (:func:`reupload`), and builds each trainable
    unitary once per batch; ``method="dense"`` follows the authors' code, dense
    matrix exponentials of the data block and of every trainable block in every
    repetition (the reference the benchmark compares against).
    ``complex_weights=True``: the authors' non-unitary variant (module docstring).

    Shapes: ``(B, in_features)`` -> ``(B, out_features)``, as ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, n_qubits: int, repetitions: int = 10, *,
                 method: str = "eigh", complex_weights: bool = False) -> None:
        super().__init__()
        if 4 ** n_qubits < in_features or 2 ** n_qubits < out_features:
            raise ConfigurationError(f"DataReUploadingLinear: {n_qubits} qubits hold at most 4**q = {4 ** n_qubits} "
                                     f"inputs and 2**q = {2 ** n_qubits} outputs; got {in_features} -> {out_features}")
        if method not in ("eigh", "dense"):
            raise ConfigurationError(f"DataReUploadingLinear: method must be 'eigh' or 'dense', got {method!r}")
        if repetitions < 1:
            raise ConfigurationError(f"DataReUploadingLinear: repetitions must be >= 1, got {repetitions}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.n_qubits, self.repetitions, self.method = int(n_qubits), int(repetitions), method
        self.weight = nn.Parameter(torch.randn(repetitions, 4 ** n_qubits - 1))
        self.weight_imag = _imaginary_part(self.weight, complex_weights)
        self.bias = nn.Parameter(torch.randn(out_features))

    @classmethod
    def from_linear(cls, linear: nn.Linear, n_qubits: int | None = None, repetitions: int = 10, *,
                    method: str = "eigh", complex_weights: bool = False) -> DataReUploadingLinear:
        """A fresh quantum layer with the shape of ``linear``; ``n_qubits`` defaults to the fewest that fit."""
        if n_qubits is None:
            n_qubits = max(1, math.ceil(math.log(linear.in_features, 4)), math.ceil(math.log2(linear.out_features)))
        return cls(linear.in_features, linear.out_features, n_qubits, repetitions, method=method,
                   complex_weights=complex_weights)

    def data_matrix(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` -> the padded, reshaped ``D`` ``(B, 2**q, 2**q)``."""
        dim = 2 ** self.n_qubits
        return F.pad(x, (0, dim * dim - self.in_features)).reshape(x.shape[0], dim, dim)

    def unitaries(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The trainable blocks ``(R, 2**q, 2**q)``: unitary unless ``complex_weights``."""
        imag = None if self.weight_imag is None else self.weight_imag.to(dtype)
        return pauli_exp_i(self.weight.to(dtype), self.n_qubits, imag, dense=self.method == "dense")

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """The final states ``(B, 2**q)`` (complex) for inputs ``(B, in_features)``."""
        d = self.data_matrix(x)
        t = 1.0 / self.repetitions
        blocks = self.unitaries(x.dtype)
        if self.method == "eigh":
            return reupload(d, blocks, t)
        # The authors' computation: a dense matrix exponential of the data block in every repetition.
        psi = torch.full((x.shape[0], 2 ** self.n_qubits), 2 ** (-self.n_qubits / 2), dtype=blocks.dtype,
                         device=x.device)
        for r in range(self.repetitions):
            data = torch.linalg.matrix_exp(1j * t * (d + d.mT).to(blocks.dtype) / 2)
            psi = (data @ psi[..., None])[..., 0] @ blocks[r].mT
        return psi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` -> ``(B, out_features)``."""
        psi = self.states(x)[:, : self.out_features]
        return (psi.real ** 2 + psi.imag ** 2) + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, n_qubits={self.n_qubits}, "
                f"repetitions={self.repetitions}, method={self.method!r}"
                + (", complex_weights=True" if self.weight_imag is not None else ""))
