"""Differentiable recursions: compiled numba kernels inside ``torch.autograd.Function``s, on any torch device.

Each op takes torch tensors (batch first, per-row parameters ``(B,)`` or
``(B, M)``) and returns a tensor of the input's dtype on the input's torch
device. Forward runs a compiled recursion, backward its compiled adjoint (one
reverse recursion). The kernels run on the host: a CPU tensor is handed over
as a view where its dtype allows, a tensor on any other device (CUDA) is copied
to the host once and the result copied back once (:func:`to_host`,
:func:`from_host`). numba is required by the audio models
(``pip install 'physnn[audio]'``); without it they raise
:class:`~physnn.errors.MissingDependencyError` when run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ...errors import MissingDependencyError

try:
    from . import _dynamics as D
    from . import _iir
    from . import _kernels as K
except ImportError as err:  # numba missing: the models construct, and say what to install when run
    D = _iir = K = None
    _IMPORT_ERROR: ImportError | None = err
else:
    _IMPORT_ERROR = None

BACKENDS = ("auto",)
#: Test hook: route CPU tensors exactly as tensors of another device (copy to host, kernel, copy back).
FORCE_DEVICE_PATH = False
_KERNEL_DTYPES = (torch.float32, torch.float64)


def require_kernels() -> None:
    """Raise :class:`MissingDependencyError` unless the compiled kernels (numba) are available."""
    if _IMPORT_ERROR is not None:
        raise MissingDependencyError(f"the audio models run compiled kernels and need numba, which failed to "
                                     f"import ({_IMPORT_ERROR}); install it with pip install 'physnn[audio]'")


def _off_host(t: torch.Tensor) -> bool:
    return t.device.type != "cpu" or FORCE_DEVICE_PATH


def to_host(t: torch.Tensor, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """``t`` as a C-contiguous host array of ``dtype``: a view of a matching CPU tensor, else one copy."""
    t = t.detach()
    t = t.to("cpu", dtype=dtype, copy=True) if _off_host(t) else t.to(dtype)
    return np.ascontiguousarray(t.numpy())


def from_host(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Host array ``a`` as a tensor of ``like``'s dtype on ``like``'s device (one copy off the host)."""
    return torch.from_numpy(a).to(device=like.device, dtype=like.dtype, copy=_off_host(like))


def signal_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the signal kernels read and write for ``x``: its own if float32/float64, else float64."""
    return x.dtype if x.dtype in _KERNEL_DTYPES else torch.float64


def _saved(ctx) -> None:
    """Raise torch's error if an input of this op changed in place since forward: the host arrays the backward
    reads may be views of the inputs' memory (inputs are saved with ``ctx.save_for_backward`` for this check)."""
    ctx.saved_tensors  # noqa: B018 - the access is the check


# ------------------------------------------------------------- diode node
class _DiodeNode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gain, conductance, i_sat, v1, v2, k: float, exact: bool):
        arrays = [to_host(t) for t in (x, gain, conductance, i_sat, v1, v2)]
        v, d1, d2 = (np.empty(arrays[0].shape) for _ in range(3))
        K.diode_node_forward(*arrays, float(k), bool(exact), v, d1, d2)
        ctx.arrays, ctx.state, ctx.k, ctx.exact = arrays, (v, d1, d2), float(k), bool(exact)
        ctx.save_for_backward(x, gain, conductance, i_sat, v1, v2)
        return from_host(v, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_v):
        _saved(ctx)
        x, gain, conductance, i_sat, v1, v2 = ctx.arrays
        v, d1, d2 = ctx.state
        grad_x = np.empty_like(x)
        grads = [np.empty_like(gain) for _ in range(5)]
        K.diode_node_adjoint(to_host(grad_v), x, v, d1, d2, gain, conductance, i_sat, v1, v2, ctx.k, ctx.exact,
                             grad_x, *grads)
        return (from_host(grad_x, grad_v), *(from_host(g, grad_v) for g in grads), None, None)


