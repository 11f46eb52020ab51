"""SHGCrystal: broadband second-harmonic generation of a shaped ultrashort pulse in a chi(2) crystal.

The physical system of Wright et al. (Nature 601, 549 (2022)): a pulse shaper writes the drive and
the trainable parameters into the spectral phases of a femtosecond pulse, a chi(2) crystal doubles
it, and a spectrometer reads the second-harmonic (SH) spectrum in bins.

Envelopes ``A1`` (fundamental, FH) and ``A2`` (SH) in the frame moving with the FH, time ``t`` in
fs, position ``z`` in mm, sampled on ``n_freq`` points of a periodic window (the pulse shaper's
discrete spectrum). With ``B2 = A2 exp(-i dk z)`` the coupled-wave equations are::

    dA1/dz = L1 A1 - i kappa conj(A1) B2,     L1 = i (beta2_FH / 2) W^2
    dB2/dz = L2 B2 - i kappa A1^2,            L2 = i (-gvm W + (beta2_SH / 2) W^2 - dk)

written with ``d/dt -> +i W`` (``torch.fft`` convention; ``W`` the offset from each carrier,
rad/fs) and solved by symmetric split steps: the linear part exactly in the frequency domain,
the nonlinear part by a fourth-order Runge-Kutta step in the time domain.
Amplitudes are normalized to the peak of the transform-limited input pulse, so ``coupling``
(``kappa`` times that peak, 1/mm) makes ``coupling * length`` the dimensionless drive: a flat
pulse without walk-off converts ``tanh^2(coupling * length)`` of its energy. Outputs are the SH
energy in ``out_features`` equal bins of the SH band (where the transform-limited pulse's SH
amplitude is at least 10 % of its peak), relative to the SH energy that the transform-limited pulse
generates in the same crystal (``tl_efficiency``, a fraction of the FH energy): the reference an
experimenter divides spectra by, and what keeps the outputs of order one at any coupling.

Validated (tests/test_optics_shg.py): the undepleted-pump spectrum
``A2(W, L) = -i kappa L F[A1^2](W) exp(i (dk - gvm W) L / 2) sinc((gvm W + dk) L / 2)``,
the depleted pump ``tanh^2`` efficiency, and energy conservation ``|A1|^2 + |A2|^2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...device import Control, Device
from ...errors import ConfigurationError

#: a block of the pulse shaper spans this many frequency samples
BINS_PER_BLOCK = 4
#: the shaped band: where the transform-limited spectral amplitude is at least 10 % of its peak
BAND_LEVEL = 0.1


class SHGCrystal(Device):
    """A shaped femtosecond pulse doubled in a chi(2) crystal. x: (B, in_features) in [-1, 1] -> (B, out_features).

    The shaped band of the FH spectrum (spectral amplitude >= 10 % of its peak) is split into
    ``in_features + n_controls`` blocks of equal width, inputs and controls interleaved; block
    ``k`` gets the spectral phase ``pi * x_k`` (inputs) or the control ``phase`` (rad).

    Args:
        in_features, n_controls, out_features: drive blocks, control blocks, SH spectrum bins.
        pulse_fs: intensity FWHM of the transform-limited Gaussian FH pulse, fs.
        length_mm: crystal length, mm.
        coupling: nonlinear coupling times the transform-limited peak amplitude, 1/mm.
        gvm_fs_per_mm: group-velocity mismatch ``1/v_SH - 1/v_FH``, fs/mm.
        gvd_fs2_per_mm: group-velocity dispersion ``(beta2_FH, beta2_SH)``, fs^2/mm.
        dk_per_mm: phase mismatch ``k_SH - 2 k_FH`` at the carrier, 1/mm.
        steps: split steps through the crystal.
        n_freq: frequency samples (at least ``12 (in_features + n_controls)``: the SH band must fit).
        phase_error: rms static error of the shaper's phases, rad (drawn from ``error_seed``); a
            hardware stand-in's calibration error.
        noise: rms spectrometer noise relative to the batch's mean bin energy (drawn from ``seed``).
        control_seed: seeds the default control phases, uniform in [0, 2 pi): a scrambled pulse, away
            from the transform limit, where the SH yield is stationary in every phase and a network
            starting there learns slowly (SPSA on the training matrix's task: 0.63 after 60 epochs from
            phases of pi, 0.92 from random phases).
    """

    name = "shg-crystal"
    differentiable = True
    input_bounds = (-1.0, 1.0)

    def __init__(self, in_features: int = 16, n_controls: int = 16, out_features: int = 16, *,
                 pulse_fs: float = 50.0, length_mm: float = 1.0, coupling: float = 0.5,
                 gvm_fs_per_mm: float = 50.0, gvd_fs2_per_mm: tuple[float, float] = (0.0, 0.0),
                 dk_per_mm: float = 0.0, steps: int = 64, n_freq: int = 512, phase_error: float = 0.0,
                 noise: float = 0.0, error_seed: int = 1, control_seed: int = 0, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        counts = {"in_features": in_features, "n_controls": n_controls, "out_features": out_features, "steps": steps}
        for label, value in counts.items():
            if int(value) != value or value < (0 if label == "n_controls" else 1):
                raise ConfigurationError(f"SHGCrystal {label} must be a positive integer, got {value!r}")
        for label, value in (("pulse_fs", pulse_fs), ("length_mm", length_mm)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"SHGCrystal {label} must be a positive number, got {value!r}")
        for label, value in (("error_seed", error_seed), ("control_seed", control_seed)):
            if int(value) != value or value < 0:
                raise ConfigurationError(f"SHGCrystal {label} must be an integer >= 0, got {value!r}")
        for label, value in (("phase_error", phase_error), ("noise", noise), ("coupling", coupling)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"SHGCrystal {label} must be a finite number >= 0, got {value!r}")
        blocks = int(in_features) + int(n_controls)
        if n_freq < 12 * blocks:
            raise ConfigurationError(f"SHGCrystal n_freq={n_freq} cannot hold the SH band of {blocks} blocks "
                                     f"({BINS_PER_BLOCK} samples each): use n_freq >= {12 * blocks}")
        self.in_features, self.n_controls, self.out_features = int(in_features), int(n_controls), int(out_features)
        self.length_mm, self.coupling, self.steps = float(length_mm), float(coupling), int(steps)
        self.gvm, self.dk = float(gvm_fs_per_mm), float(dk_per_mm)
        self.gvd = (float(gvd_fs2_per_mm[0]), float(gvd_fs2_per_mm[1]))
        self.noise = float(noise)
        self.stochastic = self.noise > 0
        self.in_shape, self.out_shape = (self.in_features,), (self.out_features,)

        # the band: spectral amplitude exp(-W^2 tau^2 / (8 ln 2)) >= BAND_LEVEL
        band = math.sqrt(8 * math.log(2) * math.log(1 / BAND_LEVEL)) / pulse_fs  # rad/fs
        d_omega = 2 * band / (BINS_PER_BLOCK * blocks)
        self.window_fs = 2 * math.pi / d_omega
        if abs(self.gvm) * self.length_mm > self.window_fs / 8:
            raise ConfigurationError(f"SHGCrystal walk-off |gvm| * length = {abs(self.gvm) * self.length_mm:g} fs "
                                     f"exceeds 1/8 of the {self.window_fs:.0f} fs window: the SH would wrap around; "
                                     "shorten the crystal or add control/input blocks")
        omega = 2 * math.pi * np.fft.fftfreq(n_freq, self.window_fs / n_freq)  # rad/fs, FFT order
        amplitude = np.exp(-omega**2 * pulse_fs**2 / (8 * math.log(2)))
        amplitude *= math.sqrt(n_freq) / amplitude.sum()  # transform-limited peak |A1(t=0)| = 1 (ortho FFT)
        order = np.argsort(omega)
        shaped = order[np.abs(omega[order]) < band - 1e-12 * band][: BINS_PER_BLOCK * blocks]
        block_of = np.full(n_freq, -1)
        block_of[shaped] = np.arange(shaped.size) // BINS_PER_BLOCK
        is_input = np.zeros(blocks, dtype=bool)
        is_input[np.round(np.linspace(0, blocks - 1, self.in_features)).astype(int)] = True
        # each shaped sample reads one entry of [inputs..., controls...]
        slot = np.where(is_input, np.cumsum(is_input) - 1, self.in_features + np.cumsum(~is_input) - 1)
        sh_band = math.sqrt(2) * band  # the transform-limited SH spectrum is sqrt(2) wider than the FH's
        sh_edges = np.linspace(-sh_band, sh_band, self.out_features + 1)
        sh_bin = np.digitize(omega, sh_edges) - 1
        sh_bin[(omega < -sh_band) | (omega >= sh_band)] = -1
        errors = phase_error * np.random.default_rng(int(error_seed)).standard_normal(n_freq)

        self.register_buffer("omega", torch.as_tensor(omega), persistent=False)
        self.register_buffer("amplitude", torch.as_tensor(amplitude), persistent=False)
        self.register_buffer("phase_offset", torch.as_tensor(np.where(block_of >= 0, errors, 0.0)), persistent=False)
        self.register_buffer("shaped", torch.as_tensor(shaped), persistent=False)
        self.register_buffer("slot", torch.as_tensor(slot[block_of[shaped]]), persistent=False)
        self.register_buffer("sh_bin", torch.as_tensor(sh_bin), persistent=False)
        limited = torch.polar(self.amplitude, torch.zeros_like(self.amplitude)).unsqueeze(0)
        #: SH energy of the transform-limited pulse / FH energy: the outputs' unit
        self.tl_efficiency = float(self.propagate(limited)[1].abs().square().sum() / limited.abs().square().sum())
        start = 2 * math.pi * np.random.default_rng(int(control_seed)).random(self.n_controls)
        self.controls = (Control("phase", (self.n_controls,), 0.0, 2 * math.pi, "rad", tuple(start.tolist()),
                                 "spectral phase of each control block of the pulse shaper"),) if n_controls else ()

    # ------------------------------------------------------------------ physics
    def input_spectrum(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """The shaped FH spectrum (B, n_freq), FFT order, ortho normalization, of drives ``x`` (B, in_features)."""
        real = x.dtype
        values = math.pi * x if phase is None else torch.cat([math.pi * x, phase.to(real).expand(len(x), -1)], 1)
        phi = self.phase_offset.to(device=x.device, dtype=real).expand(len(x), -1).clone()
        phi[:, self.shaped.to(x.device)] = phi[:, self.shaped.to(x.device)] + values[:, self.slot.to(x.device)]
        return torch.polar(self.amplitude.to(device=x.device, dtype=real).expand_as(phi), phi)

    def propagate(self, a1: torch.Tensor, a2: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """FH and SH spectra ``(A1, A2)`` (B, n_freq) after the crystal, from the input spectra (A2 = 0 default).

        Returns the SH as ``A2`` (with the phase-mismatch rotation ``exp(i dk L)`` restored).
        """
        dz = self.length_mm / self.steps
        omega = self.omega.to(device=a1.device, dtype=a1.real.dtype)
        half1, half2 = (torch.polar(torch.ones_like(omega), p * dz / 2) for p in self._linear_phase(omega))
        b2 = torch.zeros_like(a1) if a2 is None else a2
        f1, f2 = a1, b2
        for _ in range(self.steps):
            f1, f2 = f1 * half1, f2 * half2
            t1, t2 = self._nonlinear(torch.fft.ifft(f1, norm="ortho"), torch.fft.ifft(f2, norm="ortho"), dz)
            f1, f2 = torch.fft.fft(t1, norm="ortho") * half1, torch.fft.fft(t2, norm="ortho") * half2
        return f1, f2 * complex(math.cos(self.dk * self.length_mm), math.sin(self.dk * self.length_mm))

    def reference(self, a1: torch.Tensor, rtol: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`propagate` by an independent solver: SciPy's adaptive RK45 in the interaction picture.

        The linear part is carried exactly by ``exp(L z)`` and the whole nonlinear right-hand side
        is integrated at once, with no operator splitting. Slow; for validation. ``a1``: (B, n_freq).
        """
        from scipy.integrate import solve_ivp

        p1, p2 = (p.numpy() for p in self._linear_phase(self.omega))
        shape = tuple(a1.shape)
        kappa = -1j * self.coupling

        def rate(z: float, state: np.ndarray) -> np.ndarray:
            c1, c2 = state.view(np.complex128).reshape(2, *shape)
            e1, e2 = np.exp(1j * p1 * z), np.exp(1j * p2 * z)
            t1, t2 = np.fft.ifft(c1 * e1, norm="ortho"), np.fft.ifft(c2 * e2, norm="ortho")
            d1 = np.fft.fft(kappa * t1.conj() * t2, norm="ortho") / e1
            d2 = np.fft.fft(kappa * t1 * t1, norm="ortho") / e2
            return np.stack([d1, d2]).reshape(-1).view(np.float64)

        start = np.stack([a1.detach().numpy().astype(np.complex128), np.zeros(shape, np.complex128)]).reshape(-1)
        sol = solve_ivp(rate, (0.0, self.length_mm), start.view(np.float64), rtol=rtol, atol=rtol * 1e-3)
        c1, c2 = sol.y[:, -1].view(np.complex128).reshape(2, *shape)
        z = self.length_mm
        return (torch.as_tensor(c1 * np.exp(1j * p1 * z)),
                torch.as_tensor(c2 * np.exp(1j * (p2 + self.dk) * z)))

    def _linear_phase(self, omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase per mm of each frequency for the FH and the SH (``d/dt -> +i W``), rad/mm."""
        b1, b2 = self.gvd
        return 0.5 * b1 * omega**2, -self.gvm * omega + 0.5 * b2 * omega**2 - self.dk

    def _nonlinear(self, a1: torch.Tensor, b2: torch.Tensor, dz: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One RK4 step of ``dA1 = -i k conj(A1) B2``, ``dB2 = -i k A1^2`` over ``dz`` mm (time domain)."""
        k = -1j * self.coupling

        def rate(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return k * u.conj() * v, k * u * u

        k1 = rate(a1, b2)
        k2 = rate(a1 + 0.5 * dz * k1[0], b2 + 0.5 * dz * k1[1])
        k3 = rate(a1 + 0.5 * dz * k2[0], b2 + 0.5 * dz * k2[1])
        k4 = rate(a1 + dz * k3[0], b2 + dz * k3[1])
        return (a1 + dz / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]),
                b2 + dz / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))

    def binned(self, a2: torch.Tensor, a1_in: torch.Tensor) -> torch.Tensor:
        """SH energy per output bin as a fraction of the input FH energy: (B, n_freq) -> (B, out_features).

        :meth:`_forward` divides it by :attr:`tl_efficiency`.
        """
        power = torch.view_as_real(a2).square().sum(-1)
        total = torch.view_as_real(a1_in).square().sum((-1, -2)).unsqueeze(-1)
        bins = self.sh_bin.to(a2.device)
        inside = bins >= 0
        out = power.new_zeros(len(power), self.out_features)
        return out.index_add(1, bins[inside], power[:, inside]) / total

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        spectrum = self.input_spectrum(x, controls.get("phase"))  # complex64 / complex128 with x
        _, a2 = self.propagate(spectrum)
        y = self.binned(a2, spectrum) / self.tl_efficiency
        if self.noise:
            z = torch.randn(y.shape, generator=self.generator, dtype=y.dtype).to(y.device)
            y = y + self.noise * y.detach().mean() * z
        return y
