"""Time stepping of the 2D wave equation: two backends behind one call, :func:`solve`.

* ``numba`` (CPU): the fused kernels of :mod:`._kernels`, wrapped in a
  ``torch.autograd.Function`` whose backward pass is the hand-written reversible adjoint
  with boundary saving (memory: the last two fields plus a one-cell ring per step); with
  saturable absorption, the checkpointed adjoint of :mod:`._kernels_sat`. Threads
  (``torch.get_num_threads()``) take blocks of samples, or for a batch of one (reversible
  media) blocks of grid rows (:mod:`._kernels_rows`); results are bit-identical either way.
* ``torch`` (any torch device, CUDA included): the same update in torch ops
  (:mod:`._torch_adjoint`), with the same exact adjoint written in torch ops: reversible
  with boundary saving, or, with saturable absorption (lossy, irreversible), recomputed from
  checkpoints every ``checkpoint_every`` steps (default ``sqrt(T)``).
  ``checkpoint_every=0``: plain autograd through every step, the reference of the gradient tests.

Shapes: ``x`` (B, S, T) source series; ``cl``, ``q``, ``sat`` (Ny, Nx); outputs
``intensity`` (B, P) and ``signals`` (B, P, T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..._threads import num_threads
from ._torch_adjoint import Stepper, TorchWave, _check_inside_box, damping_coefficients, default_every


@dataclass(frozen=True)
class Layout:
    """Static, index-level description of a medium: what the kernels need besides the fields.

    Cell indices are unpadded ``(row, col)``; ``*_port`` says which source or probe each
    entry belongs to and ``*_w`` its weight. ``damping`` is ``b`` (1/s) per cell, (Ny, Nx);
    ``box = (r0, r1, c0, c1)`` the undamped interior (unpadded, half-open); ``ring`` the
    cells just outside it that the interior stencil reads (empty without an absorber).
    """

    shape: tuple[int, int]
    src_cells: np.ndarray  # (K, 2) int64
    src_port: np.ndarray   # (K,) int64
    src_w: np.ndarray      # (K,) float64
    prb_cells: np.ndarray
    prb_port: np.ndarray
    prb_w: np.ndarray
    n_probes: int
    damping: np.ndarray
    box: tuple[int, int, int, int]
    ring: np.ndarray       # (R, 2) int64


@dataclass
class Solution:
    """What a run returns: ``intensity`` (B, P), ``signals`` (B, P, T), optional
    ``snapshots`` (B, n_snap, Ny, Nx) of the field every ``snapshot_every`` steps."""

    intensity: torch.Tensor
    signals: torch.Tensor
    snapshots: torch.Tensor | None = None


def numba_available() -> bool:
    """True when numba imports (the fast CPU backend)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def solve(x: torch.Tensor, cl: torch.Tensor, q: torch.Tensor, sat: torch.Tensor | None, layout: Layout, *,
          dt: float, h: float, sat_uth: float, backend: str, checkpoint_every: int | None,
          snapshot_every: int | None = None) -> Solution:
    """Run the medium for ``x.shape[-1]`` steps; pick ``backend`` ("numba" or "torch")."""
    if backend == "numba" and not snapshot_every and checkpoint_every != 0:
        _check_inside_box(layout, q, "q (the Kerr coefficient)")
        if sat is not None:
            _check_inside_box(layout, sat, "sat (the saturable absorption)")
        every = default_every(x.shape[-1], checkpoint_every)
        intensity, signals = _NumbaWave.apply(x, cl, q, sat, layout, dt, h, sat_uth, every)
        return Solution(intensity, signals)
    return _torch_run(x, cl, q, sat, layout, dt=dt, h=h, sat_uth=sat_uth,
                      checkpoint_every=checkpoint_every, snapshot_every=snapshot_every)


