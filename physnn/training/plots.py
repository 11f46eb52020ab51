"""Loss and accuracy curves of training runs, written to image files (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                 title: str | None = None) -> Path:
    """Loss (left) and accuracy in % (right; RMSE for a regression) per epoch of one run; returns ``path``."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("loss", "train_loss", "val_loss"):
        if any(key in row for row in history):
            ax_loss.plot(epochs, [row.get(key, float("nan")) for row in history], label=key)
    regression = not any(k.endswith("accuracy") for row in history for k in row)
    metric, scale = ("rmse", 1) if regression else ("accuracy", 100)
    for key in (f"train_{metric}", f"val_{metric}"):
        if any(key in row for row in history):
            ax_acc.plot(epochs, [scale * row.get(key, float("nan")) for row in history], label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss")
    ax_acc.set(xlabel="epoch", ylabel="RMSE" if regression else "accuracy (%)")
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_comparison(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike[str], *,
                    metric: str = "val_accuracy", title: str | None = None, ylabel: str | None = None,
                    events: Sequence[tuple[float, str]] = ()) -> Path:
    """``metric`` per epoch of several runs (label -> history) on one axis, with vertical
    lines at ``events`` ``(epoch, label)`` (e.g. when a device drifted); ``ylabel`` defaults to
    ``metric`` (accuracies are shown in %); returns ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    scale = 100 if metric.endswith("accuracy") else 1
    for label, history in histories.items():
        ax.plot([row["epoch"] for row in history], [scale * row.get(metric, float("nan")) for row in history],
                label=label)
    for epoch, label in events:
        ax.axvline(epoch, color="grey", linestyle="--", linewidth=1)
        ax.annotate(label, (epoch, ax.get_ylim()[0]), rotation=90, fontsize=8, va="bottom", ha="right")
    ax.set(xlabel="epoch", ylabel=ylabel or metric + (" (%)" if scale == 100 else ""))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: str | os.PathLike[str]) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
