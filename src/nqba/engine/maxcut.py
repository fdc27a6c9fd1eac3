"""Max-cut as an Ising model: a weighted graph becomes ``h = 0, J_ij = w_ij`` (SPIN).

With ``E(s) = sum_(i,j) w_ij s_i s_j`` and total weight ``W = sum w_ij`` every partition
``s`` satisfies ``cut(s) = (W - E(s)) / 2``, so minimising the energy maximises the cut.
:func:`cut_value` computes the cut from the partition itself, so the identity can be checked.

>>> g = as_graph([(0, 1, 1.0), (1, 2, 2.0)])
>>> bqm = maxcut_bqm(g)
>>> s = {0: 1, 1: -1, 2: 1}
>>> cut_value(g, s), cut_from_energy(g.total_weight, bqm.energy(s))
(3.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import dimod
import numpy as np
import numpy.typing as npt

from nqba.engine.errors import InvalidModelError
from nqba.engine.model import check_number

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected weighted graph on nodes ``0..num_nodes-1`` without loops or repeated edges.

    ``edges`` is an ``(m, 2)`` array of node indices, ``weights`` the ``m`` edge weights.
    ``labels`` names the nodes (``None``: the node index is its label); the BQM of
    :func:`maxcut_bqm` uses these labels as variables.
    """

    num_nodes: int
    edges: IntArray
    weights: FloatArray
    labels: tuple[Hashable, ...] | None = None

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def total_weight(self) -> float:
        """``W``, the sum of all edge weights."""
        return float(self.weights.sum())

    @property
    def node_labels(self) -> list[Hashable]:
        """The label of each node, in node order."""
        return list(self.labels) if self.labels is not None else list(range(self.num_nodes))


def check_graph(graph: Graph) -> None:
    """Raise :class:`InvalidModelError` naming the first loop, repeated edge or bad weight."""
    edges, weights, n = graph.edges, graph.weights, graph.num_nodes
    if edges.ndim != 2 or edges.shape[1] != 2 or weights.shape != (edges.shape[0],):
        raise InvalidModelError("edges must be an (m, 2) array with one weight per edge")
    if graph.labels is not None and len(graph.labels) != n:
        raise InvalidModelError(f"{len(graph.labels)} labels given for {n} nodes")
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        k = int(np.flatnonzero((edges < 0).any(axis=1) | (edges >= n).any(axis=1))[0])
        raise InvalidModelError(f"edge {k} {tuple(edges[k])} has a node outside 0..{n - 1}")
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        k = int(loops[0])
        raise InvalidModelError(f"edge {k} is a self-loop on node {_label(graph, edges[k, 0])!r}")
    bad = np.flatnonzero(~np.isfinite(weights))
    if bad.size:
        k = int(bad[0])
        raise InvalidModelError(f"edge {k} has a weight that is not finite ({weights[k]})")
    dup = find_repeated_edge(edges, n)
    if dup is not None:
        first, again = dup
        u, v = (_label(graph, x) for x in edges[again])
        raise InvalidModelError(f"edge ({u!r}, {v!r}) appears twice (edges {first} and {again})")


def find_repeated_edge(edges: IntArray, num_nodes: int) -> tuple[int, int] | None:
    """Indices ``(first, repeat)`` of the first edge listed again (either orientation), or None."""
    if edges.shape[0] < 2:
        return None
    lo = np.minimum(edges[:, 0], edges[:, 1])
    hi = np.maximum(edges[:, 0], edges[:, 1])
    key = lo * np.int64(max(num_nodes, 1)) + hi
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    if not same.size:
        return None
    # Of all repeats, report the one that occurs earliest in the input.
    repeats = order[same + 1]
    k = int(np.argmin(repeats))
    return int(order[same[k]]), int(repeats[k])


def _label(graph: Graph, node: Any) -> Hashable:
    return graph.labels[int(node)] if graph.labels is not None else int(node)


def as_graph(graph: Any, *, weight: str = "weight") -> Graph:
    """A checked :class:`Graph` from a Graph, a networkx graph, or an edge list.

    An edge list holds ``(u, v)`` or ``(u, v, w)`` items with hashable node labels (weight 1
    when absent); nodes are numbered in order of first appearance. A networkx graph keeps its
    node order and reads the ``weight`` attribute (default 1); directed and multi-graphs are
    refused because their cut is ambiguous.
    """
    if isinstance(graph, Graph):
        check_graph(graph)
        return graph
    if _is_networkx_graph(graph):
        return _from_networkx(graph, weight)
    if isinstance(graph, Iterable) and not isinstance(graph, str | bytes | Mapping):
        return _from_edge_list(graph)
    raise InvalidModelError(
        f"unsupported graph type {type(graph).__name__}: expected an nqba Graph, a networkx "
        "Graph, or an edge list of (u, v) or (u, v, w)"
    )


