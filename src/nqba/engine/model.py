"""Turn accepted model forms into a validated BQM, and a BQM into flat arrays for the kernels.

Accepted forms: ``dimod.BinaryQuadraticModel`` (SPIN or BINARY), a QUBO dict
``{(u, v): bias}``, and Ising ``(h, J)`` with ``h`` a mapping or a sequence.
Constrained models are handled by :mod:`nqba.engine.constraints`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np
import numpy.typing as npt

from nqba.engine.errors import InvalidModelError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
SpinArray = npt.NDArray[np.int8]


def as_bqm(model: Any, *, allow_empty: bool = False) -> dimod.BinaryQuadraticModel:
    """Return ``model`` as a validated BQM; raise :class:`InvalidModelError` if it cannot be one."""
    if isinstance(model, dimod.BinaryQuadraticModel):
        bqm = model
    elif isinstance(model, Mapping):
        bqm = _bqm_from_qubo(model)
    elif isinstance(model, tuple) and len(model) == 2:
        bqm = _bqm_from_ising(model[0], model[1])
    elif isinstance(model, dimod.ConstrainedQuadraticModel):
        raise InvalidModelError(
            "a constrained model must be penalised first: use nqba.engine.solve, "
            "which handles constraints"
        )
    else:
        raise InvalidModelError(
            f"unsupported model type {type(model).__name__}: expected a dimod "
            "BinaryQuadraticModel, a QUBO dict {(u, v): bias}, or an Ising tuple (h, J)"
        )
    validate_bqm(bqm, allow_empty=allow_empty)
    return bqm


def validate_bqm(bqm: dimod.BinaryQuadraticModel, *, allow_empty: bool = False) -> None:
    """Refuse non-finite coefficients (and, unless allowed, empty models), naming the term.

    Samplers allow empty models, as dimod's conformance tests expect; ``solve`` does not.
    """
    if bqm.num_variables == 0 and not allow_empty:
        raise InvalidModelError("the model is empty: it has no variables")
    if not math.isfinite(bqm.offset):
        raise InvalidModelError(f"the offset is not finite ({bqm.offset})")
    vectors: Any = bqm.to_numpy_vectors()
    ldata, (irow, icol, qdata), _ = vectors[0], vectors[1], vectors[2]
    if not np.all(np.isfinite(ldata)):
        idx = int(np.flatnonzero(~np.isfinite(ldata))[0])
        v = bqm.variables[idx]
        raise InvalidModelError(f"linear bias of variable {v!r} is not finite ({ldata[idx]})")
    if not np.all(np.isfinite(qdata)):
        k = int(np.flatnonzero(~np.isfinite(qdata))[0])
        u, v = bqm.variables[int(irow[k])], bqm.variables[int(icol[k])]
        raise InvalidModelError(
            f"quadratic bias of interaction ({u!r}, {v!r}) is not finite ({qdata[k]})"
        )


def check_number(value: Any, what: str) -> float:
    """``value`` as a finite float, or an :class:`InvalidModelError` naming ``what``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidModelError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise InvalidModelError(f"{what} is not finite ({x})")
    return x


def _bqm_from_qubo(Q: Mapping[Any, Any]) -> dimod.BinaryQuadraticModel:
    if not Q:
        raise InvalidModelError("the QUBO is empty: it has no terms")
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for key, bias in Q.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InvalidModelError(f"QUBO keys must be pairs (u, v); got {key!r}")
        u, v = key
        x = check_number(bias, f"QUBO bias of {key!r}")
        if u == v:
            bqm.add_linear(u, x)
        else:
            bqm.add_quadratic(u, v, x)
    return bqm


def _bqm_from_ising(h: Any, J: Any) -> dimod.BinaryQuadraticModel:
    bqm = dimod.BinaryQuadraticModel(dimod.SPIN)
    items: Sequence[tuple[Hashable, Any]]
    if isinstance(h, Mapping):
        items = list(h.items())
    elif isinstance(h, Sequence | np.ndarray):
        items = list(enumerate(h))
    else:
        raise InvalidModelError(f"Ising h must be a mapping or a sequence; got {type(h).__name__}")
    for v, bias in items:
        bqm.add_linear(v, check_number(bias, f"h[{v!r}]"))
    if not isinstance(J, Mapping):
        raise InvalidModelError(
            f"Ising J must be a mapping {{(u, v): bias}}; got {type(J).__name__}"
        )
    for key, bias in J.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InvalidModelError(f"Ising J keys must be pairs (u, v); got {key!r}")
        u, v = key
        if u == v:
            raise InvalidModelError(f"Ising J has a self-interaction on {u!r}")
        bqm.add_quadratic(u, v, check_number(bias, f"J[{key!r}]"))
    if bqm.num_variables == 0:
        raise InvalidModelError("the Ising model is empty: it has no variables")
    return bqm


@dataclass(frozen=True)
class IsingArrays:
    """A SPIN model as flat arrays: ``E(s) = offset + h.s + sum_{i<j} J_ij s_i s_j``.

    The couplings are stored once per direction in CSR form (``indptr``, ``indices``,
    ``data``) so a kernel finds the neighbours of ``i`` in
    ``indices[indptr[i]:indptr[i+1]]``; memory grows with the number of interactions.
    """

    labels: list[Hashable]
    h: FloatArray
    indptr: IntArray
    indices: Int32Array
    data: FloatArray
    offset: float

    @property
    def num_variables(self) -> int:
        return len(self.labels)

    @property
    def num_interactions(self) -> int:
        return len(self.indices) // 2

    @classmethod
    def from_bqm(cls, bqm: dimod.BinaryQuadraticModel) -> IsingArrays:
        """Build the SPIN arrays of ``bqm`` (converted from BINARY if needed)."""
        spin = bqm if bqm.vartype is dimod.SPIN else bqm.change_vartype(dimod.SPIN, inplace=False)
        labels = list(spin.variables)
        vectors: Any = spin.to_numpy_vectors(variable_order=labels)
        ldata, (irow, icol, qdata), offset = vectors[0], vectors[1], vectors[2]
        n = len(labels)
        rows = np.concatenate([irow, icol]).astype(np.int64)
        cols = np.concatenate([icol, irow]).astype(np.int32)
        vals = np.concatenate([qdata, qdata]).astype(np.float64)
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return cls(
            labels=labels,
            h=np.ascontiguousarray(ldata, dtype=np.float64),
            indptr=indptr,
            indices=np.ascontiguousarray(cols[order]),
            data=np.ascontiguousarray(vals[order]),
            offset=float(offset),
        )

    def energies(self, spins: npt.NDArray[Any]) -> FloatArray:
        """Energies of the rows of ``spins`` (values +-1, columns in ``labels`` order)."""
        s = np.atleast_2d(np.asarray(spins, dtype=np.float64))
        rows = np.repeat(np.arange(self.num_variables), np.diff(self.indptr))
        pair = s[:, rows] * s[:, self.indices] * self.data
        return np.asarray(self.offset + s @ self.h + 0.5 * pair.sum(axis=1), dtype=np.float64)
