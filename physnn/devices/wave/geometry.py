"""Where things sit in a wave medium: sources, probes, the absorbing layer, the design region.

Coordinates are grid cells ``(row, col)`` = ``(y, x)``, row 0 at the top, on a grid of
shape ``(Ny, Nx)``. A :class:`Port` is a set of cells with weights; it serves as a source
(each cell receives ``weight * x(t)``) or as a probe (it reads the weighted mean of the
field, and of its square for the intensity). Build one with :func:`point`, :func:`line`
or :func:`region`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigurationError


@dataclass(frozen=True)
class Port:
    """Cells (K, 2) as (row, col) and their weights (K,); ``kind`` names it in messages and plots."""

    cells: tuple[tuple[int, int], ...]
    weights: tuple[float, ...]
    kind: str = "point"

    def __post_init__(self) -> None:
        if not self.cells or len(self.cells) != len(self.weights):
            raise ConfigurationError(f"a {self.kind} port needs >= 1 cell and one weight per cell, "
                                     f"got {len(self.cells)} cells and {len(self.weights)} weights")

    @property
    def array(self) -> np.ndarray:
        """Cells as an int64 array (K, 2)."""
        return np.asarray(self.cells, dtype=np.int64).reshape(-1, 2)

    def center(self) -> tuple[float, float]:
        """Mean (row, col) of the cells, for plots."""
        a = self.array
        return float(a[:, 0].mean()), float(a[:, 1].mean())


def point(row: int, col: int) -> Port:
    """A single cell."""
    return Port(((int(row), int(col)),), (1.0,), "point")


def line(start: tuple[int, int], end: tuple[int, int]) -> Port:
    """The cells of a straight segment from ``start`` to ``end`` (inclusive), weight 1 each
    as a source; as a probe each weight is ``1/K`` (the mean over the line)."""
    (r0, c0), (r1, c1) = start, end
    n = max(abs(r1 - r0), abs(c1 - c0)) + 1
    rows = np.rint(np.linspace(r0, r1, n)).astype(int)
    cols = np.rint(np.linspace(c0, c1, n)).astype(int)
    cells = tuple(dict.fromkeys(zip(rows.tolist(), cols.tolist())))
    return Port(cells, (1.0,) * len(cells), "line")


def region(rows: tuple[int, int], cols: tuple[int, int]) -> Port:
    """The rectangle ``rows[0] <= row < rows[1]``, ``cols[0] <= col < cols[1]``, weights ``1/K``."""
    cells = tuple((r, c) for r in range(rows[0], rows[1]) for c in range(cols[0], cols[1]))
    if not cells:
        raise ConfigurationError(f"region rows={rows} cols={cols} holds no cell")
    return Port(cells, (1.0 / len(cells),) * len(cells), "region")


def as_probe(port: Port) -> Port:
    """A line used as a probe reads the mean over its cells."""
    if port.kind == "line":
        k = len(port.cells)
        return Port(port.cells, (1.0 / k,) * k, "line")
    return port


def damping_profile(shape: tuple[int, int], width: int, strength: float, order: float) -> np.ndarray:
    """Graded absorbing layer: ``b = strength * (d / width) ** order`` (1/s) at depth ``d`` cells
    into a layer of ``width`` cells on each side, combined as ``sqrt(b_x^2 + b_y^2)`` in the
    corners; ``b = 0`` in the interior. Returns (Ny, Nx) float64."""
    ny, nx = shape
    if width < 0 or strength < 0 or order <= 0:
        raise ConfigurationError(f"absorber needs width >= 0, strength >= 0 and order > 0, got "
                                 f"{width}, {strength}, {order}")
    if min(ny, nx) <= 2 * width + 2:
        raise ConfigurationError(f"grid {shape} is too small for an absorbing layer of {width} cells per side: "
                                 f"need Ny and Nx > {2 * width + 2}")

    def depth(n: int) -> np.ndarray:
        k = np.arange(n)
        return np.maximum(np.maximum(width - k, k - (n - 1 - width)), 0) / max(width, 1)

    by = strength * depth(ny)[:, None] ** order
    bx = strength * depth(nx)[None, :] ** order
    return np.sqrt(by ** 2 + bx ** 2)


def interior_box(shape: tuple[int, int], width: int) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): the undamped interior, half-open."""
    return width, shape[0] - width, width, shape[1] - width


