"""The torch backend of the wave solver: the leapfrog in torch ops and its exact, hand-written adjoint.

Device-agnostic (every tensor is made on the input's device), so it runs on CPU and CUDA alike.
One step, per cell (``u = u^n``, ``lap`` the 5-point sum without ``1/h^2``, ``r2 = (dt/h)^2``)::

    c       = cl + q u^2                                   (Kerr-like speed)
    D       = 1 + b dt + dt sat / (1 + (u / u_th)^2)       (damping, saturable absorption)
    u^{n+1} = (2u + r2 c^2 lap - (2 - D) u^{n-1}) / D + dt^2 s x[n]

:class:`TorchWave` runs it without an autograd graph and back-propagates by the adjoint
recursion (the transposed step, run backwards in time). The fields the adjoint needs are
rebuilt one of two ways:

* reversible media (no saturable absorption): the interior update is time-reversible, so
  ``u^{n-1}`` is rebuilt from ``u^n`` and ``u^{n+1}``; the absorber is not, and the one-cell
  ring around the interior, which the interior stencil reads, is replayed from a strip the
  forward pass recorded at every step (boundary saving, as the numba kernels). Memory: the
  last two fields plus the ring per step.
* saturable absorption (lossy, irreversible): the forward pass stores the interior field pair
  every ``every`` steps (default ``sqrt(T)``) and the ring at every step; the backward pass
  recomputes each segment on the interior only (the ring replayed from the strip), keeping
  that segment's fields. Memory: O(sqrt(T)) interior fields plus the ring strip.

Everything that depends on the fields (Kerr term, saturable absorption, material gradients)
must lie in the undamped interior ``layout.box`` (where ``b = 0``); outside it the adjoint is
the linear, constant-coefficient one. Shapes: ``x`` (B, S, T); ``cl``, ``q``, ``sat`` (Ny, Nx);
outputs ``intensity`` (B, P), ``signals`` (B, P, T).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from ._solver import Layout


def damping_coefficients(beta: Any) -> tuple[Any, Any]:
    """``a1 = 1/(1 + beta)``, ``a2 = (1 - beta)/(1 + beta)`` of the update
    ``u+ = a1 (2u + r2 c^2 lap) - a2 u-`` for ``beta = b dt`` (arrays or tensors)."""
    a1 = 1 / (1 + beta)
    return a1, (1 - beta) * a1


def laplacian(u: torch.Tensor) -> torch.Tensor:
    """5-point sum ``u[i-1] + u[i+1] + u[j-1] + u[j+1] - 4u`` with ``u = 0`` outside, (B, Ny, Nx)."""
    lap = u * -4
    lap[:, 1:] += u[:, :-1]
    lap[:, :-1] += u[:, 1:]
    lap[:, :, 1:] += u[:, :, :-1]
    lap[:, :, :-1] += u[:, :, 1:]
    return lap


def _box_laplacian(e: torch.Tensor) -> torch.Tensor:
    """The 5-point sum on the inner cells of an extended-box crop ``e`` (B, h + 2, w + 2) -> (B, h, w)."""
    return (e[:, :-2, 1:-1] + e[:, 2:, 1:-1]) + (e[:, 1:-1, :-2] + e[:, 1:-1, 2:]) - 4 * e[:, 1:-1, 1:-1]


class Stepper:
    """A run's static tensors on ``x``'s device and the forward update (differentiable torch ops)."""

    def __init__(self, x: torch.Tensor, cl: torch.Tensor, q: torch.Tensor, sat: torch.Tensor | None,
                 layout: Layout, dt: float, h: float, sat_uth: float) -> None:
        dev, dtype = x.device, x.dtype
        ny, nx = layout.shape
        as_t = lambda a, t=dtype: torch.as_tensor(a, dtype=t, device=dev)  # noqa: E731
        self.x, self.layout, self.cl, self.q, self.sat, self.uth = x, layout, cl, q, sat, sat_uth
        self.dt, self.h, self.r2 = dt, h, (dt / h) ** 2
        self.kerr = bool((q.detach() != 0).any())
        self.beta = as_t(layout.damping * dt)
        self.a1, self.a2 = damping_coefficients(self.beta)
        self.two_a1, self.k = 2 * self.a1, self.r2 * self.a1 * cl * cl  # k: r2 a1 c^2 where c = cl
        self.src_idx = as_t(layout.src_cells[:, 0] * nx + layout.src_cells[:, 1], torch.int64)
        self.src_gain = as_t(layout.src_w) * (dt * dt)                                   # (K,)
        self.src_map = F.one_hot(as_t(layout.src_port, torch.int64), x.shape[1]).to(dtype)  # (K, S)
        self.drive = torch.einsum("bst,ks->bkt", x, self.src_map) * self.src_gain[:, None]  # (B, K, T)
        self.prb_idx = as_t(layout.prb_cells[:, 0] * nx + layout.prb_cells[:, 1], torch.int64)
        self.prb_port = as_t(layout.prb_port, torch.int64)
        self.prb_w = as_t(layout.prb_w)
        self.prb_map = F.one_hot(self.prb_port, layout.n_probes).to(dtype)  # (K, P)
        r0, r1, c0, c1 = layout.box
        self.box = (slice(None), slice(r0, r1), slice(c0, c1))
        _check_inside_box(layout, q, "q (the Kerr coefficient)")
        if sat is not None:
            _check_inside_box(layout, sat, "sat (the saturable absorption)")
        self.ext = (slice(None), slice(r0, r1 + 2), slice(c0, c1 + 2))  # the box and its ring, padded indices
        ew = c1 - c0 + 2
        ext_flat = lambda cells: as_t((cells[:, 0] - r0 + 1) * ew + cells[:, 1] - c0 + 1, torch.int64)  # noqa: E731
        self.ring_idx = as_t(layout.ring[:, 0] * nx + layout.ring[:, 1], torch.int64)
        self.ring_ext = ext_flat(layout.ring)
        self.src_ext = ext_flat(layout.src_cells)

    def zeros(self) -> torch.Tensor:
        """A field at rest, (B, Ny, Nx)."""
        return self.drive.new_zeros((self.drive.shape[0],) + self.layout.shape)

    def step(self, u: torch.Tensor, u_old: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
        """u^{n+1} (B, Ny, Nx) from u^n, u^{n-1} and ``drive[:, :, n]`` (B, K): the linear update on
        the whole grid, then the field-dependent terms on the box (where a1 = a2 = 1)."""
        lap = laplacian(u)
        new = torch.addcmul(self.two_a1 * u, self.k, lap).sub_(self.a2 * u_old)
        if self.kerr or self.sat is not None:
            nb, ub, box = new[self.box], u[self.box], self.box[1:]
            uu = ub * ub
            if self.kerr:  # r2 (c^2 - cl^2) lap = r2 q u^2 (2 cl + q u^2) lap
                t = self.q[box] * uu
                nb += (t + 2 * self.cl[box]) * t * (self.r2 * lap[self.box])
            if self.sat is not None:  # D - 1 = dt sat / (1 + (u / u_th)^2)
                s = self.dt * self.sat[box] / (1 + uu / self.uth ** 2)
                new[self.box] = (nb + s * u_old[self.box]) / (1 + s)
        return new.view(new.shape[0], -1).index_add_(1, self.src_idx, drive).view_as(u)

    def probe(self, u: torch.Tensor) -> torch.Tensor:
        """The field at the probe cells, (B, K)."""
        return u.flatten(1)[:, self.prb_idx]

    def outputs(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(intensity (B, P), signals (B, P, T)) from the probe-cell fields ``v`` (T, B, K)."""
        wv = v * self.prb_w
        signals = torch.einsum("nbk,kp->bpn", wv, self.prb_map)
        intensity = self.dt * torch.einsum("nbk,kp->bp", wv * v, self.prb_map)
        return intensity, signals

    def crop(self, u: torch.Tensor) -> torch.Tensor:
        """The interior box and its ring, (B, h + 2, w + 2), a copy (zero where the ring is the wall)."""
        if len(self.ring_idx):  # the ring lies on the grid
            return u[:, self.ext[1].start - 1:self.ext[1].stop - 1, self.ext[2].start - 1:self.ext[2].stop - 1].clone(
                memory_format=torch.contiguous_format)
        return F.pad(u, (1, 1, 1, 1))[self.ext]


