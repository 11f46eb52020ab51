"""Quantum circuits through PennyLane, and the quantum layers of "Let the Quantum Creep In".

* :class:`QuantumCircuit`: a :class:`physnn.Device` built on PennyLane (angle,
  amplitude or data-as-observable encodings; strongly entangling, basic
  entangler or SU(2^n) ansatzes; Pauli-Z expectations or probabilities; any
  PennyLane device; finite shots).
* :class:`FlippedQuanv2d`, :class:`DataReUploadingLinear`: drop-in quantum
  replacements for ``nn.Conv2d`` and ``nn.Linear``.

PennyLane is imported only by :mod:`physnn.devices.quantum.circuit`.
"""

from .layers import DataReUploadingLinear, FlippedQuanv2d, reupload
from .paulis import pauli_coefficients, pauli_combination, pauli_matrix, pauli_strings
from .unitary import hermitian_exp_i, special_unitary


def __getattr__(name: str):
    if name == "QuantumCircuit":
        from .circuit import QuantumCircuit

        return QuantumCircuit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DataReUploadingLinear", "FlippedQuanv2d", "QuantumCircuit", "pauli_coefficients", "pauli_combination",
           "hermitian_exp_i", "pauli_matrix", "pauli_strings", "reupload", "special_unitary"]