def ring_cells(shape: tuple[int, int], width: int) -> np.ndarray:
    """Cells just outside the interior that its 5-point stencil reads, (R, 2); empty when width == 0."""
    if width == 0:
        return np.zeros((0, 2), dtype=np.int64)
    r0, r1, c0, c1 = interior_box(shape, width)
    cols = np.arange(c0, c1)
    rows = np.arange(r0, r1)
    top = np.stack([np.full_like(cols, r0 - 1), cols], 1)
    bottom = np.stack([np.full_like(cols, r1), cols], 1)
    left = np.stack([rows, np.full_like(rows, c0 - 1)], 1)
    right = np.stack([rows, np.full_like(rows, c1)], 1)
    return np.concatenate([top, bottom, left, right]).astype(np.int64)


def check_ports(ports: Sequence[Port], what: str, shape: tuple[int, int], width: int) -> None:
    """Every cell on the grid and in the undamped interior, else :class:`ConfigurationError`."""
    r0, r1, c0, c1 = interior_box(shape, width)
    for n, port in enumerate(ports):
        a = port.array
        outside = (a[:, 0] < 0) | (a[:, 0] >= shape[0]) | (a[:, 1] < 0) | (a[:, 1] >= shape[1])
        if outside.any():
            raise ConfigurationError(f"{what} {n} ({port.kind}) has cell {tuple(a[outside][0].tolist())} outside the "
                                     f"grid of shape (Ny, Nx) = {shape}")
        damped = (a[:, 0] < r0) | (a[:, 0] >= r1) | (a[:, 1] < c0) | (a[:, 1] >= c1)
        if damped.any():
            raise ConfigurationError(
                f"{what} {n} ({port.kind}) has cell {tuple(a[damped][0].tolist())} inside the absorbing layer "
                f"({width} cells per side); place it in the undamped interior rows [{r0}, {r1}), "
                f"cols [{c0}, {c1}) (the reversible backward pass rebuilds fields only there)")


def check_design_region(mask: np.ndarray, shape: tuple[int, int], width: int, margin: int) -> np.ndarray:
    """Validate a design-region mask (Ny, Nx); it must keep ``margin`` cells (the blur radius)
    away from the absorbing layer. Returns it as bool."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ConfigurationError(f"design_region must have the grid's shape (Ny, Nx) = {tuple(shape)}, "
                                 f"got {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise ConfigurationError("design_region is empty: no cell can hold material")
    r0, r1, c0, c1 = interior_box(shape, width)
    allowed = np.zeros(shape, dtype=bool)
    allowed[r0 + margin:r1 - margin, c0 + margin:c1 - margin] = True
    bad = mask & ~allowed
    if bad.any():
        cell = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ConfigurationError(
            f"design_region cell {cell} is within {margin} cell(s) (the blur radius) of the absorbing layer "
            f"or the grid edge; keep it inside rows [{r0 + margin}, {r1 - margin}), "
            f"cols [{c0 + margin}, {c1 - margin})")
    return mask


def pack(ports: Sequence[Port]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate ports into (cells (K, 2), port index (K,), weights (K,))."""
    cells = np.concatenate([p.array for p in ports])
    index = np.concatenate([np.full(len(p.cells), n, dtype=np.int64) for n, p in enumerate(ports)])
    weights = np.concatenate([np.asarray(p.weights, dtype=np.float64) for p in ports])
    return cells, index, weights
