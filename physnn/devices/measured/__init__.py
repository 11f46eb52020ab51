"""Devices known only from measured input/output pairs of a real system."""

from .cavity import phyll_cavity
from .measured_device import METHODS, MeasuredDevice, holdout_scores

__all__ = ["METHODS", "MeasuredDevice", "holdout_scores", "phyll_cavity"]
