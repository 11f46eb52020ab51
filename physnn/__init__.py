"""physnn: physical and hybrid neural networks.

Public names: :class:`Device` and :class:`Control` (the one interface every
physical system sits behind), :class:`PhysicalLayer` (a device as a PyTorch
layer with an explicit gradient route), :func:`save` and :func:`load` (a
trained model with its devices as data, deployable onto other instances), and
the :mod:`physnn.errors` hierarchy. Devices live in :mod:`physnn.devices` (``physnn.devices.create``),
data loaders in :mod:`physnn.data`, conformance checks in :mod:`physnn.testing`.
Heavy libraries (PennyLane, numba, instrument drivers) load only with the
modules that use them.
"""

from importlib import metadata as _metadata

from . import errors
from ._saving import load, save
from .device import Control, Device
from .layer import PhysicalLayer

try:  # the installed distribution's version, i.e. pyproject.toml's
    __version__ = _metadata.version("physnn")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Control", "Device", "PhysicalLayer", "errors", "load", "save", "__version__"]
