"""EffectChain: audio devices in series, one device with every stage's knobs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...device import Control, Device
from ...errors import ConfigurationError
from .preset import save_preset


class EffectChain(Device):
    """Stages in series: x (B, T) volts -> stage_k(...stage_1(x)) (B, T) volts.

    Args:
        stages: audio devices (``sample_rate`` and ``num_samples`` attributes) sharing
            one sample rate and length; simulations and black boxes may mix.
        names: one name per stage (default: each stage's ``name``, numbered when repeated).

    Each stage's control ``knob`` appears as ``"<stage name>:<knob>"`` (a dot cannot
    name a PyTorch parameter). The chain
    is differentiable when every stage is, and takes per-sample settings when
    every stage does.
    """

    name = "effect-chain"

    def __init__(self, stages: Sequence[Device], *, names: Sequence[str] | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        stages = list(stages)
        if not stages:
            raise ConfigurationError("EffectChain needs at least one stage")
        not_audio = [type(s).__name__ for s in stages if not hasattr(s, "sample_rate")]
        if not_audio:
            raise ConfigurationError(f"EffectChain stages must be audio devices (with a sample_rate); got {not_audio}")
        rates = {float(s.sample_rate) for s in stages}
        shapes = {tuple(s.in_shape) for s in stages} | {tuple(s.out_shape) for s in stages}
        if len(rates) != 1 or len(shapes) != 1:
            raise ConfigurationError(f"EffectChain stages must share one sample rate and signal shape; got rates "
                                     f"{sorted(rates)} Hz and shapes {sorted(shapes)}")
        names = list(names) if names is not None else self._default_names(stages)
        if len(names) != len(stages) or len(set(names)) != len(names):
            raise ConfigurationError(f"EffectChain needs one distinct name per stage, got {names}")
        self.stages = nn.ModuleList(stages)
        self.stage_names = tuple(names)
        self.sample_rate = stages[0].sample_rate
        self.in_shape = self.out_shape = tuple(stages[0].in_shape)
        self.differentiable = all(s.differentiable for s in stages)
        self.batched_controls = all(s.batched_controls for s in stages)
        self.dtypes = tuple(d for d in stages[0].dtypes if all(d in s.dtypes for s in stages))
        self.controls = tuple(Control(f"{n}:{c.name}", c.shape, c.low, c.high, c.unit, c.default, c.doc)
                              for n, s in zip(names, stages) for c in s.controls)
        if seed is not None:
            self.reseed(seed)

    @staticmethod
    def _default_names(stages: Sequence[Device]) -> list[str]:
        names, seen = [], {}
        for s in stages:
            seen[s.name] = seen.get(s.name, 0) + 1
            names.append(s.name if seen[s.name] == 1 else f"{s.name}-{seen[s.name]}")
        return names

    @property
    def stochastic(self) -> bool:
        return any(s.stochastic for s in self.stages)

    @property
    def num_samples(self) -> int:
        """T, samples per signal."""
        return self.in_shape[0]

    def stage(self, name: str) -> Device:
        """The stage called ``name``."""
        return self.stages[self.stage_names.index(name)]

    def export_preset(self, path: str | os.PathLike[str], controls: Mapping[str, Any] | None = None) -> Path:
        """Write the chain and its knobs ``controls`` (default the defaults; e.g. a trained
        ``layer.control_values()``) as a JSON preset that ``physnn process --preset`` reads
        (:mod:`physnn.devices.audio.preset`). Returns ``path``."""
        return save_preset(self, path, controls)

    def resized(self, num_samples: int) -> EffectChain:
        """The same chain (shared stages' parameters) for signals of ``num_samples`` samples."""
        return EffectChain([s.resized(num_samples) for s in self.stages], names=self.stage_names, seed=self.seed)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Drives typical of the first stage."""
        return self.stages[0].sample_inputs(n, generator if generator is not None else self.generator, dtype)

    def reseed(self, seed: int | None = None) -> None:
        super().reseed(seed)
        for i, s in enumerate(getattr(self, "stages", ())):
            s.reseed(None if self.seed is None else self.seed + i)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        for name, stage in zip(self.stage_names, self.stages):
            prefix = name + ":"
            x = stage(x, {k[len(prefix):]: v for k, v in controls.items() if k.startswith(prefix)})
        return x
