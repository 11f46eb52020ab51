"""Compiled feed-forward compressor (numba): level, soft-knee gain, attack/release smoothing and
gain in one pass per sample, and its adjoint in one reverse pass.

The model is :mod:`physnn.devices.audio.compressor`'s. Fusing it keeps the
per-sample intermediates (level, static gain, their derivatives) in registers:
the forward pass writes only the output and the smoothed gain (float64, which
the adjoint needs to replay the attack/release branches exactly); the adjoint
recomputes the rest from the input. Arrays are float32 or float64 (compiled for
each); the arithmetic is float64. Blocks of rows run on ``torch.get_num_threads()`` threads
(:func:`physnn._threads.over_rows`), bit-identical for any count.
"""

from __future__ import annotations

import math

import numba

from ..._threads import over_rows
from ._kernels import _INLINE, _JIT, PARALLEL_MIN

#: dB per natural-log unit of power (10 / ln 10) and natural-log units per dB of amplitude (ln 10 / 20).
DB_POWER = 10.0 / math.log(10.0)
NEPER_PER_DB = math.log(10.0) / 20.0


@numba.njit(**_INLINE)
def _static(x, floor, threshold, slope, width):
    """Target gain (dB) of the soft knee at input x, and its derivatives in level, slope and width."""
    over = DB_POWER * math.log(x * x + floor) - threshold
    half = 0.5 * width
    if over > half:
        return slope * over, slope, over, 0.0
    if over < -half:
        return 0.0, 0.0, 0.0, 0.0
    u = over + half
    return slope * u * u / (2.0 * width), slope * u / width, u * u / (2.0 * width), slope * u / (2.0 * width) * (
        1.0 - u / width)


@over_rows("x", "threshold", "slope", "width", "pole_a", "pole_r", "makeup", "y", "g", min_size=PARALLEL_MIN)
@numba.njit(**_JIT)
def compressor_forward(x, floor, threshold, slope, width, pole_a, pole_r, makeup, y, g):
    """y = x 10^((g + makeup) / 20), g the smoothed soft-knee gain in dB.

    x, y: (B, T) volts; g: (B, T) float64 dB (written); floor: V^2; threshold
    (dB), slope (1/ratio - 1), width (knee, dB, > 0), pole_a, pole_r (pole radii), makeup (dB): (B,).
    """
    nb, nt = x.shape
    for b in range(nb):
        th, s, w, ca, cr, mk = threshold[b], slope[b], width[b], pole_a[b], pole_r[b], makeup[b]
        prev = 0.0
        for n in range(nt):
            xn = x[b, n]
            t = _static(xn, floor, th, s, w)[0]
            c = ca if t < prev else cr
            prev = c * prev + (1.0 - c) * t
            g[b, n] = prev
            y[b, n] = xn * math.exp((prev + mk) * NEPER_PER_DB)


@over_rows("grad_y", "x", "g", "threshold", "slope", "width", "pole_a", "pole_r", "makeup", "grad_x", "grad_rows",
           min_size=PARALLEL_MIN)
@numba.njit(**_JIT)
def compressor_adjoint(grad_y, x, g, floor, threshold, slope, width, pole_a, pole_r, makeup, grad_x, grad_rows):
    """Reverse pass of :func:`compressor_forward` (attack/release branches as taken).

    Writes grad_x (B, T) and grad_rows (B, 6): d/d(threshold, slope, width, pole_a, pole_r, makeup).
    """
    nb, nt = x.shape
    for b in range(nb):
        th, s, w, ca, cr, mk = threshold[b], slope[b], width[b], pole_a[b], pole_r[b], makeup[b]
        lam_next = 0.0
        c_next = 0.0
        acc_th = acc_s = acc_w = acc_a = acc_r = acc_m = 0.0
        for n in range(nt - 1, -1, -1):
            xn = x[b, n]
            gain = math.exp((g[b, n] + mk) * NEPER_PER_DB)
            gy = grad_y[b, n]
            gg = gy * xn * gain * NEPER_PER_DB  # dL/dg_n, direct part
            acc_m += gg
            t, dt_level, dt_slope, dt_width = _static(xn, floor, th, s, w)
            prev = g[b, n - 1] if n >= 1 else 0.0
            attack = t < prev
            c = ca if attack else cr
            lam = gg + c_next * lam_next
            gt = (1.0 - c) * lam  # dL/dt_n
            if attack:
                acc_a += lam * (prev - t)
            else:
                acc_r += lam * (prev - t)
            acc_th -= gt * dt_level
            acc_s += gt * dt_slope
            acc_w += gt * dt_width
            grad_x[b, n] = gy * gain + gt * dt_level * DB_POWER * 2.0 * xn / (xn * xn + floor)
            lam_next = lam
            c_next = c
        grad_rows[b, 0] = acc_th
        grad_rows[b, 1] = acc_s
        grad_rows[b, 2] = acc_w
        grad_rows[b, 3] = acc_a
        grad_rows[b, 4] = acc_r
        grad_rows[b, 5] = acc_m
