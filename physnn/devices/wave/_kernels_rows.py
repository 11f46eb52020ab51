"""One sample on several threads: the reversible kernels of :mod:`._kernels` over row blocks with halos.

A batch of one gives the sample-parallel kernels a single block, so here the grid's rows are split
instead, one block per thread (:func:`physnn._threads.row_blocks`), run on the thread pool
(:func:`physnn._threads.run_on_pool`). Threads meet every ``HALO`` steps, not every step
(temporal blocking): at the start of a round each copies its rows and
``HALO`` rows either side from the shared fields, advances that strip ``HALO`` steps on a row
range that shrinks by one row per side each step (the 5-point stencil reaches one row further per
step, so at the end exactly its own rows are exact), and writes its own rows to the other of two
shared buffers, so no thread reads what another writes in the same round. The halo rows are
computed twice (on the vowel grid, 2 blocks of 50 rows: 16 % more work at ``HALO = 16``).

Each cell is computed by the same compiled code as on one thread, the per-cell gradient sums run in
time order as there, and the sums over probe and source cells are formed afterwards in the one-thread
order, so results are bit-identical to :func:`._kernels.forward` / :func:`._kernels.backward`.
Shapes as there, with batch 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._threads import num_threads, row_blocks, run_on_pool
from ._kernels import _adjoint_sweep, _inject, _probe_adjoint, _step

HALO = 16  # steps per round


@njit(cache=True, nogil=True)
def _forward_round(blocks, own, src, dst, n0, n1, x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w,
                   prb_i, prb_j, ring_i, ring_j, values, strip):  # pragma: no cover - compiled
    """Steps ``n0:n1`` for the row blocks ``blocks`` (k, 2) (padded rows ``lo:hi``), each on its own
    fields ``own`` (k, 2, Ny + 2, Nx + 2); ``src`` = (u^{n0}, u^{n0-1}), ``dst`` <- (u^{n1}, u^{n1-1})
    on the block's rows. Writes the probe-cell values ``values`` (T, K) and ``strip`` (1, T + 1, R)
    (unless it has no steps) on the block's rows."""
    rows = cl.shape[0]
    dt2 = dt * dt
    for t in range(blocks.shape[0]):
        lo, hi = blocks[t, 0], blocks[t, 1]
        cur, old = own[t, 0], own[t, 1]
        a, z = max(lo - (n1 - n0), 1), min(hi + (n1 - n0), rows - 1)
        cur[a:z] = src[0, a:z]
        old[a:z] = src[1, a:z]
        for n in range(n0, n1):
            e = n1 - 1 - n  # steps left after this one
            _step(cur, old, cl, q, a1, a2, r2, max(lo - e, 1), min(hi + e, rows - 1))
            _inject(old, x, 0, n, src_i, src_j, src_s, src_w, dt2, False)
            for k in range(prb_i.shape[0]):
                if lo <= prb_i[k] < hi:
                    values[n, k] = old[prb_i[k], prb_j[k]]
            if strip.shape[1] > 0:
                for k in range(ring_i.shape[0]):
                    if lo <= ring_i[k] < hi:
                        strip[0, n + 1, k] = old[ring_i[k], ring_j[k]]
            cur, old = old, cur
        dst[0, lo:hi] = cur[lo:hi]
        dst[1, lo:hi] = old[lo:hi]


@njit(cache=True)
def _probe_sums(values, prb_p, prb_w, dt, signals, intensity):  # pragma: no cover - compiled
    """``signals``, ``intensity`` of sample 0 from the probe-cell values, summed in the order of
    :func:`._kernels._record`."""
    for n in range(values.shape[0]):
        for k in range(values.shape[1]):
            v = values[n, k]
            signals[0, prb_p[k], n] += prb_w[k] * v
            intensity[0, prb_p[k]] += dt * (prb_w[k] * (v * v))


def _blocks(rows: int, parts: int) -> np.ndarray:
    """Row blocks (padded indices) of the interior rows ``1:rows - 1``, (parts, 2)."""
    return np.array(row_blocks(rows - 2, parts), dtype=np.int64).reshape(-1, 2) + 1


def _parallel(kernel, groups: list[tuple[int, int]], blocks: np.ndarray, per_block: tuple, *shared) -> None:
    """``kernel(blocks, *per_block, *shared)`` with the blocks (and the arrays ``per_block``, one entry
    per block) in ``groups`` of blocks, one per thread, on the thread pool
    (:func:`physnn._threads.run_on_pool`): the rounds are short, and the pool's threads sleep while
    one waits for the other."""

    def job(a: int, z: int):
        return lambda: kernel(blocks[a:z], *(p[a:z] for p in per_block), *shared)

    run_on_pool([job(a, z) for a, z in groups])


