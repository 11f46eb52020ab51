"""Every training method on every device family: a small real training run per cell, or the clear error.

Rows are device families (:data:`FAMILIES`; append a row when a family lands),
columns the methods. A cell trains a 2-block physical network *without* the
raw-input shortcut (``concat_input=False``), so the class information must
cross the devices, on a 3-class task, and asserts test accuracy well above
chance (1/3). Where a method cannot work (backprop through a black box) the
cell asserts the ``GradientRouteError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from physnn import Device
from physnn.devices import BlackBox, CoupledPendula
from physnn.devices.measured import MeasuredDevice, phyll_cavity
from physnn.errors import GradientRouteError
from physnn.training import (
    Backprop,
    CalibratedTwin,
    Drive,
    ForwardForward,
    NeuralTwin,
    PhysicsAware,
    ZerothOrder,
    fit,
    fit_twin,
    physical_network,
)

DATA = Path(os.environ.get("PHYSNN_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
CLASSES = 3
CHANCE = 1 / CLASSES
MARGIN = 0.3  # test accuracy must reach chance + MARGIN


def synthetic_measured() -> MeasuredDevice:
    """A small measured device: 600 pairs of a random 6 -> 6 tanh map on [0, 1]^6."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(600, 6, generator=g, dtype=torch.float64)
    w = torch.randn(6, 6, generator=g, dtype=torch.float64) * 2
    return MeasuredDevice(x, torch.tanh(x @ w - 1), features=200, holdout=0, name="synthetic",
                          input_bounds=(0.0, 1.0))


def cavity() -> MeasuredDevice:
    if not (DATA / "phyll" / "acoustic_x_data.csv").exists():
        pytest.skip(f"the cavity needs {DATA}/phyll (set PHYSNN_DATA to shared/datasets)")
    return phyll_cavity(DATA, features=200, holdout=0)


def pendula() -> CoupledPendula:
    return CoupledPendula(6, duration=1.0, steps=8)


def blackbox_pendula() -> BlackBox:
    """Pendula whose real frequencies differ from the design, with gain error and noise."""
    real = CoupledPendula(6, omega=[6.0, 6.5, 5.8, 6.3, 6.1, 6.6], duration=1.0, steps=8)
    return BlackBox(real, noise_std=0.005, gain=1.05, seed=3)


def diode_clipper() -> Device:
    """An 8-sample RC diode clipper (a differentiable analog-audio simulation)."""
    audio = pytest.importorskip("physnn.devices.audio")
    return audio.DiodeClipper(num_samples=8, mode="fast")


def wave_medium() -> Device:
    """A 16 x 20-cell weakly nonlinear (Kerr) wave medium: the 40 features are the source's time series,
    6 probes read the time-integrated intensity, the density rho (320 cells) is trained."""
    from physnn.devices.wave import WaveMedium2D, point
    return WaveMedium2D(shape=(16, 20), n_steps=40, h=1.0, dt=0.5, absorber_width=3, absorber_strength=1.0,
                        sources=[point(8, 5)], probes=[point(r, c) for r in (4, 8, 12) for c in (9, 13)],
                        blur_radius=0, projection_beta=2.0, c_nl=-0.05, output="raw")


def quantum_circuit() -> Device:
    """A 6-qubit angle-encoded circuit, one strongly entangling layer, Pauli-Z expectations (PennyLane)."""
    pytest.importorskip("pennylane")
    from physnn.devices.quantum import QuantumCircuit
    return QuantumCircuit(6, layers=1)


def scattering_medium(hardware: bool = True) -> Device:
    """An 8-pixel SLM (phase) -> 8-pixel camera medium; as hardware: shot noise, 8-bit camera, 20 % decorrelated."""
    from physnn.devices.optics import ScatteringMedium
    if not hardware:
        return ScatteringMedium(8, 8, noise="none", bits=None)
    return ScatteringMedium(8, 8, noise="gaussian", bits=8, perturbation=0.2, seed=3)


