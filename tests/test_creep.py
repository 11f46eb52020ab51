"""physnn.training.creep: swap plans, the ladder of models, and training every level under one budget."""

import csv
import json

import pytest
import torch
from torch import nn

from physnn.devices.quantum import DataReUploadingLinear, FlippedQuanv2d
from physnn.errors import ConfigurationError
from physnn.training.creep import Swap, build_level, count_parameters, ladder, run_creep


def _base() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


PLAN = [Swap("quantum conv", {"0": FlippedQuanv2d.from_conv}),
        Swap("quantum linear", {"2": lambda m: DataReUploadingLinear.from_linear(m, repetitions=2)})]


def test_ladder_swaps_one_group_per_level_and_keeps_shapes():
    models = ladder(_base, PLAN, seed=0)
    assert [type(m[0]).__name__ for m in models] == ["Conv2d", "FlippedQuanv2d", "FlippedQuanv2d"]
    assert [type(m[2]).__name__ for m in models] == ["Linear", "Linear", "DataReUploadingLinear"]
    x = torch.randn(4, 1, 6, 6)
    assert all(m(x).shape == (4, 3) for m in models)
    assert count_parameters(models[0]) == 2 * 9 + 2 + 32 * 3 + 3
    assert count_parameters(models[1]) == 2 * 15 + 2 + 32 * 3 + 3


def test_levels_are_reproducible_from_their_seed_and_differ_across_seeds():
    base = _base()
    a, b, c = build_level(base, PLAN, 2, seed=7), build_level(base, PLAN, 2, seed=7), build_level(base, PLAN, 2, 8)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a[0].weight, c[0].weight)


def test_user_supplied_swaps_and_bad_plans():
    plan = [Swap("tanh readout", {"2": lambda m: nn.Sequential(m, nn.Tanh())})]
    model = build_level(_base, plan, 1)
    assert isinstance(model[2][1], nn.Tanh)
    with pytest.raises(ConfigurationError, match="does not have"):
        build_level(_base, [Swap("x", {"9": lambda m: m})], 1)
    with pytest.raises(ConfigurationError, match="level"):
        build_level(_base, plan, 2)


def test_run_creep_trains_every_level_and_writes_tables(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (60,), generator=g)
    x = torch.randn(60, 1, 6, 6, generator=g) * 0.3
    x[torch.arange(60), 0, y, y] += 2.0  # a learnable class signal
    label = "non-unitary (paper's PyTorch model)"
    results = run_creep(_base, PLAN, (x[:45], y[:45]), (x[45:], y[45:]), epochs=2, batch_size=15, lr=0.05,
                        seeds=[0, 1], out_dir=tmp_path, log=None, model=label,
                        references={"paper": {0: 92.3, 2: 96.92}, "authors after 2 epochs": {1: 90.83}})
    assert [r.level for r in results] == [0, 1, 2]
    assert all(len(r.accuracies) == 2 and 0.0 <= r.mean <= 1.0 and r.std >= 0 for r in results)
    assert results[0].mean > 0.5
    for name in ("creep.csv", "creep.md", "creep.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "creep.md").read_text()
    assert "quantum linear" in table and "+-" in table
    assert table.startswith(f"Model: {label}") and table.count(f"| {label} |") == 3
    assert "| paper (%) | authors after 2 epochs (%) |" in table and "| 96.92 |" in table and "| 90.83 |" in table
    with open(tmp_path / "creep.csv") as f:
        assert [row["model"] for row in csv.DictReader(f)] == [label] * 3
    rows = json.loads((tmp_path / "creep.json").read_text())["rows"]
    assert [(r["model"], r["level"], r["paper"]) for r in rows] == [(label, 0, "92.30"), (label, 1, ""),
                                                                   (label, 2, "96.92")]
    # a finished ladder resumes from its checkpoints without training again
    again = run_creep(_base, PLAN, (x[:45], y[:45]), (x[45:], y[45:]), epochs=2, batch_size=15, lr=0.05,
                      seeds=[0, 1], out_dir=tmp_path, log=None, model=label)
    assert [r.accuracies for r in again] == [r.accuracies for r in results]


@pytest.mark.slow
def test_creep_images_example_runs_on_a_few_images(tmp_path, load_example):
    import os
    from pathlib import Path

    data = Path(os.environ.get("PHYSNN_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"needs MNIST in {data} (set PHYSNN_DATA to shared/datasets)")
    example = load_example("creep_images")
    expect = {"complex": ("non-unitary (paper's PyTorch model)", "| 96.92 | 93.76 |"),
              "real": ("unitary (physical; authors' JAX model)", "| 94.54 | 16.30 |")}
    for weights, (label, reference) in expect.items():
        chosen = ["--weights", weights] if weights == "complex" else []  # real is the default
        example.main(["--datasets", "mnist", "--epochs", "1", "--train-size", "200", "--test-size", "200",
                      "--data-dir", str(data), "--out", str(tmp_path), "--baseline-seeds", "1", *chosen])
        table = (tmp_path / weights / "mnist" / "creep.md").read_text()
        assert "+ quantum linear" in table and reference in table and table.count(f"| {label} |") == 3
        rows = json.loads((tmp_path / weights / "mnist" / "creep.json").read_text())["rows"]
        assert {r["model"] for r in rows} == {label}
        baselines = (tmp_path / weights / "mnist" / "baselines.md").read_text()
        assert "logistic regression (raw pixels)" in baselines and "fixed random convolutions" in baselines
    assert example.MODELS["real"]["batch"] == 1000 and example.MODELS["real"]["lr"] == 5e-3
    ablation, base = example.random_convolutions(1), example.base_model()
    assert count_parameters(ablation) == 16 * 28 * 28 * 10 + 10 < count_parameters(base)
    assert not torch.equal(ablation[0].weight, example.random_convolutions(2)[0].weight)
    assert not [name for name, _ in build_level(example.base_model, example.swap_plan(), 2).named_parameters()
                if name.endswith("weight_imag")]
    level2 = build_level(example.base_model, example.swap_plan(complex_weights=True), 2)
    imaginary = [name for name, _ in level2.named_parameters() if name.endswith("weight_imag")]
    assert imaginary == ["0.weight_imag", "1.weight_imag", "3.weight_imag"]
    x, _ = example.images("mnist", "test", str(data), 3)
    assert x.shape == (3, 1, 32, 32) and float(x.min()) == -1.0 and float(x.max()) <= 1.0
