"""The compiled audio recursions on every torch device: exact adjoints (gradcheck in float64), dtypes,
and the path CUDA tensors take (one copy to the host, the kernel, one copy back), forced on CPU tensors.

No GPU is lent to these tests: the routing is exercised with ``_ops.FORCE_DEVICE_PATH``, which sends CPU
tensors through exactly the code a CUDA tensor takes; CUDA itself is not run here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from physnn import _threads
from physnn.devices.audio import (
    Compressor,
    DiodeClipper,
    DrivenPlate,
    EffectChain,
    LowpassFilter,
    OpAmpOverdrive,
    PeakingEQ,
    _ops,
)
from physnn.devices.audio.compressor import LEVEL_FLOOR, static_gain_db

F64 = torch.float64


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------ exact adjoints
def test_biquad_adjoint_passes_gradcheck():
    g = _rng(0)
    x = torch.randn(3, 40, generator=g, dtype=F64, requires_grad=True)
    b, a = signal.butter(2, 0.2)
    coef = torch.tensor([[*b, *a[1:]], [0.3, -0.2, 0.1, -1.6, 0.8], [1.0, 0.5, 0.25, 0.9, 0.5]], dtype=F64)
    coef.requires_grad_()
    assert torch.autograd.gradcheck(_ops.biquad, (x, coef))


def test_biquad_forward_is_scipy_lfilter_in_both_dtypes():
    x = torch.randn(4, 3000, generator=_rng(1), dtype=F64)
    b, a = signal.butter(2, 0.01)  # poles close to 1: the float64 state matters for float32 signals
    coef = torch.tensor([*b, *a[1:]], dtype=F64).expand(4, 5)
    expected = signal.lfilter(b, a, x.numpy(), axis=1)
    np.testing.assert_allclose(_ops.biquad(x, coef).numpy(), expected, rtol=0, atol=1e-13)
    y32 = _ops.biquad(x.float(), coef)
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_rbj_coefficients_match_the_cookbook_and_pass_gradcheck(kind):
    """The compiled cookbook design (analytic Jacobian) against the formulas written out in torch, and gradcheck."""
    g = _rng(7)
    f = (50 + 15000 * torch.rand(5, generator=g, dtype=F64)).requires_grad_()
    q = (0.2 + 5 * torch.rand(5, generator=g, dtype=F64)).requires_grad_()
    gain = (12 * torch.randn(5, generator=g, dtype=F64)).requires_grad_()
    w0 = 2 * torch.pi * f.detach() / 44100.0
    cos, alpha = torch.cos(w0), torch.sin(w0) / (2 * q.detach())
    amp = 10 ** (gain.detach() / 40)
    if kind == 2:
        num = [1 + alpha * amp, -2 * cos, 1 - alpha * amp, -2 * cos, 1 - alpha / amp]
        a0 = 1 + alpha / amp
    else:
        s = -1.0 if kind == 0 else 1.0
        num = [(1 + s * cos) / 2, -s * (1 + s * cos), (1 + s * cos) / 2, -2 * cos, 1 - alpha]
        a0 = 1 + alpha
    want = torch.stack(num, -1) / a0[:, None]
    torch.testing.assert_close(_ops.rbj(kind, f, q, gain, 44100.0), want, rtol=1e-14, atol=1e-15)
    assert torch.autograd.gradcheck(lambda *k: _ops.rbj(kind, *k, 44100.0), (f, q, gain))
    assert torch.autograd.gradcheck(lambda *k: _ops.rbj(kind, *k, 44100.0), (f[0], q[0], gain[0]))  # 0-d knobs


@pytest.mark.parametrize("exact", [True, False])
def test_diode_node_adjoint_passes_gradcheck(exact):
    """Input, input gain and every diode knob, on a drive that clips both ways (3 rows: a pair and a lone row).

    Knobs in scaled units (mS, nA) so that gradcheck's finite steps are relative steps of a sensible size."""
    t = torch.arange(60, dtype=F64)
    x = torch.stack([1.5 * torch.sin(0.2 * t), 0.8 * torch.sin(0.35 * t), 3.0 * torch.cos(0.1 * t)]).requires_grad_()
    knobs = [torch.tensor(v, dtype=F64, requires_grad=True) for v in
             ([0.45, 0.3, 0.6], [0.45, 1.0, 0.2], [2.52, 10.0, 1.0], [0.045, 0.05, 0.04], [0.045, 0.09, 0.06])]

    def node(x, gain_ms, g_ms, isat_na, v1, v2):
        return _ops.diode_node(x, gain_ms * 1e-3, g_ms * 1e-3, isat_na * 1e-9, v1, v2, 1134.0, exact)

    no_diodes = node(x, knobs[0], knobs[1], torch.full((3,), 1e-9, dtype=F64), knobs[3], knobs[4])
    assert float((node(x, *knobs) - no_diodes).detach().abs().max()) > 0.5  # the diodes conduct: the output is clipped
    assert torch.autograd.gradcheck(node, (x, *knobs))