def mzi_mesh(hardware: bool = True) -> Device:
    """An 8-mode Clements mesh (photodetected); as hardware: 0.1 rad phase errors, 0.2 dB/MZI, 1 % detector noise."""
    from physnn.devices.optics import MZIMesh
    if not hardware:
        return MZIMesh(8)
    return MZIMesh(8, phase_error=0.1, loss_db=0.2, crosstalk=0.02, detector_noise=0.01, seed=3)


def shg_crystal(hardware: bool = True) -> Device:
    """8 input and 4 control blocks of a pulse shaper, a 1 mm crystal (100 fs/mm walk-off), 8 SH bins; as hardware:
    0.1 rad shaper errors, 10 % weaker coupling, 10 % more walk-off and 1 % spectrometer noise."""
    from physnn.devices.optics import SHGCrystal
    if not hardware:
        return SHGCrystal(8, 4, 8, steps=8, n_freq=144, coupling=1.0, gvm_fs_per_mm=100.0)
    return SHGCrystal(8, 4, 8, steps=8, n_freq=144, coupling=0.9, gvm_fs_per_mm=110.0, phase_error=0.1, noise=0.01,
                      seed=3)


def diffractive_network(hardware: bool = True) -> Device:
    """1 phase mask of 8 x 8 neurons (lambda 0.75 mm, 0.4 mm pitch, 2 mm gaps), a 3 x 3 input, 10 detectors; as
    hardware: 0.1 rad mask errors, 2 % gap errors and 1 % detector noise. Gain 50: outputs of order 1."""
    from physnn.devices.optics import DiffractiveNetwork
    settings = dict(n=8, layers=1, input_size=3, detector_size=1, spacing=2e-3, gain=50.0)
    if not hardware:
        return DiffractiveNetwork(**settings)
    return DiffractiveNetwork(**settings, phase_error=0.1, spacing_error=0.02, detector_noise=0.01, seed=3)


def calibrated_copy(build: Callable[[], Device]) -> Callable[[Device, Drive], Device]:
    """A twin factory: the nominal simulation ``build()`` with a fitted output gain and offset."""
    def make(device: Device, drive: Drive) -> Device:
        twin = CalibratedTwin(build())
        fit_twin(device, twin, n_samples=200, epochs=5, seed=0)
        return twin
    return make


def neural_twin(device: Device, drive: Drive) -> Device:
    """A neural surrogate fitted where the network drives the device (drive-mapped measured drives)."""
    twin = NeuralTwin.like(device, hidden=48, seed=0)
    inputs = drive(device.sample_inputs(600, generator=torch.Generator().manual_seed(0)))
    fit_twin(device, twin, inputs=inputs, epochs=40, lr=1e-2, seed=0)
    return twin


def calibrated_pendula_twin(device: Device, drive: Drive) -> Device:
    twin = CalibratedTwin(pendula(), calibrate=("omega",))
    fit_twin(device, twin, n_samples=200, epochs=10, batch_size=100, lr=2e-2, seed=0)
    return twin


@dataclass(frozen=True)
class Family:
    """A device family in the matrix: how to build a small device and its twin, and how to drive it."""

    name: str
    device: Callable[[], Device]
    twin: Callable[[Device, Drive], Device]
    drive: str = "unit-norm"
    drive_scale: float = 1.0
    epochs: int = 20
    slow: bool = False  # True moves the row to `make test-slow`

    def make_drive(self) -> Drive:
        return Drive(self.drive, scale=self.drive_scale)


