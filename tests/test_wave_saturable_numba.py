"""The numba backend with saturable absorption (checkpointed exact adjoint), in float64 on small grids:
gradients against plain autograd through every step and finite differences, the forward pass against
the torch backend, and bit-identical results on 1 and 2 threads."""

from __future__ import annotations

import pytest
import torch
from wave_helpers import outputs_and_grads, passes_gradcheck, rel_error, wave_data

from physnn import _threads
from physnn.devices.wave import WaveMedium2D, _kernels_rows, _solver
from physnn.devices.wave._solver import solve
from physnn.errors import ConfigurationError

SAT = dict(shape=(18, 22), n_steps=70, dt=0.5, absorber_width=3, absorber_strength=1.0, projection_beta=2.0,
           output="raw", sat_b0=0.6, sat_uth=0.2, c_nl=-0.3)


@pytest.mark.parametrize("every, absorber", [(None, 3), (1, 3), (9, 3), (70, 3), (500, 3), (9, 0)])
def test_numba_saturable_gradients_equal_plain_autograd(every, absorber):
    kw = dict(SAT, absorber_width=absorber)
    medium = WaveMedium2D(**kw, backend="numba", checkpoint_every=every)
    x, rho = wave_data(medium, batch=3)
    got = outputs_and_grads(medium, x, rho)
    want = outputs_and_grads(WaveMedium2D(**kw, backend="torch", checkpoint_every=0), x, rho)
    for a, b in zip(got, want, strict=True):
        assert rel_error(a, b) < 1e-9
    # saturation is strong enough to matter: the run without it differs
    linear = outputs_and_grads(WaveMedium2D(**dict(kw, sat_b0=0.0), backend="numba"), x, rho)
    assert rel_error(linear[3], want[3]) > 1e-2


def test_numba_saturable_material_gradients_each_equal_plain_autograd():
    """dL/d(cl), dL/d(q), dL/d(sat) separately (the density mixes all three), on the interior box."""
    medium = WaveMedium2D(**SAT)
    x, rho = wave_data(medium, batch=2)
    r0, r1, c0, c1 = medium.layout.box
    dens = medium.density(rho)
    grads = []
    for backend, every in (("numba", 9), ("torch", 0)):
        leaves = [t.detach().clone().requires_grad_() for t in (dens * 0.5 + 0.5, dens * -0.3, dens * 0.6)]
        sol = solve(x[:, None], *leaves, medium.layout, dt=0.5, h=1.0, sat_uth=0.2, backend=backend,
                    checkpoint_every=every)
        (sol.intensity.sum() + sol.signals.sin().sum()).backward()
        grads.append([t.grad[r0:r1, c0:c1] for t in leaves])
    for a, b in zip(*grads, strict=True):
        assert rel_error(a, b) < 1e-9 and float(b.abs().max()) > 0


def test_numba_saturable_matches_finite_differences():
    medium = WaveMedium2D(shape=(12, 14), n_steps=20, dt=0.5, absorber_width=2, blur_radius=0, projection_beta=0.0,
                          sat_b0=0.8, sat_uth=0.1, c_nl=-0.5, output="raw", backend="numba", checkpoint_every=6)
    assert passes_gradcheck(medium)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_numba_and_torch_saturable_forward_agree(dtype, tol):
    x, rho = wave_data(WaveMedium2D(**SAT), batch=3)
    x, rho = x.to(dtype), rho.to(dtype)
    with torch.no_grad():
        fast = WaveMedium2D(**SAT, backend="numba").simulate(x, {"rho": rho})
        ref = WaveMedium2D(**SAT, backend="torch").simulate(x, {"rho": rho})
    assert fast.signals.dtype == dtype
    assert rel_error(fast.signals, ref.signals) < tol and rel_error(fast.intensity, ref.intensity) < tol


def test_saturable_absorption_outside_the_interior_is_refused_by_numba():
    medium = WaveMedium2D(**SAT)
    x, _ = wave_data(medium, batch=1)
    cl = torch.ones(medium.shape, dtype=torch.float64)
    sat = torch.zeros_like(cl)
    sat[2, 7] = 0.5  # in the absorber
    with pytest.raises(ConfigurationError, match=r"sat \(the saturable absorption\) must vanish .* at cell \(2, 7\)"):
        solve(x[:, None], cl, torch.zeros_like(cl), sat, medium.layout, dt=0.5, h=1.0, sat_uth=0.2, backend="numba",
              checkpoint_every=None)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("sat_b0", [0.0, 0.6], ids=["kerr", "saturable"])
def test_bit_identical_on_1_and_2_threads(threads, batch, sat_b0):
    medium = WaveMedium2D(**dict(SAT, shape=(24, 20), n_steps=40, sat_b0=sat_b0), backend="numba")
    x0, rho0 = wave_data(medium, batch=batch)

    def run() -> list[torch.Tensor]:
        x, rho = x0.clone().requires_grad_(), rho0.clone().requires_grad_()
        sol = medium.simulate(x, {"rho": rho})
        (sol.intensity.square().sum() + sol.signals.sin().sum()).backward()
        return [sol.intensity.detach(), sol.signals.detach(), x.grad, rho.grad]

    torch.set_num_threads(1)
    one = run()
    torch.set_num_threads(2)
    assert _threads.num_threads() == min(2, _threads._cpus())
    for a, b in zip(one, run(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_batch_of_one_on_row_blocks_is_bit_identical(monkeypatch, parts):
    """A batch of one splits the grid's rows (with halos, HALO steps per round) instead of the batch:
    any number of blocks gives the one-block results bit for bit (blocks beyond the CPUs share threads)."""
    medium = WaveMedium2D(**dict(SAT, shape=(30, 20), n_steps=45, sat_b0=0.0), backend="numba")
    x0, rho0 = wave_data(medium, batch=1)

    def run() -> list[torch.Tensor]:
        x, rho = x0.clone().requires_grad_(), rho0.clone().requires_grad_()
        sol = medium.simulate(x, {"rho": rho})
        (sol.intensity.square().sum() + sol.signals.sin().sum()).backward()
        return [sol.intensity.detach(), sol.signals.detach(), x.grad, rho.grad]

    monkeypatch.setattr(_solver, "num_threads", lambda: 1)
    one = run()
    seen: list[int] = []
    blocks = _kernels_rows._blocks
    monkeypatch.setattr(_kernels_rows, "_blocks", lambda rows, k: seen.append(k) or blocks(rows, k))
    monkeypatch.setattr(_solver, "num_threads", lambda: parts)
    for a, b in zip(one, run(), strict=True):
        assert torch.equal(a, b)
    assert seen == [parts, parts]  # forward and backward ran on row blocks
    assert len(blocks(32, parts)) == parts
