"""Read the data files a merged specification names into the fields of a :class:`~envs.scenario.Scenario`.

The data files are the packaged copies of public sources (``envs/data/SOURCES.md``) or user files of
the same layout. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from envs.params import (
    RESIDENCY_CLASSES,
    SLOT_S,
    ArrivalProcess,
    CostParams,
    ModelClass,
    TokenTrace,
    WorkloadClass,
    _readonly,
)
from envs.spec import Spec, data_dir


def _data_path(spec: Spec, key: str) -> Path:
    """Resolve ``[data].key``: an existing path as given, else a file name inside ``envs/data``."""
    value = spec["data"][key]
    for candidate in (Path(value), data_dir() / value):
        if candidate.is_file():
            return candidate
    raise ValueError(f"data.{key} = {value!r}: expected an existing file (a path, or a file name in {data_dir()})")


def _version(path: Path) -> tuple[int, int]:
    """Modification time and size: a file edited since it was read (e.g. after an error) is read again."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _read_csv(path: Path, index_col: int | None = None) -> pd.DataFrame:
    """The file as a table, cached while it is unchanged; callers must not modify it."""
    return _read_csv_version(path, _version(path), index_col)


@functools.lru_cache(maxsize=32)
def _read_csv_version(path: Path, version: tuple[int, int], index_col: int | None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, index_col=index_col)
    except Exception as exc:  # pandas raises several types; the user needs the file name
        raise ValueError(f"cannot read {str(path)!r} as CSV: {exc}") from exc


def _jurisdiction(spec: Spec) -> pd.DataFrame:
    table = _read_csv(_data_path(spec, "jurisdiction"))
    if "provider" in table.columns:
        table = table[table["provider"].str.lower() == "azure"]
    return table.set_index("region")


# Hour 0 of ``[signals].first_hour``: the hourly files are read by timestamp, hour h being HOUR_ZERO + h hours.
HOUR_ZERO = pd.Timestamp("2023-01-01T00:00Z")
STAMP_COLUMN = "datetime_utc"
_ONE_HOUR = np.timedelta64(1, "h")
# An hour start in UTC, ISO 8601: "2023-01-01T00:00Z" (the packaged files), "+00:00" for Z, optional ":00" seconds.
_UTC_HOUR_START = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:00(?::00)?(?:Z|\+00:00)"
_NAIVE_STAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_STAMP_HINTS = (  # why a stamp that is not an hour start in UTC was rejected, when a pattern tells
    ("", " (the cell is blank)"),
    (_NAIVE_STAMP, " (the stamp has no time zone: write Z for UTC)"),
    (_NAIVE_STAMP + r"[+-]\d{2}:?\d{2}", " (the stamp is not in UTC: convert local times to UTC)"),
)
_EXPECTED_STAMP = "expected an hour start in UTC, ISO 8601 like '2023-01-01T00:00Z' or '2023-01-01T00:00+00:00'"


def _line(path: Path, row: int) -> int:
    """Line of the file (header = line 1) holding data row ``row`` (0-based), blank lines skipped as pandas does.

    Only called to word an error, so it may read the file again.
    """
    with open(path, encoding="utf-8") as f:
        filled = [n for n, text in enumerate(f, start=1) if text.strip()]
    return filled[row + 1]


def _shown(cell: Any) -> str:
    """A cell's value in a message: text quoted, a number as a float, a missing cell as blank."""
    if isinstance(cell, str):
        return repr(cell)
    return "blank" if pd.isna(cell) else repr(float(cell))


