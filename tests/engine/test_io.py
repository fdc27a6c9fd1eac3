"""Model file readers: G-set, BQM JSON and QUBO triplets, their errors, and format detection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dimod
import numpy as np
import pytest

from nqba.engine.errors import InvalidModelError, ModelFormatError
from nqba.engine.io import (
    detect_format,
    read_bqm_json,
    read_gset,
    read_model,
    read_qubo,
    write_bqm_json,
    write_gset,
    write_qubo,
)
from nqba.engine.maxcut import Graph


def _write(tmp_path: Path, text: str, name: str = "model.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _format_error(path: Path, reader: object = read_gset) -> ModelFormatError:
    assert callable(reader)
    with pytest.raises(ModelFormatError) as info:
        reader(path)
    err = info.value
    assert err.path == str(path)
    return err


# G-set ------------------------------------------------------------------------------------


def test_gset_reader_returns_zero_based_edges_and_float_weights(tmp_path: Path) -> None:
    path = _write(tmp_path, "4 3\n1 2 1\n2 4 -2\n3 1 0.5\n")
    g = read_gset(path)
    assert g.num_nodes == 4
    assert g.edges.tolist() == [[0, 1], [1, 3], [2, 0]]
    assert g.weights.tolist() == [1.0, -2.0, 0.5]
    assert g.total_weight == pytest.approx(-0.5)


def test_gset_reader_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "3 2\n\n1 2 1\n\n2 3 1\n\n")
    assert read_gset(path).num_edges == 2
    bad = _write(tmp_path, "3 2\n\n1 2 1\n\n2 2 1\n", "bad.txt")
    assert _format_error(bad).line == 5


def test_gset_reader_accepts_a_graph_without_edges(tmp_path: Path) -> None:
    g = read_gset(_write(tmp_path, "5 0\n"))
    assert (g.num_nodes, g.num_edges, g.total_weight) == (5, 0, 0.0)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("\n\n", 1, "empty"),
        ("3\n1 2 1\n", 1, "header"),
        ("3 1 J\n1 2 1\n", 1, "header"),
        ("three 1\n1 2 1\n", 1, "header"),
        ("0 0\n", 1, "vertices"),
        ("3 -1\n", 1, "edges"),
        ("3 3\n1 2 1\n2 3 1\n", 4, "declares 3 edges but the file has 2"),
        ("3 1\n1 2 1\n2 3 1\n", 3, "more edge lines"),
        ("3 2\n1 2\n2 3 1\n", 2, "3 fields"),
        ("3 2\n1 2 1 7\n2 3 1\n", 2, "3 fields"),
        ("3 2\n1 2 1\n2 x 1\n", 3, "'x' is not an integer"),
        ("3 2\n1 2 1\n2 1.5 1\n", 3, "'1.5' is not an integer"),
        ("3 2\n1 2 1\n2 3 heavy\n", 3, "'heavy' is not a number"),
        ("3 2\n1 2 1\n2 4 1\n", 3, "vertex 4 is out of range 1..3"),
        ("3 2\n0 2 1\n2 3 1\n", 2, "vertex 0 is out of range"),
        ("3 2\n1 2 1\n3 3 1\n", 3, "self-loop on vertex 3"),
        ("3 3\n1 2 1\n2 3 1\n2 1 4\n", 4, "repeats the edge on line 2"),
        ("3 3\n1 2 1\n2 3 1\n1 2 4\n", 4, "repeats the edge on line 2"),
        ("3 2\n1 2 nan\n2 3 1\n", 2, "not finite"),
        ("3 2\n1 2 1\n2 3 -inf\n", 3, "not finite"),
    ],
)
def test_malformed_gset_file_names_the_problem_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    err = _format_error(_write(tmp_path, text))
    assert err.line == line
    assert words in str(err)
    assert f":{line}:" in str(err)


def test_gset_reader_refuses_a_binary_file_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.gset"
    path.write_bytes(b"3 1\n1 2 \xff\n")
    err = _format_error(path)
    assert err.line == 2
    assert "UTF-8" in str(err)


def test_gset_write_read_round_trip_keeps_edges_and_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    i, j = np.triu_indices(30, k=1)
    keep = rng.random(i.size) < 0.2
    edges = np.column_stack([i[keep], j[keep]]).astype(np.int64)
    for weights in (rng.integers(-3, 4, len(edges)).astype(float), rng.normal(size=len(edges))):
        g = Graph(30, edges, weights)
        path = tmp_path / "g.gset"
        write_gset(g, path)
        back = read_gset(path)
        assert back.num_nodes == 30
        np.testing.assert_array_equal(back.edges, edges)
        np.testing.assert_array_equal(back.weights, weights)


def test_gset_reader_parses_twenty_thousand_edges_fast(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    i, j = np.triu_indices(800, k=1)
    pick = np.sort(rng.choice(i.size, 19176, replace=False))
    g = Graph(800, np.column_stack([i[pick], j[pick]]).astype(np.int64), np.ones(19176))
    path = tmp_path / "big.gset"
    write_gset(g, path)
    read_gset(path)  # warm the file cache
    start = time.perf_counter()
    back = read_gset(path)
    elapsed = time.perf_counter() - start
    assert back.num_edges == 19176
    assert elapsed < 0.1, f"reading 19176 edges took {elapsed:.3f} s"


@pytest.mark.realdata
def test_gset_g1_reads_with_its_published_size_and_weight(data_dir: Path) -> None:
    g = read_gset(data_dir / "gset" / "G1.txt")
    assert (g.num_nodes, g.num_edges, g.total_weight) == (800, 19176, 19176.0)
    model = read_model(data_dir / "gset" / "G1.txt")
    assert model.format == "gset"
    assert model.bqm.num_variables == 800
    assert model.bqm.num_interactions == 19176


@pytest.mark.realdata
def test_gset_g11_has_mixed_weights_summing_to_34(data_dir: Path) -> None:
    g = read_gset(data_dir / "gset" / "G11.txt")
    assert (g.num_nodes, g.num_edges, g.total_weight) == (800, 1600, 34.0)
    assert int((g.weights == 1).sum()) == 817
    assert int((g.weights == -1).sum()) == 783


# BQM JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vartype", [dimod.SPIN, dimod.BINARY])
def test_bqm_json_round_trip_keeps_biases_offset_and_labels(
    tmp_path: Path, vartype: dimod.Vartype
) -> None:
    bqm = dimod.BinaryQuadraticModel(
        {"a": 1.5, 3: -2.0, ("t", 1): 0.25}, {("a", 3): -1.0, (3, ("t", 1)): 2.5}, 0.75, vartype
    )
    path = tmp_path / "m.json"
    write_bqm_json(bqm, path)
    back = read_bqm_json(path)
    assert back == bqm
    assert back.vartype is vartype
    assert read_model(path).format == "bqm-json"


def test_bqm_json_reader_reports_the_line_of_invalid_json(tmp_path: Path) -> None:
    err = _format_error(
        _write(tmp_path, '{\n  "type": "BinaryQuadraticModel",\n  oops\n}'), read_bqm_json
    )
    assert err.line == 3
    assert "invalid JSON" in str(err)


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        ([1, 2, 3], "not a dimod BQM"),
        ({"type": "SampleSet"}, "found type 'SampleSet'"),
        ({"type": "BinaryQuadraticModel"}, "not a valid dimod BQM serialisation"),
    ],
)
def test_bqm_json_reader_refuses_json_that_is_not_a_bqm(
    tmp_path: Path, obj: object, words: str
) -> None:
    err = _format_error(_write(tmp_path, json.dumps(obj), "m.json"), read_bqm_json)
    assert words in str(err)


def test_bqm_json_reader_refuses_non_finite_biases_and_empty_files(tmp_path: Path) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0.0, dimod.SPIN)
    obj = bqm.to_serializable()
    obj["linear_biases"] = [float("nan")]
    err = _format_error(_write(tmp_path, json.dumps(obj), "m.json"), read_bqm_json)
    assert "not finite" in str(err)
    assert "empty" in str(_format_error(_write(tmp_path, "  \n", "e.json"), read_bqm_json))


# QUBO triplets ----------------------------------------------------------------------------


def test_qubo_reader_reads_linear_and_quadratic_terms_with_comments(tmp_path: Path) -> None:
    text = "# a small QUBO\n0 0 -1\n1 1 -1.5  # linear\nc qbsolv-style comment\n0 1 2\n\n2 1 0.5\n"
    bqm = read_qubo(_write(tmp_path, text, "m.qubo"))
    assert bqm.vartype is dimod.BINARY
    assert dict(bqm.linear) == {0: -1.0, 1: -1.5, 2: 0.0}
    assert bqm.get_quadratic(0, 1) == 2.0
    assert bqm.get_quadratic(1, 2) == 0.5
    assert bqm.offset == 0.0


def test_qubo_reader_checks_a_qbsolv_header_against_the_terms(tmp_path: Path) -> None:
    ok = "c header next\np qubo 0 3 2 1\n0 0 1\n1 1 1\n0 1 -2\n"
    assert read_qubo(_write(tmp_path, ok, "ok.qubo")).num_interactions == 1
    bad = "p qubo 0 3 2 2\n0 0 1\n1 1 1\n0 1 -2\n"
    err = _format_error(_write(tmp_path, bad, "bad.qubo"), read_qubo)
    assert err.line == 1
    assert "declares 2 diagonal and 2 off-diagonal" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "no QUBO terms"),
        ("# only a comment\n", 1, "no QUBO terms"),
        ("0 0 1\n0 1\n", 2, "3 fields"),
        ("0 0 1\na 1 2\n", 2, "'a' is not an integer"),
        ("0 0 1\n-1 1 2\n", 2, "negative"),
        ("0 0 1\n0 1 x\n", 2, "'x' is not a number"),
        ("0 0 1\n0 1 inf\n", 2, "not finite"),
        ("0 1 1\n1 0 1\n", 2, "repeats the term on line 1"),
        ("0 0 1\n\n0 0 3\n", 3, "repeats the term on line 1"),
        ("0 0 1\np qubo 0 1 1 0\n", 2, "first non-comment line"),
        ("p qubo 0 1\n0 0 1\n", 1, "header"),
    ],
)
def test_malformed_qubo_file_names_the_problem_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    err = _format_error(_write(tmp_path, text, "m.qubo"), read_qubo)
    assert err.line == line
    assert words in str(err)


def test_qubo_write_read_round_trip_keeps_the_model_without_offset(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    Q = {(i, j): float(rng.normal()) for i in range(8) for j in range(i, 8) if rng.random() < 0.5}
    Q[(0, 0)] = 1.0
    bqm = dimod.BinaryQuadraticModel.from_qubo(Q, offset=2.5)
    path = tmp_path / "m.qubo"
    write_qubo(bqm, path)
    back = read_qubo(path)
    expected = bqm.copy()
    expected.offset = 0.0
    assert back == expected
    assert "offset 2.5 not stored" in path.read_text()


def test_qubo_writer_refuses_labels_that_are_not_integers(tmp_path: Path) -> None:
    bqm = dimod.BinaryQuadraticModel({"x": 1.0}, {}, 0.0, dimod.BINARY)
    with pytest.raises(InvalidModelError, match="'x'"):
        write_qubo(bqm, tmp_path / "m.qubo")


def test_qubo_writer_converts_a_spin_model_to_the_same_energies(tmp_path: Path) -> None:
    bqm = dimod.BinaryQuadraticModel({0: 1.0, 1: -0.5}, {(0, 1): 2.0}, 0.0, dimod.SPIN)
    path = tmp_path / "m.qubo"
    write_qubo(bqm, path)
    back = read_qubo(path)
    binary = bqm.change_vartype(dimod.BINARY, inplace=False)
    for x in ([0, 0], [0, 1], [1, 0], [1, 1]):
        sample = dict(enumerate(x))
        assert back.energy(sample) == pytest.approx(binary.energy(sample) - binary.offset)


# Detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.gset", "garbage", "gset"),
        ("a.json", "garbage", "bqm-json"),
        ("a.qubo", "garbage", "qubo"),
        ("a.txt", '\n  {"type": 1}', "bqm-json"),
        ("a.txt", "3 1\n1 2 1\n", "gset"),
        ("a.txt", "# c\n0 0 1\n", "qubo"),
        ("a", "c qbsolv\np qubo 0 1 1 0\n0 0 1\n", "qubo"),
    ],
)
def test_format_is_detected_by_extension_then_content(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    assert detect_format(_write(tmp_path, text, name)) == expected


def test_format_detection_gives_up_with_a_hint_to_name_the_format(tmp_path: Path) -> None:
    err = _format_error(_write(tmp_path, "hello there you all\n"), detect_format)
    assert err.line == 1
    assert "--format" in str(err)


def test_an_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = _write(tmp_path, "0 0 1\n0 1 -2\n", "looks.gset")
    assert read_model(path, "qubo").bqm.num_interactions == 1
    with pytest.raises(ModelFormatError):
        read_model(path)  # read as G-set by its extension: "0 0 1" is not a header
    with pytest.raises(InvalidModelError, match="unknown model format 'csv'"):
        read_model(path, "csv")


def test_reading_a_missing_file_names_it(tmp_path: Path) -> None:
    err = _format_error(tmp_path / "absent.gset")
    assert "no such file" in str(err)
