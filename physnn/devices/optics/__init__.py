"""Optical devices: the platform most deep physical networks are built on.

* :class:`ScatteringMedium`: SLM -> complex transmission matrix -> camera (PhyLL-style).
* :class:`DiffractiveNetwork`: phase masks separated by angular-spectrum free-space propagation.
* :class:`MZIMesh`: a programmable Clements interferometer mesh.
* :class:`SHGCrystal`: broadband second-harmonic generation in a chi(2) crystal.

Each class is imported on first use (module ``__getattr__``), so
``import physnn.devices.optics`` stays light. Units: docs/optics.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ScatteringMedium": ".scattering",
    "DiffractiveNetwork": ".diffractive",
    "PowerFractions": ".diffractive",
    "MZIMesh": ".mzi",
    "SHGCrystal": ".shg",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
