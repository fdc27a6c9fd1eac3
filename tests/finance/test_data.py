"""Price loading: the missing-price rules, what they report, typed errors, and simple returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nqba.finance.data import PriceData, load_prices, simple_returns
from nqba.finance.errors import DataFormatError, InvalidDataError, InvalidSpecError

PRICES = Path("portfolio") / "prices"


def _csv(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _format_error(source: Path) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_prices(source)
    assert info.value.path == str(source)
    return info.value


GOOD = """date,AAA,BBB
2024-01-02,10,20
2024-01-03,11,19
2024-01-04,12.5,21
"""


def test_csv_prices_load_as_float_frame_with_ascending_dates(tmp_path: Path) -> None:
    data = load_prices(_csv(tmp_path, GOOD))
    assert isinstance(data, PriceData)
    assert list(data.prices.columns) == ["AAA", "BBB"]
    assert isinstance(data.prices.index, pd.DatetimeIndex)
    assert data.prices.index[0] == pd.Timestamp("2024-01-02")
    assert data.prices["AAA"].tolist() == [10.0, 11.0, 12.5]
    assert all(dtype == np.float64 for dtype in data.prices.dtypes)
    assert data.dropped_assets == {}
    assert data.notes == []


def test_late_listing_is_kept_unfilled_and_reported(tmp_path: Path) -> None:
    text = "date,OLD,NEW\n2024-01-01,1,\n2024-01-02,2,NA\n2024-01-03,3,5\n2024-01-04,4,6\n"
    data = load_prices(_csv(tmp_path, text))
    assert data.prices["NEW"].isna().tolist() == [True, True, False, False]
    assert data.dropped_assets == {}
    assert len(data.notes) == 1
    assert "NEW" in data.notes[0]
    assert "late listing" in data.notes[0]
    assert "2024-01-03" in data.notes[0]


def test_prices_ending_early_are_kept_unfilled_and_reported(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,5\n2024-01-02,2,6\n2024-01-03,3,\n"
    data = load_prices(_csv(tmp_path, text))
    assert np.isnan(data.prices["B"].iloc[-1])
    assert any("B" in n and "no price after 2024-01-02" in n for n in data.notes)


def test_short_internal_gap_is_forward_filled_and_reported(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,5\n2024-01-02,2,\n2024-01-03,3,\n2024-01-04,4,8\n"
    data = load_prices(_csv(tmp_path, text), max_gap_fill=2)
    assert data.prices["B"].tolist() == [5.0, 5.0, 5.0, 8.0]
    assert data.dropped_assets == {}
    assert data.notes == [
        "B: forward-filled 2 missing price(s) in 1 gap(s) of at most 2 row(s) (first on 2024-01-02)"
    ]


def test_gap_longer_than_max_gap_fill_drops_the_asset_with_its_dates(tmp_path: Path) -> None:
    text = "date,A,B,C\n" + "".join(
        f"2024-01-{d:02d},{d},{'' if d in (3, 4, 5) else d + 10},{d + 20}\n" for d in range(1, 9)
    )
    data = load_prices(_csv(tmp_path, text), max_gap_fill=2)
    assert list(data.prices.columns) == ["A", "C"]
    reason = data.dropped_assets["B"]
    assert "gap of 3" in reason
    assert "2024-01-03" in reason
    assert "2024-01-05" in reason
    assert "max_gap_fill=2" in reason


def test_max_gap_fill_zero_drops_any_asset_with_a_gap(tmp_path: Path) -> None:
    text = "date,A,B,C\n2024-01-01,1,5,7\n2024-01-02,2,,7\n2024-01-03,3,6,8\n"
    data = load_prices(_csv(tmp_path, text), max_gap_fill=0)
    assert list(data.dropped_assets) == ["B"]


def test_asset_with_too_few_prices_is_dropped_with_reason(tmp_path: Path) -> None:
    text = "date,A,B,C\n2024-01-01,1,2,\n2024-01-02,2,3,\n2024-01-03,3,4,9\n"
    data = load_prices(_csv(tmp_path, text), min_observations=2)
    assert list(data.prices.columns) == ["A", "B"]
    assert data.dropped_assets == {"C": "only 1 price(s); min_observations is 2"}


def test_rows_without_any_price_are_dropped_and_reported(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,2\n2024-01-02,,\n2024-01-03,3,4\n"
    data = load_prices(_csv(tmp_path, text))
    assert len(data.prices) == 2
    assert data.notes == ["dropped 1 row(s) with no price for any asset: 2024-01-02"]


def test_rows_left_empty_by_a_dropped_asset_are_dropped(tmp_path: Path) -> None:
    text = "date,A,B,C\n2024-01-01,,,3\n2024-01-02,1,2,\n2024-01-03,2,3,\n"
    data = load_prices(_csv(tmp_path, text))
    assert list(data.dropped_assets) == ["C"]
    assert data.prices.index[0] == pd.Timestamp("2024-01-02")
    assert data.notes[-1] == (
        "dropped 1 row(s) that had prices only for dropped assets: 2024-01-01"
    )


def test_unsorted_dates_are_sorted_with_a_note(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-03,3,4\n2024-01-01,1,2\n2024-01-02,2,3\n"
    data = load_prices(_csv(tmp_path, text))
    assert data.prices["A"].tolist() == [1.0, 2.0, 3.0]
    assert data.prices.index.is_monotonic_increasing
    assert any("sorted" in n for n in data.notes)


def test_missing_tokens_read_as_missing_prices(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,null\n2024-01-02,2,N/A\n2024-01-03,3, NaN \n2024-01-04,4,7\n"
    data = load_prices(_csv(tmp_path, text + "2024-01-05,5,8\n"))
    assert data.prices["B"].isna().sum() == 3


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,2\n\n2024-01-02,2,abc\n"
    err = _format_error(_csv(tmp_path, text))
    assert err.line == 4  # the blank line 3 still counts
    assert "'B'" in str(err)
    assert "'abc'" in str(err)


def test_infinite_price_is_refused_with_its_line(tmp_path: Path) -> None:
    err = _format_error(_csv(tmp_path, "date,A,B\n2024-01-01,1,2\n2024-01-02,inf,2\n"))
    assert err.line == 3
    assert "'A'" in str(err)


def test_non_positive_price_is_refused_with_its_line(tmp_path: Path) -> None:
    err = _format_error(_csv(tmp_path, "date,A,B\n2024-01-01,1,2\n2024-01-02,0,2\n"))
    assert err.line == 3
    assert "not positive" in str(err)


def test_unparseable_date_names_its_line(tmp_path: Path) -> None:
    err = _format_error(_csv(tmp_path, "date,A,B\n2024-01-01,1,2\n2024-13-45,2,3\n"))
    assert err.line == 3
    assert "2024-13-45" in str(err)


def test_non_iso_dates_are_read_month_first_with_a_note(tmp_path: Path) -> None:
    data = load_prices(_csv(tmp_path, "date,A,B\n01/02/2024,1,2\n01/03/2024,2,3\n"))
    assert data.prices.index[0] == pd.Timestamp("2024-01-02")
    assert data.notes[0].startswith("dates are not ISO YYYY-MM-DD")


def test_duplicate_dates_name_both_lines(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,2\n2024-01-02,2,3\n2024-01-02,2,3\n"
    err = _format_error(_csv(tmp_path, text))
    assert "2024-01-02" in str(err)
    assert "lines 3, 4" in str(err)


def test_row_with_wrong_number_of_cells_names_its_line(tmp_path: Path) -> None:
    err = _format_error(_csv(tmp_path, "date,A,B\n2024-01-01,1,2\n2024-01-02,2\n"))
    assert err.line == 3
    assert "expected 3 cells" in str(err)


def test_missing_file_is_an_invalid_data_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataError, match="not found"):
        load_prices(tmp_path / "nope.csv")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert "empty" in str(_format_error(_csv(tmp_path, "\n\n")))


def test_header_without_rows_is_refused(tmp_path: Path) -> None:
    assert "no price rows" in str(_format_error(_csv(tmp_path, "date,A,B\n")))


def test_only_a_date_column_needs_two_assets(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataError, match="need at least two assets"):
        load_prices(_csv(tmp_path, "date\n2024-01-01\n2024-01-02\n"))


def test_one_asset_needs_two_assets_unless_min_assets_is_one(tmp_path: Path) -> None:
    path = _csv(tmp_path, "date,SPY\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(InvalidDataError, match="need at least two assets"):
        load_prices(path)
    assert list(load_prices(path, min_assets=1).prices.columns) == ["SPY"]


def test_dropping_down_to_one_asset_explains_the_drops(tmp_path: Path) -> None:
    text = "date,A,B\n2024-01-01,1,\n2024-01-02,2,\n2024-01-03,3,4\n"
    with pytest.raises(InvalidDataError) as info:
        load_prices(_csv(tmp_path, text))
    assert "need at least two assets" in str(info.value)
    assert "B: only 1 price(s)" in str(info.value)


def test_all_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataError, match="'B'"):
        load_prices(_csv(tmp_path, "date,A,B,C\n2024-01-01,1,,3\n2024-01-02,2,,4\n"))


def test_bad_parameters_are_spec_errors(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD)
    with pytest.raises(InvalidSpecError):
        load_prices(path, min_observations=1)
    with pytest.raises(InvalidSpecError):
        load_prices(path, max_gap_fill=-1)


def test_dataframe_with_datetime_index_loads_like_the_csv(tmp_path: Path) -> None:
    from_csv = load_prices(_csv(tmp_path, GOOD)).prices
    frame = pd.DataFrame(
        {"AAA": [10, 11, 12.5], "BBB": [20, 19, 21]},
        index=pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
    )
    loaded = load_prices(frame).prices
    np.testing.assert_array_equal(loaded.to_numpy(), from_csv.to_numpy())
    assert loaded.index.equals(from_csv.index)


def test_dataframe_with_range_index_takes_dates_from_first_column() -> None:
    frame = pd.DataFrame({"day": ["2024-01-02", "2024-01-03"], "A": [1.0, 2.0], "B": [3, 4]})
    data = load_prices(frame)
    assert list(data.prices.columns) == ["A", "B"]
    assert data.prices.index[1] == pd.Timestamp("2024-01-03")


def test_dataframe_with_text_cell_names_column_and_row() -> None:
    frame = pd.DataFrame(
        {"A": [1.0, 2.0], "B": ["3", "x"]}, index=pd.to_datetime(["2024-01-02", "2024-01-03"])
    )
    with pytest.raises(DataFormatError, match=r"'B'.*'x'.*row 1"):
        load_prices(frame)


def test_simple_returns_are_price_ratios_without_fill() -> None:
    prices = pd.DataFrame(
        {"A": [10.0, 11.0, 9.9, 10.89], "B": [np.nan, np.nan, 5.0, 5.5]},
        index=pd.date_range("2024-01-01", periods=4),
    )
    returns = simple_returns(prices)
    assert returns.index[0] == pd.Timestamp("2024-01-02")  # first row has no earlier price
    np.testing.assert_allclose(returns["A"], [0.1, -0.1, 0.1])
    assert returns["B"].isna().tolist() == [True, True, False]  # up to and at its first price
    assert returns["B"].iloc[-1] == pytest.approx(0.1)


@pytest.mark.realdata
def test_pypfopt_prices_keep_all_twenty_assets_and_report_ten_late_listings(
    data_dir: Path,
) -> None:
    data = load_prices(data_dir / PRICES / "pypfopt_stock_prices_1989_2018.csv")
    assert data.prices.shape == (7126, 20)
    assert data.dropped_assets == {}
    listed = {  # first prices as the data README lists them
        "GOOG": "2004-08-19",
        "FB": "2012-05-18",
        "BABA": "2014-09-19",
        "AMZN": "1997-05-15",
        "GM": "2010-11-18",
        "UAA": "2005-11-18",
        "SHLD": "2003-05-01",
        "RRC": "1992-12-28",
        "MA": "2006-05-25",
        "SBUX": "1992-06-26",
    }
    assert len(data.notes) == len(listed)
    for asset, first in listed.items():
        assert any(
            n.startswith(f"{asset}: late listing, first price on {first}") for n in data.notes
        )
    assert int(data.prices.isna().sum().sum()) == 35589  # missing cells, README


@pytest.mark.realdata
def test_sp500_prices_load_complete_without_notes(data_dir: Path) -> None:
    data = load_prices(data_dir / PRICES / "sp500_20assets_1990_2022.csv")
    assert data.prices.shape == (8313, 20)
    assert data.notes == []
    assert data.prices.index[0] == pd.Timestamp("1990-01-02")
    assert data.prices.index[-1] == pd.Timestamp("2022-12-28")
    assert simple_returns(data.prices).shape == (8312, 20)
