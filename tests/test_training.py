"""physnn.training: models, methods, twins and the loop (small, fast configurations)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from physnn.devices import BlackBox, CoupledPendula, ReferenceDevice
from physnn.errors import CheckpointError, ConfigurationError, GradientRouteError
from physnn.training import (
    Backprop,
    CalibratedTwin,
    Callback,
    Drive,
    ForwardForward,
    NeuralTwin,
    PhysicsAware,
    ZerothOrder,
    digital_network,
    fit,
    fit_twin,
    load_checkpoint,
    physical_network,
    plot_comparison,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int = 60, d: int = 6, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(classes, d - classes, generator=g) * 2 - 1
    y = torch.arange(n) % classes
    x = torch.zeros(n, d)
    x[:, classes:] = centers[y] + 0.1 * torch.randn(n, d - classes, generator=g)
    return x, y


def hardware(noise: float = 0.01) -> BlackBox:
    return BlackBox(ReferenceDevice(6), noise_std=noise, gain=1.2, offset=0.1, seed=5)


def ff_method(device=None, seed: int = 0, **options) -> ForwardForward:
    device = device or hardware()
    net = physical_network([device, device], [6, 6], drive="tanh", seed=seed)
    return ForwardForward(net, n_classes=3, lr=1e-2, inner_steps=3, seed=seed, **options)


# ---------------------------------------------------------------------- models
def test_drive_maps_into_device_range_and_refuses_what_does_not_fit():
    h = torch.tensor([[3.0, -4.0], [0.0, 2.0]])
    assert torch.allclose(Drive("unit-norm")(h), torch.tensor([[0.6, 0.8], [0.0, 1.0]]), atol=1e-5)
    assert Drive("tanh", scale=2.0)(h).abs().max() < 2.0
    Drive("tanh", scale=1.5).check_fits(CoupledPendula(3))
    with pytest.raises(ConfigurationError, match=r"outside the input range \[-1.5708, 1.5708\]"):
        Drive("tanh", scale=2.0).check_fits(CoupledPendula(3))
    with pytest.raises(ConfigurationError, match="drive must be one of"):
        Drive("relu")


def test_physical_network_shapes_and_width_mismatch():
    device = ReferenceDevice(4)
    net = physical_network([device, device], [4, 3], drive="tanh")
    assert net(torch.randn(5, 4)).shape == (5, 3)
    assert net[0].linear.in_features == 8 and physical_network([device], [2], concat_input=False)[0].linear.in_features == 4
    with pytest.raises(ConfigurationError, match="takes 4 inputs but block 0 gives widths"):
        physical_network([device, device], [3, 3])
    with pytest.raises(ConfigurationError, match="one width per device"):
        physical_network([device], [3, 3])
    assert digital_network(4, [6, 3])(torch.randn(2, 4)).shape == (2, 3)


# ------------------------------------------------------------ forward-forward
def test_overlay_and_wrong_labels():
    ff = ff_method()
    x = torch.tensor([[0.5, 0.5, 0.5, -2.0], [0.0, 0.0, 0.0, 1.0]])
    ff.overwrite_inputs = True  # the first sample holds content where the label goes: overwritten on purpose
    out = ff.overlay(x, torch.tensor([2, 0]))
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 2.0, -2.0], [1.0, 0.0, 0.0, 1.0]]))
    y = torch.arange(300) % 3
    wrong = ff.wrong_labels(y)
    assert bool((wrong != y).all()) and set(wrong.tolist()) == {0, 1, 2}
    with pytest.raises(ConfigurationError, match="prepend zeros"):
        ff.overlay(torch.zeros(2, 2), torch.tensor([0, 1]))


def test_forward_forward_queries_the_device_once_per_block_for_positives_and_negatives():
    device = hardware()
    ff = ff_method(device)
    x, y = blobs()
    ff.train_step(x, y)
    assert device.calls == 2 * 2 and device.samples == 2 * 2 * len(y)
    assert ff.steps == 2 * 3  # inner steps reuse the measurements
    scores = ff.scores(x)
    assert scores.shape == (len(y), 3) and device.calls == 4 + 2  # every candidate label in one call per block
    assert all(p.grad is None for block in ff.model for p in block.physical.raw_controls.values())  # model-free


@pytest.mark.parametrize("goodness", ["cosine", "sum-of-squares"])
def test_forward_forward_learns(goodness):
    x, y = blobs(90)
    ff = ff_method(goodness=goodness, threshold=0.5)
    result = fit(ff, (x, y), epochs=20, progress=False)
    assert result.final("train_accuracy") > 0.8
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_forward_forward_needs_physical_blocks():
    with pytest.raises(ConfigurationError, match="nn.Sequential of PhysicalBlocks"):
        ForwardForward(digital_network(4, [3]), n_classes=3)


# ----------------------------------------------------------- supervised methods
def test_backprop_refuses_a_black_box_and_in_silico_never_drives_it_in_training():
    device = hardware()
    with pytest.raises(GradientRouteError, match="black box"):
        Backprop(physical_network([device], [3], drive="tanh"))
    with pytest.raises(GradientRouteError, match="needs a differentiable twin"):
        Backprop(physical_network([device], [3], drive="tanh"), in_silico=True)
    twin = ReferenceDevice(6)
    net = physical_network([device], [3], twins=[twin], drive="tanh")
    method = Backprop(net, lr=5e-2, in_silico=True)
    x, y = blobs()
    result = fit(method, (x, y), epochs=15, progress=False)
    assert result.accounting["train_device_calls"] == 0 and result.accounting["twin_calls"] == 15
    assert result.accounting["eval_device_calls"] == 15 and net[0].physical.device is device
    assert result.final("train_accuracy") > 0.8


def test_physics_aware_needs_twins_and_uses_them_only_backward():
    device = hardware()
    with pytest.raises(ConfigurationError, match="needs twin="):
        PhysicsAware(physical_network([device], [3], drive="tanh"))
    net = physical_network([device], [3], twins=[ReferenceDevice(6)], drive="tanh")
    method = PhysicsAware(net, lr=5e-2)
    result = fit(method, blobs(), epochs=15, progress=False)
    assert result.accounting["train_device_calls"] == 15 and result.accounting["twin_calls"] == 15
    assert result.final("train_accuracy") > 0.8


def test_zeroth_order_settings_and_cost():
    device = hardware()
    with pytest.raises(ConfigurationError, match="perturbations >= 1"):
        ZerothOrder(physical_network([device], [3], drive="tanh"), perturbations=0)
    method = ZerothOrder(physical_network([device], [3], drive="tanh"), perturbations=3, epsilon=0.05)
    assert method.model[0].physical.perturbations == 3
    method.train_step(*blobs())
    assert device.calls > 1  # the forward call plus the SPSA estimates


# ------------------------------------------------------------------------ twins
def test_calibrated_twin_recovers_gain_and_offset():
    device = BlackBox(ReferenceDevice(3), gain=1.3, offset=0.2)
    twin = CalibratedTwin(ReferenceDevice(3))
    report = fit_twin(device, twin, n_samples=400, epochs=60, batch_size=100, lr=3e-2, seed=0)
    assert report.nrmse < 0.02 < report.nrmse_before
    assert torch.allclose(twin.gain, torch.full((3,), 1.3), atol=0.02)
    assert torch.allclose(twin.offset, torch.full((3,), 0.2), atol=0.02)
    assert report.device_calls == 1 and report.device_samples == 400 and report.n_test == 80


def test_calibrated_twin_fits_physical_parameters():
    device = CoupledPendula(3, omega=[5.0, 6.0, 7.0], steps=20)
    twin = CalibratedTwin(CoupledPendula(3, omega=6.0, steps=20), gain=False, offset=False, calibrate=("omega",))
    report = fit_twin(device, twin, n_samples=100, epochs=20, batch_size=50, lr=5e-2, seed=0)
    assert report.nrmse < 0.1 < 0.3 < report.nrmse_before
    assert torch.allclose(twin.nominal.omega, torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64), atol=0.1)
    with pytest.raises(ConfigurationError, match="no float buffer 'mass'"):
        CalibratedTwin(device, calibrate=("mass",))
    with pytest.raises(GradientRouteError, match="black box"):
        CalibratedTwin(hardware())


def test_neural_twin_is_a_differentiable_device_fitted_in_device_units():
    device = BlackBox(ReferenceDevice(2), gain=1.2, offset=0.1)
    twin = NeuralTwin.like(device, hidden=32)
    assert twin.differentiable and [c.name for c in twin.controls] == ["gain", "bias"]
    report = fit_twin(device, twin, n_samples=1000, epochs=80, lr=1e-2, seed=0)
    assert report.nrmse < 0.25 and report.r2 > 0.9 and report.nrmse_before > 0.5
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v: twin(v), (x,))


def test_fit_twin_repeats_and_settings_for_devices_without_per_sample_controls():
    class OneSetting(ReferenceDevice):
        batched_controls = False

    device = BlackBox(OneSetting(3), noise_std=0.05, seed=0)
    twin = CalibratedTwin(ReferenceDevice(3))
    report = fit_twin(device, twin, n_samples=120, settings=4, repeats=3, epochs=5, seed=0)
    assert report.device_calls == 4 * 3 and report.device_samples == 3 * 120
    with pytest.raises(ConfigurationError, match="does not match"):
        fit_twin(ReferenceDevice(3), NeuralTwin(3, 2))
    with pytest.raises(ConfigurationError, match="no free parameters"):
        fit_twin(ReferenceDevice(3), CalibratedTwin(ReferenceDevice(3), gain=False, offset=False))


# ------------------------------------------------------------------------- loop
def test_fit_writes_history_checkpoint_and_curves(tmp_path):
    method = ff_method()
    x, y = blobs()
    result = fit(method, (x[:45], y[:45]), val=(x[45:], y[45:]), epochs=3, batch_size=20, out_dir=tmp_path,
                 progress=False)
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert json.loads((tmp_path / "history.json").read_text())["history"][-1]["epoch"] == 3
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 3 and state["method_name"] == "forward-forward"
    assert (tmp_path / "curves.png").stat().st_size > 1000
    acc = result.accounting
    assert acc["train_device_calls"] == 3 * 3 * 2 * 2  # epochs x batches x blocks x (pos, neg)
    assert acc["train_device_samples"] == 3 * 45 * 2 * 2 and acc["eval_device_calls"] == 3 * 2 * 2
    assert acc["optimizer_steps"] == 3 * 3 * 2 * 3 and acc["parameter_updates"] == acc["optimizer_steps"] * 78
    assert not list(tmp_path.glob("*.tmp"))
    assert plot_comparison({"a": result.history}, tmp_path / "cmp.png", events=[(2, "drift")]).exists()


def test_early_stopping_and_restore_best():
    x, y = blobs()

    class Sabotage(Callback):  # ruin the weights after epoch 4: accuracy falls and never recovers
        def on_epoch_end(self, epoch, row, method):
            if epoch >= 3:
                for p in method.model.parameters():
                    p.data.zero_()

    method = Backprop(digital_network(6, [8, 3]), lr=5e-2)
    result = fit(method, (x, y), epochs=50, patience=3, restore_best=True, progress=False, callbacks=[Sabotage()])
    assert result.stopped_early and len(result.history) == result.best_epoch + 3
    assert method.evaluate(x, y)["accuracy"] == result.best
    with pytest.raises(ConfigurationError, match="monitor 'val_accuracy' is not in the history"):
        fit(method, (x, y), epochs=1, monitor="val_accuracy", progress=False)


@pytest.mark.parametrize("kind", ["forward-forward", "zeroth-order"])
def test_resume_continues_exactly(tmp_path, kind):
    """Stop after 2 epochs, resume to 5: same parameters and history as 5 straight (noise and SPSA included)."""
    x, y = blobs()

    def build():
        if kind == "forward-forward":
            return ff_method(hardware(noise=0.05))
        return ZerothOrder(physical_network([hardware(0.05)], [3], drive="tanh"), perturbations=2, lr=5e-2)

    straight = build()
    full = fit(straight, (x, y), epochs=5, batch_size=25, progress=False, seed=3)
    part = fit(build(), (x, y), epochs=2, batch_size=25, out_dir=tmp_path, progress=False, seed=3, plot=False)
    assert len(part.history) == 2
    resumed = build()
    again = fit(resumed, (x, y), epochs=5, batch_size=25, out_dir=tmp_path, resume=True, progress=False, seed=3,
                plot=False)
    drop = lambda h: [{k: v for k, v in row.items() if k != "time_s"} for row in h]
    assert drop(again.history) == drop(full.history)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="checkpoint of 'zeroth-order'|checkpoint of 'forward-forward'"):
        fit(Backprop(digital_network(6, [3])), (x, y), epochs=6, out_dir=tmp_path, resume=True, progress=False)


def test_log_every_prints_progress_lines_to_stderr(capsys):
    x, y = blobs()
    method = Backprop(digital_network(6, [3]), lr=5e-2)
    fit(method, (x, y), epochs=2, batch_size=10, progress=False, log_every=2)
    lines = capsys.readouterr().err.strip().splitlines()
    steps = -(-len(y) // 10)
    assert len(lines) == 2 * (steps // 2)
    assert lines[0].startswith(f"backprop: epoch 1/2, step 2/{steps}, running loss ")
    loss = float(lines[0].split("running loss ")[1].split(",")[0])
    assert 0 < loss < 5 and lines[-1].startswith(f"backprop: epoch 2/2, step {2 * (steps // 2)}/{steps}")
    with pytest.raises(ConfigurationError, match="log_every=0"):
        fit(method, (x, y), epochs=1, log_every=0, progress=False)


def test_fit_validates_data():
    method = Backprop(digital_network(6, [3]))
    with pytest.raises(ConfigurationError, match="int64 labels"):
        fit(method, (torch.zeros(3, 6), torch.zeros(3)), loss="cross_entropy", progress=False)
    with pytest.raises(ConfigurationError, match=r"outputs have shape \(3, 3\) but the targets y have shape \(3,\)"):
        fit(method, (torch.zeros(3, 6), torch.zeros(3)), progress=False)  # float targets: a regression
    with pytest.raises(ConfigurationError, match="epochs >= 1"):
        fit(method, blobs(), epochs=0, progress=False)
    with pytest.raises(ConfigurationError, match="needs out_dir"):
        fit(method, blobs(), resume=True, progress=False)


def test_forward_forward_and_physics_aware_recover_from_drift():
    """The hardware's gain and offset jump half-way; methods that keep measuring recover, in-silico does not."""
    x, y = blobs(120)
    train, test = (x[:60], y[:60]), (x[60:], y[60:])

    class Drift(Callback):
        def __init__(self, device):
            self.device = device

        def on_epoch_start(self, epoch, method):
            self.device.gain, self.device.offset = (0.4, 0.5) if epoch >= 15 else (1.0, 0.0)

    final = {}
    for name in ("forward-forward", "physics-aware", "in-silico"):
        device = BlackBox(ReferenceDevice(6), noise_std=0.01, seed=1)
        if name == "forward-forward":
            method = ff_method(device)
        else:
            net = physical_network([device], [3], twins=[ReferenceDevice(6)], drive="tanh")
            method = PhysicsAware(net, lr=5e-2) if name == "physics-aware" else Backprop(net, lr=5e-2, in_silico=True)
        result = fit(method, train, val=test, epochs=30, eval_train=False, progress=False, callbacks=[Drift(device)])
        acc = [row["val_accuracy"] for row in result.history]
        final[name] = (acc[14], acc[15], acc[-1])
    for name in ("forward-forward", "physics-aware"):
        before, _, after = final[name]
        assert after >= before - 0.05, final
    assert final["in-silico"][2] < final["in-silico"][0] - 0.2, final
