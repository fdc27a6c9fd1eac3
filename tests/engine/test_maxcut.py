"""Max-cut helper: graph forms, the SPIN model, and cut = (W - E) / 2 on random graphs."""

from __future__ import annotations

import itertools
from pathlib import Path

import dimod
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nqba.engine.errors import InvalidModelError
from nqba.engine.io import read_gset
from nqba.engine.maxcut import (
    Graph,
    as_graph,
    cut_from_energy,
    cut_value,
    cut_values,
    maxcut_bqm,
)


@st.composite
def graphs_and_partitions(draw: st.DrawFn) -> tuple[Graph, np.ndarray]:
    """A random simple graph with mixed-sign weights and a random partition of its nodes."""
    n = draw(st.integers(2, 12))
    pairs = list(itertools.combinations(range(n), 2))
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    weights = draw(
        st.lists(
            st.one_of(st.integers(-5, 5).map(float), st.floats(-10, 10, allow_nan=False)),
            min_size=len(chosen),
            max_size=len(chosen),
        )
    )
    spins = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n)))
    edges = np.array(chosen, dtype=np.int64).reshape(-1, 2)
    return Graph(n, edges, np.array(weights, dtype=np.float64)), spins


@settings(max_examples=200, deadline=None)
@given(graphs_and_partitions())
def test_cut_equals_total_weight_minus_energy_over_two(case: tuple[Graph, np.ndarray]) -> None:
    graph, spins = case
    bqm = maxcut_bqm(graph)
    sample = {v: int(s) for v, s in zip(graph.node_labels, spins, strict=True)}
    direct = sum(
        w
        for (i, j), w in zip(graph.edges.tolist(), graph.weights.tolist(), strict=True)
        if spins[i] != spins[j]
    )
    assert cut_value(graph, sample) == pytest.approx(direct, abs=1e-9)
    assert cut_value(graph, sample) == pytest.approx(
        cut_from_energy(graph.total_weight, bqm.energy(sample)), abs=1e-9
    )


def test_maxcut_bqm_is_spin_with_zero_fields_and_edge_weights_as_couplings() -> None:
    bqm = maxcut_bqm([("a", "b", 2.0), ("b", "c", -1.0), ("c", "d")])
    assert bqm.vartype is dimod.SPIN
    assert list(bqm.variables) == ["a", "b", "c", "d"]
    assert all(b == 0.0 for b in bqm.linear.values())
    assert dict(bqm.quadratic) == {("b", "a"): 2.0, ("c", "b"): -1.0, ("d", "c"): 1.0}
    assert bqm.offset == 0.0


def test_maxcut_bqm_keeps_isolated_nodes_of_a_gset_graph_as_variables(tmp_path: Path) -> None:
    path = tmp_path / "g.gset"
    path.write_text("5 2\n1 2 1\n2 3 1\n")
    bqm = maxcut_bqm(read_gset(path))
    assert list(bqm.variables) == [0, 1, 2, 3, 4]


def test_brute_force_ground_state_is_the_maximum_cut() -> None:
    rng = np.random.default_rng(11)
    g = nx.gnp_random_graph(9, 0.5, seed=4)
    for u, v in g.edges:
        g.edges[u, v]["weight"] = float(rng.integers(-3, 4))
    graph = as_graph(g)
    bqm = maxcut_bqm(graph)
    rows = np.array(list(itertools.product([-1, 1], repeat=9)))
    cuts = cut_values(graph, rows)
    energies = bqm.energies((rows, list(range(9))))
    assert cuts.max() == pytest.approx(cut_from_energy(graph.total_weight, energies.min()))
    np.testing.assert_allclose(cuts, (graph.total_weight - energies) / 2)


def test_networkx_graph_keeps_node_labels_and_defaults_weight_to_one() -> None:
    g = nx.Graph()
    g.add_edge("x", "y", weight=3)
    g.add_edge("y", "z")
    g.add_node("lonely")
    graph = as_graph(g)
    assert graph.node_labels == ["x", "y", "z", "lonely"]
    assert graph.weights.tolist() == [3.0, 1.0]
    assert cut_value(graph, {"x": 1, "y": -1, "z": 1, "lonely": 1}) == 4.0


def test_cut_values_reads_a_sampleset_by_label() -> None:
    graph = as_graph([(0, 1, 1.0), (1, 2, 5.0)])
    ss = dimod.SampleSet.from_samples(  # type: ignore[no-untyped-call]
        ([[1, 1, -1], [-1, 1, -1]], [2, 1, 0]), dimod.SPIN, energy=[0.0, 0.0]
    )
    # Columns are labelled 2, 1, 0: the first row puts node 0 alone on side -1.
    assert cut_values(graph, ss).tolist() == [1.0, 6.0]


def test_cut_accepts_binary_partitions_like_spin_ones() -> None:
    graph = as_graph([(0, 1, 2.0), (1, 2, 1.0)])
    assert cut_value(graph, [0, 1, 1]) == cut_value(graph, [-1, 1, 1]) == 2.0


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        ([(0, 0, 1.0)], "self-loop"),
        ([(0, 1), (1, 0)], "appears twice"),
        ([(0, 1, float("nan"))], "not finite"),
        ([(0, 1, "heavy")], "not a number"),
        ([(0, 1, 2, 3)], "(u, v) or (u, v, w)"),
        (nx.DiGraph([(0, 1)]), "undirected"),
        (nx.MultiGraph([(0, 1), (0, 1)]), "undirected"),
        ("0 1", "unsupported graph type"),
        (Graph(2, np.array([[0, 2]]), np.array([1.0])), "outside 0..1"),
    ],
)
def test_bad_graphs_are_refused_with_the_reason(graph: object, words: str) -> None:
    with pytest.raises(InvalidModelError) as info:
        as_graph(graph)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("sample", "words"),
    [([1, -1], "2 values for 3 nodes"), ([1, 0, -1], "SPIN"), ({0: 1, 1: 1}, "node 2")],
)
def test_bad_partitions_are_refused_with_the_reason(sample: object, words: str) -> None:
    graph = as_graph([(0, 1), (1, 2)])
    with pytest.raises(InvalidModelError, match=words):
        cut_value(graph, sample)


@pytest.mark.realdata
def test_g1_cut_of_a_random_partition_matches_the_energy_identity(data_dir: Path) -> None:
    graph = read_gset(data_dir / "gset" / "G1.txt")
    bqm = maxcut_bqm(graph)
    spins = np.random.default_rng(0).choice([-1, 1], size=graph.num_nodes)
    sample = dict(enumerate(spins.tolist()))
    assert graph.total_weight == 19176.0
    assert cut_value(graph, sample) == cut_from_energy(19176.0, bqm.energy(sample))