# ------------------------------------------------------------------------------- numba
def _padded(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.ascontiguousarray(np.pad(a, 1), dtype=dtype)


def _static(layout: Layout, dt: float, dtype: np.dtype) -> dict[str, np.ndarray]:
    """Padded coefficient arrays and index arrays for the kernels."""
    a1, a2 = damping_coefficients(layout.damping * dt)
    s, p, r = layout.src_cells + 1, layout.prb_cells + 1, layout.ring + 1
    return {
        "a1": _padded(a1, dtype), "a2": _padded(a2, dtype),
        "src_i": s[:, 0].copy(), "src_j": s[:, 1].copy(), "src_s": layout.src_port,
        "src_w": layout.src_w.astype(dtype), "prb_i": p[:, 0].copy(), "prb_j": p[:, 1].copy(),
        "prb_p": layout.prb_port, "prb_w": layout.prb_w.astype(dtype),
        "ring_i": r[:, 0].copy(), "ring_j": r[:, 1].copy(),
        "box": np.array(layout.box, dtype=np.int64) + 1,
    }


def _rows(batch: int) -> bool:
    """Split the grid's rows over the threads (a batch of one), rather than the samples."""
    return batch == 1 and num_threads() > 1


class _NumbaWave(torch.autograd.Function):
    """Fused CPU forward; backward by the exact adjoint: reversible (interior rebuilt, ring replayed)
    or, with saturable absorption ``sat``, checkpointed every ``every`` steps (:mod:`._kernels_sat`)."""

    @staticmethod
    def forward(ctx, x, cl, q, sat, layout: Layout, dt: float, h: float, sat_uth: float,  # type: ignore[override]
                every: int):
        from . import _kernels, _kernels_rows, _kernels_sat

        dtype = np.dtype(str(x.dtype).replace("torch.", ""))
        st = _static(layout, dt, dtype)
        xn = np.ascontiguousarray(x.detach().numpy())
        fields = [_padded(a.detach().numpy(), dtype) for a in (cl, q) + ((sat,) if sat is not None else ())]
        batch, steps = xn.shape[0], xn.shape[2]
        ny, nx = layout.shape
        signals = np.zeros((batch, layout.n_probes, steps), dtype)
        intensity = np.zeros((batch, layout.n_probes), dtype)
        keep = any(ctx.needs_input_grad[:4])
        strip = np.zeros((batch, steps + 1 if keep else 0, len(layout.ring)), dtype)
        r2, dtn = dtype.type((dt / h) ** 2), dtype.type(dt)
        ports = (st["src_i"], st["src_j"], st["src_s"], st["src_w"], st["prb_i"], st["prb_j"], st["prb_p"],
                 st["prb_w"], st["ring_i"], st["ring_j"])
        if sat is None:
            u_last = np.empty((batch, ny + 2, nx + 2), dtype)
            u_prev = np.empty_like(u_last)
            args = (xn, *fields, st["a1"], st["a2"], r2, dtn, *ports, signals, intensity, strip, u_last, u_prev)
            if _rows(batch):
                _kernels_rows.forward(*args, num_threads())
            else:
                _kernels.forward(*args)
            saved: tuple = (u_last, u_prev)
        else:
            r0, r1, c0, c1 = st["box"]
            ckpt = np.zeros((batch, -(-steps // every) if keep else 0, 2, r1 - r0 + 2, c1 - c0 + 2), dtype)
            uth2 = dtype.type(sat_uth ** 2)
            _kernels_sat.forward(xn, *fields, st["a1"], st["a2"], r2, dtn, uth2, st["box"], every, *ports,
                                 signals, intensity, strip, ckpt)
            saved = (ckpt, uth2, every)
        if keep:
            ctx.state = (xn, fields, st, r2, dtn, ports, strip, saved, layout)
        return torch.from_numpy(intensity), torch.from_numpy(signals)

    @staticmethod
    def backward(ctx, g_int, g_sig):  # type: ignore[override]
        from . import _kernels, _kernels_rows, _kernels_sat

        xn, fields, st, r2, dtn, ports, strip, saved, layout = ctx.state
        batch, _, steps = xn.shape
        dtype = xn.dtype
        gi = np.zeros((batch, layout.n_probes), dtype) if g_int is None else np.ascontiguousarray(g_int.numpy())
        gs = (np.zeros((batch, layout.n_probes, steps), dtype) if g_sig is None
              else np.ascontiguousarray(g_sig.numpy()))
        g_x = np.zeros_like(xn)
        g_fields = np.zeros((len(fields), batch) + fields[0].shape, dtype)  # per sample: g_cl, g_q (, g_sat)
        if len(fields) == 2:
            args = (xn, *fields, st["a1"], st["a2"], r2, dtn, *ports, strip, *saved, st["box"], gi, gs, g_x, *g_fields)
            if _rows(batch):
                _kernels_rows.backward(*args, num_threads())
            else:
                _kernels.backward(*args)
        else:
            ckpt, uth2, every = saved
            _kernels_sat.backward(xn, *fields, st["a1"], st["a2"], r2, dtn, uth2, st["box"], every, *ports, strip,
                                  ckpt, gi, gs, g_x, *g_fields)
        grads = [torch.from_numpy(g.sum(0)[1:-1, 1:-1]) for g in g_fields]
        return (torch.from_numpy(g_x), grads[0], grads[1], grads[2] if len(grads) == 3 else None) + (None,) * 5


# ------------------------------------------------------------------------------- torch
def _torch_run(x, cl, q, sat, layout: Layout, *, dt: float, h: float, sat_uth: float,
               checkpoint_every: int | None, snapshot_every: int | None) -> Solution:
    if snapshot_every or checkpoint_every == 0:
        return _autograd_run(Stepper(x, cl, q, sat, layout, dt, h, sat_uth), x.shape[-1], snapshot_every)
    every = default_every(x.shape[-1], checkpoint_every)
    intensity, signals = TorchWave.apply(x, cl, q, sat, layout, dt, h, sat_uth, every)
    return Solution(intensity, signals)


def _autograd_run(st: Stepper, steps: int, snapshot_every: int | None) -> Solution:
    """Plain autograd through every step (the reference of the gradient tests), with optional snapshots."""
    u, u_old = st.zeros(), st.zeros()
    probes, snaps = [], []
    for n in range(steps):
        u, u_old = st.step(u, u_old, st.drive[:, :, n]), u
        probes.append(st.probe(u))
        if snapshot_every and (n + 1) % snapshot_every == 0:
            snaps.append(u)
    intensity, signals = st.outputs(torch.stack(probes))
    if not snapshot_every:
        return Solution(intensity, signals)
    snapshots = torch.stack(snaps, 1) if snaps else u.new_zeros((u.shape[0], 0) + u.shape[1:])
    return Solution(intensity, signals, snapshots)
