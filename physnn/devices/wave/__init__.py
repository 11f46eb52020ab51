"""Wave media: a fast, memory-lean, differentiable nonlinear 2D wave simulator.

:class:`WaveMedium2D` is the device; :func:`point`, :func:`line` and :func:`region` place
sources and probes; :mod:`physnn.devices.wave.plots` draws what users look at (density map,
field snapshots, probe intensities, confusion matrix).
"""

from ._solver import Solution
from .geometry import Port, line, point, region
from .medium import WaveMedium2D

__all__ = ["Port", "Solution", "WaveMedium2D", "line", "point", "region"]