def _numbers(
    raw: pd.DataFrame, *, blank_ok: bool, nonnegative: bool
) -> tuple[NDArray[np.float64], tuple[int, int] | None]:
    """``raw``'s cells as floats (blank = NaN) and the (row, column) position of its first bad cell, if any.

    A cell is bad when it is there but is not a finite number (a typo is never read as a blank, ``inf`` is
    no figure), when it is blank and ``blank_ok`` is false, or when it is negative and ``nonnegative`` is true.
    """
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan).copy()
    bad = (np.isnan(values) & (raw.notna().to_numpy() | (not blank_ok))) | np.isinf(values)
    if nonnegative:
        bad |= values < 0
    if not bad.any():
        return values, None
    i, j = np.argwhere(bad)[0]
    return values, (int(i), int(j))


@functools.lru_cache(maxsize=32)
def _utc_hours(path: Path, version: tuple[int, int], key: str) -> pd.DatetimeIndex:
    """The ``datetime_utc`` column of an hourly file, checked: UTC hour starts, sorted, one per hour, no gaps.

    ``version`` (:func:`_version`) is only a cache key.
    """
    where = f"data.{key} = {path}"
    table = _read_csv(path)
    if STAMP_COLUMN not in table.columns:
        raise ValueError(
            f"{where}: no {STAMP_COLUMN!r} column: expected the hour start of each row in UTC "
            f"(columns found: {list(table.columns)})"
        )
    text = table[STAMP_COLUMN].astype("string").fillna("")
    ok = text.str.fullmatch(_UTC_HOUR_START).to_numpy(dtype=bool)
    stamps = pd.DatetimeIndex(pd.to_datetime(text.where(ok, None), format="ISO8601", utc=True, errors="coerce"))
    bad = ~ok | stamps.isna()
    if bad.any():
        row = int(np.argmax(bad))
        value = str(text.iat[row])
        hint = next((h for pattern, h in _STAMP_HINTS if re.fullmatch(pattern, value)), "")
        raise ValueError(f"{where}: line {_line(path, row)}, {STAMP_COLUMN} = {value!r}: {_EXPECTED_STAMP}{hint}")
    step = np.diff(stamps.to_numpy())
    wrong = step != _ONE_HOUR
    if wrong.any():
        k = int(np.argmax(wrong))  # rows k and k + 1 are not one hour apart
        before, after = stamps[k], stamps[k + 1]
        if after == before:
            what = f"repeats the hour of line {_line(path, k)}"
        elif after < before:
            what = f"comes before line {_line(path, k)} ({_iso(before)}): rows are not sorted by time"
        else:  # every stamp is an hour start, so a step that is not one hour is two or more
            what = f"skips {(after - before) // pd.Timedelta(hours=1) - 1} hour(s) after line {_line(path, k)}"
        raise ValueError(
            f"{where}: line {_line(path, k + 1)}, {STAMP_COLUMN} = {_iso(after)} {what}: expected "
            f"{_iso(before + pd.Timedelta(hours=1))}, one row per hour without gaps or repeats"
        )
    return stamps


def _iso(stamp: pd.Timestamp) -> str:
    return str(stamp.strftime("%Y-%m-%dT%H:%MZ"))


