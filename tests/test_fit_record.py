"""fit(..., record=path): every hardware call of a training run lands in the record, and replays offline."""

from __future__ import annotations

import torch

from physnn.data import load_record
from physnn.devices import BlackBox, CoupledPendula, ReplayDevice
from physnn.training import PhysicsAware, fit, physical_network


def test_fit_records_every_hardware_call_and_none_of_the_twin(tmp_path):
    hardware = BlackBox(CoupledPendula(4, omega=6.5), noise_std=0.01, seed=3)
    net = physical_network([hardware], [3], route="twin", twins=[CoupledPendula(4)], drive="tanh", seed=0)
    method = PhysicsAware(net, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 4, generator=g), torch.arange(24) % 3
    result = fit(method, (x, y), epochs=2, batch_size=8, out_dir=tmp_path, progress=False, plot=False,
                 record=tmp_path / "run.sqlite")
    record = load_record(tmp_path / "run.sqlite")
    costs = result.accounting
    assert len(record.call_ids) == costs["train_device_calls"] + costs["eval_device_calls"] == 2 * (3 + 1)
    assert len(record.inputs) == costs["train_device_samples"] + costs["eval_device_samples"]
    assert costs["twin_calls"] > 0 and all(e is None for e in record.errors)
    assert list(record.devices) == [1]  # one identity row for the run, not one per epoch
    assert net[0].physical.device is hardware  # restored after the run: the checkpoint holds the bare device
    # the last evaluation, replayed offline from the record, gives the recorded outputs bit for bit
    replay = ReplayDevice(tmp_path / "run.sqlite")
    last = record.sample_call == record.sample_call.max()
    controls = {k: v[last][0] for k, v in record.controls.items()}
    assert torch.equal(replay(record.inputs[last], controls), record.outputs[last])
