"""OR-Library portfolio readers: the real files, a written round trip, and every format error."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nqba.finance.errors import DataFormatError
from nqba.finance.orlib import read_orlib_frontier, read_orlib_portfolio

# cvxpy as Any: its typed exports trip mypy (as in test_estimators.py)
cp: Any = importlib.import_module("cvxpy")


def _orlib(data_dir: Path, name: str) -> Path:
    return data_dir / "portfolio" / "orlib" / name


def _write_port(
    tmp_path: Path, mu: np.ndarray, sd: np.ndarray, corr: np.ndarray, name: str = "port.txt"
) -> Path:
    n = len(mu)
    lines = [f" {n}"]
    lines += [f" {m:.6f} {s:.6f}" for m, s in zip(mu, sd, strict=True)]
    lines += [f" {i + 1} {j + 1} {corr[i, j]:.6f}" for i in range(n) for j in range(i, n)]
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")  # no trailing newline, as the originals
    return path


def _small(tmp_path: Path, text: str, name: str = "port.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "2\n0.01 0.05\n0.02 0.04\n1 1 1.0\n1 2 0.3\n2 2 1.0\n"


def _error(path: Path, reader: object = read_orlib_portfolio) -> DataFormatError:
    assert callable(reader)
    with pytest.raises(DataFormatError) as info:
        reader(path)
    assert info.value.path == str(path)
    return info.value


# Real files ---------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "n", "md5", "min_corr_eig"),
    [
        ("port1.txt", 31, "e54bf01e0e9c5f4d20a0ef6e741fe1cd", 0.113),
        ("port2.txt", 85, "cf5b1e40589b5a3a92ba0972dd4d4e0d", 0.106),
        ("port3.txt", 89, "520e8c8c720508eff586ffca983fb868", 0.063),
    ],
)
def test_real_files_parse_to_the_documented_sizes_and_positive_definite_correlations(
    data_dir: Path, name: str, n: int, md5: str, min_corr_eig: float
) -> None:
    path = _orlib(data_dir, name)
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5  # file identity, not security
    p = read_orlib_portfolio(path)
    assert p.num_assets == n
    assert p.names == [str(i) for i in range(1, n + 1)]
    assert np.allclose(np.diag(p.corr), 1.0)
    assert np.array_equal(p.corr, p.corr.T)
    assert np.allclose(p.cov, p.corr * np.outer(p.sd, p.sd), rtol=0, atol=0)
    assert np.linalg.eigvalsh(p.corr)[0] == pytest.approx(min_corr_eig, abs=5e-4)


@pytest.mark.realdata
def test_port1_values_match_the_file_text(data_dir: Path) -> None:
    p = read_orlib_portfolio(_orlib(data_dir, "port1.txt"))
    assert p.mu[0] == 0.001309
    assert p.sd[0] == 0.043208
    assert p.corr[0, 1] == 0.562289
    assert p.corr[0, 2] == 0.746125
    assert p.corr[29, 30] == 0.602996
    assert p.mu.min() == pytest.approx(0.000141)
    assert p.mu.max() == pytest.approx(0.010865)
    assert p.sd.min() == pytest.approx(0.035848)
    assert p.sd.max() == pytest.approx(0.069105)
    assert p.cov[0, 1] == pytest.approx(0.562289 * 0.043208 * 0.040258, rel=1e-15)
    assert not p.mu.flags.writeable
    assert not p.cov.flags.writeable


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("k", "min_variance"), [(1, 6.422572e-04), (2, 1.368553e-04), (3, 1.984935e-04)]
)
def test_frontier_files_are_the_long_only_frontier_of_their_portfolio(
    data_dir: Path, k: int, min_variance: float
) -> None:
    means, variances = read_orlib_frontier(_orlib(data_dir, f"portef{k}.txt"))
    assert means.shape == variances.shape == (2000,)
    assert np.all(np.diff(means) <= 0)  # sorted by decreasing return
    assert variances.min() == pytest.approx(min_variance, rel=1e-7)
    p = read_orlib_portfolio(_orlib(data_dir, f"port{k}.txt"))
    w = cp.Variable(p.num_assets)
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, p.cov)), [cp.sum(w) == 1, w >= 0])
    problem.solve(solver="CLARABEL")
    assert problem.value == pytest.approx(min_variance, rel=2e-5)


@pytest.mark.realdata
def test_frontier_first_line_is_read_exactly(data_dir: Path) -> None:
    means, variances = read_orlib_frontier(_orlib(data_dir, "portef1.txt"))
    assert means[0] == 0.0108650000
    assert variances[0] == 0.0047755010
    assert means[1] == 0.0108609579


# Round trip ---------------------------------------------------------------------------------


def test_written_file_reads_back_with_covariance_from_correlation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    c = a @ a.T
    sd = np.sqrt(np.diag(c))
    corr = np.round(c / np.outer(sd, sd), 6)
    np.fill_diagonal(corr, 1.0)
    mu = np.round(rng.normal(0.005, 0.003, size=6), 6)
    sd = np.round(rng.uniform(0.02, 0.07, size=6), 6)
    p = read_orlib_portfolio(_write_port(tmp_path, mu, sd, corr))
    assert np.array_equal(p.mu, mu)
    assert np.array_equal(p.sd, sd)
    assert np.allclose(p.corr, corr, atol=5e-7)
    assert np.allclose(p.cov, p.corr * np.outer(sd, sd))


def test_blank_lines_and_reversed_pairs_are_accepted(tmp_path: Path) -> None:
    p = read_orlib_portfolio(
        _small(tmp_path, " 2\n\n 0.01 0.05\n0.02  0.04\n1 1 1\n2 1 0.3\n2 2 1\n\n")
    )
    assert p.corr[0, 1] == p.corr[1, 0] == 0.3
    assert p.cov[0, 1] == pytest.approx(0.3 * 0.05 * 0.04)


def test_frontier_reader_returns_means_and_variances(tmp_path: Path) -> None:
    means, variances = read_orlib_frontier(_small(tmp_path, " .01 .004\n .009 .003", "ef.txt"))
    assert means.tolist() == [0.01, 0.009]
    assert variances.tolist() == [0.004, 0.003]


# Format errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("two\n", 1, "number of assets"),
        ("2 3\n", 1, "number of assets"),
        ("0\n", 1, "number of assets"),
        ("2.5\n", 1, "number of assets"),
    ],
)
def test_bad_header_is_refused_on_line_1(tmp_path: Path, text: str, line: int, words: str) -> None:
    err = _error(_small(tmp_path, text))
    assert err.line == line
    assert words in str(err)


def test_too_few_asset_lines_are_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, "3\n0.01 0.05\n0.02 0.04\n"))
    assert err.line == 3
    assert "3 assets" in str(err)
    assert "only 2" in str(err)


def test_asset_line_with_three_fields_is_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, "2\n0.01 0.05 7\n0.02 0.04\n1 1 1\n1 2 0.3\n2 2 1\n"))
    assert err.line == 2
    assert "expected 2 fields" in str(err)


def test_non_number_is_refused_with_its_line(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, GOOD.replace("0.02 0.04", "0.02 abc")))
    assert err.line == 3
    assert "std dev of asset 2 is not a number" in str(err)
    err = _error(_small(tmp_path, GOOD.replace("1 2 0.3", "1 2 x")))
    assert err.line == 5
    assert "not a number" in str(err)


def test_nan_and_negative_std_dev_are_refused(tmp_path: Path) -> None:
    assert _error(_small(tmp_path, GOOD.replace("0.01 0.05", "nan 0.05"))).line == 2
    err = _error(_small(tmp_path, GOOD.replace("0.01 0.05", "0.01 -0.05")))
    assert err.line == 2
    assert "negative" in str(err)


def test_index_out_of_range_is_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, GOOD.replace("1 2 0.3", "1 3 0.3")))
    assert err.line == 5
    assert "out of range" in str(err)
    assert "1..2" in str(err)
    err = _error(_small(tmp_path, GOOD.replace("1 2 0.3", "0 2 0.3")))
    assert err.line == 5
    err = _error(_small(tmp_path, GOOD.replace("1 2 0.3", "1.5 2 0.3")))
    assert err.line == 5
    assert "asset number" in str(err)


def test_duplicate_pair_is_refused_in_either_orientation(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, "2\n0.01 0.05\n0.02 0.04\n1 1 1\n1 2 0.3\n2 1 0.3\n"))
    assert err.line == 6
    assert "given twice" in str(err)
    assert "line 5" in str(err)


def test_missing_pair_is_refused_and_named(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, "2\n0.01 0.05\n0.02 0.04\n1 1 1\n2 2 1\n"))
    assert "missing pairs: (1, 2)" in str(err)
    assert err.line == 5


def test_extra_line_after_the_pairs_is_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, GOOD + "1 2 0.3\n"))
    assert err.line == 7
    assert "one too many" in str(err)


def test_correlation_outside_minus_one_one_is_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, GOOD.replace("1 2 0.3", "1 2 1.2")))
    assert err.line == 5
    assert "outside [-1, 1]" in str(err)


def test_diagonal_other_than_one_is_refused(tmp_path: Path) -> None:
    err = _error(_small(tmp_path, GOOD.replace("2 2 1.0", "2 2 0.9")))
    assert err.line == 6
    assert "with itself must be 1" in str(err)


def test_missing_file_and_binary_file_are_refused(tmp_path: Path) -> None:
    err = _error(tmp_path / "absent.txt")
    assert "no such file" in str(err)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"2\n\xff\xfe\n")
    assert _error(binary).line == 2


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        (".01 .004\n.009\n", 2, "expected 2 fields"),
        (".01 .004\n.009 x\n", 2, "not a number"),
        (".01 -.004\n", 1, "negative"),
    ],
)
def test_frontier_reader_refuses_malformed_lines(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    err = _error(_small(tmp_path, text, "ef.txt"), read_orlib_frontier)
    assert err.line == line
    assert words in str(err)