def _hourly_series(
    spec: Spec,
    key: str,
    regions: list[str],
    zones: list[str],
    notes: list[str],
    what: str,
    zone_scale: NDArray[np.float64] | None = None,
    nonnegative: bool = False,
) -> NDArray[np.float64]:
    """Read ``[signals]``'s slice of an hourly table as ``[T, R]``; blank hours linearly interpolated.

    Rows are matched by their ``datetime_utc`` stamp, hour h of the slice being ``HOUR_ZERO + h`` hours, so
    a file may start earlier or end later than the slice but must cover it. A column named after the region
    wins over its zone column, so users can supply per-region series. ``zone_scale`` (``[R]``) multiplies
    the series read from a zone column (a proxy rescaled to the region's own average), never a region's own.
    With ``nonnegative``, a negative cell is refused too (carbon; prices may be negative).
    """
    path = _data_path(spec, key)
    where = f"data.{key} = {path}"
    first, num = spec["signals"]["first_hour"], spec["signals"]["num_hours"]
    if first < 0 or num < 1:
        raise ValueError(
            f"signals.first_hour = {first}, signals.num_hours = {num}: expected first_hour >= 0 and num_hours >= 1"
        )
    stamps = _utc_hours(path, _version(path), key)
    start = HOUR_ZERO + pd.Timedelta(hours=first)
    offset = (start - stamps[0]) // pd.Timedelta(hours=1) if len(stamps) else -1  # row of the slice's first hour
    if offset < 0 or offset + num > len(stamps):
        has = f"{_iso(stamps[0])} to {_iso(stamps[-1])}" if len(stamps) else "no rows"
        raise ValueError(
            f"signals.first_hour = {first}, signals.num_hours = {num}: expected a slice inside the hours of {where}: "
            f"the slice needs {_iso(start)} to {_iso(start + pd.Timedelta(hours=num - 1))} (hour 0 = "
            f"{_iso(HOUR_ZERO)}), the file has {has}"
        )
    table = _read_csv(path)
    columns = []
    for region, zone in zip(regions, zones, strict=True):
        if region in table.columns:
            columns.append(region)
        elif isinstance(zone, str) and zone in table.columns:
            columns.append(zone)
        else:
            raise ValueError(
                f"region {region!r}: no hourly {what} series in {path.name} (looked for a column named "
                f"{region!r} or its zone {zone!r}; {where})"
            )
    raw = table[columns].iloc[offset : offset + num]
    values, bad = _numbers(raw, blank_ok=True, nonnegative=nonnegative)
    if bad is not None:
        i, j = bad
        row = offset + i
        number = "a finite number >= 0" if nonnegative else "a finite number"
        raise ValueError(
            f"{where}: column {columns[j]!r}, row {row} = {_shown(raw.iat[i, j])}: expected {number} or a "
            f"blank cell (line {_line(path, row)}, {STAMP_COLUMN} {_iso(stamps[row])})"
        )
    for j, region in enumerate(regions):
        blank = np.isnan(values[:, j])
        if blank.all():
            raise ValueError(f"region {region!r}: the {what} series {columns[j]!r} is blank over the slice")
        if blank.any():
            t = np.arange(num)
            values[blank, j] = np.interp(t[blank], t[~blank], values[~blank, j])
            notes.append(
                f"{what} {columns[j]} ({region}): {int(blank.sum())} blank hours filled by linear interpolation"
            )
    if zone_scale is not None:
        for j, region in enumerate(regions):
            if columns[j] != region and zone_scale[j] != 1.0:
                values[:, j] *= zone_scale[j]
                notes.append(f"{what} {columns[j]} ({region}): a proxy series, scaled by {zone_scale[j]:g}")
    return values


def _carbon_proxy_scale(regions: list[str], rows: list[pd.Series], path: Path) -> NDArray[np.float64]:
    """``[R]`` factor on each region's hourly carbon series: the catalogue's ``hourly_ci_scale``, set where a
    region's series is another grid's (a proxy zone) rescaled to its own annual average; 1 where blank or
    where the catalogue has no such column (a user's own table)."""
    out = np.ones(len(regions))
    for j, (region, row) in enumerate(zip(regions, rows, strict=True)):
        raw = row.get("hourly_ci_scale")
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            continue
        value = pd.to_numeric(raw, errors="coerce")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"data.jurisdiction = {path}: hourly_ci_scale = {raw!r} for region {region!r}: expected a "
                "positive number, or blank for 1"
            )
        out[j] = float(value)
    return out


def _region_catalogue_row(juris: pd.DataFrame, name: str, field: str) -> pd.Series:
    if name not in juris.index:
        raise ValueError(
            f"{field} = {name!r}: expected an Azure region of the jurisdiction table, one of {sorted(juris.index)}"
        )
    row = juris.loc[name]
    return row.iloc[0] if isinstance(row, pd.DataFrame) else row