def forward(x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p, prb_w, ring_i, ring_j,
            signals, intensity, strip, u_last, u_prev, parts: int) -> None:
    """:func:`._kernels.forward` for a batch of one on ``parts`` row blocks (same arguments, same results)."""
    steps = x.shape[2]
    blocks = _blocks(cl.shape[0], parts)
    own = np.zeros((len(blocks), 2) + cl.shape, cl.dtype)
    shared = np.zeros((2, 2) + cl.shape, cl.dtype)  # two buffers of (u^n, u^{n-1})
    values = np.zeros((steps, len(prb_i)), cl.dtype)
    starts = range(0, steps, HALO)
    groups = row_blocks(len(blocks), num_threads())
    for c, n0 in enumerate(starts):
        _parallel(_forward_round, groups, blocks, (own,), shared[c % 2], shared[(c + 1) % 2], n0,
                  min(steps, n0 + HALO), x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, ring_i,
                  ring_j, values, strip)
    _probe_sums(values, prb_p, prb_w, dt, signals, intensity)
    u_last[0], u_prev[0] = shared[len(starts) % 2]


@njit(cache=True, nogil=True)
def _backward_round(blocks, own, grads, src, dst, n0, n1, x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w,
                    prb_i, prb_j, prb_p, prb_w, ring_i, ring_j, strip, box, g_int, g_sig,
                    g_src):  # pragma: no cover - compiled
    """Adjoint steps ``n1 - 1`` down to ``n0`` for the row blocks, each on its own ``own`` (k, 5, Ny + 2,
    Nx + 2) = (lambda, part, u^n, u^{n+1}, w) and ``grads`` (k, 2, Ny + 2, Nx + 2) (g_cl, g_q; exact on
    the block's rows); ``src``, ``dst`` (4, Ny + 2, Nx + 2) = (lambda, part, u^n, u^{n+1}) at the
    round's start and end. Writes ``g_src`` (T, K_src): lambda at the source cells."""
    rows = cl.shape[0]
    dt2 = dt * dt
    for t in range(blocks.shape[0]):
        lo, hi = blocks[t, 0], blocks[t, 1]
        lam, part, cur, nxt, w = own[t, 0], own[t, 1], own[t, 2], own[t, 3], own[t, 4]
        a, z = max(lo - (n1 - n0), 1), min(hi + (n1 - n0), rows - 1)
        for f in range(4):
            own[t, f, a:z] = src[f, a:z]
        for n in range(n1 - 1, n0 - 1, -1):
            e = n - n0  # steps left after this one
            for k in range(src_i.shape[0]):
                if lo <= src_i[k] < hi:
                    g_src[n, k] = lam[src_i[k], src_j[k]]
            _inject(nxt, x, 0, n, src_i, src_j, src_s, src_w, dt2, True)
            _adjoint_sweep(part, lam, w, cur, nxt, cl, q, a1, a2, r2, box, grads[t, 0], grads[t, 1],
                           max(lo - e, 1), min(hi + e, rows - 1))
            if n >= 1:
                for k in range(ring_i.shape[0]):
                    nxt[ring_i[k], ring_j[k]] = strip[0, n - 1, k]
            if n >= 2:
                _probe_adjoint(lam, nxt, 0, n - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
            lam, part = part, lam
            cur, nxt = nxt, cur
        for f, field in enumerate((lam, part, cur, nxt)):
            dst[f, lo:hi] = field[lo:hi]


@njit(cache=True)
def _source_sums(g_src, src_s, src_w, dt, g_x):  # pragma: no cover - compiled
    """``g_x`` of sample 0 from lambda at the source cells, summed in the order of :func:`._kernels.backward`."""
    dt2 = dt * dt
    for n in range(g_src.shape[0]):
        for k in range(g_src.shape[1]):
            g_x[0, src_s[k], n] += (dt2 * src_w[k]) * g_src[n, k]


def backward(x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p, prb_w, ring_i, ring_j,
             strip, u_last, u_prev, box, g_int, g_sig, g_x, g_cl, g_q, parts: int) -> None:
    """:func:`._kernels.backward` for a batch of one on ``parts`` row blocks (same arguments, same results)."""
    steps = x.shape[2]
    blocks = _blocks(cl.shape[0], parts)
    own = np.zeros((len(blocks), 5) + cl.shape, cl.dtype)
    grads = np.zeros((len(blocks), 2) + cl.shape, cl.dtype)
    shared = np.zeros((2, 4) + cl.shape, cl.dtype)  # two buffers of (lambda, part, u^n, u^{n+1})
    shared[0, 2], shared[0, 3] = u_prev[0], u_last[0]
    _probe_adjoint(shared[0, 0], u_last[0], 0, steps, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
    if steps > 1:
        _probe_adjoint(shared[0, 1], u_prev[0], 0, steps - 1, prb_i, prb_j, prb_p, prb_w, g_int, g_sig, dt)
    g_src = np.zeros((steps, len(src_i)), cl.dtype)
    ends = range(steps, 0, -HALO)
    groups = row_blocks(len(blocks), num_threads())
    for c, n1 in enumerate(ends):
        _parallel(_backward_round, groups, blocks, (own, grads), shared[c % 2], shared[(c + 1) % 2],
                  max(0, n1 - HALO), n1, x, cl, q, a1, a2, r2, dt, src_i, src_j, src_s, src_w, prb_i, prb_j, prb_p,
                  prb_w, ring_i, ring_j, strip, box, g_int, g_sig, g_src)
    _source_sums(g_src, src_s, src_w, dt, g_x)
    for t, (lo, hi) in enumerate(blocks):
        g_cl[0, lo:hi] = grads[t, 0, lo:hi]
        g_q[0, lo:hi] = grads[t, 1, lo:hi]
