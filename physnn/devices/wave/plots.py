"""Figures of a wave medium, written to files (matplotlib's ``Figure``, never a window).

* :func:`plot_density`: the effective density ``rho~`` with sources, probes, design region
  and absorber outline.
* :func:`plot_snapshots`: field snapshots over the density.
* :func:`plot_probe_intensities`: instantaneous and cumulative probe intensity over time.
* :func:`plot_confusion`: a confusion matrix with counts and row percentages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .medium import WaveMedium2D


def _save(fig: Figure, path: str | os.PathLike[str]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return str(path)


def _overlay(ax, medium: WaveMedium2D) -> None:
    """Absorber outline, design-region contour, sources (red circles) and probes (numbered squares)."""
    r0, r1, c0, c1 = medium.layout.box
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ls="--", ec="0.5", lw=0.8))
    ax.contour(medium.design_region.cpu().numpy(), levels=[0.5], colors="0.3", linewidths=0.6)
    for port in medium.sources:
        a = port.array
        ax.plot(a[:, 1], a[:, 0], "o", ms=4, mfc="none", mec="r")
    for k, port in enumerate(medium.probes):
        a = port.array
        ax.plot(a[:, 1], a[:, 0], "s", ms=4, mfc="none", mec="tab:blue")
        row, col = port.center()
        ax.annotate(str(k), (col + 2, row), color="tab:blue", fontsize=7)


def plot_density(medium: WaveMedium2D, rho: torch.Tensor, path: str | os.PathLike[str], *,
                 title: str = "effective density rho~") -> str:
    """Save the projected density ``medium.density(rho)`` (Ny, Nx) as an image; returns the path."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    with torch.no_grad():
        dens = medium.density(rho.detach().double().cpu()).numpy()
    im = ax.imshow(dens, cmap="Greys", vmin=0, vmax=1, origin="upper")
    _overlay(ax, medium)
    fig.colorbar(im, ax=ax, label=f"rho~ (c = {medium.c0:g} .. {medium.c1:g} m/s)")
    ax.set(title=title, xlabel="x (cells)", ylabel="y (cells)")
    return _save(fig, path)


def plot_snapshots(medium: WaveMedium2D, snapshots: torch.Tensor, path: str | os.PathLike[str], *,
                   steps: Sequence[int], rho: torch.Tensor | None = None) -> str:
    """Save field snapshots (n, Ny, Nx) taken at time ``steps`` (one sample) side by side."""
    snaps = snapshots.detach().cpu().numpy()
    n = len(snaps)
    fig = Figure(figsize=(3.2 * n, 2.6))
    axes = np.atleast_1d(fig.subplots(1, n))
    lim = float(np.percentile(np.abs(snaps), 99.5)) or 1.0  # the source cell would wash out the rest
    density = None
    if rho is not None:
        with torch.no_grad():
            density = medium.density(rho.detach().double().cpu()).numpy()
    for ax, snap, step in zip(axes, snaps, steps):
        if density is not None:
            ax.imshow(density, cmap="Greys", alpha=0.4)
        ax.imshow(snap, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.85)
        _overlay(ax, medium)
        ax.set(title=f"t = {step * medium.dt:g} s", xticks=[], yticks=[])
    return _save(fig, path)


def plot_probe_intensities(signals: torch.Tensor, dt: float, path: str | os.PathLike[str], *,
                           labels: Sequence[str] | None = None, title: str = "") -> str:
    """Save u^2 (top) and its running time integral (bottom) at each probe; ``signals`` (P, T)."""
    s = signals.detach().double().cpu().numpy()
    t = dt * np.arange(1, s.shape[-1] + 1)
    fig = Figure(figsize=(6, 4))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for k, row in enumerate(s):
        name = labels[k] if labels is not None else f"probe {k}"
        top.plot(t, row ** 2, lw=0.7, label=name)
        bottom.plot(t, dt * np.cumsum(row ** 2), lw=1.2, label=name)
    top.set(ylabel="u^2", title=title)
    bottom.set(xlabel="time (s)", ylabel="integrated u^2 (s)")
    top.legend(fontsize=7)
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str], *,
                   title: str = "confusion matrix") -> str:
    """Save a confusion matrix (rows: true class, columns: predicted) with counts and row %."""
    cm = np.asarray(cm)
    fig = Figure(figsize=(1.0 + 0.6 * len(class_names), 0.8 + 0.6 * len(class_names)))
    ax = fig.subplots()
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                    color="w" if frac[i, j] > 0.5 else "k")
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)
