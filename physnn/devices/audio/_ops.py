"""Differentiable recursions: numba kernels inside ``torch.autograd.Function``s, plus torch paths.

Each op takes torch tensors (batch first, per-row parameters ``(B,)`` or
``(B, M)``) and returns a tensor of the input's dtype and torch device:

* on CPU tensors (``backend="auto"``, numba installed) it runs the compiled
  forward kernel and, on backward, the compiled adjoint (one reverse
  recursion, float64 inside);
* on any other torch device, with ``backend="torch"``, or without numba (the
  optional extra ``physnn[fast]``), it runs the same
  recursion as a loop of batched torch operations that autograd differentiates
  (slow per sample, but it follows CUDA tensors and needs no kernel).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

try:
    from . import _kernels as K
except ImportError:  # numba is optional: the torch paths below need nothing else
    K = None

BACKENDS = ("auto", "torch")
#: Newton steps of the torch path (its closed-form start is off by at most beta / alpha volts: 3e-6 V for
#: the clipper, 1e-4 V for the overdrive; 4 quadratic steps go below rounding).
_TORCH_NEWTON = 4


def use_kernels(x: torch.Tensor, backend: str) -> bool:
    """True when the numba kernels run: numba installed, CPU tensors and ``backend="auto"``."""
    return K is not None and backend == "auto" and x.device.type == "cpu"


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float64).numpy())


def _back(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(a).to(dtype=like.dtype, device=like.device)


# ------------------------------------------------------------- diode node
class _DiodeNode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, conductance, i_sat, v1, v2, k: float, exact: bool):
        arrays = [_np(t) for t in (s, conductance, i_sat, v1, v2)]
        v, d1, d2 = (np.empty(arrays[0].shape) for _ in range(3))
        K.diode_node_forward(*arrays, float(k), bool(exact), v, d1, d2)
        ctx.arrays, ctx.state, ctx.k, ctx.exact = arrays, (v, d1, d2), float(k), bool(exact)
        return _back(v, s)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_v):
        s, conductance, i_sat, v1, v2 = ctx.arrays
        v, d1, d2 = ctx.state
        grad_s = np.empty_like(s)
        grads = [np.empty_like(conductance) for _ in range(4)]
        K.diode_node_adjoint(_np(grad_v), v, d1, d2, conductance, i_sat, v1, v2, ctx.k, ctx.exact, grad_s, *grads)
        return (_back(grad_s, grad_v), *(_back(g, grad_v) for g in grads), None, None)


def wright_omega_torch(z: torch.Tensor) -> torch.Tensor:
    """Wright omega of a real tensor, same algorithm as the compiled :func:`_kernels.wright_omega`."""
    e = torch.exp(z.clamp(max=-2.0))
    low = e * (1.0 - e * (1.0 - 1.5 * e))
    t = z.clamp(-2.0, 1.0) - 1.0
    mid = 1.0 + t / 2 + t ** 2 / 16 - t ** 3 / 192 - t ** 4 / 3072 + 13 * t ** 5 / 61440
    zc = z.clamp(min=1.0)
    ln = torch.log(zc)
    high = zc - ln + ln / zc + ln * (ln - 2.0) / (2.0 * zc ** 2)
    w = torch.where(z < -2.0, low, torch.where(z <= 1.0, mid, high))
    for _ in range(2):
        r = z - w - torch.log(w)
        wp = 1.0 + w
        u = wp * (wp + 2.0 * r / 3.0)
        w = w * (1.0 + r / wp * (u - 0.5 * r) / (u - r))
    return w


def _diode_torch(s, conductance, i_sat, v1, v2, k: float, exact: bool) -> torch.Tensor:
    alpha = 1.0 + k * conductance
    beta = k * i_sat
    log_c1, log_c2 = torch.log(beta / (alpha * v1)), torch.log(beta / (alpha * v2))
    v_prev = torch.zeros_like(s[:, 0])
    s_prev, id_prev = torch.zeros_like(v_prev), torch.zeros_like(v_prev)
    out = []
    for n in range(s.shape[1]):
        p = v_prev + k * (s[:, n] + s_prev - conductance * v_prev - id_prev)
        qp, qn = p.clamp(min=0.0) + beta, (-p).clamp(min=0.0) + beta
        pos = qp / alpha - v1 * wright_omega_torch(qp / (alpha * v1) + log_c1)
        neg = -(qn / alpha - v2 * wright_omega_torch(qn / (alpha * v2) + log_c2))
        v = torch.where(p >= 0, pos, neg)
        if exact:
            for _ in range(_TORCH_NEWTON):
                e1, e2 = torch.exp(v / v1), torch.exp(-v / v2)
                v = v - (alpha * v + beta * (e1 - e2) - p) / (alpha + beta * (e1 / v1 + e2 / v2))
            id_prev = i_sat * (torch.exp(v / v1) - torch.exp(-v / v2))
        else:
            id_prev = torch.where(v >= 0, i_sat * (torch.exp(v.clamp(min=0) / v1) - 1.0),
                                  i_sat * (1.0 - torch.exp(-v.clamp(max=0) / v2)))
        out.append(v)
        v_prev, s_prev = v, s[:, n]
    return torch.stack(out, dim=1)


def diode_node(s: torch.Tensor, conductance: torch.Tensor, i_sat: torch.Tensor, v1: torch.Tensor,
               v2: torch.Tensor, k: float, exact: bool, backend: str = "auto") -> torch.Tensor:
    """Node voltage (B, T) in V of ``C dV/dt = s - G V - i_d(V)`` (trapezoidal, solved exactly per sample).

    Args: s (B, T) source current in A; conductance (B,) S; i_sat (B,) A; v1, v2
    (B,) V (ideality x thermal voltage of the forward and the reverse diode);
    k = dt / (2 C) in V/A; exact: both diodes (Newton-polished closed form) or
    only the forward-biased one (pure Wright-omega closed form).
    """
    if use_kernels(s, backend):
        return _DiodeNode.apply(s, conductance, i_sat, v1, v2, k, exact)
    return _diode_torch(s, conductance, i_sat, v1, v2, k, exact)


# ------------------------------------------------------------------ biquad
class _Biquad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef):
        xa, ca = _np(x), _np(coef)
        y = np.empty_like(xa)
        K.biquad_forward(xa, ca, y)
        ctx.arrays = (xa, ca, y)
        return _back(y, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        xa, ca, y = ctx.arrays
        grad_x, grad_c = np.empty_like(xa), np.empty_like(ca)
        K.biquad_adjoint(_np(grad_y), xa, y, ca, grad_x, grad_c)
        return _back(grad_x, grad_y), _back(grad_c, grad_y)


def _biquad_torch(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    b0, b1, b2, a1, a2 = coef.unbind(1)
    zero = torch.zeros_like(x[:, 0])
    x1 = x2 = y1 = y2 = zero
    out = []
    for n in range(x.shape[1]):
        yn = b0 * x[:, n] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out.append(yn)
        x2, x1, y2, y1 = x1, x[:, n], y1, yn
    return torch.stack(out, dim=1)


def biquad(x: torch.Tensor, coef: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Filter x (B, T) with one biquad per row, coef (B, 5) = ``(b0, b1, b2, a1, a2)`` (a0 = 1)."""
    if use_kernels(x, backend):
        return _Biquad.apply(x, coef)
    return _biquad_torch(x, coef)


