"""fit(loss=...): built-in and custom losses, float targets, regression metrics, and the errors around them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from physnn.devices import BlackBox, ReferenceDevice
from physnn.errors import CheckpointError, ConfigurationError
from physnn.training import Backprop, ForwardForward, PhysicsAware, ZerothOrder, digital_network, fit, physical_network
from physnn.training.losses import BUILTIN, RegressionSums, resolve_loss


def regression(n: int = 80, d: int = 6, outputs: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, d) and smooth nonlinear float targets (n, outputs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g) * 2 - 1
    w = torch.randn(d, outputs, generator=g)
    return x, torch.sin(x @ w) + 0.5


def labels(n: int = 60, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, 2 * classes), the first ``classes`` entries zero (room for a forward-forward label), and labels."""
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % classes
    signal = torch.randn(n, classes, generator=g) * 0.1 + F.one_hot(y, classes).float()
    return torch.cat([torch.zeros(n, classes), signal], dim=1), y


def hardware() -> BlackBox:
    return BlackBox(ReferenceDevice(6), noise_std=0.005, gain=1.2, offset=0.1, seed=5)


METHODS = {
    "backprop": lambda: Backprop(physical_network([ReferenceDevice(6)], [2], drive="tanh"), lr=3e-2),
    "backprop-in-silico": lambda: Backprop(physical_network([hardware()], [2], twins=[ReferenceDevice(6)],
                                                            drive="tanh"), lr=3e-2, in_silico=True),
    "physics-aware": lambda: PhysicsAware(physical_network([hardware()], [2], twins=[ReferenceDevice(6)],
                                                           drive="tanh"), lr=3e-2),
    "zeroth-order": lambda: ZerothOrder(physical_network([hardware()], [2], drive="tanh"), lr=3e-2,
                                        perturbations=4, epsilon=0.05),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_supervised_method_regresses_through_a_device(name):
    x, y = regression()
    train, val = (x[:60], y[:60]), (x[60:], y[60:])
    method = METHODS[name]()
    with pytest.raises(ConfigurationError, match="needs int64 labels \\(B,\\), got torch.float32 \\(20, 2\\)"):
        method.evaluate(*val)  # a method trains on cross-entropy until fit sets its loss
    method.set_loss(resolve_loss("mse", y))
    before = method.evaluate(*val)
    result = fit(method, train, val=val, epochs=25, batch_size=20, loss="mse", progress=False)
    row = result.history[-1]
    assert not any("accuracy" in k for r in result.history for k in r)
    assert {"loss", "train_mse", "train_rmse", "train_mae", "train_r2", "val_loss", "val_mse", "val_r2"} <= set(row)
    assert row["val_loss"] == pytest.approx(row["val_mse"], rel=1e-6)  # the mse loss is the mse metric
    assert row["val_rmse"] == pytest.approx(math.sqrt(row["val_mse"]))
    assert row["val_mse"] < 0.3 * before["mse"]
    assert row["train_r2"] > 0.5
    assert result.best_epoch == 1 + min(range(25), key=lambda k: result.history[k]["val_loss"])  # minimized


def test_regression_metrics_match_scikit_learn_in_chunks():
    x, y = regression(n=50, outputs=3)
    method = Backprop(digital_network(6, [8, 3]))
    method.set_loss(resolve_loss("mse", y))
    metrics = method.evaluate(x, y, batch_size=7)  # 8 uneven chunks
    out = method.scores(x).double().numpy()
    truth = y.double().numpy()
    assert metrics["mse"] == pytest.approx(mean_squared_error(truth, out), rel=1e-9)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, out), rel=1e-9)
    assert metrics["r2"] == pytest.approx(r2_score(truth, out, multioutput="variance_weighted"), rel=1e-9)
    assert metrics["loss"] == pytest.approx(F.mse_loss(torch.from_numpy(out), y.double()).item(), rel=1e-5)
    # targets of any shape (N, 2, 3): R2 over every element, one sample or constant targets leave it out
    sums = RegressionSums()
    t = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(2))
    sums.add(t + 0.1, t)
    assert sums.metrics()["mse"] == pytest.approx(0.01) and "r2" in sums.metrics()
    single = RegressionSums()
    single.add(t[:1] + 0.1, t[:1])
    assert "r2" not in single.metrics()


def test_custom_callables_are_what_training_minimizes():
    x, y = regression()
    runs = {}
    for loss in ("l1", lambda out, target: (out - target).abs().mean()):
        method = Backprop(digital_network(6, [8, 2]), lr=1e-2)
        runs[loss if isinstance(loss, str) else "callable"] = fit(method, (x, y), epochs=4, batch_size=16, seed=3,
                                                                  loss=loss, progress=False)
    assert [r["loss"] for r in runs["l1"].history] == [r["loss"] for r in runs["callable"].history]
    # Huber with delta 1: quadratic under 1, linear above
    huber = resolve_loss("huber", y)
    out, target = torch.tensor([[0.5, 3.0]]), torch.tensor([[0.0, 0.0]])
    assert float(huber(out, target)) == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)
    assert sorted(BUILTIN) == ["cross_entropy", "huber", "l1", "mse"]
    # a custom classification loss (label smoothing) keeps the accuracy metric
    xc, yc = labels()

    def smoothed(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target, label_smoothing=0.1)

    result = fit(Backprop(digital_network(6, [3]), lr=5e-2), (xc, yc), epochs=10, loss=smoothed, progress=False)
    assert result.final("train_accuracy") > 0.9 and "train_mse" not in result.history[-1]


