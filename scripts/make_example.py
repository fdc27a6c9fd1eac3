"""Write the bundled max-cut example, src/nqba/examples/maxcut-100.gset, deterministically.

The graph is an Erdos-Renyi G(n=100, p=0.08) with unit weights, drawn with
``numpy.random.default_rng(2026)`` over the upper triangle in row-major order, in the G-set
format of :mod:`nqba.engine.io`. Run ``python scripts/make_example.py`` from the repository root;
running it again rewrites the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nqba.engine.io import write_gset
from nqba.engine.maxcut import Graph

N = 100
P = 0.08
SEED = 2026
TARGET = Path(__file__).resolve().parent.parent / "src" / "nqba" / "examples" / "maxcut-100.gset"


def example_graph() -> Graph:
    """The example graph: each pair i < j is an edge with probability P."""
    rng = np.random.default_rng(SEED)
    i, j = np.triu_indices(N, k=1)
    keep = rng.random(i.size) < P
    edges = np.column_stack([i[keep], j[keep]]).astype(np.int64)
    return Graph(N, edges, np.ones(len(edges), dtype=np.float64))


def main() -> None:
    graph = example_graph()
    write_gset(graph, TARGET)
    print(f"wrote {TARGET} ({graph.num_nodes} nodes, {graph.num_edges} edges)")


if __name__ == "__main__":
    main()
