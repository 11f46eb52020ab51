"""All cores: the compiled kernels run row blocks on torch.get_num_threads() threads, bit-identically."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from physnn import _threads
from physnn.devices.audio import DiodeClipper, DrivenPlate
from physnn.devices.audio._ops import smoother
from physnn.devices.wave import WaveMedium2D

TWO = min(2, _threads._cpus())  # what "2 threads" can give on this machine


@pytest.fixture
def blocks(monkeypatch):
    """Restores torch's thread count; records how many row blocks each kernel call was split into."""
    seen: list[int] = []
    real = _threads.row_blocks

    def spy(rows: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
        out = real(rows, parts, align)
        seen.append(len(out))
        return out

    monkeypatch.setattr(_threads, "row_blocks", spy)
    before = torch.get_num_threads()
    yield seen
    torch.set_num_threads(before)


def _on_threads(k: int, run):
    torch.set_num_threads(k)
    return run()


def _assert_bit_identical(run, blocks: list[int]) -> None:
    one = _on_threads(1, run)
    assert set(blocks) == {1}
    blocks.clear()
    two = _on_threads(2, run)
    assert set(blocks) == {TWO}, "the kernels did not split the batch over the threads"
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_row_blocks_cover_the_rows_evenly_on_aligned_boundaries():
    assert _threads.row_blocks(8, 2) == [(0, 4), (4, 8)]
    assert _threads.row_blocks(7, 2, align=2) == [(0, 4), (4, 7)]
    assert _threads.row_blocks(1, 4) == [(0, 1)]
    assert _threads.row_blocks(0, 3) == [(0, 0)]
    for rows in range(1, 20):
        for parts in range(1, 6):
            for align in (1, 2, 3):
                got = _threads.row_blocks(rows, parts, align)
                assert got[0][0] == 0 and got[-1][1] == rows
                assert all(a < b for a, b in got) and all(got[i][1] == got[i + 1][0] for i in range(len(got) - 1))
                assert len(got) == min(parts, -(-rows // align))
                assert all(b % align == 0 for _, b in got[:-1])


@pytest.fixture(params=[True, False], ids=["openmp-team", "thread-pool"])
def runner(request, monkeypatch):
    """Each way of running the blocks: torch's OpenMP team (where found) and the thread pool."""
    if request.param and _threads._torch_openmp() is None:
        pytest.skip("torch does not use a libgomp of its own here: only the thread pool runs the blocks")
    monkeypatch.setattr(_threads, "USE_TORCH_OPENMP", request.param)


def test_thread_count_follows_torch(blocks, runner):
    """Blocks of an instrumented kernel run on as many distinct, concurrent threads as torch has."""
    calls: list[tuple[int, float, float]] = []

    @_threads.over_rows("out")
    def kernel(out: np.ndarray) -> None:
        start = time.perf_counter()
        time.sleep(0.05)  # releases the GIL, as the nogil kernels do
        calls.append((threading.get_ident(), start, time.perf_counter()))
        out[:] = len(out)

    for k in (1, 2):
        calls.clear()
        torch.set_num_threads(k)
        out = np.zeros(8)
        kernel(out)
        n = min(k, _threads._cpus())
        assert len({ident for ident, _, _ in calls}) == n
        assert out.tolist() == [8 / n] * 8
        if n == 2:  # the two blocks overlapped in time
            (_, s0, e0), (_, s1, e1) = calls
            assert max(s0, s1) < min(e0, e1)


def test_a_failing_block_raises_after_all_blocks_finished(blocks, runner):
    done: list[int] = []

    @_threads.over_rows("rows")
    def kernel(rows: np.ndarray) -> None:
        if rows[0] == 0:
            raise ValueError("first block")
        time.sleep(0.05)
        done.append(int(rows[0]))

    torch.set_num_threads(2)
    with pytest.raises(ValueError, match="first block"):
        kernel(np.arange(4))
    assert done == ([2] if TWO == 2 else [])


def test_every_block_runs_when_openmp_gives_fewer_threads(tmp_path):
    """OMP_THREAD_LIMIT=1: torch's team has one thread for two blocks; the second still runs (on the caller)."""
    code = ("import threading, numpy as np, torch\n"
            "from physnn import _threads\n"
            "torch.set_num_threads(2)\n"
            "seen = []\n"
            "@_threads.over_rows('out')\n"
            "def kernel(out):\n"
            "    seen.append(threading.get_ident())\n"
            "    out[:] = 1.0\n"
            "out = np.zeros(6)\n"
            "kernel(out)\n"
            "print(_threads._torch_openmp() is not None, _threads.num_threads(), len(seen), len(set(seen)), "
            "int(out.sum()))\n")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env=env)
    team, threads, blocks_run, distinct, written = out.stdout.split()
    if team != "True" or threads != "2":
        pytest.skip(f"needs torch's own libgomp and 2 CPUs (team found: {team}, threads: {threads})")
    assert (blocks_run, distinct, written) == ("2", "1", "6")


def test_wave_medium_bit_identical_on_1_and_2_threads(blocks):
    medium = WaveMedium2D(shape=(16, 20), n_steps=40, dt=0.5, absorber_width=3, absorber_strength=1.0,
                          projection_beta=2.0, c_nl=-0.3, output="raw", backend="numba")
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn((4,) + tuple(medium.in_shape), dtype=torch.float64, generator=g)
    rho0 = torch.rand(medium.shape, dtype=torch.float64, generator=g)

    def run() -> list[torch.Tensor]:
        x, rho = x0.clone().requires_grad_(), rho0.clone().requires_grad_()
        sol = medium.simulate(x, {"rho": rho})
        (sol.intensity.square().sum() + sol.signals.sin().sum()).backward()
        return [sol.intensity.detach(), sol.signals.detach(), x.grad, rho.grad]

    _assert_bit_identical(run, blocks)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_clipper_bit_identical_on_1_and_2_threads(blocks, mode):
    device = DiodeClipper(num_samples=1000, mode=mode)  # 5 x 1000 samples: above the kernels' PARALLEL_MIN
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 1000, dtype=torch.float64, generator=g)  # odd batch: a pair is split off
    controls = {c.name: c.default_tensor(torch.float64) for c in device.controls}

    def run() -> list[torch.Tensor]:
        x = x0.clone().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        y = device(x, knobs)
        (y * torch.linspace(-1, 1, 1000, dtype=torch.float64)).square().sum().backward()
        return [y.detach(), x.grad] + [knobs[k].grad for k in sorted(knobs)]

    _assert_bit_identical(run, blocks)


def test_plate_and_smoother_bit_identical_on_1_and_2_threads(blocks):
    plate = DrivenPlate(num_samples=1400)  # 3 x 1400 samples: above the kernels' PARALLEL_MIN
    g = torch.Generator().manual_seed(0)
    x0 = 0.3 * torch.randn(3, 1400, dtype=torch.float64, generator=g)
    poles0 = torch.tensor([0.9, 0.5, 0.99], dtype=torch.float64), torch.tensor([0.99, 0.9, 0.999], dtype=torch.float64)
    controls = {c.name: c.default_tensor(torch.float64) for c in plate.controls}
    controls["cubic"] = torch.tensor(0.3, dtype=torch.float64)  # the nonlinear modes

    def run() -> list[torch.Tensor]:
        x = x0.clone().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        ca, cr = (p.clone().requires_grad_() for p in poles0)
        y, s = plate(x, knobs), smoother(-x.abs(), ca, cr)
        (y.square().sum() + s.square().sum()).backward()
        return [y.detach(), s.detach(), x.grad, ca.grad, cr.grad] + [knobs[k].grad for k in sorted(knobs)]

    _assert_bit_identical(run, blocks)


def test_small_calls_stay_on_the_calling_thread(blocks):
    """Below min_size elements (largest batched array) a call is one block: waking a thread would cost more."""
    seen: list[int] = []

    @_threads.over_rows("x", "out", min_size=100)
    def kernel(x: np.ndarray, out: np.ndarray) -> None:
        seen.append(threading.get_ident())
        out[:] = x

    torch.set_num_threads(2)
    for rows, cols, parts in ((4, 24, 1), (4, 25, TWO)):  # 96 elements: one block; 100: split
        seen.clear()
        blocks.clear()
        x = np.ones((rows, cols))
        out = np.zeros_like(x)
        kernel(x, out)
        assert blocks == [parts] and len(seen) == parts and out.sum() == x.size


def test_a_kernel_call_leaves_torch_thread_count_alone(tmp_path):
    """Regression: numba's OpenMP pool, launched by a first ``numba.set_num_threads``, reset torch's count."""
    code = ("import torch\n"
            "from physnn.devices.wave import WaveMedium2D\n"
            "from physnn.devices.audio import DiodeClipper\n"
            "torch.set_num_threads(1)\n"
            "m = WaveMedium2D(shape=(10, 12), n_steps=8, dt=0.5, absorber_width=2, backend='numba')\n"
            "rho = torch.full(m.shape, 0.5, requires_grad=True)\n"
            "m(torch.randn(2, 8), {'rho': rho}).sum().backward()\n"
            "DiodeClipper(num_samples=16)(torch.randn(2, 16, dtype=torch.float64))\n"
            "print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "1"
