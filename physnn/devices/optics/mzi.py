"""MZIMesh: a programmable interferometer mesh (Clements layout) of Mach-Zehnder interferometers.

The ``N`` input modes carry the drive as amplitudes (``x`` in [-1, 1], shape (B, N)) or as
amplitudes and phases (``(B, 2N)``: amplitudes, then phases in units of pi rad). The mesh applies
``U = diag(e^{i alpha}) L_{N-1} ... L_0`` (columns of MZIs, :mod:`._clements`), and the outputs are
photodetected intensities ``|E|^2`` (B, N) or the coherent field ``[Re E, Im E]`` (B, 2N), in units
of the input power per unit amplitude. Controls are the phase shifters in rad: ``theta`` (internal)
and ``phi`` (external) per MZI, ``output_phase`` per mode. Lossless and without crosstalk, ``U`` is
exactly unitary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...device import Control, Device
from ...errors import ConfigurationError
from ._clements import decompose, layout
from ._transmission import complex_dtype

INPUTS = ("amplitude", "amplitude_phase")
OUTPUTS = ("intensity", "field")
TWO_PI = 2 * math.pi


class MZIMesh(Device):
    """A Clements mesh of ``n_modes`` modes. x: (B, N) or (B, 2N) in [-1, 1] -> y: (B, N) or (B, 2N).

    Args:
        n_modes: number of waveguide modes ``N`` (>= 2); the mesh holds N (N - 1) / 2 MZIs.
        unitary: the N x N unitary the default controls realize; default a Haar-random one drawn
            from ``unitary_seed``.
        input: ``"amplitude"`` or ``"amplitude_phase"``; output: ``"intensity"`` or ``"field"``.
        loss_db: insertion loss per MZI, dB (0: lossless).
        crosstalk: thermal crosstalk, the fraction of each phase shifter's phase that reaches its
            neighbours in the same column (0: none).
        phase_error: rms fabrication error added to every phase, rad (static, drawn from ``error_seed``).
        detector_noise: rms noise of each output relative to the mean output magnitude of the batch
            (drawn from ``seed``); makes the device stochastic.
    """

    name = "mzi-mesh"
    differentiable = True
    input_bounds = (-1.0, 1.0)

    def __init__(self, n_modes: int = 4, *, unitary: Any = None, unitary_seed: int = 0, input: str = "amplitude",
                 output: str = "intensity", loss_db: float = 0.0, crosstalk: float = 0.0, phase_error: float = 0.0,
                 detector_noise: float = 0.0, error_seed: int = 1, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        n = int(n_modes)
        if n < 2:
            raise ConfigurationError(f"MZIMesh needs n_modes >= 2, got {n_modes}")
        if input not in INPUTS or output not in OUTPUTS:
            raise ConfigurationError(f"MZIMesh input must be one of {list(INPUTS)} and output one of {list(OUTPUTS)}, "
                                     f"got input={input!r}, output={output!r}")
        for label, value in (("loss_db", loss_db), ("phase_error", phase_error), ("detector_noise", detector_noise)):
            if not value >= 0:
                raise ConfigurationError(f"MZIMesh {label} must be >= 0, got {value}")
        if not 0 <= crosstalk < 0.5:
            raise ConfigurationError(f"MZIMesh crosstalk must lie in [0, 0.5), got {crosstalk}")
        if unitary is None:
            unitary = _haar(n, unitary_seed)
        u = np.asarray(unitary.detach().cpu() if isinstance(unitary, torch.Tensor) else unitary)
        if u.shape != (n, n):
            raise ConfigurationError(f"MZIMesh unitary must have shape ({n}, {n}) for n_modes={n}, got {u.shape}")
        theta, phi, alpha = decompose(u)
        self.n_modes, self.input, self.output = n, input, output
        self.loss_db, self.crosstalk, self.detector_noise = float(loss_db), float(crosstalk), float(detector_noise)
        self.stochastic = detector_noise > 0
        self.in_shape = (n,) if input == "amplitude" else (2 * n,)
        self.out_shape = (n,) if output == "intensity" else (2 * n,)
        m = len(theta)
        self.controls = (
            Control("theta", (m,), 0.0, TWO_PI, "rad", tuple(theta.tolist()), "internal phase of each MZI"),
            Control("phi", (m,), 0.0, TWO_PI, "rad", tuple(phi.tolist()), "external (input) phase of each MZI"),
            Control("output_phase", (n,), 0.0, TWO_PI, "rad", tuple(alpha.tolist()), "phase of each output mode"),
        )
        errors = torch.randn(2 * m + n, generator=torch.Generator().manual_seed(int(error_seed)), dtype=torch.float64)
        self.register_buffer("phase_errors", phase_error * errors)
        self._columns = [torch.tensor(ms, dtype=torch.long) for ms in layout(n)]
        self._neighbours = _neighbours(n)

    @classmethod
    def from_unitary(cls, unitary: Any, **kwargs: Any) -> MZIMesh:
        """A mesh whose default controls realize ``unitary`` (N x N, unitary to 1e-8) by Clements decomposition."""
        return cls(int(np.asarray(unitary).shape[0]), unitary=unitary, **kwargs)

    def unitary(self, controls: dict[str, torch.Tensor] | None = None, dtype: torch.dtype = torch.float64
                ) -> torch.Tensor:
        """The mesh's transfer matrix (N, N), complex, at ``controls`` (defaults where omitted)."""
        probe = torch.zeros(1, self.n_modes, dtype=dtype)
        values = self.check_controls(controls, probe)
        eye = torch.eye(self.n_modes, dtype=complex_dtype(dtype))
        return self._propagate(eye, values).transpose(0, 1)

    def _phases(self, controls: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = controls["theta"].shape[0]
        errors = self.phase_errors.to(controls["theta"])
        theta, phi = controls["theta"] + errors[:m], controls["phi"] + errors[m:2 * m]
        if self.crosstalk:
            theta, phi = (p + self.crosstalk * self._neighbour_sum(p) for p in (theta, phi))
        return theta, phi, controls["output_phase"] + errors[2 * m:]

    def _neighbour_sum(self, p: torch.Tensor) -> torch.Tensor:
        index, mask = self._neighbours[0].to(p.device), self._neighbours[1].to(p)
        return (p[index] * mask).sum(-1)

    def _propagate(self, field: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fields (B, N) complex after the mesh."""
        theta, phi, alpha = self._phases(controls)
        transmission = 10 ** (-self.loss_db / 20)
        start = 0
        for modes in self._columns:
            modes = modes.to(field.device)
            k = slice(start, start + len(modes))
            start += len(modes)
            half = theta[k] / 2
            common = transmission * torch.polar(torch.ones_like(half), half + math.pi / 2)  # i e^{i theta/2}
            rotate = torch.polar(torch.ones_like(half), phi[k])
            s, c = torch.sin(half), torch.cos(half)
            a, b = field[:, modes] * rotate, field[:, modes + 1]
            field = field.index_copy(1, modes, common * (s * a + c * b))
            field = field.index_copy(1, modes + 1, common * (c * a - s * b))
        return field * torch.polar(torch.ones_like(alpha), alpha)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        n = self.n_modes
        if self.input == "amplitude":
            field = torch.complex(x, torch.zeros_like(x))
        else:
            field = torch.polar(torch.ones_like(x[:, n:]), math.pi * x[:, n:]) * x[:, :n]
        out = self._propagate(field.to(complex_dtype(x.dtype)), controls)
        y = torch.view_as_real(out).square().sum(-1) if self.output == "intensity" else torch.cat(
            [out.real, out.imag], dim=1)
        if self.detector_noise:
            z = torch.randn(y.shape, generator=self.generator, dtype=y.dtype).to(y.device)
            y = y + self.detector_noise * y.detach().abs().mean() * z
        return y


def _haar(n: int, seed: int) -> np.ndarray:
    """A Haar-random n x n unitary (QR of a complex Gaussian matrix with the phases of R's diagonal removed)."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.complex(*torch.randn(2, n, n, generator=g, dtype=torch.float64))
    q, r = torch.linalg.qr(z)
    d = torch.diagonal(r)
    return (q * (d / d.abs())).numpy()


def _neighbours(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each MZI, the indices of its (up to two) neighbours in the same column, and a 0/1 mask."""
    index, mask, start = [], [], 0
    for modes in layout(n):
        for j in range(len(modes)):
            k = start + j
            index.append([k - 1 if j > 0 else k, k + 1 if j + 1 < len(modes) else k])
            mask.append([float(j > 0), float(j + 1 < len(modes))])
        start += len(modes)
    return torch.tensor(index, dtype=torch.long), torch.tensor(mask, dtype=torch.float64)
