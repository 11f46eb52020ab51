"""The PhyLL acoustic chaotic cavity (Momeni et al., Science 2023) as a measured device."""

from __future__ import annotations

import inspect
import os
from typing import Any

from ...data import load_phyll_cavity
from ...errors import ConfigurationError
from .measured_device import MeasuredDevice

#: The cavity's drive range: amplitudes sent to its 20 inputs lie in [0, 1).
DRIVE_RANGE = (0.0, 1.0)


def phyll_cavity(data_dir: str | os.PathLike[str] | None = None, *, method: str = "ridge-rff",
                 input_bounds: tuple[float, float] = DRIVE_RANGE, **kwargs: Any) -> MeasuredDevice:
    """The cavity answered from its 10,000 measured pairs: ``(B, 20) -> (B, 20)``, dimensionless.

    Inputs are drive amplitudes in ``input_bounds`` (default the full drive range
    [0, 1]; the measured drives span [1e-5, 0.99999]); outputs are the measured
    responses (about 0..1.94). ``method`` and ``**kwargs`` go to
    :class:`MeasuredDevice`; the default ``"ridge-rff"`` has the lowest held-out
    error on this data (see :mod:`physnn.devices.measured.measured_device`).

    Raises:
        physnn.errors.DataNotFoundError: the CSV files are not in the data
            directory (``data_dir``, else ``$PHYSNN_DATA``, else the user cache).
        physnn.errors.ConfigurationError: a keyword that :class:`MeasuredDevice` does not take.
    """
    takes = set(inspect.signature(MeasuredDevice).parameters) - {"x_measured", "y_measured", "method", "name",
                                                                    "input_bounds"}
    unknown = sorted(set(kwargs) - takes)
    if unknown:
        raise ConfigurationError(f"phyll_cavity: unknown setting(s) {unknown}; it takes data_dir, method, "
                                 f"input_bounds and MeasuredDevice's {sorted(takes)}")
    x, y = load_phyll_cavity(data_dir)
    return MeasuredDevice(x, y, method=method, name="phyll-cavity", input_bounds=input_bounds, **kwargs)
