"""Compiled second-order all-pole recursion and its adjoint (numba), for every linear audio filter.

A biquad is an FIR part (vectorized in torch) followed by the all-pole part
``y_n = v_n - a1 y_{n-1} - a2 y_{n-2}``; its adjoint is the same recursion run
backwards in time. The time loop is outside and the batch loop inside, so the
rows' independent recursions overlap in the CPU pipeline (each row alone is
bound by the latency of its multiply-add chain). The state stays in float64
whatever the dtype of the arrays (float32 or float64, compiled for each).
"""

from __future__ import annotations

import numba
import numpy as np

from ._kernels import _JIT


@numba.njit(**_JIT)
def allpole_forward(v, a1, a2, y):
    """``y_n = v_n - a1 y_{n-1} - a2 y_{n-2}`` from rest. v, y: (B, T); a1, a2: (B,)."""
    nb, nt = v.shape
    s1 = np.zeros(nb)
    s2 = np.zeros(nb)
    for n in range(nt):
        for b in range(nb):
            yn = v[b, n] - a1[b] * s1[b] - a2[b] * s2[b]
            y[b, n] = yn
            s2[b] = s1[b]
            s1[b] = yn


@numba.njit(**_JIT)
def allpole_adjoint(grad_y, y, a1, a2, lam, grad_a):
    """Reverse recursion of :func:`allpole_forward`: ``lam_n = g_n - a1 lam_{n+1} - a2 lam_{n+2}``.

    Writes lam (B, T) = dL/dv and grad_a (B, 2) = ``(-sum lam_n y_{n-1}, -sum lam_n y_{n-2})``.
    """
    nb, nt = y.shape
    l1 = np.zeros(nb)
    l2 = np.zeros(nb)
    acc1 = np.zeros(nb)
    acc2 = np.zeros(nb)
    for n in range(nt - 1, -1, -1):
        m1 = max(n - 1, 0)  # y_{-1} = y_{-2} = 0: the weights below zero those terms
        m2 = max(n - 2, 0)
        w1 = 1.0 if n >= 1 else 0.0
        w2 = 1.0 if n >= 2 else 0.0
        for b in range(nb):
            ln = grad_y[b, n] - a1[b] * l1[b] - a2[b] * l2[b]
            lam[b, n] = ln
            acc1[b] -= ln * (w1 * y[b, m1])
            acc2[b] -= ln * (w2 * y[b, m2])
            l2[b] = l1[b]
            l1[b] = ln
    for b in range(nb):
        grad_a[b, 0] = acc1[b]
        grad_a[b, 1] = acc2[b]
