"""Training deep physical networks with the method the hardware allows, in one loop.

* :func:`fit`: the loop (progress, history CSV/JSON, atomic checkpoints with
  digests that :func:`load_checkpoint` verifies, exact resume, seeds, early
  stopping, device-call accounting, curves) with any loss (:mod:`.losses`: a built-in
  name or a callable; int64 labels train a classifier, float targets a regression).
* Methods: :class:`Backprop` (autograd; ``in_silico=True`` trains on twins and
  deploys on devices), :class:`PhysicsAware` (forward on the device, backward
  through a twin), :class:`ZerothOrder` (SPSA), :class:`ForwardForward`
  (model-free forward-forward, PhyLL).
* Models: :func:`physical_network` (blocks ``linear(cat(device(drive(h)), h))``),
  :func:`digital_network` (the same sizes without physics).
* Twins: :func:`fit_twin` (on :func:`network_drives`, the drives a network
  really sends), :class:`NeuralTwin`, :class:`CalibratedTwin`.
* Baselines (:mod:`.baselines`): :func:`logistic_regression` / :func:`ridge` on the
  raw inputs, :func:`matched_mlp` (same parameter count), :func:`random_map_ablation`
  (every device replaced by a fixed :class:`RandomMap`), :func:`digital_baselines`,
  :func:`summarize` and :func:`results_table` (``mean ± std (n seeds)``).
* Creep: :func:`run_creep` swaps classical layers for quantum ones one group at
  a time (:class:`Swap`, :func:`ladder`) and trains every level under one budget.
"""

from ._checkpoint import load_checkpoint
from .baselines import (
    RandomMap,
    digital_baselines,
    logistic_regression,
    matched_mlp,
    random_map_ablation,
    results_table,
    ridge,
    summarize,
    trained_parameters,
)
from .creep import LevelResult, Swap, build_level, count_parameters, ladder, run_creep, write_tables
from .forward_forward import ForwardForward
from .loop import Callback, RunResult, fit
from .losses import Loss, resolve_loss
from .methods import Backprop, Method, PhysicsAware, ZerothOrder
from .models import Drive, PhysicalBlock, digital_network, physical_network
from .plots import plot_comparison, plot_history
from .twin import CalibratedTwin, NeuralTwin, TwinReport, fit_twin, network_drives

__all__ = ["Backprop", "CalibratedTwin", "Callback", "Drive", "ForwardForward", "LevelResult", "Loss", "Method",
           "NeuralTwin", "PhysicalBlock", "PhysicsAware", "RunResult", "Swap", "TwinReport", "ZerothOrder",
           "build_level", "count_parameters", "digital_network", "fit", "fit_twin", "ladder", "load_checkpoint",
           "network_drives", "physical_network", "RandomMap", "digital_baselines", "logistic_regression",
           "matched_mlp", "random_map_ablation", "results_table", "ridge", "summarize",
           "trained_parameters", "resolve_loss",
           "plot_comparison", "plot_history", "run_creep", "write_tables"]
