"""physnn.training.baselines: linear models against scikit-learn, matched MLPs, the random-map ablation, tables."""

from __future__ import annotations

import pytest
import torch

from physnn.devices import ReferenceDevice
from physnn.errors import ConfigurationError
from physnn.layer import PhysicalLayer
from physnn.testing import check_device
from physnn.training import Backprop, ForwardForward, count_parameters, fit, physical_network
from physnn.training.baselines import (
    RandomMap,
    digital_baselines,
    logistic_regression,
    matched_mlp,
    random_map_ablation,
    results_table,
    ridge,
    summarize,
    trained_parameters,
)
from physnn.training.models import physical_layers


def blobs(n: int = 90, d: int = 5, classes: int = 3, spread: float = 1.0, seed: int = 0):
    """Gaussian classes around fixed centres: a training set of ``n`` and a test set of ``n // 2``."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, d, generator=g)

    def draw(m: int):
        y = torch.arange(m) % classes
        return centres[y] + spread * torch.randn(m, d, generator=g), y

    return draw(n), draw(n // 2)


def test_logistic_regression_matches_scikit_learn():
    """Same objective as sklearn's LogisticRegression(C=c) on z-scored inputs: same predicted classes."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    (x, y), (xt, yt) = blobs(spread=2.5)  # overlapping classes: the regularization matters
    ours = logistic_regression(x, y, xt, yt, c=0.5)
    scaler = preprocessing.StandardScaler().fit(x.numpy())
    ref = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(scaler.transform(x.numpy()), y.numpy())
    assert ours["test_accuracy"] == pytest.approx(ref.score(scaler.transform(xt.numpy()), yt.numpy()), abs=1e-12)
    assert ours["train_accuracy"] == pytest.approx(ref.score(scaler.transform(x.numpy()), y.numpy()), abs=1e-12)
    assert 0.4 < ours["test_accuracy"] < 1.0  # not trivially perfect: the comparison means something
    assert ours["parameters"] == 5 * 3 + 3


def test_logistic_regression_separates_separable_classes_and_flattens_images():
    (x, y), (xt, yt) = blobs(spread=0.05)
    out = logistic_regression(x.reshape(-1, 5, 1), y, xt.reshape(-1, 5, 1), yt)
    assert out["train_accuracy"] == 1.0 and out["test_accuracy"] == 1.0


def test_logistic_regression_rejects_float_labels():
    (x, y), _ = blobs()
    with pytest.raises(ConfigurationError, match="y_train must be int64"):
        logistic_regression(x, y.float(), x, y)


def test_ridge_matches_the_normal_equations():
    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(50, 4, generator=g), torch.randn(20, 4, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5, 0.0])
    y, yt = x @ w + 3 + 0.1 * torch.randn(50, generator=g), xt @ w + 3
    out = ridge(x, y, xt, yt, alpha=2.0)
    xd = x.double()
    mean, std = xd.mean(0), xd.std(0, unbiased=False)
    z = torch.cat([(xd - mean) / std, torch.ones(50, 1, dtype=torch.float64)], 1)
    penalty = torch.diag(torch.tensor([2.0] * 4 + [0.0], dtype=torch.float64))  # intercept unpenalized
    coef = torch.linalg.solve(z.T @ z + penalty, z.T @ y.double())
    zt = torch.cat([(xt.double() - mean) / std, torch.ones(20, 1, dtype=torch.float64)], 1)
    assert out["test_mse"] == pytest.approx(float(((zt @ coef - yt.double()) ** 2).mean()), rel=1e-9)
    assert out["test_r2"] > 0.95 and out["parameters"] == 5
    with pytest.raises(ConfigurationError, match="targets must match"):
        ridge(x, y[:10], xt, yt)


@pytest.mark.parametrize("n_params,in_dim,out_dim", [(1107, 20, 7), (316_810, 784, 10), (207, 12, 7), (5000, 69, 5)])
def test_matched_mlp_has_the_parameter_count_within_five_percent(n_params, in_dim, out_dim):
    mlp = matched_mlp(n_params, in_dim, out_dim)
    assert abs(count_parameters(mlp) - n_params) <= 0.05 * n_params
    assert mlp(torch.zeros(2, in_dim)).shape == (2, out_dim)


def test_matched_mlp_refuses_a_budget_below_one_unit():
    with pytest.raises(ConfigurationError, match="no hidden width gives 30 parameters"):
        matched_mlp(30, 20, 7)


def test_random_map_passes_the_device_contract_and_is_affine():
    rmap = RandomMap((4,), (3,), input_bounds=(-1.0, 1.0), seed=3)
    check_device(rmap)
    a, b = torch.rand(2, 4, dtype=torch.float64), torch.rand(2, 4, dtype=torch.float64)
    assert torch.allclose(rmap(0.3 * a + 0.7 * b), 0.3 * rmap(a) + 0.7 * rmap(b), atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: rmap(x), (a.requires_grad_(),))


