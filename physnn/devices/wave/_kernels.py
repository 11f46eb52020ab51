"""Numba kernels of the leapfrog wave solver: a fused forward pass and its reversible adjoint.

All fields live on a zero-padded grid of shape ``(Ny + 2, Nx + 2)`` (the padding is the
Dirichlet wall ``u = 0`` outside the domain), so the 5-point stencil needs no branches.
One step, per cell (``u = u^n``, ``lap`` the 5-point sum without ``1/h^2``)::

    c       = cl + q u^2                       (Kerr-like speed; q = c_nl * rho~)
    u^{n+1} = a1 (2u + r2 c^2 lap) - a2 u^{n-1} + dt^2 s x[n]     (r2 = (dt/h)^2)

with ``a1 = 1/(1 + b dt)`` and ``a2 = (1 - b dt)/(1 + b dt)`` (``a1 = a2 = 1`` where
undamped). Probes record ``sum_k w_k u^{n+1}_k`` (signal) and ``dt sum_k w_k (u^{n+1}_k)^2``
(time-integrated intensity).

The backward pass runs the adjoint from the last two fields back to the start and rebuilds
``u^{n-1} = 2u + r2 c^2 lap - (u^{n+1} - dt^2 s x[n])`` on the undamped interior (the
update is time-reversible there). The absorber is not reversible; the kernel restores the
one-cell ring around the interior, which the stencil of the interior needs, from the
``strip`` the forward pass recorded at every step (boundary saving). Every batch sample is
independent, so threads run blocks of whole samples (:func:`physnn._threads.over_rows`, on
``torch.get_num_threads()`` threads): no per-step synchronisation, no allocation inside the time
loop, each sample's fields stay in cache, and results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._threads import over_rows


@njit(cache=True)
def _step(cur, old, cl, q, a1, a2, r2, lo, hi):  # pragma: no cover - compiled
    """``old`` <- u^{n+1} from ``cur`` = u^n and ``old`` = u^{n-1}, on rows ``lo:hi`` (padded indices)."""
    for i in range(lo, hi):
        for j in range(1, cur.shape[1] - 1):
            u = cur[i, j]
            lap = (cur[i - 1, j] + cur[i + 1, j]) + (cur[i, j - 1] + cur[i, j + 1]) - (u + u + u + u)
            c = cl[i, j] + q[i, j] * (u * u)
            old[i, j] = a1[i, j] * ((u + u) + r2 * (c * c) * lap) - a2[i, j] * old[i, j]


@njit(cache=True)
def _inject(field, x, b, n, src_i, src_j, src_s, src_w, dt2, remove):  # pragma: no cover - compiled
    """Add (or, with ``remove``, take away) the source term of step ``n`` of sample ``b``."""
    for k in range(src_i.shape[0]):
        v = (dt2 * src_w[k]) * x[b, src_s[k], n]
        if remove:
            field[src_i[k], src_j[k]] -= v
        else:
            field[src_i[k], src_j[k]] += v


@over_rows("x", "signals", "intensity", "strip", "u_last", "u_prev")
@njit(cache=True, nogil=True)
def forward(x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p, prb_w,
            ring_i, ring_j, signals, intensity, strip, u_last, u_prev):  # pragma: no cover - compiled
    """Run ``T = x.shape[2]`` steps from rest for every sample.

    Writes ``signals`` (B, P, T), ``intensity`` (B, P), ``strip`` (B, T + 1, R) (the ring
    around the interior at every step; an array of shape (B, 0, R) skips the recording) and
    the final fields ``u_last`` = u^T, ``u_prev`` = u^{T-1}, all (B, Ny + 2, Nx + 2).
    """
    batch, _, steps = x.shape
    dt2 = dt * dt
    save = strip.shape[1] > 0
    for b in range(batch):
        cur = np.zeros_like(cl)
        old = np.zeros_like(cl)
        for n in range(steps):
            _step(cur, old, cl, q, a1, a2, r2, 1, cl.shape[0] - 1)
            _inject(old, x, b, n, src_i, src_j, src_s, src_w, dt2, False)
            _record(old, b, n, dt, prb_i, prb_j, prb_p, prb_w, ring_i, ring_j, signals, intensity, strip, save)
            cur, old = old, cur
        u_last[b] = cur
        u_prev[b] = old


@njit(cache=True)
def _record(new, b, n, dt, prb_i, prb_j, prb_p, prb_w, ring_i, ring_j, signals, intensity, strip,
            save):  # pragma: no cover - compiled
    """Probe outputs of u^{n+1} = ``new``, and (with ``save``) its ring into ``strip[b, n + 1]``."""
    for k in range(prb_i.shape[0]):
        v = new[prb_i[k], prb_j[k]]
        signals[b, prb_p[k], n] += prb_w[k] * v
        intensity[b, prb_p[k]] += dt * (prb_w[k] * (v * v))
    if save:
        for k in range(ring_i.shape[0]):
            strip[b, n + 1, k] = new[ring_i[k], ring_j[k]]


@njit(cache=True)
def _probe_adjoint(lam, u, b, m, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt):  # pragma: no cover
    """Add dL/du^m from the probes (which read u^m, m >= 1) to ``lam``."""
    for k in range(prb_i.shape[0]):
        i, j, p = prb_i[k], prb_j[k], prb_p[k]
        lam[i, j] += prb_w[k] * ((dt + dt) * g_int[b, p] * u[i, j] + g_sig[b, p, m - 1])


# The row helpers below take 1-D windows ``a[i, j0 - 1:j1 + 1]`` (``m``/``p``: rows i -/+ 1)
# and loop ``k`` over ``range(1, n - 1)``: indices numba knows are non-negative, so no
# wraparound test blocks vectorization; each writes a single array (one store stream), which
# keeps LLVM's runtime alias checks within its budget.
@njit(cache=True)
def _weight_row(w, cur, lam, cl, q, a1, r2):  # pragma: no cover - compiled
    """``w = r2 c^2 a1 lambda``, the term the transposed stencil spreads."""
    for k in range(1, w.shape[0] - 1):
        u = cur[k]
        c = cl[k] + q[k] * (u * u)
        w[k] = r2 * (c * c) * (a1[k] * lam[k])


@njit(cache=True)
def _adjoint_row(part, lam, wm, w, wp, a1):  # pragma: no cover - compiled
    """``part += J^T (a1 lambda)`` where the medium is linear (q = 0)."""
    for k in range(1, part.shape[0] - 1):
        nu = a1[k] * lam[k]
        lapw = (wm[k] + wp[k]) + (w[k - 1] + w[k + 1]) - (w[k] + w[k] + w[k] + w[k])
        part[k] += (nu + nu) + lapw


@njit(cache=True)
def _adjoint_kerr_row(part, lam, wm, w, wp, um, u0, up, cl, q, r2):  # pragma: no cover - compiled
    """``part += J^T lambda`` on the undamped interior (a1 = 1), with the Kerr term."""
    for k in range(1, part.shape[0] - 1):
        u = u0[k]
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * (u * u)
        nu = lam[k]
        lapw = (wm[k] + wp[k]) + (w[k - 1] + w[k + 1]) - (w[k] + w[k] + w[k] + w[k])
        part[k] += (nu + nu) + lapw + lap * nu * (r2 * (c + c)) * (q[k] * (u + u))


@njit(cache=True)
def _material_rows(g_cl, g_q, lam, um, u0, up, cl, q, r2):  # pragma: no cover - compiled
    """``g_cl += lambda * d(u^{n+1})/d(cl)`` and ``g_q += lambda * d(u^{n+1})/d(q)`` on the interior
    (the two differ by the factor u^2 of the Kerr term, so the Laplacian is computed once)."""
    for k in range(1, g_cl.shape[0] - 1):
        u = u0[k]
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * (u * u)
        d_cl = lap * lam[k] * (r2 * (c + c))
        g_cl[k] += d_cl
        g_q[k] += d_cl * (u * u)


@njit(cache=True)
def _decay_row(lam, a2):  # pragma: no cover - compiled
    """``lambda <- -a2 lambda``: what lambda^{n+1} passes on to u^{n-1}."""
    for k in range(1, lam.shape[0] - 1):
        lam[k] = -a2[k] * lam[k]


@njit(cache=True)
def _rebuild_row(nxt, um, u0, up, cl, q, r2):  # pragma: no cover - compiled
    """u^{n-1} = 2u + r2 c^2 lap - u^{n+1} on the interior (``nxt`` holds u^{n+1} without its
    source term on entry, u^{n-1} on exit)."""
    for k in range(1, nxt.shape[0] - 1):
        u = u0[k]
        lap = (um[k] + up[k]) + (u0[k - 1] + u0[k + 1]) - (u + u + u + u)
        c = cl[k] + q[k] * (u * u)
        nxt[k] = ((u + u) + r2 * (c * c) * lap) - nxt[k]


@njit(cache=True)
def _adjoint_sweep(part, lam, w, cur, nxt, cl, q, a1, a2, r2, box, gcl, gq, lo, hi):  # pragma: no cover
    """One backward step on rows ``lo:hi`` (padded indices), row by row; row ``i + 1`` of ``w`` is
    formed just before row ``i`` needs it (lambda of row i + 1 is still untouched then)."""
    rows, cols = cur.shape
    r0, r1, c0, c1 = box[0], box[1], box[2], box[3]
    for i in range(max(lo - 1, 1), lo + 1):
        _weight_row(w[i], cur[i], lam[i], cl[i], q[i], a1[i], r2)
    for i in range(lo, hi):
        if i + 1 < rows - 1:
            _weight_row(w[i + 1], cur[i + 1], lam[i + 1], cl[i + 1], q[i + 1], a1[i + 1], r2)
        if r0 <= i < r1:
            _adjoint_row(part[i, 0:c0 + 1], lam[i, 0:c0 + 1], w[i - 1, 0:c0 + 1], w[i, 0:c0 + 1],
                         w[i + 1, 0:c0 + 1], a1[i, 0:c0 + 1])
            _adjoint_row(part[i, c1 - 1:], lam[i, c1 - 1:], w[i - 1, c1 - 1:], w[i, c1 - 1:],
                         w[i + 1, c1 - 1:], a1[i, c1 - 1:])
            s = slice(c0 - 1, c1 + 1)
            um, u0, up, cli, qi = cur[i - 1, s], cur[i, s], cur[i + 1, s], cl[i, s], q[i, s]
            _adjoint_kerr_row(part[i, s], lam[i, s], w[i - 1, s], w[i, s], w[i + 1, s], um, u0, up, cli, qi, r2)
            _material_rows(gcl[i, s], gq[i, s], lam[i, s], um, u0, up, cli, qi, r2)
            _rebuild_row(nxt[i, s], um, u0, up, cli, qi, r2)
        else:
            _adjoint_row(part[i], lam[i], w[i - 1], w[i], w[i + 1], a1[i])
        _decay_row(lam[i], a2[i])


@over_rows("x", "strip", "u_last", "u_prev", "g_int", "g_sig", "g_x", "g_cl", "g_q")
@njit(cache=True, nogil=True)
def backward(x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p, prb_w,
             ring_i, ring_j, strip, u_last, u_prev, box, g_int, g_sig,
             g_x, g_cl, g_q):  # pragma: no cover - compiled
    """Adjoint of :func:`forward`, rebuilding the fields backward in time.

    ``box = (r0, r1, c0, c1)`` is the undamped interior in padded indices (``a1 = a2 = 1``
    there, the cells the ring surrounds); ``q`` must vanish outside it. ``g_int`` (B, P) and
    ``g_sig`` (B, P, T) are the gradients of the loss with respect to the outputs. Writes
    ``g_x`` (B, S, T) and the per-sample ``g_cl``, ``g_q`` (B, Ny + 2, Nx + 2), accumulated
    on the interior only.
    """
    batch, _, steps = x.shape
    dt2 = dt * dt
    for b in range(batch):
        nxt = u_last[b].copy()
        cur = u_prev[b].copy()
        lam = np.zeros_like(cl)    # lambda^{n+1}, complete
        part = np.zeros_like(cl)   # partial lambda^n
        w = np.zeros_like(cl)      # r2 c^2 a1 lambda, zero on the padding
        _probe_adjoint(lam, nxt, b, steps, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
        if steps > 1:
            _probe_adjoint(part, cur, b, steps - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
        for n in range(steps - 1, -1, -1):
            for k in range(src_i.shape[0]):
                g_x[b, src_s[k], n] += (dt2 * src_w[k]) * lam[src_i[k], src_j[k]]
            _inject(nxt, x, b, n, src_i, src_j, src_s, src_w, dt2, True)
            _adjoint_sweep(part, lam, w, cur, nxt, cl, q, a1, a2, r2, box, g_cl[b], g_q[b], 1, cl.shape[0] - 1)
            if n >= 1:
                for k in range(ring_i.shape[0]):
                    nxt[ring_i[k], ring_j[k]] = strip[b, n - 1, k]
            if n >= 2:
                _probe_adjoint(lam, nxt, b, n - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
            lam, part = part, lam
            cur, nxt = nxt, cur
