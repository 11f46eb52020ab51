"""PhysicalLayer: bounded trainable controls and the four gradient routes."""

import pytest
import torch
from torch import nn

from physnn import PhysicalLayer
from physnn.devices import BlackBox, CoupledPendula, ReferenceDevice
from physnn.errors import ConfigurationError, ControlError, GradientRouteError


def _grads(layer, x, weight):
    x = x.clone().requires_grad_()
    (layer(x) * weight).sum().backward()
    return [x.grad] + [p.grad for p in layer.parameters()]


def test_twin_equal_to_device_gives_autograd_gradients_exactly():
    torch.manual_seed(0)
    device = CoupledPendula(4, steps=60)
    make = lambda route, **kw: PhysicalLayer(  # noqa: E731
        device, route, encoder=nn.Linear(3, 4), readout=nn.Linear(4, 2),
        controls={"coupling": torch.tensor([2.0, 7.0, 1.0]), "offset": torch.tensor([0.1, -0.2, 0.0, 0.3])}, **kw)
    torch.manual_seed(1)
    ref = make("autograd").double()
    torch.manual_seed(1)
    twin = make("twin", twin=device).double()
    x = 0.3 * torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(5, 2, dtype=torch.float64)
    for a, b in zip(_grads(twin, x, w), _grads(ref, x, w)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_twin_route_runs_forward_on_device_and_backward_on_twin():
    real = BlackBox(ReferenceDevice(3), gain=1.1, noise_std=0.01, seed=0)
    nominal = ReferenceDevice(3)
    layer = PhysicalLayer(real, "twin", twin=nominal)
    x = torch.rand(4, 3)
    y = layer(x)
    assert real.calls == 1 and nominal.calls == 0
    y.sum().backward()
    assert nominal.calls == 1 and real.calls == 1
    assert all(p.grad is not None for p in layer.parameters())


def test_spsa_aligns_with_true_gradient():
    device = ReferenceDevice(4)
    controls = {"gain": torch.tensor([0.5, 1.0, 2.0, 3.0]), "bias": torch.tensor([0.2, -0.1, 0.0, 0.4])}
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = _grads(PhysicalLayer(device, "autograd", controls=controls).double(), x, w)
    device.reset_counters()
    spsa_layer = PhysicalLayer(device, "zeroth_order", controls=controls, perturbations=200, epsilon=1e-3).double()
    spsa = _grads(spsa_layer, x, w)
    # 1 forward, 1 call for the 2 * 200 control settings (batched_controls), 1 for the 2 * 200 input perturbations
    assert (device.calls, device.samples) == (3, 16 + 2 * 200 * 16 + 2 * 200 * 16)
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))  # noqa: E731
    exact_c, spsa_c = torch.cat([g.flatten() for g in exact[1:]]), torch.cat([g.flatten() for g in spsa[1:]])
    assert cos(spsa_c, exact_c) > 0.9
    assert cos(spsa[0], exact[0]) > 0.9
    few = _grads(PhysicalLayer(device, "zeroth_order", controls=controls, perturbations=1).double(), x, w)
    assert cos(torch.cat([g.flatten() for g in few[1:]]), exact_c) < cos(spsa_c, exact_c)


def test_spsa_without_batched_controls_loops_and_agrees():
    class OneSetting(ReferenceDevice):
        batched_controls = False

    x = torch.rand(8, 3, dtype=torch.float64)
    looped, batched = OneSetting(3), ReferenceDevice(3)
    grads = []
    for device in (looped, batched):
        layer = PhysicalLayer(device, "zeroth_order", perturbations=5, seed=7).double()
        layer(x).sum().backward()
        grads.append(torch.cat([p.grad for p in layer.parameters()]))
    assert looped.calls == 1 + 2 * 5 and batched.calls == 1 + 1
    assert torch.allclose(grads[0], grads[1], rtol=1e-9)  # same perturbations, same estimate


def test_spsa_perturbations_stay_inside_bounds():
    device = ReferenceDevice(2)
    layer = PhysicalLayer(device, "zeroth_order", controls={"gain": torch.tensor([0.0, 5.0])}, epsilon=5.0)
    layer(torch.rand(3, 2)).sum().backward()  # a bound-violating setting would raise ControlError
    assert torch.isfinite(layer.raw_controls["gain"].grad).all()


