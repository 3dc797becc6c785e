"""User data files (envs/loader.py): hourly series aligned by their UTC stamps, matrices checked cell by cell.

Each bad file is a shipped CSV copied into ``tmp_path`` with a few lines edited; the error must name the
file, the line, row or region at fault, and what was expected. Hourly files are cut to their first
``KEEP`` hours and read with a 48-hour slice so that each load stays fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from envs import Scenario
from envs.spec import data_dir

PRICE = "electricity_price_hourly_2023_usd_per_mwh.csv"
CARBON = "grid_carbon_intensity_hourly_2023_gco2_per_kwh.csv"
RTT = "azure_interregion_rtt_p50_ms.csv"
TRANSFER = "cloud_interregion_transfer_usd_per_gb_hpe.csv"
KEEP = 100  # hours kept from the shipped hourly files; lines[h + 1] is hour h of 2023 (line h + 2 of the file)


def shipped_lines(name: str, hours: int | None = None) -> list[str]:
    """The lines of a shipped CSV, header first; for an hourly file the header and its first ``hours`` hours."""
    lines = (data_dir() / name).read_text().splitlines()
    return lines if hours is None else lines[: hours + 1]


def write_lines(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def load(tmp_path: Path, data: dict[str, str], first_hour: int = 0, num_hours: int = 48) -> Scenario:
    """The default scenario with some ``[data]`` files replaced and a short signal slice."""
    entries = "".join(f'{key} = "{value}"\n' for key, value in data.items())
    text = f"[data]\n{entries}[signals]\nfirst_hour = {first_hour}\nnum_hours = {num_hours}\n"
    (tmp_path / "scenario.toml").write_text(text)
    return Scenario.from_toml(tmp_path / "scenario.toml")


def carbon_error(tmp_path: Path, lines: list[str], match: str, first_hour: int = 0) -> None:
    """Loading ``lines`` as the carbon file fails with a message that names the file and matches ``match``."""
    path = write_lines(tmp_path, "carbon.csv", lines)
    with pytest.raises(ValueError, match=re.escape(f"data.carbon_g_per_kwh = {path.resolve()}: ") + match):
        load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"}, first_hour=first_hour)


def with_stamp(line: str, stamp: str) -> str:
    return stamp + line[line.index(",") :]


# --------------------------------------------------------------------- hourly files: alignment
@pytest.mark.parametrize(
    ("key", "name"), [("carbon_g_per_kwh", CARBON), ("price_usd_per_mwh", PRICE)], ids=["carbon", "price"]
)
def test_a_file_that_starts_elsewhere_but_covers_the_slice_is_aligned_by_timestamp(
    tmp_path: Path, key: str, name: str
) -> None:
    lines = shipped_lines(name, KEEP)
    first, num = 30, 48
    shipped = load(tmp_path, {}, first_hour=first, num_hours=num)
    # starts 20 hours into 2023: row 0 of the file is hour 20, so hour 30 is its row 10
    later = load(tmp_path, {key: write_lines(tmp_path, "later.csv", [lines[0], *lines[21:]]).name}, first, num)
    # starts 3 hours before 2023 (the values of the last hours are copies): hour 30 is its row 33
    before = [with_stamp(lines[1], f"2022-12-31T{h}:00Z") for h in (21, 22, 23)]
    earlier = load(
        tmp_path, {key: write_lines(tmp_path, "earlier.csv", [lines[0], *before, *lines[1:]]).name}, first, num
    )
    for s in (later, earlier):
        np.testing.assert_array_equal(s.price_usd_per_kwh, shipped.price_usd_per_kwh)
        np.testing.assert_array_equal(s.carbon_g_per_kwh, shipped.carbon_g_per_kwh)
        assert s.notes == shipped.notes


def test_stamps_written_with_plus_zero_offset_are_utc(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    plus = [lines[0], *(line.replace("Z,", "+00:00,", 1) for line in lines[1:])]
    assert plus[1].startswith("2023-01-01T00:00+00:00,")
    s = load(tmp_path, {"carbon_g_per_kwh": write_lines(tmp_path, "carbon.csv", plus).name})
    np.testing.assert_array_equal(s.carbon_g_per_kwh, load(tmp_path, {}).carbon_g_per_kwh)


def test_a_file_that_starts_after_the_slice_start_is_rejected(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    path = write_lines(tmp_path, "carbon.csv", [lines[0], *lines[6:]])  # starts at 05:00 UTC
    match = re.escape(
        "signals.first_hour = 0, signals.num_hours = 48: expected a slice inside the hours of "
        f"data.carbon_g_per_kwh = {path.resolve()}: the slice needs 2023-01-01T00:00Z to 2023-01-02T23:00Z "
        "(hour 0 = 2023-01-01T00:00Z), the file has 2023-01-01T05:00Z to 2023-01-05T03:00Z"
    )
    with pytest.raises(ValueError, match=match):
        load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"})
    # the same file serves a slice that starts at or after its first hour
    assert load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"}, first_hour=5).num_hours == 48


def test_a_file_that_ends_before_the_slice_does_is_rejected(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "carbon.csv", shipped_lines(CARBON, 40))
    with pytest.raises(
        ValueError,
        match=r"signals\.first_hour = 0, signals\.num_hours = 48: expected a slice inside "
        r"the hours of .*" + re.escape(f"{path.name}: the slice needs "),
    ):
        load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"})


# --------------------------------------------------------------------- hourly files: bad stamps
def test_a_skipped_hour(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    del lines[11]  # hour 10 (line 12) is gone: line 12 now holds hour 11
    carbon_error(
        tmp_path,
        lines,
        re.escape(
            "line 12, datetime_utc = 2023-01-01T11:00Z skips 1 hour(s) after line 11: expected 2023-01-01T10:00Z, "
            "one row per hour without gaps or repeats"
        ),
    )


def test_a_repeated_hour(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    lines.insert(11, lines[10])  # hour 9 twice, on lines 11 and 12
    carbon_error(
        tmp_path,
        lines,
        re.escape("line 12, datetime_utc = 2023-01-01T09:00Z repeats the hour of line 11: expected 2023-01-01T10:00Z"),
    )


def test_hours_swapped(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    lines[5], lines[6] = lines[6], lines[5]  # hours 4 and 5 swapped: line 6 holds 05:00, line 7 holds 04:00
    carbon_error(tmp_path, lines, re.escape("line 6, datetime_utc = 2023-01-01T05:00Z skips 1 hour(s) after line 5"))


def test_hours_going_backwards(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    lines[5] = with_stamp(lines[5], "2023-01-01T02:00Z")  # line 6 goes back to hour 2 after hour 3 on line 5
    carbon_error(
        tmp_path,
        lines,
        re.escape(
            "line 6, datetime_utc = 2023-01-01T02:00Z comes before line 5 (2023-01-01T03:00Z): rows are not sorted by "
            "time: expected 2023-01-01T04:00Z"
        ),
    )


def test_a_file_corrected_after_an_error_is_read_again(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    good = list(lines)
    del lines[11]
    carbon_error(tmp_path, lines, "line 12, ")
    path = write_lines(tmp_path, "carbon.csv", good)
    os.utime(path, ns=(1, 1))  # a new modification time even where the clock is coarse
    s = load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"})
    np.testing.assert_array_equal(s.carbon_g_per_kwh, load(tmp_path, {}).carbon_g_per_kwh)


@pytest.mark.parametrize(
    ("stamp", "hint"),
    [
        ("2023-01-01T08:00+01:00", "(the stamp is not in UTC: convert local times to UTC)"),
        ("2023-01-01T07:00-05:00", "(the stamp is not in UTC: convert local times to UTC)"),
        ("2023-01-01T07:00", "(the stamp has no time zone: write Z for UTC)"),
        ("2023-01-01 07:00:00", "(the stamp has no time zone: write Z for UTC)"),
        ("2023-01-01T07:30Z", ""),  # not an hour start
        ("2023-02-30T07:00Z", ""),  # not a date
        ("07/01/2023 07:00", ""),
        ("", "(the cell is blank)"),
    ],
)
def test_a_stamp_that_is_not_an_hour_start_in_utc(tmp_path: Path, stamp: str, hint: str) -> None:
    lines = shipped_lines(CARBON, KEEP)
    lines[8] = with_stamp(lines[8], stamp)  # line 9, hour 7
    carbon_error(
        tmp_path,
        lines,
        re.escape(
            f"line 9, datetime_utc = {stamp!r}: expected an hour start in UTC, ISO 8601 like '2023-01-01T00:00Z' or "
            f"'2023-01-01T00:00+00:00' {hint}".rstrip()
        ),
    )


def test_a_file_in_local_time_is_rejected_at_its_first_line(tmp_path: Path) -> None:
    # the whole file shifted to Central European Time: every stamp has the +01:00 offset
    lines = shipped_lines(CARBON, KEEP)
    local = [lines[0], *(with_stamp(line, f"2023-01-01T{h + 1:02d}:00+01:00") for h, line in enumerate(lines[1:23]))]
    carbon_error(
        tmp_path, local, re.escape("line 2, datetime_utc = '2023-01-01T01:00+01:00': expected an hour start in UTC")
    )


def test_a_file_without_a_stamp_column(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    lines[0] = lines[0].replace("datetime_utc", "hour", 1)
    carbon_error(tmp_path, lines, re.escape("no 'datetime_utc' column: expected the hour start of each row in UTC"))


# --------------------------------------------------------------------- hourly files: cells and columns
def test_a_non_numeric_cell(tmp_path: Path) -> None:
    lines = shipped_lines(PRICE, KEEP)
    cells = lines[31].split(",")  # line 32, hour 30
    cells[lines[0].split(",").index("US-CAL-CISO")] = "abc"  # West US's price zone
    lines[31] = ",".join(cells)
    path = write_lines(tmp_path, "price.csv", lines)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"data.price_usd_per_mwh = {path.resolve()}: column 'US-CAL-CISO', row 30 = 'abc': expected a finite "
            "number or a blank cell (line 32, datetime_utc 2023-01-02T06:00Z)"
        ),
    ):
        load(tmp_path, {"price_usd_per_mwh": "price.csv"})


@pytest.mark.parametrize(("value", "shown"), [("-5", "-5.0"), ("inf", "inf"), ("-inf", "-inf")])
def test_a_negative_or_infinite_carbon_cell(tmp_path: Path, value: str, shown: str) -> None:
    """Carbon intensity is a finite number >= 0, refused with the file, the line and the stamp."""
    lines = shipped_lines(CARBON, KEEP)
    col = lines[0].split(",").index("DE-LU")
    cells = lines[3].split(",")  # line 4, hour 2
    cells[col] = value
    lines[3] = ",".join(cells)
    carbon_error(
        tmp_path,
        lines,
        re.escape(f"column 'DE-LU', row 2 = {shown}: expected a finite number >= 0 or a blank cell (line 4, "),
    )


def test_an_infinite_price_is_refused_but_a_negative_one_is_kept(tmp_path: Path) -> None:
    """Wholesale prices may be negative (floored later, with a note); an infinite one is no price."""
    lines = shipped_lines(PRICE, KEEP)
    col = lines[0].split(",").index("US-CAL-CISO")
    cells = lines[3].split(",")
    cells[col] = "-12.5"
    lines[3] = ",".join(cells)
    write_lines(tmp_path, "price.csv", lines)
    s = load(tmp_path, {"price_usd_per_mwh": "price.csv"})
    assert any("floored" in n for n in s.notes)
    cells[col] = "inf"
    lines[3] = ",".join(cells)
    write_lines(tmp_path, "price.csv", lines)
    with pytest.raises(ValueError, match=r"row 2 = inf: expected a finite number or a blank cell"):
        load(tmp_path, {"price_usd_per_mwh": "price.csv"})


def test_a_non_numeric_cell_outside_the_slice_is_not_read(tmp_path: Path) -> None:
    lines = shipped_lines(PRICE, KEEP)
    cells = lines[80].split(",")  # hour 79, after the 48-hour slice
    cells[1] = "abc"
    lines[80] = ",".join(cells)
    s = load(tmp_path, {"price_usd_per_mwh": write_lines(tmp_path, "price.csv", lines).name})
    np.testing.assert_array_equal(s.price_usd_per_kwh, load(tmp_path, {}).price_usd_per_kwh)


def test_a_blank_cell_is_still_interpolated(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    column = lines[0].split(",").index("US-CAL-CISO")
    cells = lines[11].split(",")  # hour 10
    cells[column] = ""
    lines[11] = ",".join(cells)
    s = load(tmp_path, {"carbon_g_per_kwh": write_lines(tmp_path, "carbon.csv", lines).name})
    west = s.region_names.index("West US")
    shipped = load(tmp_path, {}).carbon_g_per_kwh[:, west]
    assert s.carbon_g_per_kwh[10, west] == pytest.approx((shipped[9] + shipped[11]) / 2)
    assert any("carbon US-CAL-CISO (West US): 1 blank hours" in note for note in s.notes)


def test_a_missing_region_column(tmp_path: Path) -> None:
    lines = shipped_lines(CARBON, KEEP)
    drop = lines[0].split(",").index("JP-TK")
    lines = [",".join(c for k, c in enumerate(line.split(",")) if k != drop) for line in lines]
    path = write_lines(tmp_path, "carbon.csv", lines)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "region 'Japan East': no hourly carbon series in carbon.csv (looked for a column named 'Japan East' or its "
            f"zone 'JP-TK'; data.carbon_g_per_kwh = {path.resolve()})"
        ),
    ):
        load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"})


# --------------------------------------------------------------------- latency matrix
def rtt_error(tmp_path: Path, lines: list[str], match: str) -> None:
    path = write_lines(tmp_path, "rtt.csv", lines)
    with pytest.raises(
        ValueError, match=re.escape("data.rtt_ms = 'rtt.csv': ") + match + re.escape(f" ({path.resolve()})")
    ):
        load(tmp_path, {"rtt_ms": "rtt.csv"})


def set_cell(lines: list[str], row: str, column: str, value: str) -> None:
    """Set the cell of a row-labelled CSV (labels without commas) in place."""
    k = lines[0].split(",").index(column)
    i = next(n for n, line in enumerate(lines) if line.split(",")[0] == row)
    cells = lines[i].split(",")
    cells[k] = value
    lines[i] = ",".join(cells)


def test_latency_matrix_missing_a_region(tmp_path: Path) -> None:
    lines = shipped_lines(RTT)
    drop = lines[0].split(",").index("Japan East")
    lines = [
        ",".join(c for k, c in enumerate(line.split(",")) if k != drop)
        for line in lines
        if not line.startswith("Japan East,")
    ]
    rtt_error(
        tmp_path,
        lines,
        re.escape("the latency matrix does not cover ['Japan East']: expected a row and a column for each"),
    )


def test_latency_matrix_with_asymmetric_labels(tmp_path: Path) -> None:
    lines = shipped_lines(RTT)
    lines[0] = lines[0].replace(",West US,", ",West US 1,")  # the column header misspelt; the row is right
    rtt_error(
        tmp_path,
        lines,
        re.escape(
            "row labels ['West US'] have no column and column labels ['West US 1'] have no row: expected the same "
            "regions as rows and columns"
        ),
    )


def test_latency_matrix_with_a_repeated_row(tmp_path: Path) -> None:
    lines = shipped_lines(RTT)
    lines.insert(15, lines[14])  # East US on lines 15 and 16
    rtt_error(tmp_path, lines, re.escape("line 16 repeats the row 'East US': expected one row per region"))


@pytest.mark.parametrize(
    ("value", "shown"), [("-60", "-60.0"), ("abc", "'abc'"), ("6O", "'6O'")], ids=["negative", "text", "letter-O"]
)
def test_latency_matrix_with_a_bad_cell(tmp_path: Path, value: str, shown: str) -> None:
    lines = shipped_lines(RTT)
    set_cell(lines, "East US", "West US", value)  # read: node us-east sits in East US, West US is a region
    rtt_error(
        tmp_path,
        lines,
        re.escape(f"row 'East US' (line 15), column 'West US' = {shown}: expected a round trip in ms, a number >= 0"),
    )


def test_latency_matrix_bad_cell_on_the_diagonal_is_not_read(tmp_path: Path) -> None:
    lines = shipped_lines(RTT)
    set_cell(lines, "East US", "East US", "abc")  # the intra-region RTT comes from [frictions]
    s = load(tmp_path, {"rtt_ms": write_lines(tmp_path, "rtt.csv", lines).name})
    np.testing.assert_array_equal(s.node_rtt_ms, load(tmp_path, {}).node_rtt_ms)


# --------------------------------------------------------------------- transfer prices
def transfer_error(tmp_path: Path, lines: list[str], match: str) -> None:
    path = write_lines(tmp_path, "transfer.csv", lines)
    with pytest.raises(
        ValueError,
        match=re.escape("data.transfer_usd_per_gb = 'transfer.csv': ") + match + re.escape(f" ({path.resolve()})"),
    ):
        load(tmp_path, {"transfer_usd_per_gb": "transfer.csv"})


def east_to_west(lines: list[str]) -> int:
    return lines.index("azure,East US,West US,0.02")


@pytest.mark.parametrize(
    ("value", "shown"), [("-0.02", "-0.02"), ("abc", "'abc'"), ("", "blank")], ids=["negative", "text", "blank"]
)
def test_transfer_matrix_with_a_bad_price(tmp_path: Path, value: str, shown: str) -> None:
    lines = shipped_lines(TRANSFER)
    i = east_to_west(lines)
    lines[i] = f"azure,East US,West US,{value}"
    transfer_error(
        tmp_path,
        lines,
        re.escape(f"line {i + 1}, 'East US' -> 'West US': usd_per_gb = {shown}: expected a number >= 0"),
    )


def test_transfer_matrix_with_a_repeated_pair(tmp_path: Path) -> None:
    lines = shipped_lines(TRANSFER)
    i = east_to_west(lines)
    lines.insert(i + 1, "azure,East US,West US,0.05")
    transfer_error(
        tmp_path, lines, re.escape(f"line {i + 2} repeats the pair 'East US' -> 'West US': expected one price per pair")
    )


def test_transfer_matrix_missing_a_region(tmp_path: Path) -> None:
    lines = [line for line in shipped_lines(TRANSFER) if ",Japan East," not in line]
    transfer_error(
        tmp_path,
        lines,
        re.escape(
            "region 'Japan East' has no transfer price: expected src_region rows for it or for another region of JP"
        ),
    )


def test_transfer_matrix_missing_a_pair(tmp_path: Path) -> None:
    lines = shipped_lines(TRANSFER)
    del lines[east_to_west(lines)]
    transfer_error(
        tmp_path,
        lines,
        re.escape(
            "no transfer price from 'East US' to 'West US': expected a row for each ordered pair of priced regions"
        ),
    )


# ------------------------------------------------------------- carbon proxies of the region catalogue
JURISDICTION = "cloud_region_metadata_jurisdiction.csv"


def test_austria_east_carbon_is_germanys_series_rescaled_to_austrias_average(default_scenario: Scenario) -> None:
    """Austria has no hourly series: Germany's (DE-LU) shape, scaled by the 2023 annual AT/DE ratio 111/381."""
    s = default_scenario
    at, de = s.region_names.index("Austria East"), s.region_names.index("Germany West Central")
    assert np.allclose(s.carbon_g_per_kwh[:, at], 0.2913 * s.carbon_g_per_kwh[:, de])
    assert 85.0 < s.carbon_g_per_kwh[:, at].mean() < 95.0  # about 90 g/kWh, not Germany's 308
    assert any("DE-LU (Austria East): a proxy series, scaled by 0.2913" in n for n in s.notes)


