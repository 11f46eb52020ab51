"""QuantumCircuit: a parameterized quantum circuit as a :class:`physnn.Device`, through PennyLane.

``y = circuit(x, {"weights": w})``: an encoding loads each sample ``x``, an
ansatz with trainable ``weights`` acts, and a measurement gives ``y``. The
gradient method follows the backend (``diff_method="auto"``):

* ``default.qubit`` without shots: ``compiled``, the PennyLane circuit compiled
  to batched torch statevector operations (:mod:`._compile`), torch autograd;
* ``default.mixed`` (noise): ``backprop``, one broadcast PennyLane simulation;
* ``lightning.*``: ``adjoint`` (Lightning splits a broadcast into circuits);
* finite ``shots``, plugins and hardware: ``parameter-shift``, one broadcast
  tape per batch forward, shifted tapes backward.

PennyLane cannot parameter-shift a broadcast tape with respect to its
broadcast parameters (the inputs; PennyLane issues #4462, #6078), so the
``parameter-shift`` route differentiates the tape itself: weights by
``qml.gradients.param_shift`` with only the shared (unbroadcast) parameters
trainable, inputs of an angle encoding by shifting one feature of every sample
at once (``+-pi/2``: two broadcast tapes per feature). The device counter
reports the cost as a QPU sees it: ``counter.circuits`` (a broadcast tape of B
samples counts B circuits) and ``counter.shots``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pennylane as qml
import torch

from ...device import CallCounter, Control, Device
from ...errors import ConfigurationError, GradientRouteError
from . import ansatz as _ansatz
from . import encodings as _enc
from ._compile import CompiledCircuit
from .paulis import pauli_coefficients, pauli_strings

MEASUREMENTS = ("expval_z", "probs", "observable")
DIFF_METHODS = ("auto", "compiled", "backprop", "adjoint", "parameter-shift")
#: The ``qml.device`` option that seeds shot sampling, where a plugin does not take PennyLane's ``seed``
#: (pennylane-qiskit passes ``seed`` on to Aer's run, which ignores it).
SEED_OPTION = {"qiskit.aer": "seed_simulator"}


@dataclass
class QuantumCallCounter(CallCounter):
    """Calls and samples, plus circuit executions and shots as a QPU counts them."""

    circuits: int = 0
    shots: int = 0

    def add_circuits(self, circuits: int, shots: int | None) -> None:
        self.circuits += circuits
        self.shots += circuits * (shots or 0)

    def as_dict(self) -> dict[str, int]:
        return {**super().as_dict(), "circuits": self.circuits, "shots": self.shots}


class QuantumCircuit(Device):
    """A parameterized quantum circuit on any PennyLane device.

    Args:
        n_qubits: wires ``0..n-1``.
        encoding: ``"angle"`` (one rotation per feature, ``in_features <= n``),
            ``"amplitude"`` (normalized, zero-padded input as the initial state,
            ``in_features <= 2**n``) or ``"observable"`` (input reshaped to a
            ``2**n x 2**n`` matrix ``D``, measured as ``(D + D^T)/2``, ``in_features <= 4**n``).
        ansatz: ``"strongly_entangling"``, ``"basic_entangler"`` or ``"special_unitary"``.
        layers: ansatz layers.
        measurement: ``"expval_z"`` (``<Z>`` on every wire, out ``(n,)``), ``"probs"``
            (basis-state probabilities, out ``(2**n,)``) or ``"observable"`` (the
            data observable, out ``(1,)``; the only one for the observable encoding,
            and its default).
        in_features: input size (default: the encoding's maximum).
        rotation: ``"X"``, ``"Y"`` or ``"Z"``: the angle encoding's rotation.
        backend: a PennyLane device name (``"default.qubit"``, ``"default.mixed"``,
            ``"lightning.qubit"``, a plugin's such as ``"qiskit.aer"``).
        backend_options: extra keyword arguments for ``qml.device`` (e.g. a
            plugin's ``backend=`` or credentials).
        shots: measurement shots per circuit; ``None`` for exact expectations, unless the
            backend samples anyway (``qiskit.aer`` samples 1024 shots): then ``shots`` and
            ``stochastic`` report the shots it really uses.
        diff_method: ``"auto"`` (see the module table), ``"compiled"``,
            ``"backprop"``, ``"adjoint"`` or ``"parameter-shift"``.
        noise: channel -> probability (``"depolarizing"``, ``"amplitude_damping"``,
            ``"phase_damping"``, ``"bit_flip"``, ``"phase_flip"``) on every wire
            after every layer; needs a mixed-state backend (``default.mixed``).
        seed: seeds shot sampling (and the device's generator).

    Shapes: ``x`` ``(B, in_features)`` -> ``(B, *out_shape)``; control
    ``weights`` of :func:`~physnn.devices.quantum.ansatz.weight_shape`, in radians
    (rotation angles) or Pauli coefficients (special unitary).
    """

    name = "quantum-circuit"
    differentiable = True

    def __init__(self, n_qubits: int = 4, *, encoding: str = "angle", ansatz: str = "strongly_entangling",
                 layers: int = 2, measurement: str | None = None, in_features: int | None = None,
                 rotation: str = "X", backend: str = "default.qubit", backend_options: Mapping[str, Any] | None = None,
                 shots: int | None = None, diff_method: str = "auto", noise: Mapping[str, float] | None = None,
                 seed: int | None = None) -> None:
        self.n_qubits, self.shots = int(n_qubits), None if shots is None else int(shots)
        self.backend, self.backend_options = backend, dict(backend_options or {})
        super().__init__(seed=seed)
        self.counter = QuantumCallCounter()
        measurement = measurement or ("observable" if encoding == "observable" else "expval_z")
        self._validate(encoding, ansatz, layers, measurement, rotation, shots, diff_method, noise)
        self.shots = self._sampled_shots()
        self.encoding, self.ansatz, self.layers, self.rotation = encoding, ansatz, int(layers), rotation
        self.measurement, self.noise = measurement, dict(noise or {})
        limit = _enc.max_features(encoding, self.n_qubits)
        self.in_features = limit if in_features is None else int(in_features)
        if not 1 <= self.in_features <= limit:
            raise ConfigurationError(f"{self._label()}: {encoding} encoding on {n_qubits} qubits takes 1..{limit} "
                                     f"features, got in_features={in_features}")
        self.diff_method = self._resolve(diff_method)
        self.stochastic = self.shots is not None
        self.in_shape = (self.in_features,)
        self.out_shape = {"expval_z": (self.n_qubits,), "probs": (2 ** self.n_qubits,), "observable": (1,)}[measurement]
        shape = _ansatz.weight_shape(ansatz, self.n_qubits, self.layers)
        self.controls = (Control("weights", shape, unit="" if ansatz == "special_unitary" else "rad",
                                 default=_default_weights(ansatz, shape).tolist(),
                                 doc=f"{ansatz} ansatz parameters, {self.layers} layer(s)"),)
        self._compiled: CompiledCircuit | None = None
        self._signs: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        self._qml_device = None if self.diff_method == "compiled" else self._make_device()

    # -------------------------------------------------------------- configuration
    def _validate(self, encoding: str, ansatz: str, layers: int, measurement: str, rotation: str,
                  shots: int | None, diff_method: str, noise: Mapping[str, float] | None) -> None:
        checks = [(encoding in _enc.ENCODINGS, f"encoding must be one of {_enc.ENCODINGS}, got {encoding!r}"),
                  (ansatz in _ansatz.ANSATZES, f"ansatz must be one of {_ansatz.ANSATZES}, got {ansatz!r}"),
                  (measurement in MEASUREMENTS, f"measurement must be one of {MEASUREMENTS}, got {measurement!r}"),
                  ((measurement == "observable") == (encoding == "observable"),
                   "the observable encoding goes with measurement='observable', and only it"),
                  (rotation in _enc.ROTATIONS, f"rotation must be one of {_enc.ROTATIONS}, got {rotation!r}"),
                  (self.n_qubits >= 1 and layers >= 1, f"need n_qubits >= 1 and layers >= 1, got "
                                                       f"{self.n_qubits}, {layers}"),
                  (shots is None or shots >= 1, f"shots must be None or >= 1, got {shots}"),
                  (diff_method in DIFF_METHODS, f"diff_method must be one of {DIFF_METHODS}, got {diff_method!r}"),
                  (all(k in _ansatz.NOISE_CHANNELS and 0 <= p <= 1 for k, p in (noise or {}).items()),
                   f"noise maps channels {_ansatz.NOISE_CHANNELS} to probabilities in [0, 1], got {noise}")]
        for ok, message in checks:
            if not ok:
                raise ConfigurationError(f"{self._label()}: {message}")

    def _resolve(self, diff_method: str) -> str:
        if diff_method == "auto":
            if self.shots is not None:
                return "parameter-shift"
            if self.noise or self.backend == "default.mixed":
                return "backprop"
            if self.backend == "default.qubit":
                return "compiled"
            return "adjoint" if self.backend.startswith("lightning") else "parameter-shift"
        if diff_method == "compiled" and (self.backend != "default.qubit" or self.shots is not None or self.noise):
            raise ConfigurationError(f"{self._label()}: diff_method='compiled' simulates default.qubit exactly "
                                     "(no shots, no noise); choose 'backprop' or 'parameter-shift'")
        if diff_method in ("backprop", "adjoint") and self.shots is not None:
            raise ConfigurationError(f"{self._label()}: {diff_method} needs exact expectations, but {self.backend} "
                                     f"samples {self.shots} shots per circuit; use 'parameter-shift'")
        return diff_method

    def _make_device(self) -> Any:
        options = dict(self.backend_options)
        if self.shots is not None:
            options.setdefault(SEED_OPTION.get(self.backend, "seed"),
                               int(torch.randint(2 ** 31 - 1, (1,), generator=self.generator)))
        try:
            return qml.device(self.backend, wires=self.n_qubits, **options)
        except (qml.exceptions.DeviceError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{self._label()}: PennyLane cannot build backend={self.backend!r} with "
                                     f"backend_options={self.backend_options}: {exc}") from exc

    def _sampled_shots(self) -> int | None:
        """The shots the backend really samples per circuit.

        ``self.shots`` when given; else what the backend substitutes for a tape that asks for
        exact expectations (``qiskit.aer``'s ``aer_simulator`` samples 1024), else ``None``.
        """
        if self.shots is not None:
            return self.shots
        probe = qml.tape.QuantumScript([], [qml.expval(qml.Z(0))])
        with warnings.catch_warnings():  # the plugin warns that it samples; the shots are reported instead
            warnings.simplefilter("ignore", UserWarning)
            tapes, _ = self._make_device().preprocess_transforms()([probe])
        total = tapes[0].shots.total_shots
        return None if total is None else int(total)

    def reseed(self, seed: int | None = None) -> None:
        """Restart the generator and, with shots, the PennyLane device's sampling from it."""
        super().reseed(seed)
        if getattr(self, "_qml_device", None) is not None and self.shots is not None:
            self._qml_device = self._make_device()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": self.backend, "diff_method": self.diff_method,
                "shots": self.shots, "encoding": self.encoding, "ansatz": self.ansatz, "layers": self.layers,
                "measurement": self.measurement, "noise": self.noise}

    # ------------------------------------------------------------------ circuit
    def operations(self, feats: Any, weights: Any) -> list[Any]:
        """The circuit's PennyLane operations for features ``(B, k)`` (or ``(k,)``) and weights."""
        ops = [] if self.encoding == "observable" else _enc.operations(self.encoding, feats, self.n_qubits,
                                                                        self.rotation)
        return ops + _ansatz.operations(self.ansatz, weights, self.n_qubits, self.noise)

    def measurements(self) -> list[Any]:
        """The PennyLane measurements (Pauli-string expectations for the data observable)."""
        if self.measurement == "expval_z":
            return [qml.expval(qml.Z(w)) for w in range(self.n_qubits)]
        if self.measurement == "probs":
            return [qml.probs(wires=range(self.n_qubits))]
        return [qml.expval(_pauli_word(s)) for s in pauli_strings(self.n_qubits)]

    def tape(self, feats: Any, weights: Any) -> Any:
        """The ``qml.tape.QuantumScript`` run on the backend (with this device's shots)."""
        return qml.tape.QuantumScript(self.operations(feats, weights), self.measurements(), shots=self.shots)

    def compiled(self) -> CompiledCircuit:
        """The circuit as batched torch operations (traced once, on first use)."""
        if self._compiled is None:
            n_feats = 0 if self.encoding == "observable" else _enc.features(
                self.encoding, torch.ones(1, self.in_features, dtype=torch.float64), self.n_qubits).shape[1]
            shape = self.control("weights").shape
            index_w = n_feats + np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
            self._compiled = CompiledCircuit(self.operations(np.arange(n_feats, dtype=np.float64), index_w),
                                             self.n_qubits, n_feats)
        return self._compiled

    # ------------------------------------------------------------------ physics
    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = _enc.features(self.encoding, x, self.n_qubits, self._label())
        weights = controls["weights"]
        if self.diff_method == "compiled":
            psi = self.compiled().state(None if self.encoding == "observable" else feats, weights.flatten())
            self.counter.add_circuits(x.shape[0], None)
            return self._measure_state(psi, feats).to(x.dtype)
        raw = self._execute(None if self.encoding == "observable" else feats, weights)
        if self.measurement == "observable":
            c0, c = pauli_coefficients(_enc.observable_matrix(feats, self.n_qubits), self.n_qubits)
            return (c0 + c @ raw.to(c.dtype).reshape(-1))[:, None].to(x.dtype)
        return raw.to(x.dtype).expand((x.shape[0],) + tuple(self.out_shape))

    def _measure_state(self, psi: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        batch = feats.shape[0]
        if self.measurement == "observable":
            d = feats.reshape(batch, 2 ** self.n_qubits, 2 ** self.n_qubits)
            k = (psi.conj()[:, :, None] * psi[:, None, :]).real
            return (d * k.to(d.dtype)).sum((1, 2))[:, None]
        probs = (psi.real ** 2 + psi.imag ** 2).expand(batch, -1)
        if self.measurement == "probs":
            return probs
        return probs @ self._z_signs(probs.dtype, probs.device)

    def _z_signs(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(2**n, n)``: the eigenvalue of ``Z`` on each wire in each basis state (cached)."""
        key = (dtype, device)
        if key not in self._signs:
            n = self.n_qubits
            basis = torch.arange(2 ** n, device=device)
            bits = (basis[:, None] >> torch.arange(n - 1, -1, -1, device=device)) & 1
            self._signs[key] = (1 - 2 * bits).to(dtype)
        return self._signs[key]

    def _execute(self, feats: torch.Tensor | None, weights: torch.Tensor) -> torch.Tensor:
        """Run the tape on the backend: ``(B, m)`` (or ``(1, m)`` without features) as float64."""
        tape = self.tape(feats, weights)
        if self.diff_method == "parameter-shift":
            (tape,), _ = qml.gradients.param_shift.expand_transform(tape)
            params = tape.get_parameters(trainable_only=False)
            return _ParameterShift.apply(self, tape, *params)
        result = qml.execute([tape], self._qml_device, diff_method=self.diff_method)[0]
        self.counter.add_circuits(tape.batch_size or 1, self.shots)
        return self._rows(result)

    def run_tapes(self, tapes: Sequence[Any]) -> list[Any]:
        """Execute numeric tapes on the backend, counting circuits (B per broadcast tape) and shots."""
        results = qml.execute(list(tapes), self._qml_device, diff_method=None)
        for t in tapes:
            self.counter.add_circuits(t.batch_size or 1, self.shots)
        return list(results)

    def _rows(self, result: Any) -> torch.Tensor:
        """One tape's result as ``(B or 1, m)``."""
        parts = result if isinstance(result, tuple) else (result,)
        if self.measurement == "probs":
            out = parts[0]
        else:
            out = qml.math.stack([qml.math.convert_like(p, parts[0]) for p in parts], axis=-1)
        out = torch.as_tensor(out) if not isinstance(out, torch.Tensor) else out
        return out.reshape(-1, out.shape[-1])

    def state(self, x: torch.Tensor, controls: Mapping[str, Any] | None = None) -> torch.Tensor:
        """The state before measurement: statevectors ``(B, 2**n)``, or density matrices
        ``(B, 2**n, 2**n)`` on a mixed-state backend (differentiable on the compiled path only).
        A simulator's inspection, not counted as a device call."""
        x = self.check_input(x)
        values = self.check_controls(controls, x)
        feats = _enc.features(self.encoding, x, self.n_qubits, self._label())
        enc = None if self.encoding == "observable" else feats
        if self.diff_method == "compiled":
            psi = self.compiled().state(enc, values["weights"].flatten())
        else:
            tape = qml.tape.QuantumScript(self.operations(enc, values["weights"]), [qml.state()])
            device = self._qml_device if self.shots is None else qml.device(self.backend, wires=self.n_qubits)
            psi = torch.as_tensor(qml.execute([tape], device, diff_method=None)[0])
            dims = psi.dim() - (tape.batch_size is not None)  # 1: statevector, 2: density matrix
            psi = psi.reshape((-1,) + psi.shape[-dims:])
        return psi.expand((x.shape[0],) + tuple(psi.shape[1:]))

    def extra_repr(self) -> str:
        return (f"n_qubits={self.n_qubits}, encoding={self.encoding!r}, ansatz={self.ansatz!r}, layers={self.layers}, "
                f"measurement={self.measurement!r}, backend={self.backend!r}, diff_method={self.diff_method!r}, "
                f"shots={self.shots}")


class _ParameterShift(torch.autograd.Function):
    """Run a tape on the backend; differentiate it by parameter shift, broadcast inputs included.

    Inputs are the tape's parameters (torch tensors connected by autograd to the
    features and weights, or constants). Shared trainable parameters go through
    ``qml.gradients.param_shift``; each broadcast trainable parameter (an
    encoding angle, ``(B,)``) is shifted by ``+-pi/2`` in all samples at once,
    which is exact for the single-frequency gates of the angle encoding.
    """

    @staticmethod
    def forward(ctx: Any, circuit: QuantumCircuit, tape: Any, *params: Any) -> torch.Tensor:
        numeric = tape.bind_new_parameters([_numeric(p) for p in params], list(range(len(params))))
        out = circuit._rows(circuit.run_tapes([numeric])[0]).to(torch.float64)
        ctx.circuit, ctx.tape = circuit, numeric
        ctx.like = [(p.dtype, p.device, p.shape) if isinstance(p, torch.Tensor) else None for p in params]
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        circuit, tape = ctx.circuit, ctx.tape
        wanted = [i for i, need in enumerate(ctx.needs_input_grad[2:]) if need]
        batched = [i for i in wanted if _is_broadcast(tape, i)]
        shared = [i for i in wanted if i not in batched]
        tapes, fn = [], None
        if shared:
            t = tape.copy()
            t.trainable_params = shared
            tapes, fn = qml.gradients.param_shift(t)
        n_shared = len(tapes)
        parameters = tape.get_parameters(trainable_only=False)
        for i in batched:
            op = tape.par_info[i]["op"]
            if getattr(op, "parameter_frequencies", None) != [(1.0,)]:
                raise GradientRouteError(f"{circuit._label()}: parameter shift of a broadcast input through "
                                         f"{op.name} is not supported; input gradients on this route need the "
                                         "angle encoding (or detach the input)")
            value = np.asarray(parameters[i])
            tapes += [tape.bind_new_parameters([value + s], [i]) for s in (math.pi / 2, -math.pi / 2)]
        results = circuit.run_tapes(tapes)
        grads: list[Any] = [None] * len(ctx.like)
        g = grad.detach().cpu().double()
        if shared:
            jac = fn(results[:n_shared])
            for j, i in enumerate(shared):
                grads[i] = (g * _jacobian_rows(circuit, jac, j, len(shared), len(tape.measurements))).sum()
        for j, i in enumerate(batched):
            plus, minus = results[n_shared + 2 * j: n_shared + 2 * j + 2]
            grads[i] = (g * (circuit._rows(plus) - circuit._rows(minus)).double() / 2).sum(-1)
        out = [None if gi is None else torch.as_tensor(gi).to(dtype=like[0], device=like[1]).reshape(like[2])
               for gi, like in zip(grads, ctx.like)]
        return (None, None, *out)


def _jacobian_rows(circuit: QuantumCircuit, jac: Any, j: int, n_params: int, n_meas: int) -> torch.Tensor:
    """The Jacobian of every output with respect to trainable parameter ``j`` (of ``n_params``; the tape has
    ``n_meas`` measurements), as ``(B or 1, m)``."""
    per_meas = jac if n_meas > 1 else (jac,)
    columns = [m[j] if n_params > 1 else m for m in per_meas]
    if circuit.measurement == "probs":
        return torch.as_tensor(np.asarray(columns[0], dtype=np.float64)).reshape(-1, 2 ** circuit.n_qubits)
    return torch.as_tensor(np.stack([np.asarray(c, dtype=np.float64) for c in columns], -1)).reshape(-1, n_meas)


def _is_broadcast(tape: Any, index: int) -> bool:
    info = tape.par_info[index]
    op = info["op"]
    return op.batch_size is not None and np.ndim(op.data[info["p_idx"]]) > op.ndim_params[info["p_idx"]]


def _numeric(p: Any) -> Any:
    return p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p


def _pauli_word(string: str) -> Any:
    factors = [{"X": qml.X, "Y": qml.Y, "Z": qml.Z}[c](w) for w, c in enumerate(string) if c != "I"]
    return factors[0] if len(factors) == 1 else qml.prod(*factors)


def _default_weights(ansatz: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Fixed, generic default weights (seeded): angles uniform in [0, 2 pi), Pauli coefficients N(0, 1)."""
    g = torch.Generator().manual_seed(2409_17583)
    if ansatz == "special_unitary":
        return torch.randn(shape, generator=g, dtype=torch.float64)
    return 2 * math.pi * torch.rand(shape, generator=g, dtype=torch.float64)


__all__ = ["DIFF_METHODS", "MEASUREMENTS", "QuantumCallCounter", "QuantumCircuit"]
