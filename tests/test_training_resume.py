"""A training run killed with SIGKILL mid-epoch resumes to the same parameters and history as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import torch

from physnn.training import fit, load_checkpoint

#: Builds the run; executed both in the killed subprocess and here.
RUN = textwrap.dedent("""
    import os, signal, torch
    from physnn.devices import BlackBox, ReferenceDevice
    from physnn.training import Callback, ForwardForward, physical_network

    torch.set_num_threads(1)

    def build():
        device = BlackBox(ReferenceDevice(6), noise_std=0.05, gain=1.2, seed=11)  # noisy: its generator matters
        net = physical_network([device, device], [6, 6], drive="tanh", seed=2)
        return ForwardForward(net, n_classes=3, lr=1e-2, inner_steps=3, seed=2)

    def data():
        g = torch.Generator().manual_seed(0)
        y = torch.arange(60) % 3
        x = torch.zeros(60, 6)
        x[:, 3:] = torch.rand(3, 3, generator=g)[y] + 0.1 * torch.randn(60, 3, generator=g)
        return x, y

    class KillMidEpoch(Callback):
        def __init__(self, epoch, batch):
            self.epoch, self.batch = epoch, batch

        def on_batch_end(self, epoch, batch, method):
            if (epoch, batch) == (self.epoch, self.batch):
                os.kill(os.getpid(), signal.SIGKILL)
""")
KILL = textwrap.dedent("""
    from physnn.training import fit
    fit(build(), data(), epochs=6, batch_size=20, seed=4, out_dir=OUT, progress=False, plot=False,
        callbacks=[KillMidEpoch(3, 1)])
    raise SystemExit("not killed")
""")


def test_killed_run_resumes_identically(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", RUN + f"OUT = {str(out)!r}\n" + KILL], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3  # died inside epoch 4

    scope: dict = {}
    exec(RUN, scope)
    threads = torch.get_num_threads()
    try:
        resumed, straight = scope["build"](), scope["build"]()
        again = fit(resumed, scope["data"](), epochs=6, batch_size=20, seed=4, out_dir=out, resume=True,
                    progress=False, plot=False)
        full = fit(straight, scope["data"](), epochs=6, batch_size=20, seed=4, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len(again.history) == 6
    timeless = lambda history: [{k: v for k, v in row.items() if k != "time_s"} for row in history]
    assert timeless(again.history) == timeless(full.history)
    for (name, a), b in zip(resumed.model.state_dict().items(), straight.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert again.accounting["train_device_calls"] == full.accounting["train_device_calls"] == 6 * 3 * 2 * 2