def _is_networkx_graph(obj: Any) -> bool:
    return type(obj).__module__.startswith("networkx.") and hasattr(obj, "edges")


def _from_networkx(g: Any, weight: str) -> Graph:
    if g.is_directed() or g.is_multigraph():
        raise InvalidModelError("max-cut needs a simple undirected graph (no DiGraph, MultiGraph)")
    labels = tuple(g.nodes)
    index = {v: i for i, v in enumerate(labels)}
    m = g.number_of_edges()
    edges = np.empty((m, 2), dtype=np.int64)
    weights = np.empty(m, dtype=np.float64)
    for k, (u, v, w) in enumerate(g.edges(data=weight, default=1.0)):
        edges[k] = index[u], index[v]
        weights[k] = check_number(w, f"weight of edge {(u, v)!r}")
    result = Graph(len(labels), edges, weights, labels)
    check_graph(result)
    return result


def _from_edge_list(items: Iterable[Any]) -> Graph:
    index: dict[Hashable, int] = {}
    pairs: list[tuple[int, int]] = []
    weights: list[float] = []
    for item in items:
        if not isinstance(item, Sequence) or len(item) not in (2, 3):
            raise InvalidModelError(f"edges must be (u, v) or (u, v, w); got {item!r}")
        u, v = item[0], item[1]
        w = check_number(item[2], f"weight of edge {(u, v)!r}") if len(item) == 3 else 1.0
        pairs.append((index.setdefault(u, len(index)), index.setdefault(v, len(index))))
        weights.append(w)
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    result = Graph(len(index), edges, np.array(weights, dtype=np.float64), tuple(index))
    check_graph(result)
    return result


def maxcut_bqm(graph: Any) -> dimod.BinaryQuadraticModel:
    """The SPIN model ``h = 0, J_ij = w_ij`` of ``graph``; isolated nodes are variables too."""
    g = as_graph(graph)
    bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
        np.zeros(g.num_nodes),
        (g.edges[:, 0], g.edges[:, 1], g.weights),
        0.0,
        dimod.SPIN,
        variable_order=g.node_labels,
    )
    return bqm


def partition_array(graph: Graph, sample: Any) -> npt.NDArray[np.int64]:
    """``sample`` as one row (or rows) of node sides in node order.

    Accepts a mapping label -> value, or an array whose last axis is in node order. Values
    must be two-valued: SPIN (-1/+1) or BINARY (0/1).
    """
    if isinstance(sample, Mapping):
        try:
            values = np.array([sample[v] for v in graph.node_labels])
        except KeyError as e:
            raise InvalidModelError(f"the sample has no value for node {e.args[0]!r}") from None
    else:
        values = np.asarray(sample)
    if values.shape[-1:] != (graph.num_nodes,):
        raise InvalidModelError(
            f"the sample has {values.shape[-1] if values.ndim else 0} values for "
            f"{graph.num_nodes} nodes"
        )
    ok = np.isin(values, (-1, 1)).all() or np.isin(values, (0, 1)).all()
    if not ok:
        raise InvalidModelError("sample values must all be SPIN (-1/+1) or all BINARY (0/1)")
    return values.astype(np.int64)


def cut_value(graph: Any, sample: Any) -> float:
    """Total weight of the edges whose ends lie on different sides of ``sample``."""
    g = as_graph(graph)
    x = partition_array(g, sample)
    if x.ndim != 1:
        raise InvalidModelError("cut_value takes one sample; use cut_values for several")
    crossing = x[g.edges[:, 0]] != x[g.edges[:, 1]]
    return float(g.weights[crossing].sum())


def cut_values(graph: Any, samples: Any) -> FloatArray:
    """Cut value of each row of ``samples`` (node order), or of each sample of a SampleSet."""
    g = as_graph(graph)
    if isinstance(samples, dimod.SampleSet):
        column = {v: k for k, v in enumerate(samples.variables)}
        samples = samples.record.sample[:, [column[v] for v in g.node_labels]]
    x = np.atleast_2d(partition_array(g, samples))
    crossing = x[:, g.edges[:, 0]] != x[:, g.edges[:, 1]]
    return np.asarray(crossing @ g.weights, dtype=np.float64)


def cut_from_energy(total_weight: SupportsFloat, energy: SupportsFloat) -> float:
    """The cut of a partition from its SPIN energy: ``(W - E) / 2``."""
    return (float(total_weight) - float(energy)) / 2.0