def _square_labels(where: str, path: Path, table: pd.DataFrame) -> None:
    """Reject a square matrix whose row labels repeat or differ from its column labels."""
    rows = table.index.astype(str)
    if rows.duplicated().any():
        row = int(np.argmax(rows.duplicated()))
        raise ValueError(
            f"{where}: line {_line(path, row)} repeats the row {rows[row]!r}: expected one row per region ({path})"
        )
    only_rows = sorted(set(rows) - set(table.columns))
    only_cols = sorted(set(table.columns) - set(rows))
    if only_rows or only_cols:
        raise ValueError(
            f"{where}: row labels {only_rows} have no column and column labels {only_cols} have no row: "
            f"expected the same regions as rows and columns ({path})"
        )


def _transfer_matrix(spec: Spec, regions: list[str], countries: list[str], juris: pd.DataFrame) -> NDArray[np.float64]:
    """``[R, R]`` USD/GB from source to destination region.

    A region missing from the price matrix is priced as the first same-country region that has a row
    (e.g. Korea South as Korea Central); two regions priced by the same row pay ``same_proxy_usd_per_gb``.
    """
    key = "transfer_usd_per_gb"
    path = _data_path(spec, key)
    where = f"data.{key} = {path.name!r}"
    table = _read_csv(path)
    needed = ["src_region", "dst_region", "usd_per_gb"]
    if not set(needed) <= set(table.columns):
        raise ValueError(f"{where}: expected columns {needed}, got {list(table.columns)} ({path})")
    if "provider" in table.columns:
        table = table[table["provider"].str.lower() == "azure"]
    usd, bad = _numbers(table[["usd_per_gb"]], blank_ok=False, nonnegative=True)
    if bad is not None:
        src, dst, cell = table[needed].iloc[bad[0]]
        raise ValueError(
            f"{where}: line {_line(path, int(table.index[bad[0]]))}, {src!r} -> {dst!r}: usd_per_gb = "
            f"{_shown(cell)}: expected a number >= 0 ({path})"
        )
    repeated = table.duplicated(["src_region", "dst_region"]).to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        raise ValueError(
            f"{where}: line {_line(path, int(table.index[i]))} repeats the pair "
            f"{table['src_region'].iat[i]!r} -> {table['dst_region'].iat[i]!r}: expected one price per "
            f"pair ({path})"
        )
    price = dict(zip(zip(table["src_region"], table["dst_region"], strict=True), usd[:, 0].tolist(), strict=True))
    listed = list(dict.fromkeys(table["src_region"]))
    proxies = []
    for region, country in zip(regions, countries, strict=True):
        if region in listed:
            proxies.append(region)
            continue
        same = [r for r in listed if r in juris.index and juris.loc[r, "country_iso2"] == country]
        if not same:
            raise ValueError(
                f"{where}: region {region!r} has no transfer price: expected src_region rows for it or "
                f"for another region of {country} ({path})"
            )
        proxies.append(same[0])
    same_proxy = float(spec["frictions"]["same_proxy_usd_per_gb"])
    R = len(regions)
    out = np.zeros((R, R))
    for i in range(R):
        for j in range(R):
            if i == j:
                continue
            if proxies[i] == proxies[j]:
                out[i, j] = same_proxy
            elif (proxies[i], proxies[j]) in price:
                out[i, j] = price[(proxies[i], proxies[j])]
            else:
                raise ValueError(
                    f"{where}: no transfer price from {proxies[i]!r} to {proxies[j]!r}: expected a row "
                    f"for each ordered pair of priced regions ({path})"
                )
    return out


