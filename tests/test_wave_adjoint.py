"""The torch backend's hand-written adjoints: the reversible one against the numba kernels, the
checkpointed one (saturable absorption) against plain autograd, in float64 on small grids."""

from __future__ import annotations

import pytest
import torch
from wave_helpers import outputs_and_grads, passes_gradcheck, rel_error, wave_data

from physnn.devices.wave import WaveMedium2D, point
from physnn.devices.wave._solver import solve
from physnn.errors import ConfigurationError

SMALL = dict(shape=(18, 22), n_steps=70, dt=0.5, absorber_width=3, absorber_strength=1.0, projection_beta=2.0,
             output="raw")

@pytest.mark.parametrize("kw", [
    dict(c_nl=-0.4),
    dict(c_nl=0.0),
    dict(c_nl=-0.3, absorber_width=0, sources=[point(9, 4), point(12, 4)], probes=[point(9, 17), point(4, 16)]),
], ids=["kerr", "linear", "closed-box-two-sources"])
def test_torch_adjoint_equals_numba(kw):
    kw = dict(SMALL, **kw)
    torch_medium = WaveMedium2D(**kw, backend="torch")
    x, rho = wave_data(torch_medium, batch=3)
    got = outputs_and_grads(torch_medium, x, rho)
    want = outputs_and_grads(WaveMedium2D(**kw, backend="numba"), x, rho)
    for a, b in zip(got, want):
        assert rel_error(a, b) < 1e-10
    assert float(got[3].abs().max()) > 0  # the material gradient is not trivially zero


@pytest.mark.parametrize("every, absorber, c_nl", [(None, 3, -0.3), (1, 3, -0.3), (9, 3, -0.3), (70, 3, -0.3),
                                                   (9, 0, -0.3), (9, 3, 0.0)])
def test_saturable_adjoint_equals_plain_autograd(every, absorber, c_nl):
    kw = dict(SMALL, sat_b0=0.6, sat_uth=0.2, c_nl=c_nl, absorber_width=absorber)
    medium = WaveMedium2D(**kw, backend="torch", checkpoint_every=every)
    x, rho = wave_data(medium, batch=3)
    got = outputs_and_grads(medium, x, rho)
    want = outputs_and_grads(WaveMedium2D(**kw, backend="torch", checkpoint_every=0), x, rho)
    for a, b in zip(got, want):
        assert rel_error(a, b) < 1e-9
    # saturation is strong enough to matter: the run without it differs
    linear = outputs_and_grads(WaveMedium2D(**dict(kw, sat_b0=0.0), backend="torch"), x, rho)
    assert rel_error(linear[3], want[3]) > 1e-2


def test_saturable_adjoint_matches_finite_differences():
    medium = WaveMedium2D(shape=(12, 14), n_steps=20, dt=0.5, absorber_width=2, blur_radius=0, projection_beta=0.0,
                          sat_b0=0.8, sat_uth=0.1, c_nl=-0.5, output="raw", backend="torch")
    assert passes_gradcheck(medium)


@pytest.mark.parametrize("sat_b0", [0.0, 0.4], ids=["kerr", "kerr-saturable"])
def test_in_place_forward_equals_differentiable_reference(sat_b0):
    """The graph-free in-place update (a different order of operations) against the autograd step."""
    kw = dict(SMALL, c_nl=-0.3, sat_b0=sat_b0, sat_uth=0.3)
    x, rho = wave_data(WaveMedium2D(**kw), batch=3)
    with torch.no_grad():
        fast = WaveMedium2D(**kw, backend="torch").simulate(x, {"rho": rho})
    plain = WaveMedium2D(**kw, backend="torch", checkpoint_every=0).simulate(x, {"rho": rho})
    assert rel_error(fast.signals, plain.signals.detach()) < 1e-13
    assert rel_error(fast.intensity, plain.intensity.detach()) < 1e-13


def test_field_dependent_terms_outside_the_interior_are_refused():
    medium = WaveMedium2D(**SMALL)
    x, _ = wave_data(medium, batch=3)
    cl = torch.ones(medium.shape, dtype=torch.float64)
    q = torch.zeros_like(cl)
    q[1, 5] = -0.2  # in the absorber
    with pytest.raises(ConfigurationError, match=r"q \(the Kerr coefficient\) must vanish .* at cell \(1, 5\)"):
        solve(x[:, None], cl, q, None, medium.layout, dt=0.5, h=1.0, sat_uth=1.0, backend="torch", checkpoint_every=None)