def test_compressor_adjoint_passes_gradcheck():
    """Input and all six per-row knobs; signal levels straddle threshold and knee, so every branch is hit."""
    t = torch.arange(60, dtype=F64)
    x = (torch.stack([0.9 * torch.sin(0.3 * t), 0.2 * torch.sin(0.11 * t) * torch.exp(t / 40)]) + 0.01)
    rows = [torch.tensor(v, dtype=F64) for v in ([-12.0, -20.0], [-0.75, -0.5], [6.0, 3.0], [0.8, 0.7],
                                                 [0.95, 0.9], [1.0, -2.0])]
    inputs = [x.requires_grad_()] + [r.requires_grad_() for r in rows]
    assert torch.autograd.gradcheck(lambda x, *r: _ops.compressor(x, 1e-12, *r), inputs)


def test_fused_compressor_equals_its_stages():
    device = Compressor(num_samples=2000)
    x = device.sample_inputs(3, _rng(2), F64) * 2
    knobs = {"threshold": torch.tensor([-20.0, -6.0, -12.0], dtype=F64), "makeup": torch.tensor(3.0, dtype=F64)}
    controls = {c.name: knobs.get(c.name, c.default_tensor(F64)) for c in device.controls}
    staged = x * 10.0 ** ((device.gain_db(x, controls) + 3.0) / 20.0)
    torch.testing.assert_close(device(x, knobs), staged, rtol=1e-12, atol=1e-14)