def _rtt(spec: Spec, sources: list[str], regions: list[str]) -> NDArray[np.float64]:
    """``[N, R]`` round trip from each node's location to each region; the intra-region RTT on the diagonal."""
    key = "rtt_ms"
    path = _data_path(spec, key)
    where = f"data.{key} = {path.name!r}"
    table = _read_csv(path, index_col=0)
    _square_labels(where, path, table)
    missing = sorted({*sources, *regions} - set(table.index))
    if missing:
        raise ValueError(
            f"{where}: the latency matrix does not cover {missing}: expected a row and a column for each ({path})"
        )
    same = np.array(sources)[:, None] == np.array(regions)[None, :]
    raw = table.loc[sources, regions].mask(same)  # the file's own diagonal is not used
    block, bad = _numbers(raw, blank_ok=True, nonnegative=True)
    if bad is not None:
        n, r = bad
        line = _line(path, int(table.index.get_loc(sources[n])))
        raise ValueError(
            f"{where}: row {sources[n]!r} (line {line}), column {regions[r]!r} = "
            f"{_shown(raw.iat[n, r])}: expected a round trip in ms, a number >= 0 ({path})"
        )
    block[same] = float(spec["frictions"]["intra_region_rtt_ms"])
    if np.isnan(block).any():
        n, r = np.argwhere(np.isnan(block))[0]
        raise ValueError(
            f"{where}: no RTT from {sources[n]!r} to {regions[r]!r}: expected a number in row "
            f"{sources[n]!r}, column {regions[r]!r} ({path})"
        )
    return block


def _trace(spec: Spec, key: str) -> TokenTrace:
    path = _data_path(spec, key)
    table = _read_csv(path)
    needed = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
    if not needed <= set(table.columns):
        raise ValueError(f"data.{key} = {path.name}: expected columns {sorted(needed)}, got {list(table.columns)}")
    stamps = pd.to_datetime(table["TIMESTAMP"]).to_numpy()
    order = np.argsort(stamps, kind="stable")
    offset_s = ((stamps[order] - stamps[order][0]) / np.timedelta64(1, "ns")).astype(np.float64) / 1e9
    return TokenTrace(
        name=key.removeprefix("trace_"),
        offset_s=_readonly(offset_s),
        context_tokens=_readonly(table["ContextTokens"].to_numpy(np.int64)[order]),
        generated_tokens=_readonly(table["GeneratedTokens"].to_numpy(np.int64)[order]),
    )


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError(f"{name} = {value!r}: expected [low, high]")
    return value[0], value[1]


# Numbers the loader uses directly, checked under the names users write (the dataclasses check the rest).
_LOADER_NUMBERS = (
    ("signals", "price_floor_usd_per_kwh"),
    ("weights", "alpha"),
    ("weights", "beta"),
    ("weights", "gamma"),
    ("weights", "eta"),
    ("weights", "carbon_price_usd_per_t"),
    ("frictions", "state"),
    ("frictions", "cache"),
    ("frictions", "egress"),
    ("frictions", "replica"),
    ("frictions", "intra_region_rtt_ms"),
    ("frictions", "same_proxy_usd_per_gb"),
)


def _check_loader_numbers(spec: Spec) -> None:
    for table, key in _LOADER_NUMBERS:
        v = spec[table][key]
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{table}.{key} = {v!r}: expected a finite number >= 0")


