"""Compiled linear(ized) recursions and their exact adjoints (numba): biquads and the plate's modes.

Each row (or mode) alone is bound by the latency of its multiply-add chain, so rows run
several at a time in one time loop (biquads: four forward, two in the adjoint; modes: two), the
last rows of a block repeated to fill a group: the independent recursions overlap in the CPU
pipeline with all state in registers. The adjoint is
the time-reversed filter with the coefficient gradients summed in the same pass, each step's
terms read at its own sample (``lam_{n+k} x_n``, no look-back).
State and sums are float64 whatever the dtype of the signal arrays (float32 or
float64, compiled for each). Blocks of rows run on ``torch.get_num_threads()``
threads (:func:`physnn._threads.over_rows`; groups kept whole), bit-identical for any count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..._threads import over_rows
from ._kernels import _INLINE, _JIT, PARALLEL_MIN


@numba.njit(**_INLINE)
def _forward_step(c, xn, x1, x2, y1, y2):
    return c[0] * xn + c[1] * x1 + c[2] * x2 - c[3] * y1 - c[4] * y2


@over_rows("x", "coef", "y", align=4, min_size=PARALLEL_MIN)
@numba.njit(**_JIT)
def biquad_forward(x, coef, y):
    """Direct form I from rest: ``y_n = b0 x_n + b1 x_{n-1} + b2 x_{n-2} - a1 y_{n-1} - a2 y_{n-2}``.

    x, y: (B, T); coef: (B, 5) float64 rows ``(b0, b1, b2, a1, a2)``. Rows run four at a time
    (the last rows of a block repeated to fill a four).
    """
    nb, nt = x.shape
    for r in range(0, nb, 4):
        i, j, k, m = r, min(r + 1, nb - 1), min(r + 2, nb - 1), min(r + 3, nb - 1)
        ci, cj, ck, cm = coef[i], coef[j], coef[k], coef[m]
        xi1 = xi2 = yi1 = yi2 = xj1 = xj2 = yj1 = yj2 = 0.0
        xk1 = xk2 = yk1 = yk2 = xm1 = xm2 = ym1 = ym2 = 0.0
        for n in range(nt):
            xi, xj, xk, xm = x[i, n], x[j, n], x[k, n], x[m, n]
            yi = _forward_step(ci, xi, xi1, xi2, yi1, yi2)
            yj = _forward_step(cj, xj, xj1, xj2, yj1, yj2)
            yk = _forward_step(ck, xk, xk1, xk2, yk1, yk2)
            ym = _forward_step(cm, xm, xm1, xm2, ym1, ym2)
            y[i, n], y[j, n], y[k, n], y[m, n] = yi, yj, yk, ym
            xi2, xi1, yi2, yi1 = xi1, xi, yi1, yi
            xj2, xj1, yj2, yj1 = xj1, xj, yj1, yj
            xk2, xk1, yk2, yk1 = xk1, xk, yk1, yk
            xm2, xm1, ym2, ym1 = xm1, xm, ym1, ym


@numba.njit(**_INLINE)
def _adjoint_step(c, g, l1, l2, acc, xn, yn):
    """One reverse step from ``lam_{n+1}, lam_{n+2}``: ``lam_n``, ``dL/dx_n`` and the coefficient sums
    with the terms of ``x_n, y_n``: ``lam_{n+k} x_n`` for ``b_k``, ``-lam_{n+k} y_n`` for ``a_k``."""
    lam = g - c[3] * l1 - c[4] * l2
    sums = (acc[0] + lam * xn, acc[1] + l1 * xn, acc[2] + l2 * xn, acc[3] - l1 * yn, acc[4] - l2 * yn)
    return lam, c[0] * lam + c[1] * l1 + c[2] * l2, sums


@over_rows("grad_y", "x", "y", "coef", "grad_x", "grad_coef", align=2, min_size=PARALLEL_MIN)
@numba.njit(**_JIT)
def biquad_adjoint(grad_y, x, y, coef, grad_x, grad_coef):
    """Reverse recursion of :func:`biquad_forward`, rows in pairs.

    ``lam_n = g_n - a1 lam_{n+1} - a2 lam_{n+2}``, ``dL/dx_n = b0 lam_n + b1 lam_{n+1} + b2 lam_{n+2}``,
    ``dL/db_k = sum_n lam_{n+k} x_n``, ``dL/da_k = -sum_n lam_{n+k} y_n`` (``lam_n = 0`` for ``n >= T``).
    Writes grad_x (B, T), grad_coef (B, 5).
    """
    nb, nt = x.shape
    for r in range(0, nb, 2):
        s = min(r + 1, nb - 1)
        cr, cs = coef[r], coef[s]
        lr1 = lr2 = ls1 = ls2 = 0.0
        acc_r = acc_s = (0.0, 0.0, 0.0, 0.0, 0.0)
        for n in range(nt - 1, -1, -1):
            lr, gr, acc_r = _adjoint_step(cr, grad_y[r, n], lr1, lr2, acc_r, x[r, n], y[r, n])
            ls, gs, acc_s = _adjoint_step(cs, grad_y[s, n], ls1, ls2, acc_s, x[s, n], y[s, n])
            grad_x[r, n] = gr
            grad_x[s, n] = gs
            lr2, lr1, ls2, ls1 = lr1, lr, ls1, ls
        for k in range(5):
            grad_coef[r, k] = acc_r[k]
            grad_coef[s, k] = acc_s[k]


@numba.njit(**_INLINE)
def _mode_step(p1, p2, gm, cm, fn, q1, q2):
    return p1 * q1 - p2 * q2 + gm * fn - cm * q1 * q1 * q1


@over_rows("f", "a1", "a2", "gain", "cubic", "y", "q", min_size=PARALLEL_MIN)
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
def _mode_adjoint_step(p1, p2, cm, w, g, qn, l1, l2, acc, fn):
    """``lam_n = w g_n + (a1 - 3 cubic q_n^2) lam_{n+1} - a2 lam_{n+2}`` and the sums for (a1, a2, gain, cubic, w)
    with the terms of ``q_n``: ``lam_{n+1} q_n``, ``-lam_{n+2} q_n``, ``lam_n f_n``, ``-lam_{n+1} q_n^3``,
    ``g_n q_n``."""
    lam = w * g + (p1 - 3.0 * cm * qn * qn) * l1 - p2 * l2
    return lam, (acc[0] + l1 * qn, acc[1] - l2 * qn, acc[2] + lam * fn, acc[3] - l1 * qn * qn * qn, acc[4] + g * qn)


@over_rows("grad_y", "f", "q", "a1", "a2", "gain", "cubic", "grad_f", "grad_a1", "grad_a2", "grad_gain", "grad_cubic",
           "grad_weight", min_size=PARALLEL_MIN)
@numba.njit(**_JIT)
def modal_adjoint(grad_y, f, q, a1, a2, gain, cubic, weight, grad_f, grad_a1, grad_a2, grad_gain, grad_cubic,
                  grad_weight):
    """Reverse recursion of :func:`modal_forward`, modes in pairs (``lam_n = 0`` for ``n >= T``).

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
                g, fn = grad_y[b, n], f[b, n]
                lr, acc_r = _mode_adjoint_step(a1[b, r], a2[b, r], cubic[b, r], weight[r], g, q[b, r, n], lr1, lr2,
                                               acc_r, fn)
                ls, acc_s = _mode_adjoint_step(a1[b, s], a2[b, s], cubic[b, s], weight[s], g, q[b, s, n], ls1, ls2,
                                               acc_s, fn)
                grad_f[b, n] += gain[b, r] * lr + gs * ls
                lr2, lr1, ls2, ls1 = lr1, lr, ls1, ls
            for m, acc in ((r, acc_r), (s, acc_s)):
                grad_a1[b, m], grad_a2[b, m], grad_gain[b, m], grad_cubic[b, m], grad_weight[b, m] = acc