FAMILIES = [
    Family("measured-synthetic", synthetic_measured, neural_twin),
    Family("measured-cavity", cavity, neural_twin),
    Family("pendula-simulation", pendula, calibrated_pendula_twin, drive="tanh", drive_scale=1.2),
    Family("pendula-blackbox", blackbox_pendula, calibrated_pendula_twin, drive="tanh", drive_scale=1.2),
    Family("audio-clipper", diode_clipper, calibrated_copy(diode_clipper), drive="tanh", drive_scale=2.0),
    # 320 density cells: SPSA with 4 perturbations needs the longer budget
    Family("wave-medium", wave_medium, calibrated_copy(wave_medium), drive="tanh", drive_scale=3.0, epochs=150),
    Family("quantum-circuit", quantum_circuit, calibrated_copy(quantum_circuit), drive="tanh", drive_scale=3.0,
           epochs=40),
    Family("optics-scattering", scattering_medium, calibrated_copy(lambda: scattering_medium(hardware=False)),
           epochs=30),
    Family("optics-mzi", mzi_mesh, calibrated_copy(lambda: mzi_mesh(hardware=False)), drive="tanh", drive_scale=1.0,
           epochs=30),
    # SPSA: 0.54 at 40 epochs, passes at 60 (from pi phases, the transform limit's neighbourhood: 0.63 at 60)
    Family("optics-shg", shg_crystal, calibrated_copy(lambda: shg_crystal(hardware=False)), drive="tanh",
           drive_scale=1.0, epochs=60),
    # 64 mask neurons: SPSA with 4 perturbations stayed at chance at 30 epochs and reached 0.62 (< 0.63) at 60
    Family("optics-diffractive", diffractive_network, calibrated_copy(lambda: diffractive_network(hardware=False)),
           epochs=100),
]
METHODS = ("backprop", "physics-aware", "forward-forward", "zeroth-order")


def blobs(d: int, seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """3 well-separated classes in the last ``d - 3`` of ``d`` features (the first 3 are 0: room for the
    forward-forward label), 90 training and 90 test samples."""
    g = torch.Generator().manual_seed(seed)
    centers = 0.2 + 0.8 * torch.rand(CLASSES, d - CLASSES, generator=g)
    y = torch.arange(180) % CLASSES
    x = torch.zeros(180, d)
    x[:, CLASSES:] = (centers[y] + 0.08 * torch.randn(180, d - CLASSES, generator=g)).clamp(0, 1)
    return (x[:90], y[:90]), (x[90:], y[90:])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def devices():
    cache: dict[str, Device] = {}

    def get(family: Family) -> Device:
        if family.name not in cache:
            cache[family.name] = family.device()
        return cache[family.name]
    return get


def network(family: Family, device: Device, widths: list[int], twin: Device | None = None):
    return physical_network([device, device], widths, twins=None if twin is None else [twin, twin],
                            concat_input=False, drive=family.drive, drive_scale=family.drive_scale, seed=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", [pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.slow else [])
                                    for f in FAMILIES])
def test_method_trains_on_family(family: Family, method: str, devices):
    torch.manual_seed(0)
    device = devices(family)
    d = device.in_shape[0]
    train, test = blobs(d)
    if method == "backprop" and not device.differentiable:
        with pytest.raises(GradientRouteError, match="black box"):
            Backprop(network(family, device, [d, CLASSES]))
        return
    if method == "forward-forward":
        trainer = ForwardForward(network(family, device, [d, d]), n_classes=CLASSES, lr=2e-2, inner_steps=10)
    elif method == "backprop":
        trainer = Backprop(network(family, device, [d, CLASSES]), lr=3e-2)
    elif method == "physics-aware":
        trainer = PhysicsAware(network(family, device, [d, CLASSES], family.twin(device, family.make_drive())), lr=3e-2)
    else:
        trainer = ZerothOrder(network(family, device, [d, CLASSES]), lr=3e-2, perturbations=4, epsilon=1e-2)
    before = trainer.evaluate(*test)["accuracy"]
    result = fit(trainer, train, val=test, epochs=family.epochs, progress=False, eval_train=False)
    accuracy = result.final("val_accuracy")
    assert accuracy >= CHANCE + MARGIN, f"{family.name} x {method}: {accuracy:.2f} (before training {before:.2f})"
    assert result.accounting["train_device_calls"] > 0
    if method == "forward-forward":  # one call per block for positives and one for negatives, per batch
        assert result.accounting["train_device_calls"] == family.epochs * 2 * 2
