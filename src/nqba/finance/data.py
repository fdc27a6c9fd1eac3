"""Load daily price histories and derive simple returns, saying what was dropped or filled.

Input: a CSV file or a DataFrame. In a CSV file the first column holds the dates and every other
column one asset's prices; the first non-blank line is the header. A DataFrame gives its dates as
a ``DatetimeIndex`` (or, with the default ``RangeIndex``, in its first column). Cells that are
empty or read ``NA``, ``N/A``, ``NaN``, ``null``, ``None`` or ``#N/A`` (any case) are missing
prices.

Dates: ISO ``YYYY-MM-DD`` is expected; another format is read as pandas infers it from the
first date (month first for ``01/02/2024``), with a note, and every date must share it.

Refused, with :class:`~nqba.finance.errors.DataFormatError` (for files with the 1-based line):
an empty file, a header without rows, a blank or repeated asset name, rows with the wrong
number of cells, a price that is not a finite number, an unreadable or repeated date, and a
price of zero or less. Refused with :class:`~nqba.finance.errors.InvalidDataError`: a missing
file, a column with no price at all, and fewer than two assets (``min_assets``) left after the
rules below.

Rules for missing prices, applied in this order; each one is reported in ``PriceData.notes``
or ``PriceData.dropped_assets``:

1. Rows out of date order are sorted ascending.
2. Rows with no price for any asset (holidays in a merged file) are dropped.
3. An asset with fewer than ``min_observations`` prices is dropped.
4. Missing prices *before* an asset's first price are a late listing, and missing prices
   *after* its last price an early end (delisting). Both are kept as NaN and never filled:
   the estimators use each asset's own history (pairwise, as PyPortfolioOpt does), so an asset
   listed in 2014 does not cut every other asset's history to 2014.
5. A gap *inside* an asset's history (missing prices between two prices) of at most
   ``max_gap_fill`` consecutive rows is forward-filled with the last price (a zero return on
   those days and the whole move on the next price). An asset with a longer gap is dropped:
   filling it would invent a long flat stretch, and dropping the rows would cut every asset.
6. Rows left without any price by the dropped assets are dropped.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nqba.finance.errors import DataFormatError, InvalidDataError, InvalidSpecError

MISSING_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a"})
"""Cell texts (stripped, lower case) read as a missing price."""

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_LISTED = 5  # dates or assets named in one note before "..."


@dataclass(frozen=True)
class PriceData:
    """Prices ready for estimation, and in words what loading changed to get there."""

    prices: pd.DataFrame
    """DatetimeIndex ascending, float columns, one per kept asset; NaN only before an asset's
    first price (late listing) or after its last (early end)."""
    dropped_assets: dict[str, str] = field(default_factory=dict)
    """Asset name -> why it was dropped."""
    notes: list[str] = field(default_factory=list)
    """Every other adjustment: rows sorted or dropped, gaps filled, late listings."""


def load_prices(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    min_observations: int = 2,
    max_gap_fill: int = 5,
    min_assets: int = 2,
) -> PriceData:
    """Read prices from a CSV path or a DataFrame and apply the module's missing-price rules.

    ``min_assets`` is 2 for a portfolio; pass 1 to load a single benchmark series.
    """
    if min_observations < 2:
        raise InvalidSpecError(
            f"min_observations must be at least 2 (one return needs two prices), "
            f"got {min_observations}"
        )
    if max_gap_fill < 0:
        raise InvalidSpecError(f"max_gap_fill must be 0 or more rows, got {max_gap_fill}")
    if min_assets < 1:
        raise InvalidSpecError(f"min_assets must be at least 1, got {min_assets}")
    if isinstance(source, pd.DataFrame):
        table = _table_from_frame(source)
    elif isinstance(source, str | os.PathLike):
        table = _table_from_csv(Path(source))
    else:
        raise InvalidDataError(
            f"prices must be a CSV path or a pandas DataFrame, got {type(source).__name__}"
        )
    return _apply_rules(table, min_observations, max_gap_fill, min_assets)


def simple_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Per-asset simple returns ``p_t / p_{t-1} - 1`` between consecutive rows, never filled.

    A late-listed asset's return is NaN up to and including its first price date. The first row
    (no earlier price) and any row where every return is NaN are dropped.
    """
    frame = as_price_frame(prices)
    return frame.pct_change(fill_method=None).iloc[1:].dropna(how="all")


