"""Trainable circuit blocks (ansatzes) and optional noise after each layer.

* ``strongly_entangling``: ``qml.StronglyEntanglingLayers`` (a ``Rot`` on every
  wire, then CNOTs at range ``l mod (n-1) + 1`` in layer ``l``); weights
  ``(layers, n, 3)``.
* ``basic_entangler``: ``qml.BasicEntanglerLayers`` (``RX`` on every wire, then
  a CNOT ring); weights ``(layers, n)``.
* ``special_unitary``: one ``qml.SpecialUnitary`` on all wires per layer,
  ``exp(i sum_k theta_k P_k)`` over the ``4**n - 1`` Pauli strings; weights
  ``(layers, 4**n - 1)``.

Noise (mixed-state backends such as ``default.mixed``): a mapping channel ->
probability, each channel applied to every wire after every layer. Channels:
``depolarizing``, ``amplitude_damping``, ``phase_damping``, ``bit_flip``,
``phase_flip``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ANSATZES = ("strongly_entangling", "basic_entangler", "special_unitary")
NOISE_CHANNELS = ("depolarizing", "amplitude_damping", "phase_damping", "bit_flip", "phase_flip")


def weight_shape(ansatz: str, n_qubits: int, layers: int) -> tuple[int, ...]:
    """Shape of the ansatz's weights."""
    return {"strongly_entangling": (layers, n_qubits, 3), "basic_entangler": (layers, n_qubits),
            "special_unitary": (layers, 4 ** n_qubits - 1)}[ansatz]


def operations(ansatz: str, weights: Any, n_qubits: int, noise: Mapping[str, float] | None = None) -> list[Any]:
    """PennyLane operations of the ansatz with ``weights`` (torch, numpy or index arrays)."""
    import pennylane as qml

    wires = qml.wires.Wires(range(n_qubits))
    ops: list[Any] = []
    for layer in range(weights.shape[0]):
        w = weights[layer:layer + 1]
        if ansatz == "strongly_entangling":
            ranges = [layer % (n_qubits - 1) + 1] if n_qubits > 1 else [0]
            ops += qml.StronglyEntanglingLayers.compute_decomposition(w, wires=wires, ranges=ranges,
                                                                      imprimitive=qml.CNOT)
        elif ansatz == "basic_entangler":
            ops += qml.BasicEntanglerLayers.compute_decomposition(w, wires=wires, rotation=qml.RX)
        else:
            ops.append(qml.SpecialUnitary(weights[layer], wires=wires))
        ops += _noise(noise or {}, wires)
    return ops


def _noise(noise: Mapping[str, float], wires: Any) -> list[Any]:
    import pennylane as qml

    channels = {"depolarizing": qml.DepolarizingChannel, "amplitude_damping": qml.AmplitudeDamping,
                "phase_damping": qml.PhaseDamping, "bit_flip": qml.BitFlip, "phase_flip": qml.PhaseFlip}
    return [channels[name](p, wires=w) for name, p in noise.items() for w in wires]