# ----------------------------------------------------------------- smoother
class _Smoother(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, c_attack, c_release):
        xa, ca, cr = _np(x), _np(c_attack), _np(c_release)
        y = np.empty_like(xa)
        attack = np.empty(xa.shape, dtype=np.uint8)
        K.smoother_forward(xa, ca, cr, y, attack)
        ctx.arrays = (xa, y, attack, ca, cr)
        return _back(y, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        xa, y, attack, ca, cr = ctx.arrays
        grad_x, grad_a, grad_r = np.empty_like(xa), np.empty_like(ca), np.empty_like(cr)
        K.smoother_adjoint(_np(grad_y), xa, y, attack, ca, cr, grad_x, grad_a, grad_r)
        return _back(grad_x, grad_y), _back(grad_a, grad_y), _back(grad_r, grad_y)


def _smoother_torch(x: torch.Tensor, c_attack: torch.Tensor, c_release: torch.Tensor) -> torch.Tensor:
    prev = torch.zeros_like(x[:, 0])
    out = []
    for n in range(x.shape[1]):
        c = torch.where(x[:, n] < prev, c_attack, c_release)
        prev = c * prev + (1.0 - c) * x[:, n]
        out.append(prev)
    return torch.stack(out, dim=1)


def smoother(x: torch.Tensor, c_attack: torch.Tensor, c_release: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Attack/release one-pole smoothing of a gain curve x (B, T) dB; pole radii (B,) each."""
    if use_kernels(x, backend):
        return _Smoother.apply(x, c_attack, c_release)
    return _smoother_torch(x, c_attack, c_release)


# -------------------------------------------------------------------- modes
class _Modal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f, a1, a2, gain, cubic, weight):
        arrays = [_np(t) for t in (f, a1, a2, gain, cubic, weight)]
        y = np.empty_like(arrays[0])
        q = np.empty(a1.shape + (f.shape[1],))
        K.modal_forward(*arrays, y, q)
        ctx.arrays, ctx.q = arrays, q
        return _back(y, f)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        f, a1, a2, gain, cubic, weight = ctx.arrays
        grad_f = np.empty_like(f)
        grads = [np.empty_like(a1) for _ in range(4)]
        K.modal_adjoint(_np(grad_y), f, ctx.q, a1, a2, gain, cubic, weight, grad_f, *grads)
        grad_w = np.einsum("bt,bmt->m", _np(grad_y), ctx.q)
        return (_back(grad_f, grad_y), *(_back(g, grad_y) for g in grads), _back(grad_w, grad_y))


def _modal_torch(f, a1, a2, gain, cubic, weight) -> torch.Tensor:
    q1 = q2 = torch.zeros_like(a1)
    out = []
    for n in range(f.shape[1]):
        qn = a1 * q1 - a2 * q2 + gain * f[:, n:n + 1] - cubic * q1 ** 3
        out.append(qn @ weight)
        q2, q1 = q1, qn
    return torch.stack(out, dim=1)


def modal(f: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, gain: torch.Tensor, cubic: torch.Tensor,
          weight: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Sum of driven modes: f (B, T) -> y (B, T); a1, a2, gain, cubic (B, M); weight (M,)."""
    if use_kernels(f, backend):
        return _Modal.apply(f, a1, a2, gain, cubic, weight)
    return _modal_torch(f, a1, a2, gain, cubic, weight)
