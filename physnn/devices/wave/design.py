"""A trained wave medium's design, written for fabrication: density, binary mask, and what they mean.

:func:`export_design` writes, for ``path = "out/lens"``:

* ``lens_density.npy`` / ``.png``: the projected density ``rho~`` (Ny, Nx) in
  [0, 1] (float64 array; 8-bit grey image, black 0, white 1, row 0 at the top);
* ``lens_mask.png`` / ``.csv``: the material mask ``rho~ >= threshold`` (1 =
  material of speed ``c1``, 0 = background ``c0``), one CSV row per grid row;
* ``lens.json``: grid shape, cell size (m), speeds (m/s), projection beta and
  eta, blur radius, threshold, the design region's bounding box and the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from .medium import WaveMedium2D


def export_design(medium: WaveMedium2D, path: str | os.PathLike[str], rho: Any = None, *,
                  threshold: float | None = None) -> dict[str, Path]:
    """Write ``medium``'s projected density for the control ``rho`` (Ny, Nx) (default: its default);
    ``threshold`` (default the projection's eta) binarizes it. Returns the written files by kind."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"export_design: the folder {path.parent} of {path} does not exist")
    threshold = medium.projection_eta if threshold is None else float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ConfigurationError(f"export_design: threshold must lie in (0, 1), got {threshold}")
    probe = torch.zeros((1,) + tuple(medium.in_shape), dtype=torch.float64)
    values = medium.check_controls(None if rho is None else {"rho": torch.as_tensor(rho).detach()}, probe)
    with torch.no_grad():
        density = medium.density(values["rho"].cpu()).numpy()
    mask = (density >= threshold).astype(np.uint8)
    files = {kind: path.with_name(f"{path.name}{suffix}") for kind, suffix in (
        ("density_npy", "_density.npy"), ("density_png", "_density.png"), ("mask_png", "_mask.png"),
        ("mask_csv", "_mask.csv"), ("json", ".json"))}
    np.save(files["density_npy"], density)
    _write_png(files["density_png"], density)
    _write_png(files["mask_png"], mask.astype(np.float64))
    np.savetxt(files["mask_csv"], mask, fmt="%d", delimiter=",")
    region = np.argwhere(medium.design_region.cpu().numpy() > 0)
    sidecar = {
        "shape": list(medium.shape), "cell_size_m": medium.h, "c0_m_per_s": medium.c0, "c1_m_per_s": medium.c1,
        "speed": "c = c0 + (c1 - c0) * density (linear part, m/s)",
        "projection_beta": medium.projection_beta, "projection_eta": medium.projection_eta,
        "blur_radius_cells": medium.blur_radius, "threshold": threshold, "material_cells": int(mask.sum()),
        "design_region_rows": [int(region[:, 0].min()), int(region[:, 0].max())],
        "design_region_cols": [int(region[:, 1].min()), int(region[:, 1].max())],
        "files": {k: p.name for k, p in files.items() if k != "json"},
    }
    files["json"].write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return files


def _write_png(path: Path, image: np.ndarray) -> None:
    """An 8-bit greyscale PNG of ``image`` in [0, 1] (grey level ``round(255 * value)``), one pixel per cell."""
    from PIL import Image  # installed with matplotlib, a base dependency

    Image.fromarray(np.round(255 * image).astype(np.uint8)).save(path)  # uint8 2-D: mode "L"