def as_price_frame(prices: Any, *, what: str = "prices") -> pd.DataFrame:
    """``prices`` as a float DataFrame (numpy columns named A0, A1, ...); refuses non-numbers."""
    if isinstance(prices, pd.Series):
        frame = prices.to_frame()
    elif isinstance(prices, pd.DataFrame):
        frame = prices
    else:
        array = np.asarray(prices)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise InvalidDataError(
                f"{what} must be a 2-D table (rows x assets), got {array.ndim}-D"
            )
        frame = pd.DataFrame(array, columns=[f"A{i}" for i in range(array.shape[1])])
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise InvalidDataError(f"{what} are empty (shape {frame.shape})")
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()].tolist()
        raise InvalidDataError(f"{what} name assets more than once: {dup}")
    bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        try:
            frame = frame.astype(float)
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(
                f"{what} column(s) {bad} hold values that are not numbers; load them with "
                f"load_prices to see the first bad cell"
            ) from exc
    return frame.astype(float)


@dataclass
class _Table:
    """Parsed but not yet checked prices: one date, one line number and one row of floats."""

    dates: pd.DatetimeIndex
    values: pd.DataFrame  # RangeIndex rows, float, NaN = missing
    lines: list[int] | None  # 1-based file line of each row, None for DataFrame input
    path: str | None
    date_column: str
    notes: list[str] = field(default_factory=list)


def _where(table: _Table, row: int) -> str:
    if table.lines is not None:
        return f"line {table.lines[row]}"
    return f"row {row} (index {table.dates[row] if row < len(table.dates) else '?'})"


def _error(table: _Table, row: int, message: str) -> DataFormatError:
    line = table.lines[row] if table.lines is not None else None
    if line is None:
        message = f"{message} at {_where(table, row)}"
    return DataFormatError(message, path=table.path, line=line)


