"""Compiled biquad recursion and its exact adjoint (numba), for every biquad filter.

Each row alone is bound by the latency of its multiply-add chain, so rows run
two at a time in one time loop (an odd last row is paired with itself, as in
:func:`._kernels.diode_node_forward`): the two independent recursions overlap
in the CPU pipeline with all state in registers (3x faster than one row at a
time or than the batch loop inside the time loop). The adjoint is the
time-reversed filter with the coefficient gradients summed in the same pass.
State and sums are float64 whatever the dtype of the signal arrays (float32 or
float64, compiled for each).
"""

from __future__ import annotations

import numba

from ._kernels import _INLINE, _JIT


@numba.njit(**_INLINE)
def _forward_step(c, xn, x1, x2, y1, y2):
    return c[0] * xn + c[1] * x1 + c[2] * x2 - c[3] * y1 - c[4] * y2


@numba.njit(**_JIT)
def biquad_forward(x, coef, y):
    """Direct form I from rest: ``y_n = b0 x_n + b1 x_{n-1} + b2 x_{n-2} - a1 y_{n-1} - a2 y_{n-2}``.

    x, y: (B, T); coef: (B, 5) float64 rows ``(b0, b1, b2, a1, a2)``.
    """
    nb, nt = x.shape
    for r in range(0, nb, 2):
        s = min(r + 1, nb - 1)
        cr, cs = coef[r], coef[s]
        xr1 = xr2 = yr1 = yr2 = xs1 = xs2 = ys1 = ys2 = 0.0
        for n in range(nt):
            xr, xs = x[r, n], x[s, n]
            yr = _forward_step(cr, xr, xr1, xr2, yr1, yr2)
            ys = _forward_step(cs, xs, xs1, xs2, ys1, ys2)
            y[r, n] = yr
            y[s, n] = ys
            xr2, xr1, yr2, yr1 = xr1, xr, yr1, yr
            xs2, xs1, ys2, ys1 = xs1, xs, ys1, ys


@numba.njit(**_INLINE)
def _adjoint_step(c, g, l1, l2, acc, x0, x1, x2, y1, y2):
    """One reverse step: ``lam_n``, ``dL/dx_n``, sums + ``lam (x_n, x_{n-1}, x_{n-2}, -y_{n-1}, -y_{n-2})``."""
    lam = g - c[3] * l1 - c[4] * l2
    sums = (acc[0] + lam * x0, acc[1] + lam * x1, acc[2] + lam * x2, acc[3] - lam * y1, acc[4] - lam * y2)
    return lam, c[0] * lam + c[1] * l1 + c[2] * l2, sums


@numba.njit(**_JIT)
def biquad_adjoint(grad_y, x, y, coef, grad_x, grad_coef):
    """Reverse recursion of :func:`biquad_forward`.

    ``lam_n = g_n - a1 lam_{n+1} - a2 lam_{n+2}``, ``dL/dx_n = b0 lam_n + b1 lam_{n+1} + b2 lam_{n+2}``,
    ``dL/db_k = sum lam_n x_{n-k}``, ``dL/da_k = -sum lam_n y_{n-k}``. Writes grad_x (B, T), grad_coef (B, 5).
    """
    nb, nt = x.shape
    for r in range(0, nb, 2):
        s = min(r + 1, nb - 1)
        cr, cs = coef[r], coef[s]
        lr1 = lr2 = ls1 = ls2 = 0.0
        acc_r = acc_s = (0.0, 0.0, 0.0, 0.0, 0.0)
        for n in range(nt - 1, -1, -1):
            m1, m2 = max(n - 1, 0), max(n - 2, 0)
            w1 = 1.0 if n >= 1 else 0.0  # x_{-1} = y_{-1} = 0 (and likewise at -2): these weights drop them
            w2 = 1.0 if n >= 2 else 0.0
            lr, gr, acc_r = _adjoint_step(cr, grad_y[r, n], lr1, lr2, acc_r, x[r, n], w1 * x[r, m1], w2 * x[r, m2],
                                          w1 * y[r, m1], w2 * y[r, m2])
            ls, gs, acc_s = _adjoint_step(cs, grad_y[s, n], ls1, ls2, acc_s, x[s, n], w1 * x[s, m1], w2 * x[s, m2],
                                          w1 * y[s, m1], w2 * y[s, m2])
            grad_x[r, n] = gr
            grad_x[s, n] = gs
            lr2, lr1, ls2, ls1 = lr1, lr, ls1, ls
        for k in range(5):
            grad_coef[r, k] = acc_r[k]
            grad_coef[s, k] = acc_s[k]
