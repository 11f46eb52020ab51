"""Matrix exponentials of Hermitian generators, differentiable by the Daleckii-Krein formula.

:func:`hermitian_exp_i` gives ``exp(i t A)`` by one eigendecomposition;
:func:`special_unitary` is the ``qml.SpecialUnitary`` matrix of a Pauli
combination. Used by the quantum layers and by the compiled circuits.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .paulis import complex_dtype, pauli_combination


def special_unitary(theta: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """``exp(i sum_k theta_k P_k)``, the ``qml.SpecialUnitary`` matrix: ``(..., 4**n - 1)`` -> ``(..., 2**n, 2**n)``."""
    return hermitian_exp_i(pauli_combination(theta, n_qubits))


def divided_differences(evals: torch.Tensor, t: float, cdtype: torch.dtype) -> torch.Tensor:
    """``(exp(i t l_a) - exp(i t l_b)) / (l_a - l_b)`` (``i t exp(i t l_a)`` where equal) ``(..., N, N)``,
    written as ``i t e_a e_b sinc(t (l_a - l_b) / 2)`` with ``e = exp(i t l / 2)``: exact for any gap."""
    half = torch.polar(torch.ones_like(evals), evals * (t / 2)).to(cdtype)
    gap = evals[..., :, None] - evals[..., None, :]
    return 1j * t * half[..., :, None] * half[..., None, :] * torch.sinc(gap * (t / (2 * math.pi))).to(cdtype)


class _HermitianExpI(torch.autograd.Function):
    """``exp(i t A)`` for the Hermitian part ``A`` of square matrices, by one eigendecomposition.

    The backward is the Daleckii-Krein formula with :func:`divided_differences`,
    exact for equal or nearly equal eigenvalues (``torch.linalg.eigh``'s own
    backward divides by eigenvalue gaps).
    """

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, t: float) -> torch.Tensor:
        evals, evecs = torch.linalg.eigh((g + g.mH) / 2)
        cdtype = complex_dtype(g.dtype)
        w = evecs.to(cdtype)
        out = (w * torch.polar(torch.ones_like(evals), evals * t).to(cdtype)[..., None, :]) @ w.mH
        ctx.save_for_backward(evals, w)
        ctx.t, ctx.real = t, not g.is_complex()
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        evals, w = ctx.saved_tensors
        inner = (w.mH @ grad @ w) * divided_differences(evals, ctx.t, w.dtype).conj()
        out = w @ inner @ w.mH
        out = (out + out.mH) / 2
        return (out.real if ctx.real else out), None


def hermitian_exp_i(a: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """``exp(i t A)`` for Hermitian ``A`` ``(..., N, N)`` (real symmetric or complex; only the Hermitian
    part ``(A + A^H) / 2`` is used) -> complex ``(..., N, N)``, differentiable in ``A``."""
    return _HermitianExpI.apply(a, float(t))