def _table_from_csv(path: Path) -> _Table:
    if not path.exists():
        raise InvalidDataError(f"price file not found: {path}")
    if not path.is_file():
        raise InvalidDataError(f"price path is not a file: {path}")
    text_path = str(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    header_line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                if header is None:
                    header = [c.strip() for c in cells]
                    header_line = reader.line_num
                    continue
                if len(cells) != len(header):
                    raise DataFormatError(
                        f"expected {len(header)} cells as in the header, found {len(cells)}",
                        path=text_path,
                        line=reader.line_num,
                    )
                rows.append(cells)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not a UTF-8 text file ({exc.reason})", path=text_path) from exc
    except csv.Error as exc:
        raise DataFormatError(f"not a readable CSV file ({exc})", path=text_path) from exc
    if header is None:
        raise DataFormatError(
            "file is empty; expected a header line 'date,ASSET1,ASSET2,...'", path=text_path
        )
    assets = header[1:]
    for position, name in enumerate(assets, start=2):
        if not name:
            raise DataFormatError(
                f"column {position} has no asset name", path=text_path, line=header_line
            )
    seen: set[str] = set()
    for name in assets:
        if name in seen:
            raise DataFormatError(
                f"asset {name!r} appears twice in the header", path=text_path, line=header_line
            )
        seen.add(name)
    if not rows:
        raise DataFormatError(
            "file has a header but no price rows", path=text_path, line=header_line
        )
    if not assets:
        raise InvalidDataError(
            f"{path}: only a date column, no asset prices; need at least two assets"
        )
    columns = list(zip(*rows, strict=True))
    table = _Table(pd.DatetimeIndex([]), pd.DataFrame(), lines, text_path, header[0] or "date")
    table.dates = _parse_dates(table, columns[0])
    values: dict[str, pd.Series] = {}
    for position, name in enumerate(assets, start=1):
        values[name] = _parse_numbers(table, name, columns[position])
    table.values = pd.DataFrame(values)
    return table


def _parse_numbers(table: _Table, name: str, texts: Sequence[str]) -> pd.Series:
    """Floats of one column; cells pandas cannot read are missing tokens or an error."""
    numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").astype(float)
    values = numbers.to_numpy(copy=True)
    for row in np.flatnonzero(~np.isfinite(values)).tolist():  # only missing or odd cells
        text = texts[row].strip()
        if text.lower() in MISSING_TOKENS:
            values[row] = np.nan
            continue
        try:
            value = float(text)
        except ValueError:
            value = np.nan
        if not np.isfinite(value):
            raise _error(
                table,
                row,
                f"column {name!r}: {texts[row]!r} is not a finite number "
                f"(leave the cell empty for a missing price)",
            )
        values[row] = value
    return pd.Series(values)


def _parse_dates(table: _Table, texts: Sequence[str]) -> pd.DatetimeIndex:
    stripped = [t.strip() for t in texts]
    for row, text in enumerate(stripped):
        if not text:
            raise _error(table, row, f"date column {table.date_column!r} is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' "could not infer format"
        parsed = pd.to_datetime(pd.Series(stripped), errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise _error(
            table,
            row,
            f"cannot read date {stripped[row]!r} in column {table.date_column!r} "
            f"(all dates must share one format, e.g. YYYY-MM-DD as in the first row "
            f"{stripped[0]!r})",
        )
    if not _ISO_DATE.match(stripped[0]):
        table.notes.append(
            f"dates are not ISO YYYY-MM-DD; read in the format pandas infers from the first "
            f"one, {stripped[0]!r} -> {_day(parsed.iloc[0])} (month first for a/b/yyyy)"
        )
    return pd.DatetimeIndex(parsed)


def _table_from_frame(frame: pd.DataFrame) -> _Table:
    if frame.shape[0] == 0:
        raise InvalidDataError("price DataFrame has no rows")
    if isinstance(frame.index, pd.DatetimeIndex):
        dates_raw: Any = frame.index
        body = frame
        date_column = str(frame.index.name or "date")
    elif isinstance(frame.index, pd.RangeIndex):
        if frame.shape[1] == 0:
            raise InvalidDataError("price DataFrame has no columns")
        date_column = str(frame.columns[0])
        dates_raw = frame.iloc[:, 0]
        body = frame.iloc[:, 1:]
    else:
        date_column = str(frame.index.name or "date")
        dates_raw = frame.index
        body = frame
    if body.shape[1] == 0:
        raise InvalidDataError(
            "price DataFrame has only dates, no asset prices; need at least two assets"
        )
    names = [str(c) for c in body.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InvalidDataError(f"price DataFrame names assets more than once: {dup}")
    table = _Table(pd.DatetimeIndex([]), pd.DataFrame(), None, None, date_column)
    if isinstance(dates_raw, pd.DatetimeIndex):
        if dates_raw.hasnans:
            row = int(np.flatnonzero(dates_raw.isna())[0])
            raise InvalidDataError(f"price DataFrame has a missing date at row {row}")
        table.dates = dates_raw
    else:
        table.dates = _parse_dates(table, [str(d) for d in dates_raw])
    values: dict[str, pd.Series] = {}
    for name, column in zip(names, body.columns, strict=True):
        series = body[column].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numbers = series.astype(float)
            if np.isinf(numbers).any():
                row = int(np.flatnonzero(np.isinf(numbers.to_numpy()))[0])
                raise _error(table, row, f"column {name!r}: price is infinite")
        else:
            numbers = _parse_numbers(table, name, [_cell_text(v) for v in series])
        values[name] = numbers
    table.values = pd.DataFrame(values)
    return table


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _list(items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def _day(stamp: pd.Timestamp) -> str:
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _apply_rules(
    table: _Table, min_observations: int, max_gap_fill: int, min_assets: int
) -> PriceData:
    notes: list[str] = list(table.notes)
    dropped: dict[str, str] = {}
    values = table.values
    dates = table.dates
    lines = np.asarray(table.lines) if table.lines is not None else None

    duplicated = dates.duplicated(keep=False)
    if duplicated.any():
        first_dup = dates[duplicated][0]
        rows = np.flatnonzero(dates == first_dup)
        where = (
            f"lines {', '.join(str(lines[r]) for r in rows)}"
            if lines is not None
            else f"rows {', '.join(str(r) for r in rows)}"
        )
        raise DataFormatError(
            f"date {_day(first_dup)} appears {rows.size} times ({where}); keep one row per date",
            path=table.path,
        )

    for name in values.columns:
        positive = values[name].dropna() <= 0
        if positive.any():
            row = int(positive.index[np.flatnonzero(positive.to_numpy())[0]])
            raise _error(
                table,
                row,
                f"column {name!r}: price {values[name].iloc[row]!r} on {_day(dates[row])} is not "
                f"positive; prices must be > 0 (leave the cell empty if it is missing)",
            )

    empty = [str(c) for c in values.columns if values[c].isna().all()]
    if empty:
        raise InvalidDataError(
            f"asset column(s) {empty} hold no price at all"
            + (f" in {table.path}" if table.path else "")
            + "; remove the column or fill in its prices"
        )

    frame = pd.DataFrame(values.to_numpy(), index=dates, columns=values.columns)
    if not dates.is_monotonic_increasing:
        order = np.argsort(dates.to_numpy(), kind="stable")
        frame = frame.iloc[order]
        notes.append(
            f"rows were not in date order; sorted {len(frame)} rows ascending by date "
            f"({_day(frame.index[0])} to {_day(frame.index[-1])})"
        )
    frame.index.name = table.date_column

    blank_rows = frame.isna().all(axis=1)
    if blank_rows.any():
        notes.append(
            f"dropped {int(blank_rows.sum())} row(s) with no price for any asset: "
            f"{_list([_day(d) for d in frame.index[blank_rows.to_numpy()]])}"
        )
        frame = frame.loc[~blank_rows.to_numpy()]

    kept: dict[str, pd.Series] = {}
    for name in frame.columns:
        series = frame[name]
        count = int(series.notna().sum())
        if count < min_observations:
            dropped[str(name)] = f"only {count} price(s); min_observations is {min_observations}"
            continue
        valid = np.flatnonzero(series.notna().to_numpy())
        first, last = int(valid[0]), int(valid[-1])
        if first > 0:
            notes.append(
                f"{name}: late listing, first price on {_day(series.index[first])}; its "
                f"{first} earlier row(s) are left empty and its estimates use its own history"
            )
        if last < len(series) - 1:
            notes.append(
                f"{name}: no price after {_day(series.index[last])}; its "
                f"{len(series) - 1 - last} later row(s) are left empty (history ends there)"
            )
        inside = series.iloc[first : last + 1]
        gaps = _gap_runs(inside.isna().to_numpy())
        if gaps:
            longest_start, longest_len = max(gaps, key=lambda g: g[1])
            if longest_len > max_gap_fill:
                gap_from = _day(inside.index[longest_start])
                gap_to = _day(inside.index[longest_start + longest_len - 1])
                dropped[str(name)] = (
                    f"gap of {longest_len} missing price(s) from {gap_from} to {gap_to} is "
                    f"longer than max_gap_fill={max_gap_fill} rows"
                )
                continue
            filled = inside.ffill()
            series = series.copy()
            series.iloc[first : last + 1] = filled.to_numpy()
            notes.append(
                f"{name}: forward-filled {sum(g[1] for g in gaps)} missing price(s) in "
                f"{len(gaps)} gap(s) of at most {longest_len} row(s) "
                f"(first on {_day(inside.index[gaps[0][0]])})"
            )
        kept[str(name)] = series

    if len(kept) < min_assets:
        reasons = "; ".join(f"{a}: {r}" for a, r in dropped.items())
        need = "at least two assets" if min_assets == 2 else f"at least {min_assets} asset(s)"
        raise InvalidDataError(
            f"need {need}, {len(kept)} left"
            + (f" ({', '.join(kept)})" if kept else "")
            + (f"; dropped: {reasons}" if reasons else "")
        )
    prices = pd.DataFrame(kept)
    prices.index.name = table.date_column
    if dropped:
        now_blank = prices.isna().all(axis=1)
        if now_blank.any():
            notes.append(
                f"dropped {int(now_blank.sum())} row(s) that had prices only for dropped "
                f"assets: {_list([_day(d) for d in prices.index[now_blank.to_numpy()]])}"
            )
            prices = prices.loc[~now_blank.to_numpy()]
    if len(prices) < 2:
        raise InvalidDataError(f"need at least two dates of prices, {len(prices)} left")
    return PriceData(prices=prices.astype(float), dropped_assets=dropped, notes=notes)


def _gap_runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in ``missing``."""
    if not missing.any():
        return []
    padded = np.concatenate(([False], missing, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]
