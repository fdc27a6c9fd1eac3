"""Readers for Beasley's OR-Library portfolio files (Chang et al. 2000): portN and portefN.

``portN.txt``: the number of assets N; N lines ``mean_return std_dev``; then N(N+1)/2 lines
``i j corr`` for every pair i <= j (1-based, diagonal ``i i 1`` included). The covariance is
``corr[i, j] * sd[i] * sd[j]``. ``portefN.txt``: one line ``mean_return variance`` per point of
the long-only efficient frontier (the second column is the variance, not the std dev).

Lines are split on whitespace; blank lines are skipped. Every malformed file raises
:class:`DataFormatError` with the path and the 1-based line number.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nqba.finance.errors import DataFormatError

__all__ = ["OrlibPortfolio", "read_orlib_frontier", "read_orlib_portfolio"]

FloatArray = npt.NDArray[np.float64]

#: How far a diagonal correlation may be from 1, and an off-diagonal one outside [-1, 1]
#: (the files print six decimals).
CORRELATION_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class OrlibPortfolio:
    """One OR-Library instance: weekly mean returns, std devs, correlations and covariance.

    Arrays are read-only; ``names`` are "1".."N", the 1-based numbers the files and the
    published tables use.
    """

    mu: FloatArray
    sd: FloatArray
    corr: FloatArray
    cov: FloatArray
    names: list[str] = field(default_factory=list)

    @property
    def num_assets(self) -> int:
        return len(self.mu)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines of ``path`` as (1-based line number, whitespace-split tokens)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise DataFormatError("is a directory, not a data file", path=str(path)) from None
    except OSError as e:
        raise DataFormatError(f"cannot read the file: {e.strerror}", path=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad_line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(
            "not a text file (invalid UTF-8)", path=str(path), line=bad_line
        ) from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if tokens:
            rows.append((lineno, tokens))
    return rows


def _number(token: str, what: str, path: Path, line: int) -> float:
    try:
        x = float(token)
    except ValueError:
        raise DataFormatError(
            f"{what} is not a number: {token!r}", path=str(path), line=line
        ) from None
    if not math.isfinite(x):
        raise DataFormatError(f"{what} is not finite: {token!r}", path=str(path), line=line)
    return x


def _index(token: str, n: int, what: str, path: Path, line: int) -> int:
    try:
        i = int(token)
    except ValueError:
        raise DataFormatError(
            f"{what} must be an asset number 1..{n}; got {token!r}", path=str(path), line=line
        ) from None
    if not 1 <= i <= n:
        raise DataFormatError(
            f"{what} {i} is out of range: the file has {n} assets, numbered 1..{n}",
            path=str(path),
            line=line,
        )
    return i - 1


def _fields(tokens: list[str], count: int, what: str, path: Path, line: int) -> None:
    if len(tokens) != count:
        raise DataFormatError(
            f"expected {count} fields ({what}); found {len(tokens)}: {' '.join(tokens)[:60]!r}",
            path=str(path),
            line=line,
        )


def read_orlib_portfolio(path: str | os.PathLike[str]) -> OrlibPortfolio:
    """Read a ``portN.txt`` file; refuse anything that is not exactly the documented format."""
    p = Path(path)
    rows = _lines(p)
    if not rows:
        raise DataFormatError(
            "the file is empty; expected the number of assets first", path=str(p), line=1
        )
    head_line, head = rows[0]
    if len(head) != 1 or not head[0].isdigit() or int(head[0]) < 1:
        raise DataFormatError(
            f"the first line must be the number of assets (one positive integer); "
            f"found {' '.join(head)[:60]!r}",
            path=str(p),
            line=head_line,
        )
    n = int(head[0])
    num_pairs = n * (n + 1) // 2
    asset_rows = rows[1 : 1 + n]
    if len(asset_rows) < n:
        last = rows[-1][0]
        raise DataFormatError(
            f"the header says {n} assets but only {len(asset_rows)} 'mean sd' lines follow",
            path=str(p),
            line=last,
        )
    mu = np.empty(n)
    sd = np.empty(n)
    for k, (line, tokens) in enumerate(asset_rows):
        _fields(tokens, 2, f"mean return and std dev of asset {k + 1}", p, line)
        mu[k] = _number(tokens[0], f"mean return of asset {k + 1}", p, line)
        sd[k] = _number(tokens[1], f"std dev of asset {k + 1}", p, line)
        if sd[k] < 0:
            raise DataFormatError(
                f"std dev of asset {k + 1} is negative ({tokens[1]})", path=str(p), line=line
            )
    corr = np.full((n, n), np.nan)
    seen = np.zeros((n, n), dtype=np.int64)  # line number of each pair (0: not yet seen)
    pair_rows = rows[1 + n :]
    for line, tokens in pair_rows[:num_pairs]:
        _fields(tokens, 3, "i j correlation", p, line)
        i = _index(tokens[0], n, "first asset number", p, line)
        j = _index(tokens[1], n, "second asset number", p, line)
        c = _number(tokens[2], f"correlation of assets {i + 1} and {j + 1}", p, line)
        if seen[i, j]:
            raise DataFormatError(
                f"the pair ({i + 1}, {j + 1}) is given twice (first on line {seen[i, j]})",
                path=str(p),
                line=line,
            )
        if i == j and abs(c - 1.0) > CORRELATION_TOLERANCE:
            raise DataFormatError(
                f"the correlation of asset {i + 1} with itself must be 1; found {tokens[2]}",
                path=str(p),
                line=line,
            )
        if abs(c) > 1.0 + CORRELATION_TOLERANCE:
            raise DataFormatError(
                f"the correlation of assets {i + 1} and {j + 1} is {tokens[2]}, outside [-1, 1]",
                path=str(p),
                line=line,
            )
        seen[i, j] = seen[j, i] = line
        corr[i, j] = corr[j, i] = 1.0 if i == j else c
    if len(pair_rows) > num_pairs:
        raise DataFormatError(
            f"{n} assets need {num_pairs} correlation lines (every pair i <= j once); "
            f"the file has {len(pair_rows)}: this line is one too many",
            path=str(p),
            line=pair_rows[num_pairs][0],
        )
    missing = np.argwhere(np.triu(seen == 0))
    if missing.size:
        shown = ", ".join(f"({i + 1}, {j + 1})" for i, j in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataFormatError(
            f"{n} assets need {num_pairs} correlation lines (every pair i <= j once); the file "
            f"has {len(pair_rows)}; missing pairs: {shown}{more}",
            path=str(p),
            line=rows[-1][0],
        )
    cov = corr * np.outer(sd, sd)
    for a in (mu, sd, corr, cov):
        a.setflags(write=False)
    return OrlibPortfolio(mu=mu, sd=sd, corr=corr, cov=cov, names=[str(i + 1) for i in range(n)])


def read_orlib_frontier(path: str | os.PathLike[str]) -> tuple[FloatArray, FloatArray]:
    """Read a ``portefN.txt`` file: (mean returns, variances), in file order."""
    p = Path(path)
    rows = _lines(p)
    if not rows:
        raise DataFormatError(
            "the file is empty; expected lines 'mean_return variance'", path=str(p), line=1
        )
    means = np.empty(len(rows))
    variances = np.empty(len(rows))
    for k, (line, tokens) in enumerate(rows):
        _fields(tokens, 2, "mean return and variance", p, line)
        means[k] = _number(tokens[0], "mean return", p, line)
        variances[k] = _number(tokens[1], "variance", p, line)
        if variances[k] < 0:
            raise DataFormatError(
                f"the variance is negative ({tokens[1]}); the second column must be a variance",
                path=str(p),
                line=line,
            )
    return means, variances
