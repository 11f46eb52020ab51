"""Compile a PennyLane circuit into batched torch statevector operations.

The circuit's operations are built once from *index arrays* (feature ``j`` is
the number ``j``, weight ``k`` is ``n_features + k``), so every gate parameter
tells which inputs and weights it reads. :class:`CompiledCircuit` keeps that
program and, per call, evaluates it on a batch in complex64 (float32 inputs)
or complex128 (float64), with plain torch autograd:

* leading single-qubit gates (the encoding, and the first layer's rotations)
  act on the product state ``|0...0>``: each wire's 2-vector is built and the
  batch's state is their Kronecker product, no full-size gate applications;
* single-qubit gates are a ``(2, 2) @ (B, L, 2, R)`` matmul (batched gates as
  ``(B, 1, 2, 2)``); fixed permutation gates (CNOT, SWAP, X, Toffoli) are one
  gather; fixed diagonal gates (CZ, S, T) one product; other gates a matmul
  on the permuted state;
* RX, RY, RZ, Rot, PhaseShift and SpecialUnitary matrices are written here in
  torch; any other gate falls back to PennyLane's ``compute_matrix`` with
  torch parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import ConfigurationError
from .paulis import complex_dtype
from .unitary import special_unitary

ParamRef = tuple[str, torch.Tensor]  # ("x" | "w", indices into the features or the flat weights)


@dataclass
class _Gate:
    """One step of the program: ``kind`` in ``const``, ``perm``, ``diag``, ``param``, ``state``."""

    kind: str
    wires: tuple[int, ...]
    refs: tuple[ParamRef, ...] = ()
    matrix: Callable[..., torch.Tensor] | None = None
    table: torch.Tensor | None = None  # const: matrix; perm: gather index and its inverse; diag: full diagonal
    name: str = ""


def _cos_sin(theta: torch.Tensor, cdtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(theta / 2).to(cdtype), torch.sin(theta / 2).to(cdtype)


def _mat(entries: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch.broadcast_tensors(*entries), dim=-1).unflatten(-1, (2, 2))


def _rx(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cos_sin(theta, cdtype)
    return _mat([c, -1j * s, -1j * s, c])


def _ry(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cos_sin(theta, cdtype)
    return _mat([c, -s, s, c])


def _rz(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    e = torch.exp(-0.5j * theta.to(cdtype))
    return _mat([e, torch.zeros_like(e), torch.zeros_like(e), e.conj()])


def _phase_shift(phi: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    e = torch.exp(1j * phi.to(cdtype))
    return _mat([torch.ones_like(e), torch.zeros_like(e), torch.zeros_like(e), e])


def _rot(phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cos_sin(theta, cdtype)
    plus, minus = torch.exp(-0.5j * (phi + omega).to(cdtype)), torch.exp(0.5j * (phi - omega).to(cdtype))
    return _mat([plus * c, -minus * s, minus.conj() * s, plus.conj() * c])


_TORCH_MATRICES: dict[str, Callable[..., torch.Tensor]] = {
    "RX": _rx, "RY": _ry, "RZ": _rz, "PhaseShift": _phase_shift, "Rot": _rot,
}


class CompiledCircuit:
    """A traced circuit as batched torch statevector operations.

    Args:
        operations: PennyLane operations built from index arrays (see module doc).
        n_qubits: wires ``0..n-1``.
        n_features: how many of the indices are features (the rest are weights).
    """

    def __init__(self, operations: Sequence[Any], n_qubits: int, n_features: int) -> None:
        import pennylane as qml

        self.n_qubits, self.n_features = n_qubits, n_features
        (tape,), _ = qml.transforms.decompose(qml.tape.QuantumScript(list(operations)), stopping_condition=
                                              lambda op: op.has_matrix or isinstance(op, qml.StatePrep))
        gates = [self._gate(op) for op in tape.operations]
        if any(g.kind == "state" for g in gates[1:]):
            raise ConfigurationError("the compiled simulator takes a state preparation only as the first operation")
        split = 0
        if not (gates and gates[0].kind == "state"):
            while split < len(gates) and len(gates[split].wires) == 1:
                split += 1
        self.prefix, self.gates = gates[:split], gates[split:]
        self._group()

    # ----------------------------------------------------------------- tracing
    def _refs(self, op: Any) -> tuple[ParamRef, ...]:
        refs = []
        total = self.n_features
        for p in op.data:
            arr = np.asarray(p, dtype=np.float64)
            idx = np.rint(arr).astype(np.int64)
            if not np.array_equal(idx, arr) or idx.min(initial=0) < 0:
                raise ConfigurationError(f"cannot compile {op.name}: its parameters are not plain features or "
                                         f"weights (traced {arr}); use a PennyLane backend (diff_method='backprop')")
            if bool((idx < total).all()):
                refs.append(("x", torch.as_tensor(idx)))
            elif bool((idx >= total).all()):
                refs.append(("w", torch.as_tensor(idx - total)))
            else:
                raise ConfigurationError(f"cannot compile {op.name}: one parameter mixes features and weights")
        return tuple(refs)

    def _gate(self, op: Any) -> _Gate:
        import pennylane as qml

        wires = tuple(int(w) for w in op.wires)
        if isinstance(op, qml.StatePrep):
            if wires != tuple(range(self.n_qubits)):
                raise ConfigurationError("the compiled simulator prepares states on all wires, in order")
            return _Gate("state", wires, self._refs(op))
        if not op.data:
            m = np.asarray(qml.matrix(op), dtype=np.complex128)
            if len(wires) > 1 and _is_permutation(m):
                perm = torch.as_tensor(self._full_permutation(m, wires))
                return _Gate("perm", wires, table=torch.stack([perm, torch.argsort(perm)]))
            if len(wires) > 1 and np.allclose(m, np.diag(np.diag(m))):
                return _Gate("diag", wires, table=torch.as_tensor(self._full_diagonal(np.diag(m), wires)))
            return _Gate("const", wires, table=torch.as_tensor(m))
        refs = self._refs(op)
        if op.name in _TORCH_MATRICES:
            return _Gate("param", wires, refs, _TORCH_MATRICES[op.name], name=op.name)
        if op.name == "SpecialUnitary":
            return _Gate("param", wires, refs, lambda theta, cdtype: special_unitary(theta, len(wires)).to(cdtype),
                         name=op.name)
        cls, hyper = type(op), dict(op.hyperparameters)
        return _Gate("param", wires, refs, lambda *p: cls.compute_matrix(*p[:-1], **hyper).to(p[-1]), name=op.name)

    def _bits(self, wires: Sequence[int]) -> np.ndarray:
        """Local index (over ``wires``, first wire most significant) of every full basis state."""
        full = np.arange(2 ** self.n_qubits)
        local = np.zeros_like(full)
        for w in wires:
            local = (local << 1) | ((full >> (self.n_qubits - 1 - w)) & 1)
        return local

    def _full_permutation(self, m: np.ndarray, wires: Sequence[int]) -> np.ndarray:
        local = self._bits(wires)
        source_local = np.abs(m).argmax(axis=1)[local]
        full = np.arange(2 ** self.n_qubits)
        for t, w in enumerate(wires):
            shift = self.n_qubits - 1 - w
            bit = (source_local >> (len(wires) - 1 - t)) & 1
            full = (full & ~(1 << shift)) | (bit << shift)
        return full

    def _full_diagonal(self, diag: np.ndarray, wires: Sequence[int]) -> np.ndarray:
        return diag[self._bits(wires)]

    # ---------------------------------------------------------------- running
    def state(self, feats: torch.Tensor | None, weights: torch.Tensor) -> torch.Tensor:
        """The final states ``(B, 2**n)`` (or ``(1, 2**n)`` when no gate reads a feature).

        Args:
            feats: features ``(B, n_features)`` or ``None`` when there are none.
            weights: flat weights ``(n_weights,)``; its dtype sets the precision
                (float32 -> complex64, float64 -> complex128).
        """
        cdtype = complex_dtype(weights.dtype)
        mats = self._grouped_matrices(feats, weights, cdtype)
        first = int(bool(self.gates) and self.gates[0].kind == "state")
        if first:
            psi = self._params(self.gates[0], feats, weights)[0].to(cdtype)
        else:
            psi = self._product_state(feats, weights, cdtype, mats)
        for k in range(first, len(self.gates)):
            psi = self._apply(psi, self.gates[k], len(self.prefix) + k, feats, weights, cdtype, mats)
        return psi

    def _group(self) -> None:
        """Gather the scalar-parameter gates written in torch by (matrix, source), to build each group's
        matrices in one vectorized call per forward."""
        groups: dict[tuple[str, str], list[tuple[int, _Gate]]] = {}
        for k, gate in enumerate(self.prefix + self.gates):
            sources = {src for src, i in gate.refs}
            if gate.kind == "param" and gate.name in _TORCH_MATRICES and len(sources) == 1 \
                    and all(i.ndim == 0 for _, i in gate.refs):
                groups.setdefault((gate.name, sources.pop()), []).append((k, gate))
        self.groups = [(name, src, [k for k, _ in members],
                        torch.tensor([[int(i) for _, i in g.refs] for _, g in members]))
                       for (name, src), members in groups.items()]

    def _grouped_matrices(self, feats: torch.Tensor | None, weights: torch.Tensor,
                          cdtype: torch.dtype) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        for name, src, keys, index in self.groups:
            values = feats[:, index] if src == "x" else weights[index]  # (B, G, P) or (G, P)
            mats = _TORCH_MATRICES[name](*values.unbind(-1), cdtype)
            for g, key in enumerate(keys):
                out[key] = mats[..., g, :, :]
        return out

    def _params(self, gate: _Gate, feats: torch.Tensor | None, weights: torch.Tensor) -> list[torch.Tensor]:
        return [feats[:, i] if src == "x" else weights[i] for src, i in gate.refs]

    def _matrix(self, gate: _Gate, feats: torch.Tensor | None, weights: torch.Tensor,
                cdtype: torch.dtype) -> torch.Tensor:
        if gate.kind == "const":
            return gate.table.to(weights.device, cdtype)
        return gate.matrix(*self._params(gate, feats, weights), cdtype)

    def _product_state(self, feats: torch.Tensor | None, weights: torch.Tensor, cdtype: torch.dtype,
                       mats: dict[int, torch.Tensor]) -> torch.Tensor:
        vectors = [torch.tensor([1.0, 0.0], dtype=cdtype, device=weights.device) for _ in range(self.n_qubits)]
        for key, gate in enumerate(self.prefix):
            w = gate.wires[0]
            u = mats[key] if key in mats else self._matrix(gate, feats, weights, cdtype)
            vectors[w] = (u @ vectors[w][..., None])[..., 0]
        psi = vectors[0].reshape(-1, 2)
        for v in vectors[1:]:
            psi = (psi[:, :, None] * v.reshape(-1, 1, 2)).flatten(1)
        return psi

    def _apply(self, psi: torch.Tensor, gate: _Gate, key: int, feats: torch.Tensor | None, weights: torch.Tensor,
               cdtype: torch.dtype, mats: dict[int, torch.Tensor]) -> torch.Tensor:
        n = self.n_qubits
        if gate.kind == "perm":
            perm, inverse = gate.table.to(psi.device)
            return _Permute.apply(psi, perm, inverse)
        if gate.kind == "diag":
            return psi * gate.table.to(psi.device, cdtype)
        u = mats[key] if key in mats else self._matrix(gate, feats, weights, cdtype)
        k = len(gate.wires)
        if k == 1:
            w = gate.wires[0]
            s = psi.view(psi.shape[0], 2 ** w, 2, 2 ** (n - w - 1))
            u = u[:, None] if u.dim() == 3 else u
            return (u @ s).flatten(1)
        order = [0] + [1 + w for w in gate.wires] + [1 + w for w in range(n) if w not in gate.wires]
        s = psi.view((psi.shape[0],) + (2,) * n).permute(order).reshape(psi.shape[0], 2 ** k, -1)
        out = u @ s
        out = out.reshape((out.shape[0],) + (2,) * n).permute(np.argsort(order).tolist())
        return out.reshape(out.shape[0], 2 ** n)


class _Permute(torch.autograd.Function):
    """``psi[:, perm]`` whose backward is the gather by the inverse permutation (the generic backward of a
    gather, a scatter-add, costs about ten times more on CPU)."""

    @staticmethod
    def forward(ctx: Any, psi: torch.Tensor, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return psi.index_select(1, perm)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inverse,) = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def _is_permutation(m: np.ndarray) -> bool:
    ones = np.isclose(np.abs(m), 1.0)
    return bool(np.allclose(m[ones], 1.0) and (ones.sum(0) == 1).all() and (ones.sum(1) == 1).all()
                and np.allclose(np.abs(m)[~ones], 0.0))
