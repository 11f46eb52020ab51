"""Deep physical networks that every training method in :mod:`physnn.training` shares.

A :class:`PhysicalBlock` is one layer of a deep physical network in the style of
PhyLL (Momeni et al., Science 2023)::

    h (B, d) --drive--> device --> y (B, m) --cat(y, h)--> linear --> (B, width)

The *drive* maps the digital activations into the device's physical input
range, the device (held by a :class:`~physnn.PhysicalLayer`, so its gradient
route is explicit) transforms it, and a trainable digital linear map mixes the
measured outputs, optionally concatenated with the block's raw input.
:func:`physical_network` chains such blocks. The same network is trained by
backprop, physics-aware training, zeroth-order estimates (changing only the
route of its physical layers) and by model-free forward-forward.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .._saving import builds_model
from ..device import Device
from ..errors import ConfigurationError
from ..layer import PhysicalLayer

#: Drive maps from digital activations to physical inputs (see :class:`Drive`).
DRIVES = ("unit-norm", "tanh")


class Drive(nn.Module):
    """Maps activations ``h`` (B, d) into a device's physical input range, differentiably.

    * ``"unit-norm"`` (PhyLL): ``scale * |h| / (||h||_2 + eps)``, values in ``[0, scale]``;
      only the direction of ``h`` reaches the device.
    * ``"tanh"``: ``scale * tanh(h)``, values in ``(-scale, scale)``.

    ``scale`` is in the device's input units. The range must lie within the
    device's ``input_bounds`` (checked by :meth:`check_fits`).
    """

    def __init__(self, kind: str = "unit-norm", *, scale: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        if kind not in DRIVES:
            raise ConfigurationError(f"drive must be one of {list(DRIVES)}, got {kind!r}")
        if not scale > 0:
            raise ConfigurationError(f"drive scale must be > 0, got {scale}")
        self.kind, self.scale, self.eps = kind, float(scale), float(eps)

    @property
    def range(self) -> tuple[float, float]:
        """The interval the drive's values lie in, input units."""
        return (0.0, self.scale) if self.kind == "unit-norm" else (-self.scale, self.scale)

    def check_fits(self, device: Device) -> None:
        """Raise :class:`ConfigurationError` when the drive can leave ``device.input_bounds``."""
        if device.input_bounds is None:
            return
        lo, hi = device.input_bounds
        d_lo, d_hi = self.range
        if d_lo < lo or d_hi > hi:
            raise ConfigurationError(f"drive {self.kind!r} with scale {self.scale:g} spans [{d_lo:g}, {d_hi:g}], "
                                     f"outside the input range [{lo:g}, {hi:g}] of {device._label()}; "
                                     "lower the scale or choose another drive")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "tanh":
            return self.scale * torch.tanh(h)
        return self.scale * h.abs() / (h.norm(dim=1, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"{self.kind!r}, scale={self.scale:g}"


class PhysicalBlock(nn.Module):
    """``linear(cat(physical(drive(h)), h))``: one layer of a deep physical network.

    Args:
        physical: the device as a :class:`~physnn.PhysicalLayer` whose encoder is
            the :class:`Drive`; its route decides how gradients cross the device.
        linear: the trainable digital map, ``in_features = m + d`` with
            ``concat_input`` (``m`` device outputs, ``d`` block inputs), else ``m``.
        concat_input: concatenate the block's raw input to the measured outputs.

    Shapes: ``h`` (B, d) -> (B, linear.out_features).
    """

    def __init__(self, physical: PhysicalLayer, linear: nn.Linear, *, concat_input: bool = True) -> None:
        super().__init__()
        self.physical, self.linear, self.concat_input = physical, linear, bool(concat_input)

    def measure(self, h: torch.Tensor) -> torch.Tensor:
        """The linear map's input: ``cat(device(drive(h)), h)`` (or the device output alone)."""
        y = self.physical(h).to(h.dtype)
        return torch.cat([y, h], dim=1) if self.concat_input else y

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(self.measure(h))


@builds_model
def physical_network(devices: Sequence[Device], widths: Sequence[int], *, route: str = "none",
                     twins: Sequence[Device | None] | None = None, concat_input: bool = True,
                     drive: str = "unit-norm", drive_scale: float = 1.0, perturbations: int = 8,
                     epsilon: float = 1e-2, seed: int = 0) -> nn.Sequential:
    """Chain :class:`PhysicalBlock` s: block ``k`` drives ``devices[k]`` and maps to ``widths[k]`` features.

    Args:
        devices: one device per block (the same object may repeat: a physical
            system reused in time). Each takes a flat drive ``(B, d_k)`` where
            ``d_0`` is the data's feature count and ``d_k = widths[k - 1]``.
        widths: output features of each block's linear map; the last block's
            are the network's outputs (class logits for supervised training).
        route: initial gradient route of every physical layer (training methods set their own).
        twins: a differentiable twin per block, for the ``"twin"`` route.
        concat_input: concatenate each block's input to its device outputs (PhyLL).
        drive, drive_scale: how activations become physical inputs (:class:`Drive`).
        perturbations, epsilon: SPSA settings of each physical layer (see :class:`~physnn.PhysicalLayer`).
        seed: seeds the linear maps' initialization and the SPSA perturbations.

    Returns:
        ``nn.Sequential`` of blocks, ``(B, d_0) -> (B, widths[-1])``.
    """
    devices, widths = list(devices), [int(w) for w in widths]
    if not devices or len(devices) != len(widths):
        raise ConfigurationError(f"physical_network needs one width per device, got {len(devices)} devices "
                                 f"and {len(widths)} widths")
    twins = list(twins) if twins is not None else [None] * len(devices)
    if len(twins) != len(devices):
        raise ConfigurationError(f"physical_network got {len(twins)} twins for {len(devices)} devices")
    generator = torch.Generator().manual_seed(seed)
    blocks = []
    for k, (device, twin, width) in enumerate(zip(devices, twins, widths)):
        if len(device.in_shape) != 1 or len(device.out_shape) != 1:
            raise ConfigurationError(f"block {k}: {device._label()} must take and give flat vectors, has "
                                     f"in_shape {device.in_shape}, out_shape {device.out_shape}")
        if k > 0 and device.in_shape[0] != widths[k - 1]:
            raise ConfigurationError(f"block {k}: {device._label()} takes {device.in_shape[0]} inputs but block "
                                     f"{k - 1} gives widths[{k - 1}] = {widths[k - 1]}")
        encoder = Drive(drive, scale=drive_scale)
        encoder.check_fits(device)
        layer = PhysicalLayer(device, route, twin=twin, encoder=encoder, perturbations=perturbations,
                              epsilon=epsilon, seed=seed + k)
        n_in = device.out_shape[0] + (device.in_shape[0] if concat_input else 0)
        linear = nn.Linear(n_in, width)
        _init_linear(linear, generator)
        blocks.append(PhysicalBlock(layer, linear, concat_input=concat_input))
    return nn.Sequential(*blocks)


@builds_model
def digital_network(n_inputs: int, widths: Sequence[int], *, seed: int = 0) -> nn.Sequential:
    """A purely digital MLP ``Linear -> ReLU -> ... -> Linear``: ``(B, n_inputs) -> (B, widths[-1])``."""
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    n = int(n_inputs)
    for k, width in enumerate(widths):
        linear = nn.Linear(n, int(width))
        _init_linear(linear, generator)
        layers += [linear] if k == len(widths) - 1 else [linear, nn.ReLU()]
        n = int(width)
    return nn.Sequential(*layers)


def physical_layers(model: nn.Module) -> Iterator[PhysicalLayer]:
    """Every :class:`~physnn.PhysicalLayer` inside ``model`` (including ``model`` itself)."""
    for module in model.modules():
        if isinstance(module, PhysicalLayer):
            yield module


def _init_linear(linear: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default initialization, drawn from ``generator`` (independent of the global RNG)."""
    bound = 1 / math.sqrt(linear.in_features)
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        if linear.bias is not None:
            linear.bias.uniform_(-bound, bound, generator=generator)
