"""How classical inputs enter a circuit: angle, amplitude, or data as the observable.

Each encoding maps an input batch ``x`` ``(B, in_features)`` to *features* (a
torch tensor) and the features to PennyLane operations. Features may also be
index arrays: the compiler (:mod:`._compile`) traces which gate parameter
reads which feature by building the operations from ``0, 1, 2, ...``.

* ``angle``: feature ``j`` is the angle of a rotation (``RX``, ``RY`` or
  ``RZ``) on wire ``j``; ``in_features <= n_qubits``.
* ``amplitude``: ``x`` zero-padded to ``2**n`` entries and normalized is the
  initial state (``qml.StatePrep``); an all-zero sample cannot be encoded.
* ``observable``: ``x`` (``4**n`` entries, zero-padded) reshaped row-major to a
  ``2**n x 2**n`` matrix ``D`` gives the observable ``(D + D^T) / 2`` measured on
  the circuit's state (the data enters no gate).
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import InputError

ENCODINGS = ("angle", "amplitude", "observable")
ROTATIONS = ("X", "Y", "Z")


def max_features(encoding: str, n_qubits: int) -> int:
    """The largest ``in_features`` an encoding takes on ``n_qubits`` qubits."""
    return {"angle": n_qubits, "amplitude": 2 ** n_qubits, "observable": 4 ** n_qubits}[encoding]


def features(encoding: str, x: torch.Tensor, n_qubits: int, who: str = "QuantumCircuit") -> torch.Tensor:
    """Features of a batch: ``angle`` -> ``x`` ``(B, in)``; ``amplitude`` -> normalized padded states
    ``(B, 2**n)``; ``observable`` -> padded ``(B, 4**n)`` (the flattened ``D``)."""
    if encoding == "angle":
        return x
    size = max_features(encoding, n_qubits)
    padded = torch.nn.functional.pad(x, (0, size - x.shape[1]))
    if encoding == "observable":
        return padded
    norm = padded.norm(dim=1, keepdim=True)
    if bool((norm == 0).any()):
        rows = (norm[:, 0] == 0).nonzero()[:, 0].tolist()
        raise InputError(f"{who}: amplitude encoding needs a nonzero input in every sample; samples {rows} are zero")
    return padded / norm


def operations(encoding: str, feats: Any, n_qubits: int, rotation: str = "X") -> list[Any]:
    """PennyLane operations that load ``feats`` (``(B, k)`` batched or ``(k,)``) onto wires ``0..n-1``."""
    import pennylane as qml

    if encoding == "observable":
        return []
    if encoding == "amplitude":
        return [qml.StatePrep(feats, wires=range(n_qubits), validate_norm=False)]
    gate = {"X": qml.RX, "Y": qml.RY, "Z": qml.RZ}[rotation]
    return [gate(feats[..., j], wires=j) for j in range(feats.shape[-1])]


def observable_matrix(feats: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """The data observable ``(D + D^T) / 2`` ``(B, 2**n, 2**n)`` from observable-encoding features ``(B, 4**n)``."""
    d = feats.reshape(feats.shape[0], 2 ** n_qubits, 2 ** n_qubits)
    return (d + d.transpose(1, 2)) / 2
