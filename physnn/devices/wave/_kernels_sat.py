"""Numba kernels of the wave solver with saturable absorption: forward pass and checkpointed exact adjoint.

Inside the undamped interior ``box`` the step has a field-dependent damping (``u = u^n``,
``e = 1 / (1 + u^2 / u_th^2)``, ``sat`` = b0 rho~ in 1/s)::

    D       = 1 + dt sat e                       (= (g + a) / g, g = u_th^2 + u^2, a = dt sat u_th^2)
    u^{n+1} = (2u + r2 c^2 lap - (2 - D) u^{n-1}) / D + dt^2 s x[n]

The kernels use the ``g``, ``a`` form (one division per cell) and compile the dividing loops
with ``error_model="numpy"`` (IEEE division, no zero test), which lets LLVM vectorize them.

(outside the box the linear, damped update of :mod:`._kernels`). The loss of energy makes the
step irreversible, so the backward pass cannot rebuild ``u^{n-1}`` from ``u^n, u^{n+1}``. The
forward pass instead stores the field pair ``(u^{n-1}, u^n)`` on the box and its one-cell ring
every ``every`` steps (``ckpt``, default ``every = sqrt(T)``) and the ring at every step
(``strip``); the backward pass recomputes each segment on the box alone, the ring replayed from
the strip, keeps the segment's ``every + 2`` fields and runs the adjoint through them.
Memory per sample: ``T / every`` box pairs, the ring per step, and (per thread) ``every + 2``
grid fields: O(sqrt(T)) fields instead of T.

Adjoint of one step in the box (``lambda = dL/du^{n+1}``, ``m = lambda / D``,
``u^{n+1}`` without its source term)::

    dL/du^n     += 2 m + lap(r2 c^2 m) + lap u * 2 r2 c m * 2 q u
                   + (u^{n-1} - u^{n+1}) m * (-2 u a / g^2)          (d(dt sat e)/du)
    dL/du^{n-1}  = lambda - 2 m                   (= -(2 - D) / D * lambda)
    dL/dcl      += 2 r2 c lap u m,  dL/dq += that * u^2,  dL/dsat += (u^{n-1} - u^{n+1}) m dt e

Samples are independent; threads run blocks of whole samples (:func:`physnn._threads.over_rows`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._threads import over_rows
from ._kernels import _adjoint_row, _decay_row, _inject, _probe_adjoint, _record, _weight_row


@njit(cache=True)
def _linear(new, cur, old, cl, q, a1, a2, r2):  # pragma: no cover - compiled
    """``new = a1 (2u + r2 c^2 lap) - a2 u^{n-1}`` on the whole grid: the update outside the box
    (a plain 2-D loop: no row views to make, the cheapest pass over the grid)."""
    for i in range(1, cur.shape[0] - 1):
        for j in range(1, cur.shape[1] - 1):
            u = cur[i, j]
            lap = (cur[i - 1, j] + cur[i + 1, j]) + (cur[i, j - 1] + cur[i, j + 1]) - (u + u + u + u)
            c = cl[i, j] + q[i, j] * (u * u)
            new[i, j] = a1[i, j] * ((u + u) + r2 * (c * c) * lap) - a2[i, j] * old[i, j]


@njit(cache=True, error_model="numpy")
def _saturable_row(new, um, u0, up, old, cl, q, sat, r2, dt, uth2):  # pragma: no cover - compiled
    """``new = (2u + r2 c^2 lap - (2 - D) u^{n-1}) / D``, written with one division:
    ``D = (g + a) / g`` for ``g = u_th^2 + u^2``, ``a = dt sat u_th^2``."""
    for k in range(1, new.shape[0] - 1):
        u = u0[k]
        g = uth2 + u * u
        a = dt * sat[k] * uth2
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * (u * u)
        new[k] = ((((u + u) + r2 * (c * c) * lap) - old[k]) * g + a * old[k]) / (g + a)


@njit(cache=True)
def _step(new, cur, old, cl, q, sat, a1, a2, r2, dt, uth2, box, whole):  # pragma: no cover - compiled
    """``new`` <- u^{n+1} from ``cur`` = u^n, ``old`` = u^{n-1} (three distinct arrays): on the
    whole grid (the linear update everywhere, then the box overwritten), or with ``whole=False``
    on the box only."""
    r0, r1, c0, c1 = box[0], box[1], box[2], box[3]
    s = slice(c0 - 1, c1 + 1)
    if whole:
        _linear(new, cur, old, cl, q, a1, a2, r2)
    for i in range(r0, r1):
        _saturable_row(new[i, s], cur[i - 1, s], cur[i, s], cur[i + 1, s], old[i, s], cl[i, s], q[i, s],
                       sat[i, s], r2, dt, uth2)


@over_rows("x", "signals", "intensity", "strip", "ckpt")
@njit(cache=True, nogil=True)
def forward(x, cl, q, sat, a1, a2, r2, dt, uth2, box, every, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p,
            prb_w, ring_i, ring_j, signals, intensity, strip, ckpt):  # pragma: no cover - compiled
    """Run ``T = x.shape[2]`` steps from rest for every sample.

    Writes ``signals`` (B, P, T), ``intensity`` (B, P), and for the backward pass ``strip``
    (B, T + 1, R) (the ring at every step) and ``ckpt`` (B, ceil(T / every), 2, h + 2, w + 2)
    (``(u^{n-1}, u^n)`` on the box and its ring at ``n = 0, every, 2 every, ...``); a
    ``strip`` of shape (B, 0, R) skips both. ``box = (r0, r1, c0, c1)`` in padded indices.
    """
    batch, _, steps = x.shape
    dt2 = dt * dt
    save = strip.shape[1] > 0
    r0, r1, c0, c1 = box[0], box[1], box[2], box[3]
    for b in range(batch):
        fields = np.zeros((3,) + cl.shape, cl.dtype)
        for n in range(steps):
            new, cur, old = fields[(n + 1) % 3], fields[n % 3], fields[(n + 2) % 3]
            if save and n % every == 0:
                ckpt[b, n // every, 0] = old[r0 - 1:r1 + 1, c0 - 1:c1 + 1]
                ckpt[b, n // every, 1] = cur[r0 - 1:r1 + 1, c0 - 1:c1 + 1]
            _step(new, cur, old, cl, q, sat, a1, a2, r2, dt, uth2, box, True)
            _inject(new, x, b, n, src_i, src_j, src_s, src_w, dt2, False)
            _record(new, b, n, dt, prb_i, prb_j, prb_p, prb_w, ring_i, ring_j, signals, intensity, strip, save)


@njit(cache=True, error_model="numpy")
def _weight_box_row(w, cur, lam, cl, q, sat, r2, dt, uth2):  # pragma: no cover - compiled
    """``w = r2 c^2 m`` in the box, ``m = lambda / D``."""
    for k in range(1, w.shape[0] - 1):
        u = cur[k]
        g = uth2 + u * u
        c = cl[k] + q[k] * (u * u)
        w[k] = r2 * (c * c) * (lam[k] * g / (g + dt * sat[k] * uth2))


@njit(cache=True, error_model="numpy")
def _adjoint_box_row(part, lam, wm, w, wp, um, u0, up, old, nxt, cl, q, sat, r2, dt, uth2):  # pragma: no cover
    """``part += J^T lambda`` in the box (``nxt`` = u^{n+1} without its source term); with ``g``, ``a``
    as in :func:`_saturable_row`, ``d(dt sat e)/du = -2 u a / g^2``."""
    for k in range(1, part.shape[0] - 1):
        u = u0[k]
        g = uth2 + u * u
        a = dt * sat[k] * uth2
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * (u * u)
        m = lam[k] * g / (g + a)
        lapw = (wm[k] + wp[k]) + (w[k - 1] + w[k + 1]) - (w[k] + w[k] + w[k] + w[k])
        kerr = lap * m * (r2 * (c + c)) * (q[k] * (u + u))
        absorb = (nxt[k] - old[k]) * m * ((u + u) * a) / (g * g)
        part[k] += (m + m) + lapw + kerr + absorb


@njit(cache=True, error_model="numpy")
def _material_box_rows(g_cl, g_q, g_sat, lam, um, u0, up, old, nxt, cl, q, sat, r2, dt, uth2):  # pragma: no cover
    """``g_cl``, ``g_q``, ``g_sat`` += lambda d(u^{n+1})/d(cl, q, sat) in the box (``e = u_th^2 / g``)."""
    for k in range(1, g_cl.shape[0] - 1):
        u = u0[k]
        uu = u * u
        g = uth2 + uu
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * uu
        m = lam[k] * g / (g + dt * sat[k] * uth2)
        d_cl = lap * m * (r2 * (c + c))
        g_cl[k] += d_cl
        g_q[k] += d_cl * uu
        g_sat[k] += (old[k] - nxt[k]) * m * (dt * uth2) / g


@njit(cache=True, error_model="numpy")
def _decay_box_row(lam, u0, sat, dt, uth2):  # pragma: no cover - compiled
    """``lambda <- lambda - 2 lambda / D``: what lambda^{n+1} passes on to u^{n-1} in the box."""
    for k in range(1, lam.shape[0] - 1):
        u = u0[k]
        g = uth2 + u * u
        m = lam[k] * g / (g + dt * sat[k] * uth2)
        lam[k] = lam[k] - (m + m)


@njit(cache=True)
def _weights(w, cur, lam, cl, q, sat, a1, r2, dt, uth2, box, i):  # pragma: no cover - compiled
    """Row ``i`` of ``w``: ``r2 c^2 a1 lambda`` outside the box, ``r2 c^2 lambda / D`` in it."""
    _weight_row(w[i], cur[i], lam[i], cl[i], q[i], a1[i], r2)
    if box[0] <= i < box[1]:
        s = slice(box[2] - 1, box[3] + 1)
        _weight_box_row(w[i, s], cur[i, s], lam[i, s], cl[i, s], q[i, s], sat[i, s], r2, dt, uth2)


@njit(cache=True)
def _adjoint_sweep(part, lam, w, cur, old, nxt, cl, q, sat, a1, a2, r2, dt, uth2, box, g_cl, g_q,
                   g_sat):  # pragma: no cover - compiled
    """One backward step on the whole grid, row by row (row ``i + 1`` of ``w`` formed just before row
    ``i`` needs it, while lambda of row i + 1 is untouched)."""
    rows, cols = cur.shape
    r0, r1, c0, c1 = box[0], box[1], box[2], box[3]
    s = slice(c0 - 1, c1 + 1)
    _weights(w, cur, lam, cl, q, sat, a1, r2, dt, uth2, box, 1)
    for i in range(1, rows - 1):
        if i + 1 < rows - 1:
            _weights(w, cur, lam, cl, q, sat, a1, r2, dt, uth2, box, i + 1)
        if r0 <= i < r1:
            for a, z in ((0, c0 + 1), (c1 - 1, cols)):
                _adjoint_row(part[i, a:z], lam[i, a:z], w[i - 1, a:z], w[i, a:z], w[i + 1, a:z], a1[i, a:z])
                _decay_row(lam[i, a:z], a2[i, a:z])
            um, u0, up, cli, qi, si = cur[i - 1, s], cur[i, s], cur[i + 1, s], cl[i, s], q[i, s], sat[i, s]
            _adjoint_box_row(part[i, s], lam[i, s], w[i - 1, s], w[i, s], w[i + 1, s], um, u0, up, old[i, s],
                             nxt[i, s], cli, qi, si, r2, dt, uth2)
            _material_box_rows(g_cl[i, s], g_q[i, s], g_sat[i, s], lam[i, s], um, u0, up, old[i, s], nxt[i, s],
                               cli, qi, si, r2, dt, uth2)
            _decay_box_row(lam[i, s], u0, si, dt, uth2)
        else:
            _adjoint_row(part[i], lam[i], w[i - 1], w[i], w[i + 1], a1[i])
            _decay_row(lam[i], a2[i])


@over_rows("x", "strip", "ckpt", "g_int", "g_sig", "g_x", "g_cl", "g_q", "g_sat")
@njit(cache=True, nogil=True)
def backward(x, cl, q, sat, a1, a2, r2, dt, uth2, box, every, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p,
             prb_w, ring_i, ring_j, strip, ckpt, g_int, g_sig, g_x, g_cl, g_q, g_sat):  # pragma: no cover
    """Adjoint of :func:`forward`, segment by segment from the last, each recomputed from its checkpoint.

    ``g_int`` (B, P) and ``g_sig`` (B, P, T) are the gradients of the loss with respect to the
    outputs. Writes ``g_x`` (B, S, T) and the per-sample ``g_cl``, ``g_q``, ``g_sat``
    (B, Ny + 2, Nx + 2), accumulated on the box only.
    """
    batch, _, steps = x.shape
    dt2 = dt * dt
    r0, r1, c0, c1 = box[0], box[1], box[2], box[3]
    seg = np.zeros((every + 2,) + cl.shape, cl.dtype)  # u^{n0-1} .. u^{n1}; zero outside box and ring
    for b in range(batch):
        lam = np.zeros_like(cl)    # lambda^{n+1}, complete
        part = np.zeros_like(cl)   # partial lambda^n
        w = np.zeros_like(cl)
        for k in range(ckpt.shape[1] - 1, -1, -1):
            n0 = k * every
            n1 = min(steps, n0 + every)
            seg[0, r0 - 1:r1 + 1, c0 - 1:c1 + 1] = ckpt[b, k, 0]
            seg[1, r0 - 1:r1 + 1, c0 - 1:c1 + 1] = ckpt[b, k, 1]
            for n in range(n0, n1):
                j = n - n0
                _step(seg[j + 2], seg[j + 1], seg[j], cl, q, sat, a1, a2, r2, dt, uth2, box, False)
                _inject(seg[j + 2], x, b, n, src_i, src_j, src_s, src_w, dt2, False)
                for r in range(ring_i.shape[0]):
                    seg[j + 2, ring_i[r], ring_j[r]] = strip[b, n + 1, r]
            for n in range(n1 - 1, n0 - 1, -1):
                j = n - n0
                nxt, cur, old = seg[j + 2], seg[j + 1], seg[j]
                if n == steps - 1:
                    _probe_adjoint(lam, nxt, b, steps, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
                    if steps > 1:
                        _probe_adjoint(part, cur, b, steps - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
                for r in range(src_i.shape[0]):
                    g_x[b, src_s[r], n] += (dt2 * src_w[r]) * lam[src_i[r], src_j[r]]
                _inject(nxt, x, b, n, src_i, src_j, src_s, src_w, dt2, True)
                _adjoint_sweep(part, lam, w, cur, old, nxt, cl, q, sat, a1, a2, r2, dt, uth2, box, g_cl[b], g_q[b],
                               g_sat[b])
                if n >= 2:
                    _probe_adjoint(lam, old, b, n - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
                lam, part = part, lam
