"""The torch backend of the wave solver: the leapfrog in torch ops and its exact, hand-written adjoint.

Device-agnostic (every tensor is made on the input's device), so it runs on CPU and CUDA alike.
One step, per cell (``u = u^n``, ``lap`` the 5-point sum without ``1/h^2``, ``r2 = (dt/h)^2``)::

    c       = cl + q u^2                                   (Kerr-like speed)
    D       = 1 + b dt + dt sat / (1 + (u / u_th)^2)       (damping, saturable absorption)
    u^{n+1} = (2u + r2 c^2 lap - (2 - D) u^{n-1}) / D + dt^2 s x[n]

:class:`TorchWave` runs it without an autograd graph (:class:`Leapfrog`: in place on two
zero-bordered buffers, u^{n+1} overwriting u^{n-1}, the field-dependent coefficients updated on
the box only; six passes over the grid per step and no allocation) and back-propagates by the
adjoint recursion (:class:`_Adjoint`: the transposed step, run backwards in time, on
preallocated buffers). :meth:`Stepper.step` is the same update in differentiable torch ops: the
plain-autograd reference of the tests, and the path that records snapshots. ``torch.compile``
does not pay on CPU (``benchmarks/bench_wave_compile.py``). The fields the adjoint needs are
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
from typing import TYPE_CHECKING, Any, NamedTuple

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
        self.drive_steps = self.drive.permute(2, 0, 1).contiguous()  # (T, B, K)
        self.prb_idx = as_t(layout.prb_cells[:, 0] * nx + layout.prb_cells[:, 1], torch.int64)
        self.prb_port = as_t(layout.prb_port, torch.int64)
        self.prb_w = as_t(layout.prb_w)
        self.prb_map = F.one_hot(self.prb_port, layout.n_probes).to(dtype)  # (K, P)
        r0, r1, c0, c1 = layout.box
        self.box = (slice(None), slice(r0, r1), slice(c0, c1))
        _check_inside_box(layout, q, "q (the Kerr coefficient)")
        if sat is not None:
            _check_inside_box(layout, sat, "sat (the saturable absorption)")
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


def _check_inside_box(layout: Layout, a: torch.Tensor, what: str) -> None:
    """The field-dependent terms are computed on the undamped interior only: refuse any outside it."""
    r0, r1, c0, c1 = layout.box
    outside = a.detach().abs().clone()
    outside[r0:r1, c0:c1] = 0
    if bool((outside != 0).any()):
        i, j = divmod(int(outside.argmax()), layout.shape[1])
        raise ConfigurationError(f"{what} must vanish outside the undamped interior rows {r0}..{r1 - 1}, columns "
                                 f"{c0}..{c1 - 1}; got {float(a[i, j]):g} at cell ({i}, {j})")


class _Views(NamedTuple):
    """A zero-bordered buffer ``full`` (B, H + 2, W + 2) and the views a step reads, made once."""

    full: torch.Tensor
    flat: torch.Tensor                  # (B, (H + 2) (W + 2))
    inner: torch.Tensor                 # (B, H, W)
    nbrs: tuple[torch.Tensor, ...]      # the four neighbours of ``inner``, each (B, H, W)


def _views(full: torch.Tensor) -> _Views:
    return _Views(full, full.view(full.shape[0], -1), full[:, 1:-1, 1:-1],
                  (full[:, :-2, 1:-1], full[:, 2:, 1:-1], full[:, 1:-1, :-2], full[:, 1:-1, 2:]))


def _neighbour_sum(v: _Views, out: torch.Tensor) -> torch.Tensor:
    """``u[i-1] + u[i+1] + u[j-1] + u[j+1]`` of ``v.inner`` into ``out`` (B, H, W)."""
    up, down, left, right = v.nbrs
    return torch.add(up, down, out=out).add_(left).add_(right)


def _box(t: torch.Tensor, st: Stepper) -> torch.Tensor:
    """The interior box of a (..., Ny, Nx) tensor, a view."""
    return t[(Ellipsis,) + st.box[1:]]


class _Speed:
    """The field-dependent speed, updated in place on the box each step: ``uu = u^2`` and
    ``cs = (dt/h) c`` (B, h, w); ``K = r2 a1 c^2`` and ``A = 2 a1 - 4 K`` on the whole grid, their
    constant values outside the box ((Ny, Nx) without a Kerr term, else (B, Ny, Nx)).
    One step is then ``u^{n+1} = A u + K (neighbour sum) - a2 u^{n-1}``."""

    def __init__(self, st: Stepper) -> None:
        batch, sr = st.drive.shape[0], st.dt / st.h
        self.kerr = st.kerr
        self.cls, self.qs = (_box(sr * a, st).contiguous() for a in (st.cl, st.q))
        self.K, self.A = st.k, st.two_a1 - 4 * st.k
        if st.kerr:
            self.K, self.A = (a.expand((batch,) + a.shape).clone() for a in (self.K, self.A))
        self.K_b, self.A_b = _box(self.K, st), _box(self.A, st)
        self.two_b = _box(st.two_a1, st).contiguous()  # 2: a1 = 1 on the box
        self.uu = st.drive.new_empty((batch,) + self.cls.shape)
        self.cs = torch.empty_like(self.uu) if st.kerr else self.cls

    def update(self, u_box: torch.Tensor) -> None:
        """Recompute the terms for the field ``u_box`` (B, h, w)."""
        torch.mul(u_box, u_box, out=self.uu)
        if self.kerr:
            torch.addcmul(self.cls, self.qs, self.uu, out=self.cs)
            torch.mul(self.cs, self.cs, out=self.K_b)
            torch.add(self.two_b, self.K_b, alpha=-4, out=self.A_b)


class _Field(NamedTuple):
    """One of the forward pass's two buffers: its views, its box (B, h, w) and extended box (B, h + 2, w + 2)."""

    v: _Views
    box: torch.Tensor
    ext: torch.Tensor


