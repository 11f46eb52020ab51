"""WaveMedium2D: a trainable, nonlinear 2D wave medium as a :class:`physnn.Device`.

The scalar wave equation, in SI-like units (length m, time s, speed m/s)::

    u_tt + 2 b u_t = c^2 Lap u + source

on a grid of ``(Ny, Nx)`` cells of size ``h``, stepped by leapfrog with ``dt`` and a 5-point
Laplacian, walls ``u = 0`` around the grid and a graded damping layer ``b`` inside them. The
material: a density ``rho`` in [0, 1] (the control) is masked to the design region, blurred
and projected, ``rho~ = P(blur(rho))``, and sets the linear speed
``c_lin = c0 + (c1 - c0) rho~``. Nonlinearities (off when 0): Kerr-like speed
``c = c_lin + c_nl rho~ u^2`` and saturable absorption ``b += rho~ b0 / (1 + (u/u_th)^2)``.

The drive ``x`` (B, T), or (B, S, T) with several sources, is injected at the source cells as
``u += dt^2 x[n]`` after each step; the output is the time-integrated intensity at each probe
(B, P), normalized to sum 1 per sample (as wavetorch) or raw.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...device import Control, Device
from ...errors import ConfigurationError, StabilityError
from . import geometry
from ._solver import Layout, Solution, numba_available, solve
from .design import export_design
from .geometry import Port

OUTPUTS = ("normalized", "raw")
BACKENDS = ("auto", "numba", "torch")


class WaveMedium2D(Device):
    """A nonlinear wave medium with a trainable material density ``rho`` (Ny, Nx) in [0, 1].

    Args:
        shape: grid ``(Ny, Nx)`` in cells.
        n_steps: time steps T per call; ``x`` has shape (B, T) (or (B, S, T) for S sources).
        h: cell size, m.
        dt: time step, s; must satisfy ``max(c0, c1) * dt / h <= 1/sqrt(2)`` (CFL).
        c0: background wave speed (outside material, rho~ = 0), m/s.
        c1: material wave speed (rho~ = 1), m/s.
        sources: one or more :class:`Port` (default: a point 20 cells right of the left
            absorber, centred vertically; fewer than 20 on small grids).
        probes: :class:`Port` list (default: 3 points 20 cells left of the right absorber,
            20 cells apart; fewer on small grids).
        design_region: bool mask (Ny, Nx) where ``rho`` acts (default: the interior columns
            from source + 5 to probes - 5, fewer on small grids, rows clear of the absorber by
            the blur radius).
        absorber_width: damping layer thickness per side, cells (0: closed, lossless box).
        absorber_strength: largest damping ``b`` at the walls, 1/s.
        absorber_order: polynomial grading of ``b`` with depth. The defaults (30 cells, 0.35/s,
            cubic) reflect under 1 % of a normally incident pulse of ~14-cell wavelength
            (tests/test_wave_physics.py); wavetorch's 20 cells, 3/s, quartic reflect ~7 %.
        blur_radius: radius of the density blur, cells (0: none).
        projection_beta, projection_eta: sharpness and threshold of the tanh projection
            (``projection_beta = 0``: no projection, ``rho~ = blur(rho)``).
        c_nl: Kerr-like coefficient, m/s per unit field^2 (0: off).
        sat_b0: saturable absorption strength, 1/s (0: off); ``sat_uth``: its threshold field.
        output: ``"normalized"`` (intensities / their sum) or ``"raw"`` (field^2 s).
        backend: ``"numba"`` (fused CPU kernels, exact adjoint), ``"torch"`` (any torch device;
            the same exact adjoint in torch ops), both checkpointed with saturable absorption,
            or ``"auto"`` (numba for CPU inputs, else torch).
        checkpoint_every: steps per checkpoint segment of the adjoint with
            saturable absorption (None: sqrt(T)); 0: plain autograd through every step (the
            reference, memory O(T)).
        rho_init: default density, in [0, 1].
    """

    name = "wave-2d"
    differentiable = True

    def __init__(self, *, shape: tuple[int, int] = (100, 160), n_steps: int = 1000, h: float = 1.0,
                 dt: float = 0.5, c0: float = 1.0, c1: float = 0.5, sources: Port | Sequence[Port] | None = None,
                 probes: Sequence[Port] | None = None, design_region: Any = None, absorber_width: int = 30,
                 absorber_strength: float = 0.35, absorber_order: float = 3.0, blur_radius: int = 1,
                 projection_beta: float = 100.0, projection_eta: float = 0.5, c_nl: float = 0.0,
                 sat_b0: float = 0.0, sat_uth: float = 1.0, output: str = "normalized", backend: str = "auto",
                 checkpoint_every: int | None = None, rho_init: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        shape = (int(shape[0]), int(shape[1]))
        if n_steps < 1 or h <= 0 or dt <= 0 or c0 <= 0 or c1 <= 0 or sat_uth <= 0 or blur_radius < 0:
            raise ConfigurationError(f"WaveMedium2D needs n_steps >= 1, h, dt, c0, c1, sat_uth > 0 and "
                                     f"blur_radius >= 0; got n_steps={n_steps}, h={h}, dt={dt}, c0={c0}, c1={c1}, "
                                     f"sat_uth={sat_uth}, blur_radius={blur_radius}")
        if output not in OUTPUTS or backend not in BACKENDS:
            raise ConfigurationError(f"output must be one of {OUTPUTS} and backend one of {BACKENDS}; "
                                     f"got {output!r}, {backend!r}")
        if backend == "numba" and not numba_available():
            raise ConfigurationError("backend='numba' needs numba (pip install numba); use backend='torch'")
        cmax = max(c0, c1)
        limit = h / (cmax * math.sqrt(2))
        if dt > limit:
            raise StabilityError(f"WaveMedium2D: dt = {dt:g} s violates the CFL condition for the fastest speed "
                                 f"{cmax:g} m/s on cells of h = {h:g} m: c*dt/h = {cmax * dt / h:.4f} > "
                                 f"1/sqrt(2) = 0.7071; use dt <= {limit:.6g} s")
        self.h, self.dt, self.c0, self.c1 = float(h), float(dt), float(c0), float(c1)
        self.c_nl, self.sat_b0, self.sat_uth = float(c_nl), float(sat_b0), float(sat_uth)
        self.n_steps, self.output, self.backend = int(n_steps), output, backend
        self.checkpoint_every = checkpoint_every
        self.blur_radius, self.projection_beta, self.projection_eta = int(blur_radius), float(projection_beta), \
            float(projection_eta)
        self.absorber_width = int(absorber_width)
        damping = geometry.damping_profile(shape, self.absorber_width, absorber_strength, absorber_order)

        w = self.absorber_width
        gap = min(20, (shape[0] - 2 * w) // 4, (shape[1] - 2 * w) // 4)  # 20 cells where the grid allows
        if sources is None:
            sources = [geometry.point(shape[0] // 2, w + gap)]
        self.sources = [sources] if isinstance(sources, Port) else list(sources)
        if probes is None:
            probes = [geometry.point(shape[0] // 2 + gap * (k - 1), shape[1] - w - 1 - gap) for k in range(3)]
        self.probes = [geometry.as_probe(p) for p in probes]
        if not self.sources or not self.probes:
            raise ConfigurationError("WaveMedium2D needs at least one source and one probe")
        geometry.check_ports(self.sources, "source", shape, w)
        geometry.check_ports(self.probes, "probe", shape, w)
        if design_region is None:
            design_region = self._default_design_region(shape)
        mask = geometry.check_design_region(np.asarray(design_region), shape, w, self.blur_radius)

        src, src_port, src_w = geometry.pack(self.sources)
        prb, prb_port, prb_w = geometry.pack(self.probes)
        self.layout = Layout(shape, src, src_port, src_w, prb, prb_port, prb_w, len(self.probes), damping,
                             geometry.interior_box(shape, w), geometry.ring_cells(shape, w))
        self.shape = shape
        self.register_buffer("design_region", torch.as_tensor(mask, dtype=torch.float64))
        self.register_buffer("blur_kernel", _disk(self.blur_radius))
        self.in_shape = (self.n_steps,) if len(self.sources) == 1 else (len(self.sources), self.n_steps)
        self.out_shape = (len(self.probes),)
        self.controls = (Control("rho", shape, 0.0, 1.0, "", float(rho_init),
                                 "material density per cell (acts inside the design region)"),)

    @classmethod
    def wavetorch_vowels(cls, n_steps: int = 1000, **overrides: Any) -> WaveMedium2D:
        """The vowel setup of wavetorch (Hughes et al., Sci. Adv. 2019, study/nonlinear_speed.yml):
        grid 100 x 160 (Ny, Nx), h = 1.4284 m, dt = 1 s, c0 = 1, c1 = 0.5 m/s, absorber 20 cells
        (b up to 3/s, order 4), point source at (50, 40), 3 probes at column 120, rows 30/50/70,
        design region columns 45..114, blur radius 1, projection beta 100, eta 0.5, c_nl = -30.
        Any keyword overrides a setting."""
        config: dict[str, Any] = dict(
            shape=(100, 160), n_steps=n_steps, h=1.4283556979968262, dt=1.0, c0=1.0, c1=0.5,
            sources=[geometry.point(50, 40)], probes=[geometry.point(r, 120) for r in (30, 50, 70)],
            absorber_width=20, absorber_strength=3.0, absorber_order=4.0, blur_radius=1,
            projection_beta=100.0, projection_eta=0.5, c_nl=-30.0)
        config.update(overrides)
        if "design_region" not in config:
            ny, nx = config["shape"]
            w, r = config["absorber_width"], config["blur_radius"]
            mask = np.zeros((ny, nx), dtype=bool)
            mask[w + r:ny - w - r, 45:115] = True
            config["design_region"] = mask
        return cls(**config)

    def _default_design_region(self, shape: tuple[int, int]) -> np.ndarray:
        r0, r1, c0, c1 = geometry.interior_box(shape, self.absorber_width)
        m = self.blur_radius
        src = max(int(p.array[:, 1].max()) for p in self.sources)
        prb = min(int(p.array[:, 1].min()) for p in self.probes)
        gap = min(5, max(0, (prb - src - 2) // 3))  # 5 cells clear of the ports where there is room
        left, right = src + gap, prb - gap
        mask = np.zeros(shape, dtype=bool)
        mask[r0 + m:r1 - m, max(left, c0 + m):min(right, c1 - m)] = True
        if not mask.any():
            raise ConfigurationError("no room for a default design region between the sources and the probes; "
                                     "pass design_region=")
        return mask

    def export_design(self, path: str | os.PathLike[str], rho: Any = None, *,
                      threshold: float | None = None) -> dict[str, Path]:
        """Write the projected density for ``rho`` (Ny, Nx) (e.g. ``layer.control_values()["rho"]``) as
        ``<path>_density.npy/.png``, the mask ``density >= threshold`` (default ``projection_eta``) as
        ``<path>_mask.png/.csv`` and a JSON sidecar (cell size m, speeds m/s, projection): see
        :mod:`physnn.devices.wave.design`. Returns the files written by kind."""
        return export_design(self, path, rho, threshold=threshold)

    # ------------------------------------------------------------------ physics
    def density(self, rho: torch.Tensor) -> torch.Tensor:
        """The effective density ``rho~`` (Ny, Nx): masked to the design region, blurred, projected."""
        r = rho * self.design_region.to(rho)
        if self.blur_radius > 0:
            r = _blur(r, self.blur_kernel.to(rho))
        if self.projection_beta > 0:
            b, e = self.projection_beta, self.projection_eta
            r = (math.tanh(b * e) + torch.tanh(b * (r - e))) / (math.tanh(b * e) + math.tanh(b * (1 - e)))
        return r

    def speed(self, rho: torch.Tensor) -> torch.Tensor:
        """Linear wave speed ``c0 + (c1 - c0) rho~`` (Ny, Nx), m/s."""
        return self.c0 + (self.c1 - self.c0) * self.density(rho)

    def simulate(self, x: torch.Tensor, controls: Mapping[str, Any] | None = None, *,
                 snapshot_every: int | None = None) -> Solution:
        """Run the medium and return everything it measured: raw ``intensity`` (B, P) in
        field^2 s, probe ``signals`` (B, P, T), and with ``snapshot_every=k`` the field every k
        steps, ``snapshots`` (B, T // k, Ny, Nx) (torch backend; for plots). Differentiable."""
        x = self.check_input(x)
        values = self.check_controls(controls, x)
        self.counter.add(x.shape[0])
        return self._run(x, values, snapshot_every)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        intensity = self._run(x, controls, None).intensity
        if self.output == "raw":
            return intensity
        return intensity / intensity.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def _run(self, x: torch.Tensor, controls: dict[str, torch.Tensor], snapshot_every: int | None) -> Solution:
        x3 = x.unsqueeze(1) if x.dim() == 2 else x
        rho = self.density(controls["rho"])
        cl = self.c0 + (self.c1 - self.c0) * rho
        q = self.c_nl * rho
        sat = self.sat_b0 * rho if self.sat_b0 > 0 else None
        backend = self.backend
        if backend == "auto":
            fast = x.device.type == "cpu" and numba_available()
            backend = "numba" if fast else "torch"
        if snapshot_every:
            backend = "torch"
        elif backend == "numba" and x.device.type != "cpu":
            raise ConfigurationError(f"backend='numba' runs on the CPU only, got inputs on {x.device}; "
                                     "use backend='auto' or 'torch'")
        solution = solve(x3, cl, q, sat, self.layout, dt=self.dt, h=self.h, sat_uth=self.sat_uth, backend=backend,
                         checkpoint_every=self.checkpoint_every, snapshot_every=snapshot_every)
        if self.c_nl != 0:
            self._check_kerr(x3, cl, q, solution.intensity)
        return solution

    def kerr_field_limit(self, cl: torch.Tensor, q: torch.Tensor) -> tuple[float, float]:
        """``(|u|, c_lin)``: the smallest field amplitude at which the Kerr speed ``c = c_lin + q u^2``
        (``q = c_nl rho~``, m/s per field^2) reaches zero (``c_nl < 0``) or the CFL limit
        ``h / (dt sqrt 2)`` (``c_nl > 0``), and the linear speed (m/s) of the cell where that happens."""
        cfl = self.h / (self.dt * math.sqrt(2))
        room = cl if self.c_nl < 0 else cfl - cl  # m/s the Kerr term may take or add
        u2 = torch.where(q != 0, room / q.abs(), torch.full_like(cl, math.inf))
        k = int(u2.argmin())
        return math.sqrt(float(u2.flatten()[k])), float(cl.flatten()[k])

    def _check_kerr(self, x: torch.Tensor, cl: torch.Tensor, q: torch.Tensor, intensity: torch.Tensor) -> None:
        """Raise StabilityError when a Kerr run blew up (its intensity is not finite)."""
        bad = ~torch.isfinite(intensity).all(-1)
        if not bool(bad.any()):
            return
        u, c = self.kerr_field_limit(cl.detach(), q.detach())
        rows = bad.nonzero().flatten().tolist()
        peak = float(x.detach()[bad].abs().max())
        what = (f"the speed crosses zero (c_lin = {c:g} m/s there) and then grows past the CFL limit"
                if self.c_nl < 0 else f"the speed grows from c_lin = {c:g} m/s past the CFL limit "
                                      f"{self.h / (self.dt * math.sqrt(2)):g} m/s")
        raise StabilityError(
            f"{self._label()}: the Kerr term c = c_lin + c_nl rho~ u^2 with c_nl = {self.c_nl:g} m/s per field^2 "
            f"blew up the simulation of sample(s) {rows[:10]}: once the field exceeds |u| = {u:.4g}, {what}. "
            f"Their drive peaks at |x| = {peak:.4g}; lower the drive amplitude (the field scales with it) "
            f"or |c_nl|.")

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, n_steps={self.n_steps}, h={self.h:g}, dt={self.dt:g}, c0={self.c0:g}, "
                f"c1={self.c1:g}, c_nl={self.c_nl:g}, sat_b0={self.sat_b0:g}, sources={len(self.sources)}, "
                f"probes={len(self.probes)}, absorber={self.absorber_width}, backend={self.backend!r}")


def _blur(r: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate (Ny, Nx) with a small odd kernel, zero outside: a sum of shifted copies (on
    tiny grids this beats ``conv2d``, whose thread pool stalls on a busy machine)."""
    k = kernel.shape[0] // 2
    p = F.pad(r, (k, k, k, k))
    ny, nx = r.shape
    out = torch.zeros_like(r)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out = out + kernel[i, j] * p[i:i + ny, j:j + nx]
    return out


def _disk(radius: int) -> torch.Tensor:
    """Normalized disk kernel (2r+1, 2r+1): cells with dy^2 + dx^2 < (r+1)^2 (wavetorch's blur)."""
    d = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = ((d[:, None] ** 2 + d[None, :] ** 2) < (radius + 1) ** 2).to(torch.float64)
    return k / k.sum()