@pytest.mark.parametrize("bad", ["-0.5", "0", "abc"])
def test_bad_carbon_proxy_scale(tmp_path: Path, bad: str) -> None:
    lines = shipped_lines(JURISDICTION)
    col = lines[0].split(",").index("hourly_ci_scale")
    j = next(i for i, line in enumerate(lines) if line.startswith("azure,Austria East,"))
    cells = lines[j].split(",")
    cells[col] = bad
    lines[j] = ",".join(cells)
    write_lines(tmp_path, JURISDICTION, lines)
    with pytest.raises(ValueError, match=r"hourly_ci_scale = .* for region 'Austria East': expected a positive"):
        load(tmp_path, {"jurisdiction": JURISDICTION})


def test_catalogue_without_scale_column_reads_series_unscaled(tmp_path: Path) -> None:
    """A user's own region catalogue need not have the column: every series is then read as it is."""
    lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 10) for line in shipped_lines(JURISDICTION)]
    assert "hourly_ci_scale" not in lines[0] and lines[0].split(",")[10] == "hourly_price_zone"
    write_lines(tmp_path, JURISDICTION, lines)
    s = load(tmp_path, {"jurisdiction": JURISDICTION})
    at, de = s.region_names.index("Austria East"), s.region_names.index("Germany West Central")
    assert np.array_equal(s.carbon_g_per_kwh[:, at], s.carbon_g_per_kwh[:, de])


def test_a_region_named_carbon_column_is_read_unscaled(tmp_path: Path) -> None:
    """A user's own Austrian series (a column named after the region) is used as it is, never rescaled."""
    lines = shipped_lines(CARBON, KEEP)
    de = lines[0].split(",").index("DE-LU")
    lines = [f"{line},{'Austria East' if i == 0 else str(100.0 + i)}" for i, line in enumerate(lines)]
    assert lines[1].split(",")[de]
    write_lines(tmp_path, "carbon.csv", lines)
    s = load(tmp_path, {"carbon_g_per_kwh": "carbon.csv"})
    at = s.region_names.index("Austria East")
    assert np.array_equal(s.carbon_g_per_kwh[:, at], 100.0 + np.arange(1, 49))
    assert not any("Austria East): a proxy" in n for n in s.notes)