def test_modal_and_smoother_adjoints_pass_gradcheck():
    g = _rng(3)
    f = torch.randn(2, 30, generator=g, dtype=F64, requires_grad=True)
    a1 = torch.tensor([[1.9, 1.5], [1.7, 0.4]], dtype=F64, requires_grad=True)
    a2 = torch.tensor([[0.95, 0.8], [0.9, 0.6]], dtype=F64, requires_grad=True)
    gain = torch.tensor([[0.1, 0.3], [0.2, 0.5]], dtype=F64, requires_grad=True)
    cubic = torch.tensor([[0.01, 0.0], [0.02, 0.05]], dtype=F64, requires_grad=True)
    weight = torch.tensor([1.0, -0.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(_ops.modal, (f, a1, a2, gain, cubic, weight))
    level = -torch.rand(2, 30, generator=g, dtype=F64).mul(10).requires_grad_()
    poles = [torch.tensor(v, dtype=F64, requires_grad=True) for v in ([0.5, 0.7], [0.9, 0.95])]
    assert torch.autograd.gradcheck(_ops.smoother, (level, *poles))


# ------------------------------------------------------- the path CUDA takes
class _Transfers:
    """Counts signal-sized copies between the host and the tensors' device made by _ops."""

    def __init__(self, monkeypatch, numel: int) -> None:
        self.numel, self.to, self.back = numel, 0, 0
        to_host, from_host = _ops.to_host, _ops.from_host

        def counted_to(t, *args):
            a = to_host(t, *args)
            self.to += t.numel() == self.numel
            return a

        def counted_back(a, like):
            t = from_host(a, like)
            self.back += a.size == self.numel
            assert t.device == like.device and t.dtype == like.dtype
            assert not np.shares_memory(t.numpy(), a)  # a real copy off the host
            return t

        monkeypatch.setattr(_ops, "to_host", counted_to)
        monkeypatch.setattr(_ops, "from_host", counted_back)
        monkeypatch.setattr(_ops, "FORCE_DEVICE_PATH", True)


MODELS = [DiodeClipper, OpAmpOverdrive, Compressor, LowpassFilter, PeakingEQ,
          lambda **kw: DrivenPlate(sample_rate=8000.0, fundamental=60.0, n_modes=3, **kw)]
#: Compiled recursions per model: the overdrive is a biquad branch then a diode node.
OPS = [1, 2, 1, 1, 1, 1]


@pytest.mark.parametrize("make, ops", list(zip(MODELS, OPS)))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_device_path_copies_once_each_way_and_equals_the_cpu_path(monkeypatch, make, ops, dtype):
    device = make(num_samples=64)
    x = (device.sample_inputs(3, _rng(5), dtype) * 2).requires_grad_()
    weight = torch.linspace(-1, 1, 64, dtype=dtype)
    results = []
    for forced in (False, True):
        if forced:
            transfers = _Transfers(monkeypatch, x.numel())
        xs = x.detach().clone().requires_grad_()
        y = device(xs)
        if forced:
            assert (transfers.to, transfers.back) == (ops, ops)  # forward: one copy each way per recursion
        (y * weight).sum().backward()
        if forced:
            assert (transfers.to, transfers.back) == (2 * ops, 2 * ops)  # backward: the same again
        assert y.dtype == dtype and y.device == x.device
        results.append((y.detach(), xs.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_chain_on_the_device_path(monkeypatch):
    chain = EffectChain([OpAmpOverdrive(num_samples=128), LowpassFilter(num_samples=128), Compressor(num_samples=128)])
    x = chain.sample_inputs(2, _rng(6), F64)
    expected = chain(x)
    monkeypatch.setattr(_ops, "FORCE_DEVICE_PATH", True)
    torch.testing.assert_close(chain(x), expected, rtol=0, atol=0)


# ------------------------------------------------------------------- threads
@pytest.mark.parametrize("make", [LowpassFilter, Compressor,
                                  lambda **kw: DrivenPlate(sample_rate=8000.0, fundamental=60.0, n_modes=3, **kw)])
def test_row_blocks_on_threads_are_bit_identical(monkeypatch, make):
    """The _iir and _dynamics kernels run blocks of rows on threads (3 blocks of an odd batch of 7 here;
    7 x 600 samples, above the kernels' PARALLEL_MIN)."""
    device = make(num_samples=600)
    x0 = device.sample_inputs(7, _rng(7), F64) * 2
    controls = {c.name: c.default_tensor(F64) for c in device.controls}
    parts: list[int] = []
    real = _threads.row_blocks
    monkeypatch.setattr(_threads, "row_blocks", lambda *a: parts.append(len(real(*a))) or real(*a))

    def run() -> list[torch.Tensor]:
        x = x0.clone().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        y = device(x, knobs)
        (y * torch.linspace(-1, 1, 600, dtype=F64)).sum().backward()
        return [y.detach(), x.grad] + [knobs[k].grad for k in sorted(knobs)]

    monkeypatch.setattr(_threads, "num_threads", lambda: 1)
    one = run()
    monkeypatch.setattr(_threads, "num_threads", lambda: 3)
    parts.clear()
    for a, b in zip(one, run()):
        assert torch.equal(a, b)
    assert parts and min(parts) > 1  # every kernel split (the biquad forward in 2: its groups of 4 rows stay whole)


ROWS = torch.tensor([0.5, 0.7], dtype=F64)
OP_CALLS = {
    "biquad": lambda x: _ops.biquad(x, torch.tensor([0.2, 0.4, 0.2, -0.6, 0.3], dtype=F64).expand(2, 5)),
    "compressor": lambda x: _ops.compressor(x, 1e-12, -ROWS * 20, -ROWS, ROWS * 6, ROWS, ROWS + 0.2, ROWS),
    "smoother": lambda x: _ops.smoother(x, ROWS, ROWS + 0.2),
    "modal": lambda x: _ops.modal(x, ROWS[:, None] + 1.2, ROWS[:, None] + 0.2, ROWS[:, None], ROWS[:, None] * 0,
                                  torch.ones(1, dtype=F64)),
    "diode_node": lambda x: _ops.diode_node(x, ROWS, ROWS, ROWS * 1e-9, ROWS * 0.05, ROWS * 0.05, 1e-2, True),
}


@pytest.mark.parametrize("op", sorted(OP_CALLS))
def test_backward_refuses_an_input_changed_in_place(op):
    """The kernels' backward reads the signal's memory without a copy: torch must refuse, not use changed values."""
    x = torch.randn(2, 32, generator=_rng(8), dtype=F64).requires_grad_()
    xs = x * 1.0  # a non-leaf the user may (wrongly) change in place
    y = OP_CALLS[op](xs)
    xs.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ------------------------------------------- adjoints vs autograd of the plain recursion
def _reference_biquad(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """The recursion written sample by sample in torch (a reference only: autograd differentiates it)."""
    b0, b1, b2, a1, a2 = coef.unbind(1)
    x1 = x2 = y1 = y2 = torch.zeros_like(x[:, 0])
    out = []
    for n in range(x.shape[1]):
        yn = b0 * x[:, n] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out.append(yn)
        x2, x1, y2, y1 = x1, x[:, n], y1, yn
    return torch.stack(out, 1)


def _reference_compressor(device: Compressor, x: torch.Tensor, k: dict[str, torch.Tensor]) -> torch.Tensor:
    target = static_gain_db(10 * torch.log10(x * x + LEVEL_FLOOR), k["threshold"], k["ratio"], k["knee"])
    pole_a, pole_r = device.poles(k)
    prev, out = torch.zeros_like(x[:, 0]), []
    for n in range(x.shape[1]):
        c = torch.where(target[:, n] < prev, pole_a, pole_r)
        prev = c * prev + (1 - c) * target[:, n]
        out.append(prev)
    return x * 10 ** ((torch.stack(out, 1) + k["makeup"]) / 20)


def test_adjoints_equal_autograd_through_the_plain_recursion():
    """400 samples, float64: the compiled adjoints agree with autograd to rounding (measured 4e-15 or better)."""
    g = _rng(9)
    x = torch.randn(3, 400, generator=g, dtype=F64, requires_grad=True)
    cotangent = torch.randn(3, 400, generator=g, dtype=F64)
    coef = torch.tensor([[0.2, 0.4, 0.2, -0.6, 0.3], [0.9, -1.7, 0.8, -1.8, 0.85], [1.0, 0.5, 0.25, 0.9, 0.5]],
                        dtype=F64, requires_grad=True)
    got = torch.autograd.grad((_ops.biquad(x, coef) * cotangent).sum(), (x, coef))
    want = torch.autograd.grad((_reference_biquad(x, coef) * cotangent).sum(), (x, coef))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13 * float(b.abs().max()))
    device = Compressor(num_samples=400)
    xc = (device.sample_inputs(3, g, F64) * 2).requires_grad_()
    knobs = {c.name: (c.default_tensor(F64) + 0.5).requires_grad_() for c in device.controls}
    inputs = [xc] + [knobs[k] for k in sorted(knobs)]
    got = torch.autograd.grad((device(xc, knobs) * cotangent).sum(), inputs)
    want = torch.autograd.grad((_reference_compressor(device, xc, knobs) * cotangent).sum(), inputs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13 * float(b.abs().max()))
