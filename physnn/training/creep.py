"""Gradual classical-to-quantum layer swapping: "Let the Quantum Creep In".

Wang, Myers, Hollenberg & Parampalli (arXiv 2409.17583) replace the layers of a
classical network by quantum layers with the same input and output types, one
group at a time, and train every stage under the same budget to see what each
quantum component adds. Here that is three calls:

* a swap plan: a sequence of :class:`Swap` s, each mapping module names (as in
  ``model.named_modules()``) to factories ``old_module -> new_module``; level
  ``k`` applies the first ``k`` swaps (level 0 is the classical model);
* :func:`build_level` / :func:`ladder`: the models of each level, initialized
  from a seed;
* :func:`run_creep`: trains and evaluates every level for every seed with
  :func:`physnn.training.fit` and :class:`~physnn.training.Backprop` (same
  epochs, batch size, learning rate and seeds), and writes ``creep.csv``,
  ``creep.json``, ``creep.md`` and ``creep.png``, each naming the model
  (``model=``, e.g. whether its quantum layers are unitary) on every row.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigurationError
from .loop import fit
from .methods import Backprop
from .plots import _pyplot, _save

Factory = Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class Swap:
    """One rung of the ladder: which modules become what.

    Attributes:
        name: label of the level this swap reaches (e.g. ``"quantum convolutions"``).
        replace: module name -> factory called with the module it replaces.
    """

    name: str
    replace: Mapping[str, Factory]


@dataclass
class LevelResult:
    """One level's outcome over all seeds."""

    level: int
    name: str
    parameters: int
    model: str = ""
    accuracies: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def row(self) -> dict[str, Any]:
        """A flat record for the CSV and Markdown tables (accuracies in percent)."""
        return {"model": self.model, "level": self.level, "name": self.name, "parameters": self.parameters,
                "accuracy_mean": round(100 * self.mean, 2), "accuracy_std": round(100 * self.std, 2),
                "runs": len(self.accuracies),
                "accuracies": " ".join(f"{100 * a:.2f}" for a in self.accuracies),
                "train_seconds_mean": round(statistics.fmean(self.train_seconds), 1)}


def build_level(base: nn.Module | Callable[[], nn.Module], plan: Sequence[Swap], level: int,
                seed: int = 0) -> nn.Module:
    """The model of ``level`` (0 = classical), every parameter initialized from ``seed``.

    Args:
        base: the classical model (deep-copied and re-initialized by each
            submodule's ``reset_parameters``) or a function that builds it.
        plan: the swap plan; level ``k`` applies ``plan[:k]`` in order.
        level: ``0 <= level <= len(plan)``.
        seed: seeds torch's global generator before the base model and the
            replacements are initialized.
    """
    if not 0 <= level <= len(plan):
        raise ConfigurationError(f"level must lie in [0, {len(plan)}] for a plan of {len(plan)} swaps, got {level}")
    torch.manual_seed(seed)
    if isinstance(base, nn.Module):
        model = copy.deepcopy(base)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    else:
        model = base()
    for swap in plan[:level]:
        for name, factory in swap.replace.items():
            _replace(model, name, factory)
    return model