def test_float_targets_of_any_shape_and_regression_resume(tmp_path):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 6, generator=g)
    y = torch.tanh(x[:, :4]).reshape(40, 2, 2)
    model = lambda: torch.nn.Sequential(digital_network(6, [8, 4]), torch.nn.Unflatten(1, (2, 2)))  # noqa: E731
    full = fit(Backprop(model(), lr=1e-2), (x, y), epochs=4, batch_size=10, seed=1, loss="huber", progress=False)
    fit(Backprop(model(), lr=1e-2), (x, y), epochs=2, batch_size=10, seed=1, loss="huber", out_dir=tmp_path,
        progress=False, plot=False)
    resumed = fit(Backprop(model(), lr=1e-2), (x, y), epochs=4, batch_size=10, seed=1, loss="huber",
                  out_dir=tmp_path, resume=True, progress=False)
    drop = lambda h: [{k: v for k, v in row.items() if k != "time_s"} for row in h]  # noqa: E731
    assert drop(resumed.history) == drop(full.history)
    assert (tmp_path / "curves.png").stat().st_size > 0
    with pytest.raises(CheckpointError, match="trained with loss 'huber', not 'mse'"):
        fit(Backprop(model(), lr=1e-2), (x, y), epochs=5, loss="mse", out_dir=tmp_path, resume=True, progress=False)


def test_targets_that_do_not_fit_the_loss_or_the_model_are_refused():
    method = Backprop(digital_network(6, [2]))
    x, y = regression(n=10)
    xc, yc = labels(n=9)
    cases = [
        (dict(train=(x, y.long()), loss="mse"), "regression loss and needs floating targets y; train y is torch.int64"),
        (dict(train=(xc, yc.float()), loss="cross_entropy"), "needs int64 labels y of shape \\(N,\\)"),
        (dict(train=(xc, yc.view(9, 1)), loss="cross_entropy"), "of shape \\(9, 1\\)"),
        (dict(train=(x, y[:, :1])), "outputs have shape \\(10, 2\\) but the targets y have shape \\(10, 1\\)"),
        (dict(train=(x, y), val=(x, y[:, :1])), "val targets have shape \\(10, 1\\), train targets \\(10, 2\\)"),
        (dict(train=(x, torch.where(y > 1, float("nan"), y))), "train targets y hold NaN or Inf"),
        (dict(train=(x, y), loss="mean_squared"), "unknown loss 'mean_squared'; built-ins are"),
        (dict(train=(x, y), loss=3), "got int"),
        (dict(train=(x, y), loss=lambda o, t: (o - t) ** 2), "must return a scalar tensor, got Tensor \\(10, 2\\)"),
        (dict(train=(xc, yc + 5)), "label 7 needs at least 8 output classes, the model gives 2"),
        (dict(train=(xc, yc - 1)), "labels must be >= 0"),
    ]
    for kwargs, message in cases:
        train = kwargs.pop("train")
        with pytest.raises(ConfigurationError, match=message):
            fit(method, train, epochs=1, progress=False, **kwargs)


def test_forward_forward_refuses_regression_and_any_loss():
    net = physical_network([hardware(), hardware()], [6, 6], drive="tanh")
    method = ForwardForward(net, n_classes=3, inner_steps=1)
    x, y = labels()
    with pytest.raises(ConfigurationError, match="ForwardForward is a classifier.*no output to fit to float targets"):
        fit(method, (x, torch.randn(60, 3)), epochs=1, progress=False)
    with pytest.raises(ConfigurationError, match="local contrastive loss.*would be ignored"):
        fit(method, (x, y), epochs=1, loss=lambda o, t: F.cross_entropy(o, t), progress=False)
    result = fit(method, (x, y), epochs=1, progress=False)  # the default stays: accuracy, no loss on eval sets
    assert "train_accuracy" in result.history[-1] and "train_loss" not in result.history[-1]
    assert np.isfinite(result.history[-1]["loss"])


@pytest.mark.slow
def test_audio_match_example_recovers_the_hidden_knobs(tmp_path, load_example):
    import os
    from pathlib import Path

    data = Path(os.environ.get("PHYSNN_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    if not (data / "hillenbrand1995" / "vowels").is_dir():
        pytest.skip(f"needs the Hillenbrand recordings in {data} (set PHYSNN_DATA to shared/datasets)")
    example = load_example("audio_match")
    (run,) = example.main(["--seeds", "1", "--clips", "3", "--seconds", "0.05", "--mlp-epochs", "5",
                           "--data-dir", str(data), "--out", str(tmp_path)])
    for name, value in example.HIDDEN.items():
        assert run["knobs"][-1][name] == pytest.approx(value, rel=1e-3), name
    rows = run["rows"]
    assert rows["pedal, fitted knobs"]["esr"] < 1e-8 < rows["FIR, 64 taps (ridge)"]["esr"]
    assert run["curve"][-1] < 1e-3 * run["curve"][0]
    assert (tmp_path / "audio_match.png").stat().st_size > 0
