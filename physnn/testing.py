"""Conformance checks every physnn device must pass: ``check_device(device)``.

Run it on a new device (in its test suite) to prove that it honours the
contract of :class:`physnn.Device`: shapes and dtypes, call counting, batch
independence, determinism under a seed, rejection of every kind of bad input
with the right error, ``gradcheck`` in float64 where differentiable, and
consistent gradient routes (twin == autograd, SPSA aligned with autograd; a
black box refusing autograd).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .device import Device
from .errors import ConfigurationError, ControlError, DeviceCheckError, GradientRouteError, InputError
from .layer import PhysicalLayer

CHECKS = ("shapes", "counter", "batch_independence", "determinism", "bad_inputs", "gradcheck", "routes")

__all__ = ["CHECKS", "CheckReport", "DeviceCheckError", "check_device", "check_registered"]


@dataclass
class CheckReport:
    """What :func:`check_device` checked: names that passed, and skipped ones with the reason."""

    device: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"check_device({self.device}): {len(self.passed)} passed, {len(self.skipped)} skipped, "
                 f"{len(self.failed)} failed"]
        lines += [f"  FAIL {k}: {v}" for k, v in self.failed.items()]
        lines += [f"  skip {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)


def check_device(device: Device, *, batch: int = 3, seed: int = 0, checks: tuple[str, ...] = CHECKS,
                 spsa_perturbations: int = 256, max_spsa_dimension: int = 64,
                 rtol: float | None = None) -> CheckReport:
    """Check ``device`` against the :class:`~physnn.Device` contract; raise :class:`DeviceCheckError` on failure.

    Args:
        device: the device under test (use a small configuration: gradcheck
            costs two forward calls per input element).
        batch: batch size of the probes.
        seed: seed of the probe inputs and of the device's generator.
        checks: which of :data:`CHECKS` to run.
        spsa_perturbations: SPSA perturbations for the zeroth-order consistency check.
        max_spsa_dimension: skip that check above this many trainable control elements.
        rtol: tolerance of equality checks (default 1e-10 in float64, 1e-5 in float32).

    Returns:
        A :class:`CheckReport`; skipped checks carry their reason.
    """
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ConfigurationError(f"unknown checks {sorted(unknown)}; available: {list(CHECKS)}")
    dtype = torch.float64 if torch.float64 in device.dtypes else device.dtypes[0]
    tol = rtol if rtol is not None else (1e-10 if dtype == torch.float64 else 1e-5)
    gen = torch.Generator().manual_seed(seed)
    x = _interior(device, device.sample_inputs(batch, generator=gen, dtype=dtype))
    report = CheckReport(device=device._label())
    suite: dict[str, Callable[[], str | None]] = {
        "shapes": lambda: _shapes(device, x),
        "counter": lambda: _counter(device, x),
        "batch_independence": lambda: _batch_independence(device, x, tol),
        "determinism": lambda: _determinism(device, x, seed, tol),
        "bad_inputs": lambda: _bad_inputs(device, x),
        "gradcheck": lambda: _gradcheck(device, x[:2]),
        "routes": lambda: _routes(device, x, seed, tol, spsa_perturbations, max_spsa_dimension),
    }
    for name in checks:
        try:
            skipped = suite[name]()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not just the first
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        if skipped:
            report.skipped[name] = skipped
        else:
            report.passed.append(name)
    if report.failed:
        raise DeviceCheckError(str(report))
    return report


def check_registered(name: str, settings: Mapping[str, Any] | None = None, *, full: bool = False,
                     **options: Any) -> CheckReport:
    """Build registered device ``name`` as ``physnn check NAME`` does, check it, close it.

    The device gets its small check settings (``physnn.devices._registry.check_settings``:
    a few dozen samples instead of 44,100...) updated by ``settings``; ``full=True``
    starts from its full-size defaults instead. ``options`` go to :func:`check_device`.
    """
    from .devices._registry import check_settings, create
    config = ({} if full else check_settings(name)) | dict(settings or {})
    with create(name, **config) as device:
        return check_device(device, **options)


# ---------------------------------------------------------------------- checks
def _shapes(device: Device, x: torch.Tensor) -> None:
    y = device(x)
    expected = (x.shape[0],) + tuple(device.out_shape)
    assert tuple(y.shape) == expected, f"output shape {tuple(y.shape)} != {expected}"
    assert y.dtype == x.dtype, f"output dtype {y.dtype} != input dtype {x.dtype}"
    assert y.device == x.device, f"output on {y.device}, input on {x.device}"


def _counter(device: Device, x: torch.Tensor) -> None:
    calls, samples = device.calls, device.samples
    device(x)
    assert (device.calls, device.samples) == (calls + 1, samples + x.shape[0]), (
        f"counter moved from {(calls, samples)} to {(device.calls, device.samples)} for one call of {x.shape[0]}")


def _batch_independence(device: Device, x: torch.Tensor, tol: float) -> str | None:
    if device.stochastic:
        return "stochastic device: outputs carry fresh noise per call (determinism under a seed is checked)"
    y = device(x)
    for i in range(x.shape[0]):
        _assert_close(device(x[i:i + 1])[0], y[i], tol, f"sample {i} alone vs in its batch")
    flipped = device(x.flip(0))
    _assert_close(flipped.flip(0), y, tol, "batch in reverse order")
    return None


def _determinism(device: Device, x: torch.Tensor, seed: int, tol: float) -> None:
    device.reseed(seed)
    first = device(x)
    device.reseed(seed)
    _assert_close(device(x), first, 0.0 if device.stochastic else tol, "two runs under the same seed")


def _bad_inputs(device: Device, x: torch.Tensor) -> None:
    cases: list[tuple[str, type[Exception], Callable[[], object]]] = [
        ("numpy input", InputError, lambda: device(np.asarray(x.detach().cpu()))),
        ("integer dtype", InputError, lambda: device(x.round().to(torch.int64))),
        ("no batch dimension", InputError, lambda: device(x[0])),
        ("extra dimension", InputError, lambda: device(x.unsqueeze(-1))),
        ("NaN in x", InputError, lambda: device(_poison(x, math.nan))),
        ("Inf in x", InputError, lambda: device(_poison(x, math.inf))),
        ("unknown control", ControlError, lambda: device(x, {"no_such_knob": 0.0})),
    ]
    if device.in_shape:
        wrong = list(x.shape)
        wrong[-1] += 1
        cases.append(("wrong sample shape", InputError, lambda: device(torch.zeros(wrong, dtype=x.dtype))))
    if device.input_bounds is not None:
        lo, hi = device.input_bounds
        if math.isfinite(hi):
            cases.append(("x above input bounds", InputError, lambda: device(_poison(x, hi + 1 + abs(hi)))))
        if math.isfinite(lo):
            cases.append(("x below input bounds", InputError, lambda: device(_poison(x, lo - 1 - abs(lo)))))
    for c in device.controls:
        good = c.default_tensor(x.dtype, x.device)
        cases.append((f"control {c.name} wrong shape", ControlError,
                      lambda good=good, c=c: device(x, {c.name: good.unsqueeze(-1).repeat_interleave(2, -1)})))
        cases.append((f"control {c.name} NaN", ControlError,
                      lambda good=good, c=c: device(x, {c.name: torch.full_like(good, math.nan)})))
        if math.isfinite(c.high):
            cases.append((f"control {c.name} above bounds", ControlError,
                          lambda good=good, c=c: device(x, {c.name: torch.full_like(good, c.high + 1 + abs(c.high))})))
        if math.isfinite(c.low):
            cases.append((f"control {c.name} below bounds", ControlError,
                          lambda good=good, c=c: device(x, {c.name: torch.full_like(good, c.low - 1 - abs(c.low))})))
        if not device.batched_controls:
            per_sample = good.expand((x.shape[0],) + tuple(c.shape))
            cases.append((f"control {c.name} per sample", ControlError,
                          lambda per_sample=per_sample, c=c: device(x, {c.name: per_sample})))
    if not device.differentiable:
        cases.append(("autograd through a black box", GradientRouteError,
                      lambda: device(x.clone().requires_grad_())))
    wrong_kind = []
    for label, error, call in cases:
        try:
            call()
        except error:
            continue
        except Exception as exc:  # noqa: BLE001
            wrong_kind.append(f"{label}: raised {type(exc).__name__} ({exc}), expected {error.__name__}")
            continue
        wrong_kind.append(f"{label}: accepted silently, expected {error.__name__}")
    assert not wrong_kind, "; ".join(wrong_kind)


def _gradcheck(device: Device, x: torch.Tensor) -> str | None:
    if not device.differentiable:
        return "black box (differentiable=False): no gradients to check; the refusal is checked in bad_inputs"
    if torch.float64 not in device.dtypes:
        return "device does not run in float64, which gradcheck needs"
    names = [c.name for c in device.controls]
    values = [_interior_control(c, x) for c in device.controls]

    def f(x_, *vals):
        return device(x_, dict(zip(names, vals)))

    inputs = (x.detach().double().requires_grad_(), *[v.requires_grad_() for v in values])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4), "gradcheck failed"
    return None


def _routes(device: Device, x: torch.Tensor, seed: int, tol: float, perturbations: int,
            max_dimension: int) -> str | None:
    if not device.differentiable:
        try:
            PhysicalLayer(device, route="autograd")
        except GradientRouteError:
            pass
        else:
            raise AssertionError("PhysicalLayer(route='autograd') accepted a black box")
        layer = PhysicalLayer(device, route="none")
        assert layer(x).grad_fn is None, "route 'none' returned an output attached to a graph"
        if device.controls:
            layer = PhysicalLayer(device, route="zeroth_order", perturbations=2, seed=seed).to(x.dtype)
            layer(x).square().sum().backward()
            for name, p in layer.raw_controls.items():
                assert p.grad is not None and bool(torch.isfinite(p.grad).all()), f"SPSA gave no finite grad for {name}"
        return None
    controls = {c.name: _interior_control(c, x) for c in device.controls}
    weight = torch.randn((x.shape[0],) + tuple(device.out_shape), generator=torch.Generator().manual_seed(seed),
                         dtype=x.dtype)

    def grads(route: str, **kw) -> list[torch.Tensor]:
        layer = PhysicalLayer(device, route=route, controls=controls, seed=seed, **kw).to(x.dtype)
        xi = x.clone().requires_grad_()
        (layer(xi) * weight).sum().backward()
        return [xi.grad] + [p.grad for p in layer.raw_controls.values()]

    reference = grads("autograd")
    for g_twin, g_ref in zip(grads("twin", twin=device), reference):
        _assert_close(g_twin, g_ref, tol, "twin route (twin == device) vs autograd")
    dimension = sum(c.default_tensor().numel() for c in device.controls)
    if dimension == 0:
        return None
    if dimension > max_dimension:
        return f"twin checked; SPSA skipped: {dimension} control elements > max_spsa_dimension={max_dimension}"
    spsa = torch.cat([g.flatten() for g in grads("zeroth_order", perturbations=perturbations, epsilon=1e-4)[1:]])
    exact = torch.cat([g.flatten() for g in reference[1:]])
    if float(exact.norm()) == 0.0:
        return "twin checked; SPSA skipped: the exact control gradient is zero at the probe point"
    cosine = float(torch.nn.functional.cosine_similarity(spsa, exact, dim=0))
    assert cosine > 0.5, f"SPSA control gradient has cosine {cosine:.3f} with autograd (expected > 0.5)"
    return None


# --------------------------------------------------------------------- helpers
def _interior(device: Device, x: torch.Tensor) -> torch.Tensor:
    """Keep probe inputs a little inside the input bounds, so finite differences stay legal."""
    if device.input_bounds is None:
        return x
    lo, hi = device.input_bounds
    margin = 1e-3 * (hi - lo) if math.isfinite(hi - lo) else 1e-3
    return x.clamp(lo + margin, hi - margin)


def _interior_control(control, x: torch.Tensor) -> torch.Tensor:
    value = control.default_tensor(x.dtype, x.device)
    if control.bounded:
        margin = 1e-2 * (control.high - control.low)
        value = value.clamp(control.low + margin, control.high - margin)
    return value


def _poison(x: torch.Tensor, value: float) -> torch.Tensor:
    bad = x.detach().clone()
    bad.view(-1)[0] = value
    return bad


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    error = float((actual.detach() - expected.detach()).abs().max()) if expected.numel() else 0.0
    assert error <= rtol * max(scale, 1e-12) + (0.0 if rtol == 0 else 1e-12), (
        f"{what}: max |difference| {error:.3g} exceeds {rtol:g} x {scale:.3g}")