def diode_node(x: torch.Tensor, gain: torch.Tensor, conductance: torch.Tensor, i_sat: torch.Tensor,
               v1: torch.Tensor, v2: torch.Tensor, k: float, exact: bool) -> torch.Tensor:
    """Node voltage (B, T) in V of ``C dV/dt = s - G V - i_d(V)`` (trapezoidal, solved exactly per sample).

    Args: the source current ``s = gain x`` in A from x (B, T) and gain (B,) (scaled inside the
    kernel: no (B, T) product in torch); conductance (B,) S; i_sat (B,) A; v1, v2
    (B,) V (ideality x thermal voltage of the forward and the reverse diode);
    k = dt / (2 C) in V/A; exact: both diodes (Newton-polished closed form) or
    only the forward-biased one (pure Wright-omega closed form).
    """
    require_kernels()
    return _DiodeNode.apply(x, gain, conductance, i_sat, v1, v2, k, exact)


# ------------------------------------------------------------------ biquad
class _Biquad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef):
        xa, ca = to_host(x, signal_dtype(x)), to_host(coef)
        y = np.empty_like(xa)
        _iir.biquad_forward(xa, ca, y)
        ctx.arrays = (xa, ca, y)
        ctx.save_for_backward(x, coef)
        return from_host(y, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        _saved(ctx)
        xa, ca, y = ctx.arrays
        grad_x, grad_c = np.empty_like(xa), np.empty_like(ca)
        _iir.biquad_adjoint(to_host(grad_y, signal_dtype(grad_y)), xa, y, ca, grad_x, grad_c)
        return from_host(grad_x, grad_y), from_host(grad_c, grad_y)


def biquad(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Filter x (B, T) with one biquad per row, coef (B, 5) = ``(b0, b1, b2, a1, a2)`` (a0 = 1)."""
    require_kernels()
    return _Biquad.apply(x, coef)


class _RBJ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kind: int, frequency, q, gain_db, sample_rate: float):
        rows = [to_host(t).reshape(-1) for t in (frequency, q, gain_db)]
        coef, jac = np.empty((rows[0].size, 5)), np.empty((rows[0].size, 5, 3))
        _iir.rbj_design(kind == 2, -1.0 if kind == 0 else 1.0, *rows, float(sample_rate), coef, jac)
        ctx.jac = jac
        ctx.save_for_backward(frequency, q, gain_db)
        return from_host(coef, frequency).reshape(frequency.shape + (5,))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        _saved(ctx)
        shape = ctx.saved_tensors[0].shape
        g = np.einsum("rk,rkj->jr", to_host(grad).reshape(-1, 5), ctx.jac)
        return (None, *(from_host(np.ascontiguousarray(gj), grad).reshape(shape) for gj in g), None)


def rbj(kind: int, frequency: torch.Tensor, q: torch.Tensor, gain_db: torch.Tensor,
        sample_rate: float) -> torch.Tensor:
    """Audio EQ Cookbook biquad coefficients ``(*frequency.shape, 5)`` from knobs of one shape.

    kind: 0 low-pass, 1 high-pass, 2 peaking EQ; frequency in Hz, gain_db in dB (used by the peaking EQ),
    sample_rate in Hz. One compiled call with the analytic Jacobian (a graph of some forty torch ops
    on (B,) tensors cost as much as the biquad recursion itself).
    """
    require_kernels()
    return _RBJ.apply(kind, frequency, q, gain_db, sample_rate)


# ----------------------------------------------------------------- smoother
class _Smoother(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, c_attack, c_release):
        xa, ca, cr = to_host(x), to_host(c_attack), to_host(c_release)
        y = np.empty_like(xa)
        attack = np.empty(xa.shape, dtype=np.uint8)
        K.smoother_forward(xa, ca, cr, y, attack)
        ctx.arrays = (xa, y, attack, ca, cr)
        ctx.save_for_backward(x, c_attack, c_release)
        return from_host(y, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        _saved(ctx)
        xa, y, attack, ca, cr = ctx.arrays
        grad_x, grad_a, grad_r = np.empty_like(xa), np.empty_like(ca), np.empty_like(cr)
        K.smoother_adjoint(to_host(grad_y), xa, y, attack, ca, cr, grad_x, grad_a, grad_r)
        return from_host(grad_x, grad_y), from_host(grad_a, grad_y), from_host(grad_r, grad_y)


def smoother(x: torch.Tensor, c_attack: torch.Tensor, c_release: torch.Tensor) -> torch.Tensor:
    """Attack/release one-pole smoothing of a gain curve x (B, T) dB; pole radii (B,) each."""
    require_kernels()
    return _Smoother.apply(x, c_attack, c_release)


# --------------------------------------------------------------- compressor
class _Compressor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, floor: float, threshold, slope, width, pole_a, pole_r, makeup):
        xa = to_host(x, signal_dtype(x))
        rows = [to_host(t) for t in (threshold, slope, width, pole_a, pole_r, makeup)]
        y, g = np.empty_like(xa), np.empty(xa.shape)
        D.compressor_forward(xa, float(floor), *rows, y, g)
        ctx.arrays, ctx.floor = (xa, g, rows), float(floor)
        ctx.save_for_backward(x, threshold, slope, width, pole_a, pole_r, makeup)
        return from_host(y, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        _saved(ctx)
        xa, g, rows = ctx.arrays
        grad_x, grad_rows = np.empty_like(xa), np.empty((xa.shape[0], 6))
        D.compressor_adjoint(to_host(grad_y, signal_dtype(grad_y)), xa, g, ctx.floor, *rows, grad_x, grad_rows)
        grad_rows = from_host(grad_rows, grad_y)
        return (from_host(grad_x, grad_y), None, *grad_rows.unbind(1))


def compressor(x: torch.Tensor, floor: float, threshold: torch.Tensor, slope: torch.Tensor, width: torch.Tensor,
               pole_a: torch.Tensor, pole_r: torch.Tensor, makeup: torch.Tensor) -> torch.Tensor:
    """Feed-forward compressor x (B, T) V -> (B, T) V, fused (see :mod:`._dynamics`); knobs (B,) each.

    floor: V^2 inside the level's log; threshold, width (knee, > 0), makeup: dB; slope = 1/ratio - 1;
    pole_a, pole_r: attack and release pole radii.
    """
    require_kernels()
    return _Compressor.apply(x, floor, threshold, slope, width, pole_a, pole_r, makeup)


# -------------------------------------------------------------------- modes
class _Modal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f, a1, a2, gain, cubic, weight):
        arrays = [to_host(t) for t in (f, a1, a2, gain, cubic, weight)]
        y = np.empty_like(arrays[0])
        q = np.empty(a1.shape + (f.shape[1],))
        _iir.modal_forward(*arrays, y, q)
        ctx.arrays, ctx.q = arrays, q
        ctx.save_for_backward(f, a1, a2, gain, cubic, weight)
        return from_host(y, f)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        _saved(ctx)
        f, a1, a2, gain, cubic, weight = ctx.arrays
        grad_f = np.empty_like(f)
        grads = [np.empty_like(a1) for _ in range(5)]
        _iir.modal_adjoint(to_host(grad_y), f, ctx.q, a1, a2, gain, cubic, weight, grad_f, *grads)
        grads[4] = grads[4].sum(axis=0)
        return (from_host(grad_f, grad_y), *(from_host(g, grad_y) for g in grads))


def modal(f: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, gain: torch.Tensor, cubic: torch.Tensor,
          weight: torch.Tensor) -> torch.Tensor:
    """Sum of driven modes: f (B, T) -> y (B, T); a1, a2, gain, cubic (B, M); weight (M,)."""
    require_kernels()
    return _Modal.apply(f, a1, a2, gain, cubic, weight)