def scenario_fields(spec: Spec) -> dict[str, Any]:
    """The fields of a :class:`~envs.Scenario` but ``spec``, from a merged specification and the data files
    it names, checked under the names users write. :meth:`envs.Scenario.from_spec` builds the scenario
    from them; the dataclasses check the rest."""
    juris = _jurisdiction(spec)
    regions = _region_names(spec)
    _check_loader_numbers(spec)
    rows = [_region_catalogue_row(juris, r, f"regions[{j}]") for j, r in enumerate(regions)]
    notes: list[str] = []  # what was done to the data (filled hours, floored prices), in that order
    region = _region_fields(spec, regions, rows, notes)
    nodes = _service_nodes(spec, regions)
    node_rows = [_region_catalogue_row(juris, e["location"], f"service_nodes.{n}.location") for n, e in nodes.items()]
    models = _models(spec, regions)
    classes = _workload_classes(spec, models)
    cost, arrival = _cost_params(spec), _arrival_process(spec)
    traces = {key.removeprefix("trace_"): _trace(spec, key) for key in spec["data"] if key.startswith("trace_")}
    f = spec["frictions"]
    return {
        "name": str(spec["name"]),
        **region,
        **_node_fields(spec, regions, nodes, node_rows),
        "first_hour": int(spec["signals"]["first_hour"]),
        "random_start": bool(spec["signals"]["random_start"]),
        "start_days": _start_days(spec),
        "transfer_usd_per_gb": _readonly(_transfer_matrix(spec, regions, list(region["region_country"]), juris)),
        "models": models,
        "classes": classes,
        "cost": cost,
        "replica_window_h": int(f["replica_window_h"]),
        "bytes_per_token": float(f["bytes_per_token"]),
        "residency_mode": str(spec["legal"]["residency_mode"]),
        "arrival": arrival,
        "traces": traces,
        "notes": tuple(notes),
    }


def _models(spec: Spec, regions: list[str]) -> tuple[ModelClass, ...]:
    """``[models]``, each ``warm_regions`` entry checked to be one of the scenario's regions."""
    out = []
    for name, entry in spec["models"].items():
        hubs = entry["warm_regions"]
        for j, hub in enumerate(hubs):
            if hub not in regions:
                raise ValueError(
                    f"models.{name}.warm_regions[{j}] = {hub!r}: expected one of the scenario's regions {regions}"
                )
        if len(set(hubs)) != len(hubs):
            raise ValueError(f"models.{name}.warm_regions = {hubs!r}: expected distinct region names")
        out.append(ModelClass(name=name, **{**entry, "warm_regions": tuple(hubs)}))
    return tuple(out)


def _start_days(spec: Spec) -> tuple[int, ...]:
    """``[signals].start_days``: distinct days of the year whose 00:00 UTC lies inside the signal slice."""
    days = spec["signals"]["start_days"]
    first, num = spec["signals"]["first_hour"], spec["signals"]["num_hours"]
    for j, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int) or not first <= 24 * day < first + num:
            raise ValueError(
                f"signals.start_days[{j}] = {day!r}: expected an integer day whose 00:00 UTC (hour 24 x day) lies "
                f"in the signal slice [{first}, {first + num}) (day 0 = 2023-01-01)"
            )
    if len(set(days)) != len(days):
        raise ValueError(f"signals.start_days: expected distinct days, got {len(days) - len(set(days))} repeated")
    return tuple(sorted(days))


def _region_names(spec: Spec) -> list[str]:
    """``[regions]``: at least one, distinct."""
    regions = list(spec["regions"])
    if not regions:
        raise ValueError("regions = []: expected at least one compute region")
    if len(set(regions)) != len(regions):
        raise ValueError(f"regions = {regions!r}: expected distinct names")
    return regions


def _per_region_settings(spec: Spec, regions: list[str]) -> list[dict[str, Any]]:
    """``[region_defaults]`` with each region's ``[region_overrides]``, checked under the name the value came from."""
    unknown = sorted(set(spec["region_overrides"]) - set(regions))
    if unknown:
        raise ValueError(f"region_overrides names {unknown}: expected regions of the scenario, one of {regions}")
    per_region = [{**spec["region_defaults"], **spec["region_overrides"].get(r, {})} for r in regions]
    for r, values in zip(regions, per_region, strict=True):
        for key in ("num_gpus", "queue_ms", "pue"):
            v = values[key]
            where = (
                f'region_overrides."{r}".{key}'
                if key in spec["region_overrides"].get(r, {})
                else f"region_defaults.{key} (region {r!r})"
            )
            if not (math.isfinite(v) and v >= (1.0 if key == "pue" else 0.0)):
                raise ValueError(f"{where} = {v!r}: expected a finite number >= {1 if key == 'pue' else 0}")
    return per_region


