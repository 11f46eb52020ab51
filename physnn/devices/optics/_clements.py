"""The Clements mesh: layout, the MZI transfer matrix, and the decomposition of a unitary into it.

An MZI on modes ``(m, m + 1)`` is two 50:50 couplers ``B = [[1, i], [i, 1]] / sqrt(2)`` around an
internal phase shifter ``theta`` on the upper arm, after an external phase shifter ``phi`` on the
upper input::

    T(theta, phi) = B diag(e^{i theta}, 1) B diag(e^{i phi}, 1)
                  = i e^{i theta / 2} [[e^{i phi} sin(theta/2), cos(theta/2)],
                                       [e^{i phi} cos(theta/2), -sin(theta/2)]]

The mesh has ``N`` columns; column ``l`` holds the MZIs on pairs ``(m, m + 1)`` with
``m = l mod 2, l mod 2 + 2, ...`` (N (N - 1) / 2 MZIs in all), followed by output phases
``diag(e^{i alpha})``. MZIs are numbered column by column, top to bottom.

Reference: W. R. Clements et al., "Optimal design for universal multiport interferometers",
Optica 3, 1460 (2016).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ConfigurationError


def layout(n: int) -> list[list[int]]:
    """Upper modes ``m`` of the MZIs in each of the ``n`` columns."""
    return [list(range(column % 2, n - 1, 2)) for column in range(n)]


def mzi_matrix(theta: float, phi: float) -> np.ndarray:
    """The 2 x 2 transfer matrix ``T(theta, phi)`` (module docstring), complex128."""
    s, c = math.sin(theta / 2), math.cos(theta / 2)
    return 1j * np.exp(1j * theta / 2) * np.array([[np.exp(1j * phi) * s, c], [np.exp(1j * phi) * c, -s]])


def decompose(unitary: np.ndarray, atol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phases ``(theta, phi, alpha)`` of the Clements mesh that realizes ``unitary`` (N x N), in [0, 2 pi).

    ``theta`` and ``phi`` hold one value per MZI in mesh order, ``alpha`` one output phase per mode.
    Raises :class:`ConfigurationError` when ``unitary`` is not square or not unitary within ``atol``.
    """
    u = np.array(unitary, dtype=np.complex128)
    if u.ndim != 2 or u.shape[0] != u.shape[1] or u.shape[0] < 2:
        raise ConfigurationError(f"MZIMesh.from_unitary needs a square N x N matrix with N >= 2, got shape {u.shape}")
    n = u.shape[0]
    error = float(np.abs(u @ u.conj().T - np.eye(n)).max())
    if not error <= atol:
        raise ConfigurationError(f"MZIMesh.from_unitary needs a unitary matrix: max |U U^H - I| = {error:.3g} "
                                 f"exceeds {atol:g}")
    right: list[tuple[int, float, float]] = []  # applied first, in order
    left: list[tuple[int, float, float]] = []   # U = L_1^H ... L_K^H D R_M ... R_1
    for i in range(n - 1):
        for j in range(i + 1):
            if i % 2 == 0:  # null u[n-1-j, i-j] by T^H on columns (i-j, i-j+1), from the right
                m, row = i - j, n - 1 - j
                a, b = u[row, m], u[row, m + 1]
                theta, phi = 2 * math.atan2(abs(b), abs(a)), np.angle(a) - np.angle(b) + math.pi
                u[:, m:m + 2] = u[:, m:m + 2] @ mzi_matrix(theta, phi).conj().T
                right.append((m, theta, phi))
            else:  # null u[n+j-i-1, j] by T on rows (n+j-i-2, n+j-i-1), from the left
                m, col = n + j - i - 2, j
                a, b = u[m, col], u[m + 1, col]
                theta, phi = 2 * math.atan2(abs(a), abs(b)), np.angle(b) - np.angle(a)
                u[m:m + 2, :] = mzi_matrix(theta, phi) @ u[m:m + 2, :]
                left.append((m, theta, phi))
    d = np.diag(u).copy()
    moved: list[tuple[int, float, float]] = []
    for m, theta, phi in reversed(left):  # T^H diag(d1, d2) = diag(d1', d2') T(theta, phi')
        d1, d2 = d[m], d[m + 1]
        moved.append((m, theta, float(np.angle(d1 / d2))))
        d[m], d[m + 1] = -np.exp(-1j * (theta + phi)) * d2, -np.exp(-1j * theta) * d2
    # U = D' T'_1 ... T'_K R_M ... R_1: light meets R_1 ... R_M, then T'_K ... T'_1 (the order of `moved`)
    order = right + moved
    return _place(n, order) + (np.mod(np.angle(d), 2 * math.pi),)


def _place(n: int, order: list[tuple[int, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Assign MZIs, given in the order light meets them, to the mesh's slots (earliest legal column)."""
    slots = {(column, m): k for k, (column, m) in enumerate((c, m) for c, ms in enumerate(layout(n)) for m in ms)}
    theta = np.full(len(slots), math.pi)  # T(pi, pi) is the identity
    phi = np.full(len(slots), math.pi)
    free = [0] * n
    for m, t, p in order:
        column = max(free[m], free[m + 1])
        column += (column - m) % 2
        if (column, m) not in slots:
            raise ConfigurationError(f"Clements placement failed for N={n}: no slot at column {column}, mode {m}")
        k = slots[(column, m)]
        theta[k], phi[k] = t, p
        free[m] = free[m + 1] = column + 1
    return np.mod(theta, 2 * math.pi), np.mod(phi, 2 * math.pi)