@numba.njit(**_JIT)
def rbj_design(peaking, sign, frequency, q, gain_db, sample_rate, coef, jac):
    """Audio EQ Cookbook biquads and their Jacobian, one per row.

    frequency (Hz), q, gain_db (dB): (B,) float64; peaking: the peaking EQ, else the low-pass
    (sign = -1) or high-pass (sign = +1). Writes coef (B, 5) = ``(b0, b1, b2, a1, a2) / a0`` and
    jac (B, 5, 3), the derivatives of coef by (frequency, q, gain_db).
    """
    dw = 2.0 * math.pi / sample_rate
    ln_amp = math.log(10.0) / 40.0
    n = np.empty(5)
    dn = np.empty((5, 3))
    da0 = np.empty(3)
    for r in range(frequency.shape[0]):
        w0 = dw * frequency[r]
        cos, sin = math.cos(w0), math.sin(w0)
        alpha = sin / (2.0 * q[r])
        amp = math.exp(ln_amp * gain_db[r]) if peaking else 1.0
        up, down = alpha * amp, alpha / amp
        if peaking:
            n[0], n[1], n[2], n[3], n[4] = 1.0 + up, -2.0 * cos, 1.0 - up, -2.0 * cos, 1.0 - down
        else:
            half = (1.0 + sign * cos) / 2.0  # b = ((1 -+ cos) / 2, +-(1 -+ cos), (1 -+ cos) / 2)
            n[0], n[1], n[2], n[3], n[4] = half, -sign * 2.0 * half, half, -2.0 * cos, 1.0 - alpha
        a0 = 1.0 + down
        for j in range(3):
            d_cos = -dw * sin if j == 0 else 0.0
            d_alpha = dw * cos / (2.0 * q[r]) if j == 0 else (-alpha / q[r] if j == 1 else 0.0)
            if peaking:
                d_up = d_alpha * amp + (up * ln_amp if j == 2 else 0.0)
                d_down = d_alpha / amp - (down * ln_amp if j == 2 else 0.0)
                dn[0, j], dn[1, j], dn[2, j], dn[4, j] = d_up, -2.0 * d_cos, -d_up, -d_down
                da0[j] = d_down
            else:
                h = sign * d_cos / 2.0
                dn[0, j], dn[1, j], dn[2, j], dn[4, j] = h, -d_cos, h, -d_alpha
                da0[j] = d_alpha
            dn[3, j] = -2.0 * d_cos
        for k in range(5):
            coef[r, k] = n[k] / a0
            for j in range(3):
                jac[r, k, j] = (dn[k, j] - coef[r, k] * da0[j]) / a0