def test_route_none_detaches_and_only_readout_learns():
    encoder, readout = nn.Linear(2, 2), nn.Linear(2, 1)
    layer = PhysicalLayer(BlackBox(ReferenceDevice(2)), "none", encoder=encoder, readout=readout)
    layer(torch.rand(3, 2)).sum().backward()
    assert readout.weight.grad is not None
    assert encoder.weight.grad is None and layer.raw_controls["gain"].grad is None


def test_route_errors_name_what_works():
    box = BlackBox(ReferenceDevice(2))
    with pytest.raises(GradientRouteError, match=r"routes that work: \['twin', 'zeroth_order', 'none'\]"):
        PhysicalLayer(box, "autograd")
    with pytest.raises(ConfigurationError, match="needs twin="):
        PhysicalLayer(box, "twin")
    with pytest.raises(GradientRouteError, match="must be differentiable"):
        PhysicalLayer(box, "twin", twin=BlackBox(ReferenceDevice(2)))
    with pytest.raises(ConfigurationError, match="does not match"):
        PhysicalLayer(box, "twin", twin=ReferenceDevice(3))
    with pytest.raises(ConfigurationError, match="unknown route 'adjoint'"):
        PhysicalLayer(box, "adjoint")
    layer = PhysicalLayer(box, "none", twin=ReferenceDevice(2))
    layer.route = "twin"
    with pytest.raises(GradientRouteError):
        layer.route = "autograd"


def test_controls_stay_within_bounds_under_any_update():
    layer = PhysicalLayer(CoupledPendula(3), "autograd", controls={"coupling": torch.tensor([0.0, 40.0])})
    assert torch.allclose(layer.control_values()["coupling"], torch.tensor([0.0, 40.0]), atol=1e-3)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.sign(torch.randn_like(p)) * 1e4)
    for c in layer.device.controls:
        v = layer.control_values()[c.name]
        assert float(v.detach().min()) >= c.low and float(v.detach().max()) <= c.high
    layer(torch.zeros(1, 3))  # the device accepts the extreme settings


def test_trainable_subset_and_bad_initial_controls():
    layer = PhysicalLayer(ReferenceDevice(2), trainable=["bias"], controls={"gain": torch.tensor([2.0, 3.0])})
    assert list(dict(layer.named_parameters())) == ["raw_controls.bias"]
    assert torch.equal(layer.control_values()["gain"], torch.tensor([2.0, 3.0]))
    with pytest.raises(ControlError, match="physical bounds"):
        PhysicalLayer(ReferenceDevice(2), controls={"gain": torch.tensor([6.0, 1.0])})
    with pytest.raises(ConfigurationError, match=r"has no control\(s\) \['gian'\]"):
        PhysicalLayer(ReferenceDevice(2), trainable=["gian"])


def test_training_through_pendula_reduces_loss_and_state_round_trips(tmp_path):
    torch.manual_seed(0)
    target = PhysicalLayer(CoupledPendula(3, steps=40), controls={"coupling": torch.tensor([9.0, 2.0])})
    x = 0.8 * torch.rand(32, 3) - 0.4
    with torch.no_grad():
        y = target(x)
    layer = PhysicalLayer(CoupledPendula(3, steps=40))
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (layer(x) - y).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    clone = PhysicalLayer(CoupledPendula(3, steps=40))
    clone.load_state_dict(torch.load(tmp_path / "layer.pt", weights_only=True))
    assert torch.equal(clone(x), layer(x))


def test_state_dict_holds_only_what_training_owns():
    real, nominal = CoupledPendula(3, omega=5.0), CoupledPendula(3, omega=6.0)
    layer = PhysicalLayer(BlackBox(real), "twin", twin=nominal, readout=nn.Linear(3, 2))
    assert set(layer.state_dict()) == {"raw_controls.coupling", "raw_controls.offset", "readout.weight", "readout.bias"}
    layer.twin = CoupledPendula(3, omega=7.0)
    assert set(dict(layer.named_modules())) == {"", "raw_controls", "readout"}
    layer.double()
    assert layer.twin.omega.dtype == torch.float64 and layer.raw_controls["offset"].dtype == torch.float64
