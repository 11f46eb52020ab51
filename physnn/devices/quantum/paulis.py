"""Pauli strings and fast maps between Pauli coefficients and matrices.

Strings are ordered lexicographically over ``"IXYZ"`` with the identity left
out (``XI..., XX, ...`` follow ``IX``), the order of ``qml.SpecialUnitary`` and
of the "Let the Quantum Creep In" code; the first letter acts on wire 0, the
most significant bit of a basis-state index.

A Pauli string with flip bits ``f`` and phase bits ``p`` (X: f, Z: p, Y: both)
has entries ``P[c ^ f, c] = i**|f & p| (-1)**|p & c|``. So ``sum_k theta_k P_k``
is a Walsh-Hadamard transform of the coefficients arranged by ``(f, p)``
followed by a fixed permutation of the entries: ``O(4**n * 2**n)`` work
instead of the ``O(16**n)`` of summing dense matrices.
"""

from __future__ import annotations

import functools
import itertools

import torch

from ...errors import ConfigurationError, InputError

_PAULI_BITS = {"I": (0, 0), "X": (1, 0), "Y": (1, 1), "Z": (0, 1)}
_PAULI_MATRICES = {
    "I": ((1, 0), (0, 1)),
    "X": ((0, 1), (1, 0)),
    "Y": ((0, -1j), (1j, 0)),
    "Z": ((1, 0), (0, -1)),
}


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of the same precision: complex64 for float32/complex64, else complex128."""
    return torch.complex64 if dtype in (torch.float32, torch.complex64) else torch.complex128


def pauli_strings(n_qubits: int) -> list[str]:
    """The ``4**n - 1`` non-identity Pauli strings on ``n_qubits`` qubits, in ``qml.SpecialUnitary`` order."""
    if n_qubits < 1:
        raise ConfigurationError(f"pauli_strings: n_qubits must be >= 1, got {n_qubits}")
    return ["".join(s) for s in itertools.product("IXYZ", repeat=n_qubits)][1:]


def pauli_matrix(string: str, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """The dense ``(2**n, 2**n)`` matrix of one Pauli string (Kronecker product, first letter = wire 0)."""
    out = torch.ones(1, 1, dtype=dtype)
    for letter in string:
        out = torch.kron(out, torch.tensor(_PAULI_MATRICES[letter], dtype=dtype))
    return out


@functools.lru_cache(maxsize=16)
def _tables(n_qubits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables of the fast transform for ``n_qubits`` (cached, float64/complex128 on CPU).

    Returns ``slot`` (4**n,) the ``(f, p)`` cell ``f * 2**n + p`` of each string
    (identity first), ``phase`` (4**n,) ``i**|f & p|``, ``hadamard`` (2**n, 2**n)
    the sign matrix ``(-1)**|p & c|`` and ``entry`` (2**n * 2**n,) the flat matrix
    position ``(c ^ f) * 2**n + c`` of cell ``(f, c)``.
    """
    dim = 2 ** n_qubits
    slots, phases = [], []
    for letters in itertools.product("IXYZ", repeat=n_qubits):
        f = p = 0
        for letter in letters:
            fb, pb = _PAULI_BITS[letter]
            f, p = (f << 1) | fb, (p << 1) | pb
        slots.append(f * dim + p)
        phases.append(1j ** bin(f & p).count("1"))
    c = torch.arange(dim)
    parity = torch.tensor([bin(v).count("1") % 2 for v in range(dim)])
    hadamard = 1.0 - 2.0 * parity[(c[:, None] & c[None, :])].double()
    f = torch.arange(dim)[:, None]
    entry = ((c[None, :] ^ f) * dim + c[None, :]).reshape(-1)
    return (torch.tensor(slots), torch.tensor(phases, dtype=torch.complex128), hadamard, entry)


def pauli_combination(theta: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """``sum_k theta[..., k] P_k``: a Hermitian matrix from real Pauli coefficients.

    Args:
        theta: real coefficients ``(..., 4**n - 1)`` in :func:`pauli_strings` order.
        n_qubits: number of qubits ``n``.

    Returns:
        Complex matrices ``(..., 2**n, 2**n)`` (complex64 for float32 ``theta``,
        complex128 for float64), differentiable in ``theta``.
    """
    dim = 2 ** n_qubits
    if theta.shape[-1] != dim * dim - 1:
        raise InputError(f"pauli_combination: theta must end in 4**{n_qubits} - 1 = {dim * dim - 1} coefficients, "
                         f"got shape {tuple(theta.shape)}")
    slot, phase, hadamard, entry = _tables(n_qubits)
    cdtype = complex_dtype(theta.dtype)
    full = torch.cat([torch.zeros_like(theta[..., :1]), theta], dim=-1).to(cdtype) * phase.to(theta.device, cdtype)
    cells = torch.zeros(theta.shape[:-1] + (dim * dim,), dtype=cdtype, device=theta.device)
    cells = cells.index_copy(-1, slot.to(theta.device), full).unflatten(-1, (dim, dim))
    by_flip = (cells @ hadamard.to(theta.device, cdtype)).flatten(-2)  # [f, c]
    flat = torch.zeros_like(by_flip).index_copy(-1, entry.to(theta.device), by_flip)
    return flat.unflatten(-1, (dim, dim))


def pauli_coefficients(matrix: torch.Tensor, n_qubits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decompose Hermitian matrices in the Pauli basis: ``M = c0 I + sum_k c[k] P_k``.

    Args:
        matrix: Hermitian matrices ``(..., 2**n, 2**n)``, real or complex.
        n_qubits: number of qubits ``n``.

    Returns:
        ``(c0, c)``: real identity coefficients ``(...)`` and real Pauli
        coefficients ``(..., 4**n - 1)`` in :func:`pauli_strings` order
        (``c_k = tr(P_k M) / 2**n``); the anti-Hermitian part of ``M`` is dropped.
    """
    dim = 2 ** n_qubits
    slot, phase, hadamard, entry = _tables(n_qubits)
    cdtype = complex_dtype(matrix.dtype)
    flat = matrix.to(cdtype).flatten(-2).index_select(-1, entry.to(matrix.device)).unflatten(-1, (dim, dim))
    cells = (flat @ hadamard.to(matrix.device, cdtype) / dim).flatten(-2)
    coeffs = (cells.index_select(-1, slot.to(matrix.device)) / phase.to(matrix.device, cdtype)).real
    return coeffs[..., 0], coeffs[..., 1:]
