"""Compiled linear(ized) recursions and their exact adjoints (numba): biquads and the plate's modes.

Each row (or mode) alone is bound by the latency of its multiply-add chain, so rows run
two at a time in one time loop (an odd last row is paired with itself, as in
:func:`._kernels.diode_node_forward`): the two independent recursions overlap
in the CPU pipeline with all state in registers (3x faster for biquads than one
row at a time or than the batch loop inside the time loop). The adjoint is the
time-reversed filter with the coefficient gradients summed in the same pass.
State and sums are float64 whatever the dtype of the signal arrays (float32 or
float64, compiled for each). Blocks of rows run on ``torch.get_num_threads()``
threads (:func:`physnn._threads.over_rows`; pairs kept whole), bit-identical for any count.
"""

from __future__ import annotations

import numba

from ..._threads import over_rows
from ._kernels import _INLINE, _JIT


@numba.njit(**_INLINE)
def _forward_step(c, xn, x1, x2, y1, y2):
    return c[0] * xn + c[1] * x1 + c[2] * x2 - c[3] * y1 - c[4] * y2


@over_rows("x", "coef", "y", align=2)
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


@over_rows("grad_y", "x", "y", "coef", "grad_x", "grad_coef", align=2)
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


@numba.njit(**_INLINE)
def _mode_step(p1, p2, gm, cm, fn, q1, q2):
    return p1 * q1 - p2 * q2 + gm * fn - cm * q1 * q1 * q1


@over_rows("f", "a1", "a2", "gain", "cubic", "y", "q")
@numba.njit(**_JIT)
def modal_forward(f, a1, a2, gain, cubic, weight, y, q):
    """Modes ``q_n = a1 q_{n-1} - a2 q_{n-2} + gain f_n - cubic q_{n-1}^3``, ``y_n = sum_m weight_m q_n``.

    f: (B, T) drive; a1, a2, gain, cubic: (B, M); weight: (M,); writes y (B, T)
    and the mode states q (B, M, T). Modes run two at a time (an odd last mode
    is paired with itself and counted once), like the biquad rows.
    """
    nb, nt = f.shape
    nm = a1.shape[1]
    for b in range(nb):
        for n in range(nt):
            y[b, n] = 0.0
        for r in range(0, nm, 2):
            s = min(r + 1, nm - 1)
            wr, ws = weight[r], weight[s] if s != r else 0.0
            qr1 = qr2 = qs1 = qs2 = 0.0
            for n in range(nt):
                fn = f[b, n]
                qr = _mode_step(a1[b, r], a2[b, r], gain[b, r], cubic[b, r], fn, qr1, qr2)
                qs = _mode_step(a1[b, s], a2[b, s], gain[b, s], cubic[b, s], fn, qs1, qs2)
                q[b, r, n] = qr
                q[b, s, n] = qs
                y[b, n] += wr * qr + ws * qs
                qr2, qr1, qs2, qs1 = qr1, qr, qs1, qs


@numba.njit(**_INLINE)
def _mode_adjoint_step(p1, p2, cm, w, g, qn, l1, l2, acc, qm1, qm2, fn):
    """``lam_n = w g_n + (a1 - 3 cubic q_n^2) lam_{n+1} - a2 lam_{n+2}`` and the sums for (a1, a2, gain, cubic, w)."""
    lam = w * g + (p1 - 3.0 * cm * qn * qn) * l1 - p2 * l2
    return lam, (acc[0] + lam * qm1, acc[1] - lam * qm2, acc[2] + lam * fn, acc[3] - lam * qm1 * qm1 * qm1,
                 acc[4] + g * qn)


@over_rows("grad_y", "f", "q", "a1", "a2", "gain", "cubic", "grad_f", "grad_a1", "grad_a2", "grad_gain", "grad_cubic",
           "grad_weight")
@numba.njit(**_JIT)
def modal_adjoint(grad_y, f, q, a1, a2, gain, cubic, weight, grad_f, grad_a1, grad_a2, grad_gain, grad_cubic,
                  grad_weight):
    """Reverse recursion of :func:`modal_forward`, modes in pairs.

    Writes grad_f (B, T) and the (B, M) gradients; grad_weight (B, M) holds each row's share (sum over B for (M,)).
    """
    nb, nt = f.shape
    nm = a1.shape[1]
    for b in range(nb):
        for n in range(nt):
            grad_f[b, n] = 0.0
        for r in range(0, nm, 2):
            s = min(r + 1, nm - 1)
            gs = gain[b, s] if s != r else 0.0
            lr1 = lr2 = ls1 = ls2 = 0.0
            acc_r = acc_s = (0.0, 0.0, 0.0, 0.0, 0.0)
            for n in range(nt - 1, -1, -1):
                m1, m2 = max(n - 1, 0), max(n - 2, 0)
                w1 = 1.0 if n >= 1 else 0.0  # q_{-1} = q_{-2} = 0
                w2 = 1.0 if n >= 2 else 0.0
                g, fn = grad_y[b, n], f[b, n]
                lr, acc_r = _mode_adjoint_step(a1[b, r], a2[b, r], cubic[b, r], weight[r], g, q[b, r, n], lr1, lr2,
                                               acc_r, w1 * q[b, r, m1], w2 * q[b, r, m2], fn)
                ls, acc_s = _mode_adjoint_step(a1[b, s], a2[b, s], cubic[b, s], weight[s], g, q[b, s, n], ls1, ls2,
                                               acc_s, w1 * q[b, s, m1], w2 * q[b, s, m2], fn)
                grad_f[b, n] += gain[b, r] * lr + gs * ls
                lr2, lr1, ls2, ls1 = lr1, lr, ls1, ls
            for m, acc in ((r, acc_r), (s, acc_s)):
                grad_a1[b, m], grad_a2[b, m], grad_gain[b, m], grad_cubic[b, m], grad_weight[b, m] = acc