def test_random_map_like_matches_the_device_output_statistics():
    device = ReferenceDevice(6)
    drives = device.sample_inputs(500, generator=torch.Generator().manual_seed(1)).double()
    rmap = RandomMap.like(device, drives=drives, controls={"gain": torch.full((6,), 3.0)}, seed=2)
    target, got = device(drives, {"gain": torch.full((6,), 3.0)}), rmap(drives)
    assert torch.allclose(got.mean(0), target.mean(0), atol=1e-9)
    assert torch.allclose(got.std(0), target.std(0), rtol=1e-9)
    assert rmap.in_shape == device.in_shape and rmap.input_bounds == device.input_bounds


def test_ablation_keeps_shapes_and_digital_weights_and_freezes_the_map():
    devices = [ReferenceDevice(6), ReferenceDevice(4)]
    model = physical_network(devices, [4, 3], seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ablation = random_map_ablation(model, seed=5)
    layers = list(physical_layers(ablation))
    assert [type(layer.device) for layer in layers] == [RandomMap, RandomMap]
    assert [layer.device.in_shape for layer in layers] == [(6,), (4,)]
    assert [layer.device for layer in physical_layers(model)] == devices  # the original is untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # digital weights copied, controls gone: trainable = the two linear maps
    assert torch.equal(ablation[0].linear.weight, model[0].linear.weight)
    assert count_parameters(ablation) == count_parameters(model) - sum(d.n * 2 for d in devices)
    x, y = torch.rand(16, 6), torch.arange(16) % 3
    assert ablation(x).shape == model(x).shape == (16, 3)
    maps = [layer.device.weight.clone() for layer in layers]
    fit(Backprop(ablation, lr=0.1), (x, y), epochs=2, progress=False, plot=False)
    assert all(torch.equal(m, layer.device.weight) for m, layer in zip(maps, layers))
    assert not torch.equal(ablation[0].linear.weight, model[0].linear.weight)  # the digital part learned


def test_ablation_of_a_bare_layer_and_under_forward_forward():
    layer = PhysicalLayer(ReferenceDevice(5), route="autograd")
    ablation = random_map_ablation(layer)
    assert isinstance(ablation, PhysicalLayer) and isinstance(ablation.device, RandomMap)
    assert count_parameters(ablation) == 0
    net = random_map_ablation(physical_network([ReferenceDevice(8)], [3], seed=0))
    (x, y), _ = blobs(n=30, d=8, classes=3)
    x = torch.nn.functional.pad(x[:, 3:].abs(), (3, 0))  # room for the label
    run = fit(ForwardForward(net, n_classes=3, seed=0), (x, y), epochs=1, progress=False, plot=False)
    assert 0.0 <= run.final("train_accuracy") <= 1.0
    model = physical_network([ReferenceDevice(8)], [3], seed=0)  # 8 gains, 8 biases, 16 * 3 + 3 linear
    assert trained_parameters(ForwardForward(model, n_classes=3)) == 51  # the controls are not trained
    assert trained_parameters(Backprop(model)) == count_parameters(model) == 67
    with pytest.raises(ConfigurationError, match="holds no PhysicalLayer"):
        random_map_ablation(torch.nn.Linear(2, 2))


def test_digital_baselines_rows_match_the_budget():
    (x, y), (xt, yt) = blobs(n=60, d=6)
    rows = digital_baselines((x, y), (xt, yt), n_params=400, seed=0, epochs=30)
    assert [r["model"] for r in rows] == ["logistic regression (raw inputs)", "matched MLP"]
    assert abs(rows[1]["parameters"] - 400) <= 20
    assert rows[0]["test_accuracy"] > 0.9 and rows[1]["test_accuracy"] > 0.9  # well separated blobs


def test_summarize_and_table():
    runs = [{"model": "a", "seed": s, "test_accuracy": v, "parameters": 10} for s, v in enumerate((0.9, 0.8, 1.0))]
    runs += [{"model": "b", "seed": 0, "test_accuracy": 0.5}, {"model": "c", "seed": 0, "error": "refused"}]
    rows = summarize(runs)
    assert [r["model"] for r in rows] == ["a", "b"]
    assert rows[0]["mean"] == pytest.approx(90.0) and rows[0]["std"] == pytest.approx(10.0)
    assert rows[0]["text"] == "90.0 ± 10.0 % (3 seeds)" and rows[1]["text"] == "50.0 ± 0.0 % (1 seed)"
    assert summarize(runs[:2], unit="fold")[0]["text"] == "85.0 ± 7.1 % (2 folds)"
    table = results_table(rows)
    assert "| a | 90.0 ± 10.0 % (3 seeds) | 10 |" in table and "| b | 50.0 ± 0.0 % (1 seed) | - |" in table
