"""CoupledPendula: a chain of damped nonlinear pendula, the oscillator network of
physics-aware training (Wright et al., Nature 2022, the coupled-pendula example).

Equations of motion, for pendulum ``i`` of ``n`` (angles in rad, time in s)::

    theta_i'' = -omega_i^2 sin(theta_i) - 2 gamma theta_i'
                + k_{i-1} (theta_{i-1} - theta_i) + k_i (theta_{i+1} - theta_i)

with torsion-spring couplings ``k`` (1/s^2) between neighbours. The drive sets
the initial angles, ``theta(0) = x + offset``, ``theta'(0) = 0``; the output is
the angles ``theta(T)``. Integrated by classical RK4 with ``steps`` fixed steps,
in torch (differentiable, batched, on the input's torch device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..device import Control, Device
from ..errors import ConfigurationError, StabilityError

#: RK4 is stable for linear oscillation while omega * dt is below 2.83; keep a margin.
_RK4_LIMIT = 2.0


class CoupledPendula(Device):
    """``n`` coupled pendula: initial angles (B, n) rad -> angles after ``duration`` (B, n) rad.

    Args:
        n: number of pendula.
        omega: small-angle natural frequency of each pendulum, rad/s (scalar or n values).
        damping: gamma, 1/s (amplitude decays as exp(-gamma t)).
        duration: T, s.
        steps: RK4 steps; ``duration / steps`` must resolve the fastest mode
            (checked against the largest coupling the controls allow).
        max_coupling: upper bound of the ``coupling`` control, 1/s^2.
    """

    name = "coupled-pendula"
    differentiable = True
    batched_controls = True
    input_bounds = (-math.pi / 2, math.pi / 2)

    def __init__(self, n: int = 4, *, omega: float | Sequence[float] = 2 * math.pi, damping: float = 0.1,
                 duration: float = 1.0, steps: int = 100, max_coupling: float = 40.0,
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if n < 2:
            raise ConfigurationError(f"CoupledPendula needs n >= 2 pendula, got {n}")
        omega_t = torch.as_tensor(omega, dtype=torch.float64).expand(n).clone()
        if bool((omega_t <= 0).any()) or damping < 0 or duration <= 0 or steps < 1 or max_coupling < 0:
            raise ConfigurationError("CoupledPendula needs omega > 0, damping >= 0, duration > 0, steps >= 1, "
                                     f"max_coupling >= 0; got omega={omega}, damping={damping}, duration={duration}, "
                                     f"steps={steps}, max_coupling={max_coupling}")
        self.n, self.damping, self.duration, self.steps = int(n), float(damping), float(duration), int(steps)
        self.register_buffer("omega", omega_t)
        dt = duration / steps
        fastest = math.sqrt(float(omega_t.max()) ** 2 + 4 * max_coupling)
        if fastest * dt > _RK4_LIMIT:
            raise StabilityError(f"CoupledPendula: time step {dt:g} s is too long for the fastest mode "
                                 f"({fastest:g} rad/s at coupling {max_coupling:g} 1/s^2): omega*dt = "
                                 f"{fastest * dt:.2f} > {_RK4_LIMIT}; "
                                 f"use steps >= {math.ceil(fastest * duration / _RK4_LIMIT)}")
        self.in_shape = self.out_shape = (self.n,)
        self.controls = (
            Control("coupling", (self.n - 1,), 0.0, float(max_coupling), "1/s^2", min(4.0, max_coupling),
                    "torsion-spring coupling between neighbouring pendula"),
            Control("offset", (self.n,), -0.5, 0.5, "rad", 0.0, "added to the drive's initial angles"),
        )

    def acceleration(self, theta: torch.Tensor, velocity: torch.Tensor, coupling: torch.Tensor) -> torch.Tensor:
        """theta'' for angles and velocities (B, n) and couplings (n-1,) or (B, n-1)."""
        omega2 = (self.omega ** 2).to(theta)
        spring = coupling * (theta[:, 1:] - theta[:, :-1])  # force on i from i+1, (B, n-1)
        force = torch.zeros_like(theta)
        force[:, :-1] += spring
        force[:, 1:] -= spring
        return -omega2 * torch.sin(theta) - 2 * self.damping * velocity + force

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        theta = x + controls["offset"]
        velocity = torch.zeros_like(theta)
        coupling = controls["coupling"]
        dt = self.duration / self.steps
        f = self.acceleration
        for _ in range(self.steps):
            a1 = f(theta, velocity, coupling)
            v2 = velocity + 0.5 * dt * a1
            a2 = f(theta + 0.5 * dt * velocity, v2, coupling)
            v3 = velocity + 0.5 * dt * a2
            a3 = f(theta + 0.5 * dt * v2, v3, coupling)
            v4 = velocity + dt * a3
            a4 = f(theta + dt * v3, v4, coupling)
            theta = theta + dt / 6 * (velocity + 2 * v2 + 2 * v3 + v4)
            velocity = velocity + dt / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
        return theta