def _region_fields(spec: Spec, regions: list[str], rows: list[pd.Series], notes: list[str]) -> dict[str, Any]:
    """The per-region fields: jurisdiction, queueing, the ``[T, R]`` hourly signals and capacity."""
    per_region = _per_region_settings(spec, regions)
    price = _price(spec, regions, rows, notes)
    carbon = _hourly_series(
        spec,
        "carbon_g_per_kwh",
        regions,
        [row["hourly_ci_zone"] for row in rows],
        notes,
        "carbon",
        zone_scale=_carbon_proxy_scale(regions, rows, _data_path(spec, "jurisdiction")),
        nonnegative=True,
    )
    T = price.shape[0]
    pue = np.broadcast_to(np.array([v["pue"] for v in per_region], dtype=np.float64), (T, len(regions)))
    return {
        "region_names": tuple(regions),
        "region_country": tuple(str(row["country_iso2"]) for row in rows),
        "region_continent": tuple(str(row["continent"]) for row in rows),
        "region_in_eu": _readonly(np.array([bool(row["in_eu_eea"]) for row in rows])),
        "region_adequacy": _readonly(np.array([bool(row["eu_adequacy_decision"]) for row in rows])),
        "queue_ms": _readonly(np.array([v["queue_ms"] for v in per_region], dtype=np.float64)),
        "price_usd_per_kwh": _readonly(price),
        "carbon_g_per_kwh": _readonly(carbon),
        "pue": _readonly(pue),
        "capacity_gpu_s": _readonly(_capacity(spec, per_region, T)),
    }


def _price(spec: Spec, regions: list[str], rows: list[pd.Series], notes: list[str]) -> NDArray[np.float64]:
    """``[T, R]`` energy price, USD/kWh, floored at ``[signals].price_floor_usd_per_kwh``."""
    price_mwh = _hourly_series(
        spec, "price_usd_per_mwh", regions, [row["hourly_price_zone"] for row in rows], notes, "price"
    )
    price = price_mwh / 1000.0
    floor = float(spec["signals"]["price_floor_usd_per_kwh"])
    floored = price < floor
    if floored.any():
        notes.append(f"price: {int(floored.sum())} region-hours below {floor} USD/kWh floored to it")
        price = np.maximum(price, floor)
    return price


def _capacity(spec: Spec, per_region: list[dict[str, Any]], T: int) -> NDArray[np.float64]:
    """``[T, R]`` GPU-seconds per slot: each region's GPUs times ``[capacity].scale``."""
    scale = float(spec["capacity"]["scale"])
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"capacity.scale = {scale!r}: expected a finite number >= 0")
    gpus = np.array([v["num_gpus"] for v in per_region], dtype=np.float64)
    return np.broadcast_to(gpus * SLOT_S * scale, (T, len(per_region)))


def _service_nodes(spec: Spec, regions: list[str]) -> dict[str, dict[str, Any]]:
    """The service nodes with traffic, checked (a node with traffic_share = 0 is dropped, so an override can
    remove it)."""
    nodes = {n: e for n, e in spec["service_nodes"].items() if e["traffic_share"] != 0}
    for name, e in nodes.items():
        if not (math.isfinite(e["traffic_share"]) and e["traffic_share"] > 0):
            raise ValueError(f"service_nodes.{name}.traffic_share = {e['traffic_share']!r}: expected a number >= 0")
        client, utc = e["client_latency_ms"], e["utc_offset_h"]
        if not (math.isfinite(client) and client >= 0):
            raise ValueError(f"service_nodes.{name}.client_latency_ms = {client!r}: expected a finite number >= 0")
        if not math.isfinite(utc):
            raise ValueError(f"service_nodes.{name}.utc_offset_h = {utc!r}: expected a finite number")
        if e["home"] not in regions:
            raise ValueError(f"service_nodes.{name}.home = {e['home']!r}: expected one of the regions {regions}")
    return nodes