def _check_inside_box(layout: Layout, a: torch.Tensor, what: str) -> None:
    """The field-dependent terms are computed on the undamped interior only: refuse any outside it."""
    r0, r1, c0, c1 = layout.box
    outside = a.detach().abs().clone()
    outside[r0:r1, c0:c1] = 0
    if bool((outside != 0).any()):
        i, j = divmod(int(outside.argmax()), layout.shape[1])
        raise ConfigurationError(f"{what} must vanish outside the undamped interior rows {r0}..{r1 - 1}, columns "
                                 f"{c0}..{c1 - 1}; got {float(a[i, j]):g} at cell ({i}, {j})")


class _Adjoint:
    """The backward recursion: per-step state and the transposed step.

    ``lam`` is dL/du^{n+1} (complete), ``part`` the part of dL/du^n gathered so far; both (B, Ny, Nx).
    Full-grid work is a handful of in-place passes; the field-dependent terms touch the box only.
    """

    def __init__(self, st: Stepper, v: torch.Tensor, g_int: torch.Tensor, g_sig: torch.Tensor) -> None:
        self.st = st
        steps, batch, _ = v.shape
        port, box = st.prb_port, st.box[1:]
        # dL/du^m at the probe cells, m = 1..T, (T, B, K)
        self.pa = st.prb_w * (2 * st.dt * g_int[:, port] * v + g_sig[:, port, :].permute(2, 0, 1))
        # each of lam, part as (field, its box, its flat view): views made once, not per step
        self.lam, self.part = ((z, z[st.box], z.view(batch, -1)) for z in (st.zeros(), st.zeros()))
        self.lam[2].index_add_(1, st.prb_idx, self.pa[steps - 1])
        if steps > 1:
            self.part[2].index_add_(1, st.prb_idx, self.pa[steps - 2])
        wp = F.pad(st.zeros(), (1, 1, 1, 1))   # r2 c^2 a1 lambda, zero on the wall
        self.w, self.w_nb = wp[:, 1:-1, 1:-1], (wp[:, :-2, 1:-1], wp[:, 2:, 1:-1], wp[:, 1:-1, :-2], wp[:, 1:-1, 2:])
        self.w_b = self.w[st.box]
        self.g_src = v.new_empty((steps, batch, len(st.src_idx)))  # dL/d(drive) / (dt^2 w), (T, B, K)
        self.g_cl = torch.zeros_like(self.w_b)   # per sample and without constant factors
        self.g_q = torch.zeros_like(self.g_cl)
        self.g_sat = torch.zeros_like(self.g_cl) if st.sat is not None else None
        self.neg_a2 = -st.a2
        self.cl_b, self.q_b, self.q4_b = st.cl[box], st.q[box], (4 * st.r2) * st.q[box]
        if st.sat is not None:
            r0, _, c0, c1 = st.layout.box
            cells = st.layout.src_cells
            self.src_box = torch.as_tensor((cells[:, 0] - r0) * (c1 - c0) + cells[:, 1] - c0, device=v.device)
            self.sat_b = st.dt * st.sat[box]                        # dt sat
            self.dsat_b = (-2 / st.uth ** 2) * self.sat_b           # d(dt sat e)/du = dsat u e^2

    def step(self, n: int, cur: torch.Tensor, old: torch.Tensor | None, nxt: torch.Tensor | None):
        """Back through step n (u^n -> u^{n+1}): ``cur`` = u^n on the extended box; ``old`` = u^{n-1}
        and ``nxt`` = u^{n+1} there (needed with saturable absorption only). Returns ``(r2 c^2, lap u)``
        on the box."""
        st, w = self.st, self.w
        (lam, lb, lam_flat), (part, pb, _) = self.lam, self.part
        self.g_src[n] = lam_flat[:, st.src_idx]
        u = cur[:, 1:-1, 1:-1]
        lap = _box_laplacian(cur)
        uu = u * u
        c = torch.addcmul(self.cl_b, self.q_b, uu) if st.kerr else self.cl_b
        c2r2 = (c * c).mul_(st.r2)
        torch.mul(lam, st.k, out=w)  # w = r2 a1 c^2 lambda, c = cl outside the box
        part.addcmul_(lam, st.two_a1)
        if st.sat is not None:
            e = (uu * (1 / st.uth ** 2)).add_(1).reciprocal_()
            d = (self.sat_b * e).add_(1)
            mb = lb / d
            pb.add_(mb - lb, alpha=2)
        else:
            mb = lb
        if st.kerr or st.sat is not None:
            torch.mul(c2r2, mb, out=self.w_b)
        for neighbour in self.w_nb:
            part += neighbour
        part.add_(w, alpha=-4)
        dc = (c * lap).mul_(mb)  # lambda d(u^{n+1})/d(cl) / (2 r2)
        self.g_cl += dc
        self.g_q.addcmul_(dc, uu)
        if st.kerr:
            pb.addcmul_(dc, self.q4_b * u)
        if st.sat is not None:
            nb = nxt[:, 1:-1, 1:-1].clone(memory_format=torch.contiguous_format)
            nb.view(nb.shape[0], -1).index_add_(1, self.src_box, -st.drive[:, :, n])
            dd = (old[:, 1:-1, 1:-1] - nb).mul_(mb)  # lambda d(u^{n+1})/dD
            pb.addcmul_(dd, (self.dsat_b * u).mul_(e).mul_(e))
            self.g_sat.addcmul_(dd, e)
        lam.mul_(self.neg_a2)
        if st.sat is not None:
            lb.mul_(d.reciprocal_().mul_(2).sub_(1))  # -a2 = -(2 - D)/D; a2 = 1 in the box without it
        if n >= 2:
            lam_flat.index_add_(1, st.prb_idx, self.pa[n - 2])
        self.lam, self.part = self.part, self.lam
        return c2r2, lap

    def gradients(self, sat: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(g_x (B, S, T), g_cl, g_q, g_sat (Ny, Nx), zero outside the box)."""
        st = self.st
        g_x = torch.einsum("nbk,ks->bsn", self.g_src * st.src_gain, st.src_map)
        full = []
        for g, scale in ((self.g_cl, 2 * st.r2), (self.g_q, 2 * st.r2), (self.g_sat, st.dt)):
            if g is None:
                full.append(None)
                continue
            out = st.cl.new_zeros(st.layout.shape)
            out[st.box[1:]] = g.sum(0) * scale
            full.append(out)
        return g_x, full[0], full[1], full[2]


class TorchWave(torch.autograd.Function):
    """Forward without a graph; backward by the exact adjoint (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, cl, q, sat, layout: Layout, dt: float, h: float, sat_uth: float,  # type: ignore[override]
                every: int):
        st = Stepper(x, cl, q, sat, layout, dt, h, sat_uth)
        keep = any(ctx.needs_input_grad[:4])
        steps = x.shape[-1]
        u, old = st.zeros(), st.zeros()
        v = x.new_empty((steps, x.shape[0], len(st.prb_idx)))
        strip = x.new_zeros((steps + 1, x.shape[0], len(st.ring_idx))) if keep else None
        starts = []
        for n in range(steps):
            if keep and sat is not None and n % every == 0:
                starts.append((st.crop(u), st.crop(old)) if len(st.ring_idx) else (u, old))
            new = st.step(u, old, st.drive[:, :, n])
            v[n] = st.probe(new)
            if strip is not None:
                strip[n + 1] = new.view(x.shape[0], -1)[:, st.ring_idx]
            u, old = new, u
        if keep:
            ctx.state = (st, v, strip, starts, (u, old), every)
        return st.outputs(v)

    @staticmethod
    def backward(ctx, g_int, g_sig):  # type: ignore[override]
        st, v, strip, starts, (u_last, u_prev), every = ctx.state
        steps, batch, _ = v.shape
        g_int = v.new_zeros((batch, st.layout.n_probes)) if g_int is None else g_int
        g_sig = v.new_zeros((batch, st.layout.n_probes, steps)) if g_sig is None else g_sig
        adj = _Adjoint(st, v, g_int, g_sig)
        if st.sat is None:
            _reversible(adj, st, strip, st.crop(u_last), st.crop(u_prev), steps)
        else:
            _checkpointed(adj, st, strip, starts, every, steps)
        return adj.gradients(st.sat is not None) + (None,) * 5


def _reversible(adj: _Adjoint, st: Stepper, strip: torch.Tensor, nxt: torch.Tensor, cur: torch.Tensor,
                steps: int) -> None:
    """Run the adjoint back to step 0, rebuilding u^{n-1} from u^n, u^{n+1} on the box and the ring."""
    batch = nxt.shape[0]
    for n in range(steps - 1, -1, -1):
        c2r2, lap = adj.step(n, cur, None, None)
        nxt.view(batch, -1).index_add_(1, st.src_ext, -st.drive[:, :, n])
        nb = nxt[:, 1:-1, 1:-1]
        torch.sub((cur[:, 1:-1, 1:-1] * 2) + c2r2 * lap, nb, out=nb)
        if n >= 1 and len(st.ring_ext):
            nxt.view(batch, -1).index_copy_(1, st.ring_ext, strip[n - 1])
        cur, nxt = nxt, cur


def _interior(st: Stepper) -> Stepper:
    """A stepper for the extended box alone (undamped; its ring is to be overwritten every step)."""
    lay = st.layout
    r0, r1, c0, c1 = lay.box
    shape, off = (r1 - r0 + 2, c1 - c0 + 2), np.array([r0 - 1, c0 - 1])
    sub = replace(lay, shape=shape, src_cells=lay.src_cells - off, prb_cells=lay.prb_cells - off,
                  damping=np.zeros(shape), box=(1, shape[0] - 1, 1, shape[1] - 1), ring=lay.ring - off)
    cut = (slice(r0 - 1, r1 + 1), slice(c0 - 1, c1 + 1))
    return Stepper(st.x, st.cl[cut], st.q[cut], st.sat[cut], sub, st.dt, st.h, st.uth)


def _checkpointed(adj: _Adjoint, st: Stepper, strip: torch.Tensor, starts: list, every: int, steps: int) -> None:
    """Run the adjoint back to step 0 segment by segment, recomputing each from its checkpoint: on the
    extended box with the recorded ring when there is an absorber, else on the whole grid."""
    ring = len(st.ring_idx) > 0
    box = _interior(st) if ring else st
    for k in range(len(starts) - 1, -1, -1):
        n0, n1 = k * every, min(steps, (k + 1) * every)
        u, old = starts[k]
        crops = [old, u] if ring else [st.crop(old), st.crop(u)]  # u^{n0-1}, u^{n0}, ..., u^{n1}
        for n in range(n0, n1):
            u, old = box.step(u, old, st.drive[:, :, n]), u
            if ring:
                u.view(u.shape[0], -1).index_copy_(1, st.ring_ext, strip[n + 1])
            crops.append(u if ring else st.crop(u))
        for n in range(n1 - 1, n0 - 1, -1):
            j = n - n0
            adj.step(n, crops[j + 1], crops[j], crops[j + 2])
            crops.pop()


def default_every(steps: int, every: int | None) -> int:
    """Steps per checkpoint segment: ``every``, or ``sqrt(T)`` when None."""
    return max(1, math.isqrt(steps)) if every is None else every
