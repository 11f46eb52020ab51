"""physnn: physical and hybrid neural networks.

Public names: :class:`Device` and :class:`Control` (the one interface every
physical system sits behind), :class:`PhysicalLayer` (a device as a PyTorch
layer with an explicit gradient route), and the :mod:`physnn.errors`
hierarchy. Devices live in :mod:`physnn.devices` (``physnn.devices.create``),
data loaders in :mod:`physnn.data`, conformance checks in :mod:`physnn.testing`.
Heavy libraries (PennyLane, numba, instrument drivers) load only with the
modules that use them.
"""

from . import errors
from .device import Control, Device
from .layer import PhysicalLayer

__version__ = "0.1.0"

__all__ = ["Control", "Device", "PhysicalLayer", "errors", "__version__"]
