"""CallableDevice: any Python function as a physnn device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ...device import Control, Device
from ...errors import ConfigurationError, DeviceOutputError


class CallableDevice(Device):
    """A function ``fn(x, **controls) -> y`` behind the :class:`~physnn.Device` contract.

    The base class validates shapes, dtypes, finiteness, input range and control
    bounds before ``fn`` runs, and checks what it returns, so a plain function
    gets the same errors as any other device.

    Args:
        fn: the system. With ``backend="torch"`` it receives tensors, with
            ``backend="numpy"`` float64 arrays (controls as arrays of their
            declared shape); it returns an array or tensor of shape
            ``(B, *out_shape)`` (``out_shape`` when ``per_sample``).
        in_shape, out_shape: shape of one sample in and out.
        controls: the knobs ``fn`` takes as keyword arguments.
        backend: ``"torch"`` or ``"numpy"``.
        per_sample: call ``fn`` once per sample (``x`` of shape ``in_shape``)
            instead of once per batch.
        differentiable: ``fn`` is written in torch and autograd may run through
            it (``backend="torch"`` only).
        batched_controls: ``fn`` accepts one setting per sample, ``(B, *shape)``.
        input_bounds: the physical range of the drive, ``(low, high)``.
        stochastic: ``fn`` draws noise; it then receives ``generator=``, a
            ``torch.Generator`` (torch) or ``numpy.random.Generator`` (numpy)
            seeded from the device's own generator, so runs repeat under a seed.
        name: registry-style name used in messages (default ``fn.__name__``).
        seed: seed of the device's generator.
    """

    not_rebuildable = "it wraps a Python function, which is code, not data"

    def __init__(self, fn: Callable[..., Any], in_shape: Sequence[int], out_shape: Sequence[int], *,
                 controls: Sequence[Control] = (), backend: str = "torch", per_sample: bool = False,
                 differentiable: bool = False, batched_controls: bool = False,
                 input_bounds: tuple[float, float] | None = None, stochastic: bool = False,
                 name: str | None = None, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if not callable(fn):
            raise ConfigurationError(f"CallableDevice needs a function, got {type(fn).__name__}")
        if backend not in ("torch", "numpy"):
            raise ConfigurationError(f"CallableDevice backend must be 'torch' or 'numpy', got {backend!r}")
        if differentiable and backend != "torch":
            raise ConfigurationError("CallableDevice: differentiable=True needs backend='torch' "
                                     "(autograd cannot run through numpy)")
        self.fn, self.backend, self.per_sample = fn, backend, bool(per_sample)
        self.name = name or getattr(fn, "__name__", "callable")
        self.in_shape, self.out_shape = tuple(int(s) for s in in_shape), tuple(int(s) for s in out_shape)
        self.controls = tuple(controls)
        self.differentiable, self.batched_controls = bool(differentiable), bool(batched_controls)
        self.input_bounds = None if input_bounds is None else (float(input_bounds[0]), float(input_bounds[1]))
        self.stochastic = bool(stochastic)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        extra: dict[str, Any] = {}
        if self.stochastic:
            seed = int(torch.randint(0, 2**62, (), generator=self.generator))
            extra["generator"] = (torch.Generator().manual_seed(seed) if self.backend == "torch"
                                  else np.random.default_rng(seed))
        if not self.per_sample:
            return self._call(x, controls, extra, x)
        outputs = []
        for i in range(x.shape[0]):
            per = {k: (v[i] if self.batched_controls and v.dim() > len(self.control(k).shape) else v)
                   for k, v in controls.items()}
            outputs.append(self._call(x[i], per, extra, x))
        return torch.stack(outputs)

    def _call(self, x: torch.Tensor, controls: dict[str, torch.Tensor], extra: dict[str, Any],
              like: torch.Tensor) -> torch.Tensor:
        if self.backend == "torch":
            y = self.fn(x, **controls, **extra)
        else:
            arrays = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in controls.items()}
            y = self.fn(x.detach().cpu().numpy().astype(np.float64), **arrays, **extra)
        try:
            if isinstance(y, torch.Tensor):
                return y.to(dtype=like.dtype, device=like.device)
            return torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=like.dtype, device=like.device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DeviceOutputError(f"{self._label()}: the function returned {type(y).__name__}, "
                                    "not an array or tensor of numbers") from exc