def _node_fields(
    spec: Spec, regions: list[str], nodes: dict[str, dict[str, Any]], node_rows: list[pd.Series]
) -> dict[str, Any]:
    """The per-node fields: home region, jurisdiction, latencies, time zone, traffic share (sum 1)."""
    share = np.array([e["traffic_share"] for e in nodes.values()], dtype=np.float64)
    return {
        "node_names": tuple(nodes),
        "node_home_idx": _readonly(np.array([regions.index(e["home"]) for e in nodes.values()], dtype=np.int64)),
        "node_country": tuple(str(row["country_iso2"]) for row in node_rows),
        "node_in_eu": _readonly(np.array([bool(row["in_eu_eea"]) for row in node_rows])),
        "node_rtt_ms": _readonly(_rtt(spec, [e["location"] for e in nodes.values()], regions)),
        "node_client_ms": _readonly(np.array([e["client_latency_ms"] for e in nodes.values()], dtype=np.float64)),
        "node_utc_offset_h": _readonly(np.array([e["utc_offset_h"] for e in nodes.values()], dtype=np.float64)),
        "node_share": _readonly(share / share.sum()) if share.size else _readonly(share),
    }


def _workload_classes(spec: Spec, models: tuple[ModelClass, ...]) -> tuple[WorkloadClass, ...]:
    """The workload classes with traffic (a class with share = 0 is dropped), each naming a known model."""
    model_idx = {m.name: j for j, m in enumerate(models)}
    classes = []
    for name, e in spec["workload_classes"].items():
        if e["share"] == 0:
            continue
        if e["model"] not in model_idx:
            raise ValueError(f"workload_classes.{name}.model = {e['model']!r}: expected one of {sorted(model_idx)}")
        res = e["residency"]
        classes.append(
            WorkloadClass(
                name=name,
                share=float(e["share"]),
                model_idx=model_idx[e["model"]],
                tokens=e["tokens"],
                slack_ms=_pair(e["slack_ms"], f"workload_classes.{name}.slack_ms"),
                rounds=_pair(e["rounds"], f"workload_classes.{name}.rounds"),
                cached_share=float(e["cached_share"]),
                state_kb=float(e["state_kb"]),
                residency=tuple(float(res[r]) for r in RESIDENCY_CLASSES),  # type: ignore[arg-type]
                delay_usd_per_s=float(e["delay_usd_per_s"]),
                overflow_usd=float(e["overflow_usd"]),
            )
        )
    return tuple(classes)


def _cost_params(spec: Spec) -> CostParams:
    """``[weights]`` and the friction multipliers of ``[frictions]``."""
    w, f = spec["weights"], spec["frictions"]
    return CostParams(
        alpha=w["alpha"],
        beta=w["beta"],
        gamma=w["gamma"],
        eta=w["eta"],
        carbon_price_usd_per_t=w["carbon_price_usd_per_t"],
        state_mult=f["state"],
        cache_mult=f["cache"],
        egress_mult=f["egress"],
        replica_mult=f["replica"],
    )


def _arrival_process(spec: Spec) -> ArrivalProcess:
    """``[workload]``: how tasks arrive."""
    wl = spec["workload"]
    return ArrivalProcess(
        kind=wl["arrival"],
        rate_per_h=wl["rate_per_h"],
        horizon_h=wl["horizon_h"],
        requests_per_task=wl["requests_per_task"],
        slack_scale=wl["slack_scale"],
        slack_add_ms=wl["slack_add_ms"],
        diurnal_amplitude=wl["diurnal_amplitude"],
        diurnal_peak_local_h=wl["diurnal_peak_local_h"],
        bursty_high_factor=wl["bursty_high_factor"],
        bursty_low_factor=wl["bursty_low_factor"],
        bursty_mean_high_h=wl["bursty_mean_high_h"],
        bursty_mean_low_h=wl["bursty_mean_low_h"],
        trace=wl["trace"],
    )
