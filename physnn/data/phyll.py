"""Measured input/output pairs of the PhyLL acoustic chaotic cavity (Momeni et al., Science 2023)."""

from __future__ import annotations

import os

import numpy as np

from physnn.data._paths import find_file
from physnn.errors import DataFormatError

N_PAIRS = 10000
N_CHANNELS = 20


def _load_csv(
    relpath: str, data_dir: str | os.PathLike[str] | None, *, verify: bool, download: bool
) -> np.ndarray:
    path = find_file(relpath, data_dir, verify_checksum=verify, download=download)
    table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (N_PAIRS + 1, N_CHANNELS):
        raise DataFormatError(f"{path}: expected {(N_PAIRS + 1, N_CHANNELS)} values, got {table.shape}")
    if np.any(table[0] != 0):
        raise DataFormatError(f"{path}: row 0 should be the all-zero placeholder row, got {table[0]}")
    return table[1:]


def load_phyll_cavity(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The 10000 measured (drive, response) pairs of the PhyLL acoustic cavity.

    Reads ``phyll/acoustic_x_data.csv`` and ``phyll/acoustic_y_data.csv`` (upstream
    ``Experimental Data/Acoustic/x_data.csv`` / ``y_data.csv``). Returns ``(x, y)``, both
    float64 ``(10000, 20)``: ``x`` the drive amplitudes in [0, 1) sent to the 20 inputs,
    ``y`` the 20 measured outputs (dimensionless, about 0..1.94) for the same row.

    Both files have 10001 rows; row 0 is all zeros in *both* (a placeholder, not a
    measurement; PhyLL's own code reads it as the pandas header row), so it is dropped.
    """
    x = _load_csv("phyll/acoustic_x_data.csv", data_dir, verify=verify, download=download)
    y = _load_csv("phyll/acoustic_y_data.csv", data_dir, verify=verify, download=download)
    return x, y