def ladder(base: nn.Module | Callable[[], nn.Module], plan: Sequence[Swap], seed: int = 0) -> list[nn.Module]:
    """Every level's model, ``[level 0 (classical), ..., level len(plan)]``, all from ``seed``."""
    return [build_level(base, plan, k, seed) for k in range(len(plan) + 1)]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter elements."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_creep(base: nn.Module | Callable[[], nn.Module], plan: Sequence[Swap],
              train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
              epochs: int, batch_size: int, lr: float, seeds: Sequence[int] = (0,),
              levels: Sequence[int] | None = None, out_dir: str | os.PathLike[str] | None = None,
              eval_batch_size: int = 500, progress: bool = False, model: str = "",
              references: Mapping[str, Mapping[int, float]] | None = None,
              log: Callable[[str], None] | None = print) -> list[LevelResult]:
    """Train and evaluate every level of the ladder under the same budget and seeds.

    Args:
        base, plan: as :func:`build_level`.
        train, test: inputs ``(N, ...)`` and integer labels ``(N,)``.
        epochs, batch_size, lr: the budget, the same for every level (Adam,
            cross-entropy, :class:`~physnn.training.Backprop`).
        seeds: one run per seed and level; a seed fixes initialization and shuffling.
        levels: which levels to run (default all).
        out_dir: where each run's history and checkpoint go (``level{k}/seed{s}``;
            an interrupted ladder resumes from them) and the tables and plot
            (``creep.csv``, ``creep.json``, ``creep.md``, ``creep.png``); ``None`` writes nothing.
        eval_batch_size: evaluation chunk size (bounds memory of large quantum layers).
        progress: show per-run progress bars.
        model: what model the ladder is (e.g. ``"non-unitary (paper's PyTorch model)"``), written on
            every row, in the table's heading and the plot's title.
        references: column name -> (level -> accuracy in percent), e.g. a paper's numbers, for the
            tables and plot (:func:`write_tables`).
        log: called with one line per finished run (``None``: silent).

    Returns:
        One :class:`LevelResult` per level run: final-epoch test accuracy per
        seed, trainable parameters and training wall time.
    """
    levels = list(range(len(plan) + 1)) if levels is None else list(levels)
    if not seeds:
        raise ConfigurationError("run_creep needs at least one seed")
    out = Path(out_dir) if out_dir is not None else None
    results = []
    for level in levels:
        name = "classical" if level == 0 else plan[level - 1].name
        result = LevelResult(level, name, parameters=0, model=model)
        for seed in seeds:
            net = build_level(base, plan, level, seed)
            result.parameters = count_parameters(net)
            run_dir = out / f"level{level}" / f"seed{seed}" if out is not None else None
            start = time.perf_counter()
            run = fit(Backprop(net, lr=lr), train, val=test, epochs=epochs, batch_size=batch_size, seed=seed,
                      out_dir=run_dir, resume=run_dir is not None, eval_train=False,
                      eval_batch_size=eval_batch_size, progress=progress, plot=False)
            elapsed = time.perf_counter() - start
            # A resumed run reports the wall time of all its epochs, not just this sitting.
            seconds = max(elapsed, float(run.accounting.get("time_s", elapsed)))
            result.accuracies.append(float(run.history[-1]["val_accuracy"]))
            result.train_seconds.append(seconds)
            if log is not None:
                prefix = f"{model}: " if model else ""
                log(f"{prefix}level {level} ({name}) seed {seed}: test accuracy {100 * result.accuracies[-1]:.2f} % "
                    f"in {seconds:.0f} s")
        results.append(result)
        if out is not None:
            write_tables(results, out, references)
    return results


def write_tables(results: Sequence[LevelResult], out_dir: str | os.PathLike[str],
                 references: Mapping[str, Mapping[int, float]] | None = None) -> list[Path]:
    """Write ``creep.csv``, ``creep.json``, ``creep.md`` and ``creep.png`` (accuracy +- std per level).

    Every row, the table's heading and the plot's title name each result's ``model``.
    ``references`` (column name -> level -> accuracy in percent, e.g. a paper's numbers) add
    columns and dashed lines to the plot.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = sorted(results, key=lambda r: r.level)
    references = dict(references or {})
    rows = [r.row() | {name: (f"{ref[r.level]:.2f}" if r.level in ref else "") for name, ref in references.items()}
            for r in results]
    with open(out / "creep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "creep.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    extra = "".join(f" {name} (%) |" for name in references)
    lines = [f"Model: {m}\n" for m in dict.fromkeys(r.model for r in results) if m]
    lines += ["| model | level | layers | parameters | test accuracy (%) | runs | train time per run (s) |" + extra,
              "|---|---|---|---|---|---|---|" + "---|" * len(references)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['level']} | {r['name']} | {r['parameters']:,} | {r['accuracy_mean']:.2f} +- "
                     f"{r['accuracy_std']:.2f} | {r['runs']} | {r['train_seconds_mean']:.0f} |"
                     + "".join(f" {r[name]} |" for name in references))
    (out / "creep.md").write_text("\n".join(lines) + "\n")
    return [out / "creep.csv", out / "creep.json", out / "creep.md", _plot(results, out / "creep.png", references)]


def _plot(results: Sequence[LevelResult], path: Path, references: Mapping[str, Mapping[int, float]]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    levels = [r.level for r in results]
    ax.errorbar(levels, [100 * r.mean for r in results], yerr=[100 * r.std for r in results], marker="o",
                capsize=4, label="physnn")
    for name, ref in references.items():
        ax.plot(sorted(ref), [ref[k] for k in sorted(ref)], "s--", label=name)
    if references:
        ax.legend(fontsize=7)
    ax.set_xticks(levels, [f"{r.level}\n{r.name}" for r in results], fontsize=7)
    ax.set_xlabel("replacement level")
    ax.set_ylabel("test accuracy (%)")
    models = " / ".join(m for m in dict.fromkeys(r.model for r in results) if m)
    if models:
        ax.set_title(models, fontsize=9)
    return _save(plt, fig, path)


def _replace(model: nn.Module, name: str, factory: Factory) -> None:
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
        old = parent.get_submodule(child)
    except AttributeError as exc:
        known = [n for n, _ in model.named_modules() if n]
        raise ConfigurationError(f"swap plan names module {name!r}, which the model does not have; "
                                 f"its modules are {known}") from exc
    new = factory(old)
    if not isinstance(new, nn.Module):
        raise ConfigurationError(f"the factory for {name!r} returned {type(new).__name__}, not an nn.Module")
    setattr(parent, child, new)
