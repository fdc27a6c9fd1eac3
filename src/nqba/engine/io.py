"""Read and write model files: G-set max-cut graphs, dimod BQM JSON, and QUBO triplet files.

Formats (``ModelFormat``), chosen by :func:`detect_format` unless named explicitly:

``gset``
    First line ``n m``; then exactly ``m`` lines ``i j w``: an undirected edge between the
    1-based vertices ``i`` and ``j`` with an int or float weight. Blank lines are ignored;
    loops, repeated edges (either orientation) and NaN/inf weights are refused. Node ``i`` of
    the file is node (and BQM variable) ``i - 1``.
``bqm-json``
    ``json.dumps(bqm.to_serializable())`` of a dimod ``BinaryQuadraticModel``.
``qubo``
    One term ``i j q`` a line: ``i == j`` is the linear bias of ``x_i``, otherwise the
    coefficient of ``x_i x_j``; ``i`` and ``j`` are non-negative integers (the variable labels).
    ``#`` starts a comment (whole line or after a term); qbsolv's ``c`` comment lines are
    comments too. Header: none is needed; a qbsolv header ``p qubo <topology> <maxNodes>
    <nNodes> <nCouplers>`` is accepted as the first non-comment line, and then the numbers of
    diagonal and off-diagonal terms must match it. A pair given twice, as ``i j`` and ``j i``
    or twice the same way, is refused: files that list both triangles of a symmetric matrix
    mean different things to different tools, so the file must say each term once. A QUBO
    file has no constant term; :func:`write_qubo` notes a dropped offset in a comment.

Every malformed file raises :class:`ModelFormatError` with the path and the 1-based line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import dimod
import numpy as np

from nqba.engine.errors import InvalidModelError, ModelFormatError
from nqba.engine.maxcut import Graph, find_repeated_edge, maxcut_bqm
from nqba.engine.model import validate_bqm

ModelFormat = Literal["gset", "bqm-json", "qubo"]
MODEL_FORMATS: tuple[str, ...] = get_args(ModelFormat)

_EXTENSIONS: dict[str, ModelFormat] = {
    ".gset": "gset",
    ".json": "bqm-json",
    ".qubo": "qubo",
}


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a file; ``graph`` is set for max-cut (G-set) files."""

    bqm: dimod.BinaryQuadraticModel
    format: ModelFormat
    path: Path
    graph: Graph | None = None


def read_model(path: str | Path, format: str | None = None) -> LoadedModel:
    """Read ``path`` as ``format`` (one of :data:`MODEL_FORMATS`), or as detected when None."""
    p = Path(path)
    fmt = detect_format(p) if format is None else _check_format(format)
    if fmt == "gset":
        graph = read_gset(p)
        return LoadedModel(maxcut_bqm(graph), fmt, p, graph)
    if fmt == "bqm-json":
        return LoadedModel(read_bqm_json(p), fmt, p)
    return LoadedModel(read_qubo(p), fmt, p)


def _check_format(format: str) -> ModelFormat:
    for f in get_args(ModelFormat):
        if format == f:
            fmt: ModelFormat = f
            return fmt
    raise InvalidModelError(f"unknown model format {format!r}; known: {', '.join(MODEL_FORMATS)}")


