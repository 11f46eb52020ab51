"""examples/mnist_forward_forward.py: its media are the SDK's black-box ScatteringMedium, exposed for unit-norm
drives, and the forward-forward network and its random-map ablation train through them (synthetic data)."""

from __future__ import annotations

import argparse

import torch

from physnn.devices.optics import ScatteringMedium
from physnn.training import Drive


def test_media_are_black_box_cameras_neither_saturated_nor_starved_by_unit_norm_drives(load_example):
    example = load_example("mnist_forward_forward")
    medium = example.scattering_medium(784, 400, 3)
    assert isinstance(medium, ScatteringMedium) and not medium.differentiable and medium.stochastic
    assert medium.encoding == "amplitude" and medium.camera.noise == "poisson"
    assert torch.equal(medium.medium.tm, example.scattering_medium(784, 400, 3).medium.tm)
    assert not torch.equal(medium.medium.tm, example.scattering_medium(784, 400, 4).medium.tm)
    drives = Drive("unit-norm")(torch.rand(500, 784, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        r = medium(drives)  # fraction of full scale; speckle intensities are exponential about their mean
    mean = example.MEAN_ELECTRONS / example.FULL_WELL
    assert abs(r.mean().item() / mean - 1) < 0.1
    assert (r >= 1).float().mean() < 1e-3  # e^-10 expected
    assert (r <= 0).float().mean() < 1e-2  # below half a DN (2.4 e-): ~0.2 % expected


def test_forward_forward_and_its_random_map_ablation_train_through_the_media(tmp_path, load_example):
    example = load_example("mnist_forward_forward")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 784, generator=g) * (torch.rand(60, 784, generator=g) > 0.8)
    x[:, :10] = 0  # room for the label overlay, as MNIST's corners
    y = torch.randint(0, 10, (60,), generator=g)
    args = argparse.Namespace(width=16, speckles=12, device="cpu", epochs=1, batch=20, out=str(tmp_path))
    for ablation in (False, True):
        method, result = example.forward_forward(x, y, x[:20], y[:20], 0, args, ablation=ablation)
        assert 0 <= result.final("val_accuracy") <= 1
        devices = [type(block.physical.device).__name__ for block in method.model]
        assert devices == (["RandomMap"] * 2 if ablation else ["ScatteringMedium"] * 2)
    assert (tmp_path / "seed0" / "checkpoint.pt").is_file()