class Leapfrog:
    """The forward update without a graph, in place on two zero-bordered buffers: u^{n+1}
    overwrites u^{n-1}; the coefficients change on the box only. About ten passes over the
    grid per step and no allocation."""

    def __init__(self, st: Stepper) -> None:
        self.st, self.speed = st, _Speed(st)
        self.varying = st.kerr or st.sat is not None
        batch, (ny, nx) = st.drive.shape[0], st.layout.shape
        r0, r1, c0, c1 = st.layout.box
        self._fields = []
        for _ in range(2):
            full = st.drive.new_zeros((batch, ny + 2, nx + 2))
            box, ext = full[:, r0 + 1:r1 + 1, c0 + 1:c1 + 1], full[:, r0:r1 + 2, c0:c1 + 2]
            self._fields.append(_Field(_views(full), box, ext))
        self._i = 0
        self.nsum = st.drive.new_empty((batch, ny, nx))
        self.neg_a2 = -st.a2
        padded = lambda c: torch.as_tensor((c[:, 0] + 1) * (nx + 2) + c[:, 1] + 1, device=st.x.device)  # noqa: E731
        lay = st.layout
        self.src_idx, self.prb_idx, self.ring_idx = padded(lay.src_cells), padded(lay.prb_cells), padded(lay.ring)
        if st.sat is not None:
            self.sat_b = _box(st.dt * st.sat, st).contiguous()
            self.s, self.so = torch.empty_like(self.speed.uu), torch.empty_like(self.speed.uu)

    @property
    def cur(self) -> _Field:
        """u^n, the last field computed."""
        return self._fields[self._i]

    @property
    def prev(self) -> _Field:
        """u^{n-1}."""
        return self._fields[1 - self._i]

    def saved(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of (u^n, u^{n-1}) on the extended box, each (B, h + 2, w + 2)."""
        return tuple(f.ext.clone(memory_format=torch.contiguous_format) for f in (self.cur, self.prev))

    def load(self, u: torch.Tensor, old: torch.Tensor) -> None:
        """Start from (u^n, u^{n-1}) given on the extended box (as :meth:`saved` returns them)."""
        self.cur.ext.copy_(u)
        self.prev.ext.copy_(old)

    def step(self, n: int) -> _Field:
        """Advance to u^{n+1} with the drive of step n; returns its buffer (then :attr:`cur`)."""
        u, old, sp = self.cur, self.prev, self.speed
        if self.varying:
            sp.update(u.box)
        if self.st.sat is not None:  # s = D - 1 = dt sat / (1 + (u / u_th)^2), kept with s u^{n-1}
            torch.div(self.sat_b, torch.mul(sp.uu, 1 / self.st.uth ** 2, out=self.s).add_(1), out=self.s)
            torch.mul(self.s, old.box, out=self.so)
        nsum = _neighbour_sum(u.v, self.nsum)
        old.v.inner.mul_(self.neg_a2).addcmul_(sp.A, u.v.inner).addcmul_(sp.K, nsum)
        if self.st.sat is not None:  # u^{n+1} = (2u + r2 c^2 lap - u^{n-1} + s u^{n-1}) / (1 + s) on the box
            old.box.add_(self.so).div_(self.s.add_(1))
        old.v.flat.index_add_(1, self.src_idx, self.st.drive_steps[n])
        self._i = 1 - self._i
        return old


class _Adjoint:
    """The backward recursion: per-step state and the transposed step.

    ``lam`` is dL/du^{n+1}, ``prev`` dL/du^{n+2} (its box scaled for the -a2 of step n+1 when
    that depends on the field), ``new`` receives dL/du^n; all (B, Ny, Nx), rotated after each step.
    Full-grid work is six passes; the field-dependent terms touch the box only.
    """

    def __init__(self, st: Stepper, v: torch.Tensor, g_int: torch.Tensor, g_sig: torch.Tensor) -> None:
        self.st, self.speed = st, _Speed(st)
        steps, batch, _ = v.shape
        port = st.prb_port
        # dL/du^m at the probe cells, m = 1..T, (T, B, K)
        self.pa = st.prb_w * (2 * st.dt * g_int[:, port] * v + g_sig[:, port, :].permute(2, 0, 1))
        # each of lam, prev, new as (field, its box, its flat view): views made once, not per step
        self.lam, self.prev, self.new = ((z, _box(z, st), z.view(batch, -1)) for z in (st.zeros() for _ in range(3)))
        self.lam[2].index_add_(1, st.prb_idx, self.pa[steps - 1])
        self.w = _views(F.pad(st.zeros(), (1, 1, 1, 1)))  # K lambda, zero on the wall
        self.lap, self.dc, self.tmp = (torch.empty_like(self.speed.uu) for _ in range(3))
        self.g_src = v.new_empty((steps, batch, len(st.src_idx)))  # dL/d(drive) / (dt^2 w), (T, B, K)
        self.g_cl = torch.zeros_like(self.lap)   # per sample and without constant factors
        self.g_q = torch.zeros_like(self.g_cl)
        self.g_sat = torch.zeros_like(self.g_cl) if st.sat is not None else None
        self.neg_a2 = -st.a2
        self.q4s = _box((4 * st.dt / st.h) * st.q, st).contiguous()
        if st.sat is not None:
            r0, _, c0, c1 = st.layout.box
            cells = st.layout.src_cells
            self.src_box = torch.as_tensor((cells[:, 0] - r0) * (c1 - c0) + cells[:, 1] - c0, device=v.device)
            self.sat_b = _box(st.dt * st.sat, st).contiguous()    # dt sat
            self.e, self.s, self.d = (torch.empty_like(self.lap) for _ in range(3))

    def step(self, n: int, cur: _Views, old: _Views | None, nxt: _Views | None) -> None:
        """Back through step n (u^n -> u^{n+1}): ``cur`` = u^n on the extended box; ``old`` = u^{n-1}
        and ``nxt`` = u^{n+1} there (needed with saturable absorption only). Leaves ``lap`` (lap u^n)
        and ``speed`` (at u^n) on the box for the caller."""
        st, sp, sat = self.st, self.speed, self.st.sat is not None
        (lam, lb, lam_flat), (new, nb, new_flat) = self.lam, self.new
        torch.index_select(lam_flat, 1, st.src_idx, out=self.g_src[n])
        u = cur.inner
        lap = _neighbour_sum(cur, self.lap).add_(u, alpha=-4)
        sp.update(u)
        if sat:  # from here on, lambda on the box stands for lambda / D
            e = torch.mul(sp.uu, 1 / st.uth ** 2, out=self.e).add_(1).reciprocal_()
            s = torch.mul(self.sat_b, e, out=self.s)  # D - 1
            lb.div_(torch.add(s, 1, out=self.d))
        torch.mul(sp.K, lam, out=self.w.inner)
        _neighbour_sum(self.w, new).addcmul_(sp.A, lam).addcmul_(self.neg_a2, self.prev[0])
        dc = torch.mul(sp.cs, lap, out=self.dc).mul_(lb)  # (dt/h) lambda d(u^{n+1})/d(cl) / (2 r2)
        self.g_cl.add_(dc)
        self.g_q.addcmul_(dc, sp.uu)
        if st.kerr:
            nb.addcmul_(dc, torch.mul(self.q4s, u, out=self.tmp))
        if sat:
            dd = torch.sub(old.inner, nxt.inner, out=self.tmp)
            dd.view(dd.shape[0], -1).index_add_(1, self.src_box, st.drive_steps[n])
            dd.mul_(lb).mul_(e)  # e lambda d(u^{n+1})/dD, with u^{n+1} less its drive; dD/d(sat) = dt e
            self.g_sat.add_(dd)
            nb.addcmul_(dd, torch.mul(s, u, out=self.dc), value=-2 / st.uth ** 2)  # dD/du = -2 s e u / u_th^2
            lb.addcmul_(lb, s, value=-1)  # for the next step's -a2 = -(2 - D)/D on the box
        if n >= 1:
            new_flat.index_add_(1, st.prb_idx, self.pa[n - 1])
        self.prev, self.lam, self.new = self.lam, self.new, self.prev

    def gradients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(g_x (B, S, T), g_cl, g_q, g_sat (Ny, Nx), zero outside the box)."""
        st = self.st
        g_x = torch.einsum("nbk,ks->bsn", self.g_src * st.src_gain, st.src_map)
        full = []
        for g, scale in ((self.g_cl, 2 * st.dt / st.h), (self.g_q, 2 * st.dt / st.h), (self.g_sat, st.dt)):
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
        lf = Leapfrog(st)
        keep = any(ctx.needs_input_grad[:4])
        steps = x.shape[-1]
        v = x.new_empty((steps, x.shape[0], len(st.prb_idx)))
        strip = x.new_zeros((steps + 1, x.shape[0], len(st.ring_idx))) if keep else None
        starts = []
        for n in range(steps):
            if keep and sat is not None and n % every == 0:
                starts.append(lf.saved())
            new = lf.step(n).v.flat
            torch.index_select(new, 1, lf.prb_idx, out=v[n])
            if strip is not None:
                torch.index_select(new, 1, lf.ring_idx, out=strip[n + 1])
        if keep:
            ctx.state = (st, v, strip, starts, lf.saved(), every)
        return st.outputs(v)

    @staticmethod
    def backward(ctx, g_int, g_sig):  # type: ignore[override]
        st, v, strip, starts, (u_last, u_prev), every = ctx.state
        steps, batch, _ = v.shape
        g_int = v.new_zeros((batch, st.layout.n_probes)) if g_int is None else g_int
        g_sig = v.new_zeros((batch, st.layout.n_probes, steps)) if g_sig is None else g_sig
        adj = _Adjoint(st, v, g_int, g_sig)
        if st.sat is None:
            _reversible(adj, st, strip, u_last, u_prev, steps)
        else:
            _checkpointed(adj, st, strip, starts, every, steps)
        return adj.gradients() + (None,) * 5


def _reversible(adj: _Adjoint, st: Stepper, strip: torch.Tensor, nxt: torch.Tensor, cur: torch.Tensor,
                steps: int) -> None:
    """Run the adjoint back to step 0, rebuilding u^{n-1} from u^n, u^{n+1} on the box and the ring
    (``nxt``, ``cur``: u^T, u^{T-1} on the extended box, overwritten)."""
    views = [_views(cur), _views(nxt)]
    neg_drive = -st.drive_steps
    for n in range(steps - 1, -1, -1):
        c, x = views
        adj.step(n, c, None, None)
        # u^{n-1} = 2 u^n + r2 c^2 lap u^n - (u^{n+1} - drive) on the box, where a1 = a2 = 1
        x.flat.index_add_(1, st.src_ext, neg_drive[n])
        nb = x.inner.addcmul_(adj.speed.K_b, adj.lap, value=-1)
        torch.sub(c.inner, nb, out=nb).add_(c.inner)
        if n >= 1 and len(st.ring_ext):
            x.flat.index_copy_(1, st.ring_ext, strip[n - 1])
        views.reverse()


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
    extended box with the recorded ring when there is an absorber, else on the whole grid. One segment's
    fields, u^{n0-1} .. u^{n1} on the extended box, live in a buffer made once."""
    ring = len(st.ring_idx) > 0
    lf = Leapfrog(_interior(st) if ring else st)
    seg = starts[0][0].new_empty((every + 2,) + starts[0][0].shape)
    views = [_views(f) for f in seg]
    for k in range(len(starts) - 1, -1, -1):
        n0, n1 = k * every, min(steps, (k + 1) * every)
        u, old = starts[k]
        lf.load(u, old)
        seg[0].copy_(old)
        seg[1].copy_(u)
        for n in range(n0, n1):
            new = lf.step(n)
            if ring:
                new.v.flat.index_copy_(1, lf.ring_idx, strip[n + 1])
            seg[n - n0 + 2].copy_(new.ext)
        for n in range(n1 - 1, n0 - 1, -1):
            j = n - n0
            adj.step(n, views[j + 1], views[j], views[j + 2])


def default_every(steps: int, every: int | None) -> int:
    """Steps per checkpoint segment: ``every``, or ``sqrt(T)`` when None."""
    return max(1, math.isqrt(steps)) if every is None else every