def detect_format(path: str | Path) -> ModelFormat:
    """The format of ``path``: by extension (.gset, .json, .qubo), else by the first data line.

    Content rule: a file starting with ``{`` is BQM JSON; a first non-comment line of two
    numbers is a G-set header; of three numbers, or a ``p qubo`` header, a QUBO file.
    """
    p = Path(path)
    by_ext = _EXTENSIONS.get(p.suffix.lower())
    if by_ext is not None:
        return by_ext
    text = _read_text(p)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "bqm-json"
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens or tokens[0] == "c":
            continue
        if tokens[0] == "p" or len(tokens) == 3:
            return "qubo"
        if len(tokens) == 2:
            return "gset"
        raise ModelFormatError(
            f"cannot tell the model format from this line ({line.strip()[:40]!r}); name it with "
            f"--format ({'|'.join(MODEL_FORMATS)})",
            path=str(p),
            line=lineno,
        )
    raise ModelFormatError("the file is empty", path=str(p), line=1)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise ModelFormatError("is a directory, not a model file", path=str(path)) from None
    except OSError as e:
        raise ModelFormatError(f"cannot read the file: {e.strerror}", path=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ModelFormatError(
            "not a text file (invalid UTF-8); is this a model file?", path=str(path), line=line
        ) from None


# G-set -------------------------------------------------------------------------------------


def read_gset(path: str | Path) -> Graph:
    """Read a G-set max-cut file into a :class:`Graph` (nodes 0-based, weights as float).

    numpy parses the edge lines in one pass; only a file it refuses is read again line by line
    to name the first bad line.
    """
    p = Path(path)
    return parse_gset(_read_text(p), str(p))


def parse_gset(text: str, where: str = "<text>") -> Graph:
    """Parse G-set text (``n m`` header, then ``i j w`` lines); errors name ``where``."""
    lines = text.splitlines()
    header_at = next((k for k, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ModelFormatError(
            "the file is empty; expected a header line 'n m'", path=where, line=1
        )
    n, m = _parse_header(lines[header_at].split(), where, header_at + 1)
    body = lines[header_at + 1 :]
    first = header_at + 2  # line number of body[0]
    table: np.ndarray[Any, Any] | None = None
    if any(line.strip() for line in body):
        try:
            table = np.loadtxt(body, dtype=_EDGE_DTYPE, comments=None, ndmin=1)
        except ValueError:
            table = None
    else:
        table = np.zeros(0, dtype=_EDGE_DTYPE)
    if table is None or len(table) != m:
        _locate_gset_error(body, first, m, where)
        raise ModelFormatError("malformed edge lines", path=where)  # pragma: no cover
    edges = np.column_stack([table["i"], table["j"]]).astype(np.int64)
    weights = np.ascontiguousarray(table["w"], dtype=np.float64)

    def line_of(k: int) -> int:
        return first + [i for i, line in enumerate(body) if line.strip()][k]

    out = np.flatnonzero(((edges < 1) | (edges > n)).any(axis=1))
    if out.size:
        k = int(out[0])
        i, j = (int(x) for x in edges[k])
        raise ModelFormatError(
            f"vertex {i if not 1 <= i <= n else j} is out of range 1..{n}",
            path=where,
            line=line_of(k),
        )
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        k = int(loops[0])
        raise ModelFormatError(
            f"self-loop on vertex {int(edges[k, 0])}", path=where, line=line_of(k)
        )
    bad_w = np.flatnonzero(~np.isfinite(weights))
    if bad_w.size:
        k = int(bad_w[0])
        raise ModelFormatError(f"weight {weights[k]} is not finite", path=where, line=line_of(k))
    edges -= 1
    dup = find_repeated_edge(edges, n)
    if dup is not None:
        was, again = dup
        i, j = (int(x) + 1 for x in edges[again])
        raise ModelFormatError(
            f"edge {i}-{j} repeats the edge on line {line_of(was)}", path=where, line=line_of(again)
        )
    return Graph(n, edges, weights)


_EDGE_DTYPE = np.dtype([("i", np.int64), ("j", np.int64), ("w", np.float64)])


def _locate_gset_error(body: list[str], first: int, m: int, where: str) -> None:
    """Raise the error of the first bad edge line (wrong count, field count, non-number)."""
    count = 0
    for lineno, line in enumerate(body, start=first):
        tokens = line.split()
        if not tokens:
            continue
        count += 1
        if count > m:
            raise ModelFormatError(
                f"more edge lines than the {m} the header declares", path=where, line=lineno
            )
        if len(tokens) != 3:
            raise ModelFormatError(
                f"expected an edge 'i j w' (3 fields); found {len(tokens)} fields",
                path=where,
                line=lineno,
            )
        for t in tokens[:2]:
            try:
                int(t)
            except ValueError:
                raise ModelFormatError(
                    f"vertex id {t!r} is not an integer", path=where, line=lineno
                ) from None
        try:
            float(tokens[2])
        except ValueError:
            raise ModelFormatError(
                f"weight {tokens[2]!r} is not a number", path=where, line=lineno
            ) from None
    if count < m:
        raise ModelFormatError(
            f"the header declares {m} edges but the file has {count} edge lines",
            path=where,
            line=first + len(body),
        )


def _parse_header(tokens: list[str], where: str, line: int) -> tuple[int, int]:
    expected = "expected a header 'n m' (number of vertices, number of edges)"
    if len(tokens) != 2:
        raise ModelFormatError(f"{expected}; found {len(tokens)} fields", path=where, line=line)
    try:
        n, m = int(tokens[0]), int(tokens[1])
    except ValueError:
        raise ModelFormatError(
            f"{expected}; found {' '.join(tokens)!r}", path=where, line=line
        ) from None
    if n < 1:
        raise ModelFormatError(
            f"the number of vertices must be >= 1; got {n}", path=where, line=line
        )
    if m < 0:
        raise ModelFormatError(f"the number of edges must be >= 0; got {m}", path=where, line=line)
    return n, m


def write_gset(graph: Graph, path: str | Path) -> None:
    """Write ``graph`` in G-set format (integral weights without a decimal point)."""
    w = graph.weights
    integral = bool(np.all(w == np.round(w))) and bool(np.all(np.abs(w) < 2**53))
    lines = [f"{graph.num_nodes} {graph.num_edges}"]
    for (i, j), x in zip(graph.edges.tolist(), w.tolist(), strict=True):
        lines.append(f"{i + 1} {j + 1} {int(x) if integral else repr(x)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# BQM JSON ----------------------------------------------------------------------------------


def read_bqm_json(path: str | Path) -> dimod.BinaryQuadraticModel:
    """Read a dimod BQM serialised with ``bqm.to_serializable()`` and ``json``."""
    p = Path(path)
    where = str(p)
    text = _read_text(p)
    if not text.strip():
        raise ModelFormatError("the file is empty; expected a BQM in JSON", path=where, line=1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"invalid JSON: {e.msg}", path=where, line=e.lineno) from None
    return bqm_from_serializable(obj, where)


def bqm_from_serializable(obj: Any, where: str = "<json>") -> dimod.BinaryQuadraticModel:
    """A BQM from the decoded JSON of ``bqm.to_serializable()``, validated (finite biases)."""
    if not isinstance(obj, dict) or obj.get("type") != "BinaryQuadraticModel":
        found = obj.get("type") if isinstance(obj, dict) else type(obj).__name__
        raise ModelFormatError(
            'not a dimod BQM: expected an object with "type": "BinaryQuadraticModel" '
            f"(from bqm.to_serializable()); found type {found!r}",
            path=where,
        )
    try:
        bqm = dimod.BinaryQuadraticModel.from_serializable(obj)
    except Exception as e:  # dimod raises KeyError/TypeError/ValueError on damaged input
        detail = f"missing field {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
        raise ModelFormatError(
            f"not a valid dimod BQM serialisation: {detail}", path=where
        ) from None
    _validate(bqm, where)
    return bqm


def write_bqm_json(bqm: dimod.BinaryQuadraticModel, path: str | Path) -> None:
    """Write ``bqm`` as JSON that :func:`read_bqm_json` (and dimod) read back."""
    Path(path).write_text(json.dumps(bqm.to_serializable()) + "\n", encoding="utf-8")


def _validate(bqm: dimod.BinaryQuadraticModel, where: str) -> None:
    try:
        validate_bqm(bqm)
    except InvalidModelError as e:
        raise ModelFormatError(str(e), path=where) from None


# QUBO triplets -----------------------------------------------------------------------------


def read_qubo(path: str | Path) -> dimod.BinaryQuadraticModel:
    """Read a QUBO triplet file (see the module docstring) into a BINARY BQM."""
    p = Path(path)
    return parse_qubo(_read_text(p), str(p))


def parse_qubo(text: str, where: str = "<text>") -> dimod.BinaryQuadraticModel:
    """Parse QUBO triplet text into a BINARY BQM; errors name ``where`` and the line."""
    header: tuple[int, int, int] | None = None  # (line, nNodes, nCouplers)
    seen: dict[tuple[int, int], int] = {}
    linear: dict[Hashable, float] = {}
    quadratic: dict[tuple[Hashable, Hashable], float] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split("#", 1)[0].split()
        if not tokens or tokens[0] == "c":
            continue
        if tokens[0] == "p":
            header = _qubo_header(tokens, header, bool(seen), where, lineno)
            continue
        if len(tokens) != 3:
            raise ModelFormatError(
                f"expected a term 'i j q' (3 fields); found {len(tokens)} fields",
                path=where,
                line=lineno,
            )
        i, j = (_qubo_index(t, where, lineno) for t in tokens[:2])
        q = _qubo_bias(tokens[2], where, lineno)
        key = (min(i, j), max(i, j))
        if key in seen:
            raise ModelFormatError(
                f"term ({i}, {j}) repeats the term on line {seen[key]}; give each pair once "
                "(sum the two entries if both triangles were meant)",
                path=where,
                line=lineno,
            )
        seen[key] = lineno
        if i == j:
            linear[i] = q
        else:
            quadratic[(i, j)] = q
    if not seen:
        raise ModelFormatError("the file has no QUBO terms 'i j q'", path=where, line=1)
    if header is not None:
        line, n_nodes, n_couplers = header
        if (len(linear), len(quadratic)) != (n_nodes, n_couplers):
            raise ModelFormatError(
                f"the header declares {n_nodes} diagonal and {n_couplers} off-diagonal terms; "
                f"the file has {len(linear)} and {len(quadratic)}",
                path=where,
                line=line,
            )
    bqm = dimod.BinaryQuadraticModel(linear, quadratic, 0.0, dimod.BINARY)
    _validate(bqm, where)
    return bqm


def _qubo_header(
    tokens: list[str],
    previous: tuple[int, int, int] | None,
    after_terms: bool,
    where: str,
    line: int,
) -> tuple[int, int, int]:
    if previous is not None or after_terms:
        raise ModelFormatError(
            "a 'p qubo' header must be the first non-comment line", path=where, line=line
        )
    usage = "expected a header 'p qubo <topology> <maxNodes> <nNodes> <nCouplers>'"
    if len(tokens) != 6 or tokens[1] != "qubo":
        raise ModelFormatError(usage, path=where, line=line)
    try:
        counts = [int(t) for t in tokens[2:]]
    except ValueError:
        raise ModelFormatError(
            f"{usage}; the four fields must be integers", path=where, line=line
        ) from None
    if min(counts) < 0:
        raise ModelFormatError(f"{usage}; counts must be >= 0", path=where, line=line)
    return line, counts[2], counts[3]


def _qubo_index(token: str, where: str, line: int) -> int:
    try:
        i = int(token)
    except ValueError:
        raise ModelFormatError(
            f"variable index {token!r} is not an integer", path=where, line=line
        ) from None
    if i < 0:
        raise ModelFormatError(f"variable index {i} is negative", path=where, line=line)
    return i


def _qubo_bias(token: str, where: str, line: int) -> float:
    try:
        q = float(token)
    except ValueError:
        raise ModelFormatError(
            f"coefficient {token!r} is not a number", path=where, line=line
        ) from None
    if not math.isfinite(q):
        raise ModelFormatError(f"coefficient {token!r} is not finite", path=where, line=line)
    return q


def write_qubo(bqm: dimod.BinaryQuadraticModel, path: str | Path) -> None:
    """Write ``bqm`` (as BINARY) as QUBO triplets; variables must be non-negative integers."""
    qubo = bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, inplace=False)
    for v in qubo.variables:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise InvalidModelError(
                f"QUBO files label variables by non-negative integers; variable {v!r} is not one"
            )
    lines = ["# QUBO triplets 'i j q' (i == j: linear term), written by nqba"]
    if qubo.offset:
        lines.append(f"# constant offset {float(qubo.offset)!r} not stored (QUBO files have none)")
    lines += [f"{v} {v} {float(b)!r}" for v, b in qubo.linear.items()]
    lines += [f"{u} {v} {float(b)!r}" for (u, v), b in qubo.quadratic.items()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
