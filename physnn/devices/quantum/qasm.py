"""OpenQASM 2 export of a :class:`QuantumCircuit`: the circuit one input sample runs, with trained weights.

The data enters a parameterized circuit as gate angles (or a state
preparation), so a QASM program describes the circuit *for one drive* ``x``:
``to_qasm(layer.device, x, layer.control_values())``. The program measures
every qubit in the computational basis; a comment line names the device's own
measurement (``expval_z``: Z on each wire; ``probs``; or the data-observable
Pauli strings, which a QPU estimates with basis rotations not written here).
Written through PennyLane's ``qml.to_openqasm``; circuits with noise channels
have no OpenQASM 2 form and are refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import ConfigurationError, InputError
from . import encodings as _enc
from .circuit import QuantumCircuit


def to_qasm(circuit: QuantumCircuit, x: torch.Tensor, controls: Mapping[str, Any] | None = None, *,
            precision: int = 17) -> str:
    """The OpenQASM 2.0 program of ``circuit`` for one drive ``x`` (shape ``(1, in_features)``) and
    ``controls`` (default: the circuit's defaults); angles in radians with ``precision`` digits."""
    import pennylane as qml

    x = circuit.check_input(x)
    if x.shape[0] != 1:
        raise InputError(f"{circuit._label()}: to_qasm writes the circuit of one sample, x of shape "
                         f"(1, {circuit.in_features}); got a batch of {x.shape[0]}")
    if circuit.noise:
        raise ConfigurationError(f"{circuit._label()} has noise channels {sorted(circuit.noise)}, which OpenQASM 2 "
                                 "cannot express; export the noiseless circuit")
    x = x.detach().to(torch.float64)
    values = circuit.check_controls(controls, x)
    feats = None if circuit.encoding == "observable" else _enc.features(circuit.encoding, x, circuit.n_qubits)[0]
    weights = values["weights"].detach()
    tape = qml.tape.QuantumScript(circuit.operations(feats, weights), [])
    program = qml.to_openqasm(tape, wires=range(circuit.n_qubits), measure_all=True, precision=precision)
    note = (f"// physnn {circuit._label()}: encoding {circuit.encoding}, ansatz {circuit.ansatz}, "
            f"{circuit.layers} layer(s), measurement {circuit.measurement}\n")
    head, _, body = program.partition("\n")
    return f"{head}\n{note}{body}"


def export_qasm(circuit: QuantumCircuit, path: str | os.PathLike[str], x: torch.Tensor,
                controls: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`to_qasm` to ``path`` (``.qasm``); returns ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"export_qasm: the folder {path.parent} of {path} does not exist")
    path.write_text(to_qasm(circuit, x, controls), encoding="utf-8")
    return path
