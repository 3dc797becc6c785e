"""Build a :class:`~envs.scenario.Scenario` from a merged specification and the data files it names.

The data files are the packaged copies of public sources (``envs/data/SOURCES.md``) or user files of
the same layout. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from envs.costs import residency_allowed
from envs.scenario import (
    RESIDENCY_CLASSES,
    SLOT_S,
    ArrivalProcess,
    CostParams,
    ModelClass,
    Scenario,
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


@functools.lru_cache(maxsize=32)
def _read_csv(path: Path, index_col: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, index_col=index_col)
    except Exception as exc:  # pandas raises several types; the user needs the file name
        raise ValueError(f"cannot read {str(path)!r} as CSV: {exc}") from exc


def _jurisdiction(spec: Spec) -> pd.DataFrame:
    table = _read_csv(_data_path(spec, "jurisdiction"))
    if "provider" in table.columns:
        table = table[table["provider"].str.lower() == "azure"]
    return table.set_index("region")


def _hourly_series(
    spec: Spec, key: str, regions: list[str], zones: list[str], notes: list[str], what: str
) -> NDArray[np.float64]:
    """Read ``[signals]``'s slice of an hourly table as ``[T, R]``; blank hours linearly interpolated.

    A column named after the region wins over its zone column, so users can supply per-region series.
    """
    path = _data_path(spec, key)
    table = _read_csv(path)
    first, num = spec["signals"]["first_hour"], spec["signals"]["num_hours"]
    if first < 0 or num < 1 or first + num > len(table):
        raise ValueError(
            f"signals.first_hour = {first}, signals.num_hours = {num}: expected a slice inside the "
            f"{len(table)} rows of {path.name}"
        )
    columns = []
    for region, zone in zip(regions, zones, strict=True):
        if region in table.columns:
            columns.append(region)
        elif isinstance(zone, str) and zone in table.columns:
            columns.append(zone)
        else:
            raise ValueError(
                f"region {region!r}: no hourly {what} series in {path.name} (looked for a column named "
                f"{region!r} or its zone {zone!r})"
            )
    raw = table[columns].iloc[first : first + num]
    block = raw.apply(pd.to_numeric, errors="coerce")
    typo = block.isna() & raw.notna()  # a cell that is there but is not a number: never interpolate it away
    if typo.to_numpy().any():
        row, col = np.argwhere(typo.to_numpy())[0]
        raise ValueError(f"{path.name}: column {columns[col]!r}, row {first + row} = {raw.iat[row, col]!r}: expected a "
                         "number or a blank cell")
    values = block.to_numpy(dtype=np.float64).copy()
    for j, region in enumerate(regions):
        blank = np.isnan(values[:, j])
        if blank.all():
            raise ValueError(f"region {region!r}: the {what} series {columns[j]!r} is blank over the slice")
        if blank.any():
            t = np.arange(num)
            values[blank, j] = np.interp(t[blank], t[~blank], values[~blank, j])
            notes.append(f"{what} {columns[j]} ({region}): {int(blank.sum())} blank hours filled by linear "
                         "interpolation")
    return values


def _region_catalogue_row(juris: pd.DataFrame, name: str, field: str) -> pd.Series:
    if name not in juris.index:
        raise ValueError(
            f"{field} = {name!r}: expected an Azure region of the jurisdiction table, one of {sorted(juris.index)}"
        )
    row = juris.loc[name]
    return row.iloc[0] if isinstance(row, pd.DataFrame) else row


def _transfer_matrix(spec: Spec, regions: list[str], countries: list[str], juris: pd.DataFrame) -> NDArray[np.float64]:
    """``[R, R]`` USD/GB from source to destination region.

    A region missing from the price matrix is priced as the first same-country region that has a row
    (e.g. Korea South as Korea Central); two regions priced by the same row pay ``same_proxy_usd_per_gb``.
    """
    path = _data_path(spec, "transfer_usd_per_gb")
    table = _read_csv(path)
    if "provider" in table.columns:
        table = table[table["provider"].str.lower() == "azure"]
    price = {(s, d): float(p) for s, d, p in zip(table["src_region"], table["dst_region"], table["usd_per_gb"],
                                                   strict=True)}
    listed = list(dict.fromkeys(table["src_region"]))
    proxies = []
    for region, country in zip(regions, countries, strict=True):
        if region in listed:
            proxies.append(region)
            continue
        same = [r for r in listed if r in juris.index and juris.loc[r, "country_iso2"] == country]
        if not same:
            raise ValueError(f"region {region!r}: no transfer price in {path.name} for it or a region of {country}")
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
                raise ValueError(f"{path.name}: no transfer price from {proxies[i]!r} to {proxies[j]!r}")
    return out


def _rtt(spec: Spec, sources: list[str], regions: list[str]) -> NDArray[np.float64]:
    """``[N, R]`` round trip from each node's location to each region; the intra-region RTT on the diagonal."""
    path = _data_path(spec, "rtt_ms")
    table = _read_csv(path, index_col=0)
    names = set(table.index) & set(table.columns)
    missing = sorted({*sources, *regions} - names)
    if missing:
        raise ValueError(f"data.rtt_ms = {path.name!r}: the latency matrix does not cover {missing}: "
                         "expected a row and a column for each")
    block = table.loc[sources, regions].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64).copy()
    same = np.array(sources)[:, None] == np.array(regions)[None, :]
    block[same] = float(spec["frictions"]["intra_region_rtt_ms"])
    if np.isnan(block).any():
        n, r = np.argwhere(np.isnan(block))[0]
        raise ValueError(f"data.rtt_ms = {path.name!r}: no RTT from {sources[n]!r} to {regions[r]!r}")
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
    ("weights", "alpha"), ("weights", "beta"), ("weights", "gamma"), ("weights", "eta"),
    ("weights", "carbon_price_usd_per_t"),
    ("frictions", "state"), ("frictions", "cache"), ("frictions", "egress"), ("frictions", "replica"),
    ("frictions", "intra_region_rtt_ms"), ("frictions", "same_proxy_usd_per_gb"),
)


def _check_loader_numbers(spec: Spec) -> None:
    for table, key in _LOADER_NUMBERS:
        v = spec[table][key]
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{table}.{key} = {v!r}: expected a finite number >= 0")


def build_scenario(spec: Spec) -> Scenario:
    """Build and validate a scenario from a merged specification."""
    notes: list[str] = []
    juris = _jurisdiction(spec)
    regions = list(spec["regions"])
    if not regions:
        raise ValueError("regions = []: expected at least one compute region")
    if len(set(regions)) != len(regions):
        raise ValueError(f"regions = {regions!r}: expected distinct names")
    _check_loader_numbers(spec)
    rows = [_region_catalogue_row(juris, r, f"regions[{j}]") for j, r in enumerate(regions)]
    countries = [str(row["country_iso2"]) for row in rows]

    unknown = sorted(set(spec["region_overrides"]) - set(regions))
    if unknown:
        raise ValueError(f"region_overrides names {unknown}: expected regions of the scenario, one of {regions}")
    per_region = [{**spec["region_defaults"], **spec["region_overrides"].get(r, {})} for r in regions]
    for r, values in zip(regions, per_region, strict=True):
        for key in ("num_gpus", "queue_ms", "pue"):
            v = values[key]
            where = f'region_overrides."{r}".{key}' if key in spec["region_overrides"].get(r, {}) else \
                f"region_defaults.{key} (region {r!r})"
            if not (math.isfinite(v) and v >= (1.0 if key == "pue" else 0.0)):
                raise ValueError(f"{where} = {v!r}: expected a finite number >= {1 if key == 'pue' else 0}")

    price_mwh = _hourly_series(spec, "price_usd_per_mwh", regions, [row["hourly_price_zone"] for row in rows],
                               notes, "price")
    price = price_mwh / 1000.0
    floor = float(spec["signals"]["price_floor_usd_per_kwh"])
    floored = price < floor
    if floored.any():
        notes.append(f"price: {int(floored.sum())} region-hours below {floor} USD/kWh floored to it")
        price = np.maximum(price, floor)
    carbon = _hourly_series(spec, "carbon_g_per_kwh", regions, [row["hourly_ci_zone"] for row in rows],
                            notes, "carbon")
    T = price.shape[0]
    pue = np.broadcast_to(np.array([v["pue"] for v in per_region], dtype=np.float64), (T, len(regions)))
    scale = float(spec["capacity"]["scale"])
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"capacity.scale = {scale!r}: expected a finite number >= 0")
    gpus = np.array([v["num_gpus"] for v in per_region], dtype=np.float64)
    capacity = np.broadcast_to(gpus * SLOT_S * scale, (T, len(regions)))

    # Service nodes: a node with traffic_share = 0 is dropped, so an override can remove it.
    nodes = {n: e for n, e in spec["service_nodes"].items() if e["traffic_share"] != 0}
    for name, e in nodes.items():
        if not (math.isfinite(e["traffic_share"]) and e["traffic_share"] > 0):
            raise ValueError(f"service_nodes.{name}.traffic_share = {e['traffic_share']!r}: expected a number >= 0")
        client, utc = e["client_latency_ms"], e["utc_offset_h"]
        if not (math.isfinite(client) and client >= 0):
            raise ValueError(f"service_nodes.{name}.client_latency_ms = {client!r}: expected a finite "
                             "number >= 0")
        if not math.isfinite(utc):
            raise ValueError(f"service_nodes.{name}.utc_offset_h = {utc!r}: expected a finite number")
        if e["home"] not in regions:
            raise ValueError(f"service_nodes.{name}.home = {e['home']!r}: expected one of the regions {regions}")
    node_rows = [_region_catalogue_row(juris, e["location"], f"service_nodes.{n}.location") for n, e in nodes.items()]
    share = np.array([e["traffic_share"] for e in nodes.values()], dtype=np.float64)

    models = tuple(ModelClass(name=n, **e) for n, e in spec["models"].items())
    model_idx = {m.name: j for j, m in enumerate(models)}
    classes = []
    for name, e in spec["workload_classes"].items():
        if e["share"] == 0:
            continue
        if e["model"] not in model_idx:
            raise ValueError(f"workload_classes.{name}.model = {e['model']!r}: expected one of {sorted(model_idx)}")
        res = e["residency"]
        classes.append(WorkloadClass(
            name=name, share=float(e["share"]), model_idx=model_idx[e["model"]], tokens=e["tokens"],
            slack_ms=_pair(e["slack_ms"], f"workload_classes.{name}.slack_ms"),
            rounds=_pair(e["rounds"], f"workload_classes.{name}.rounds"),
            cached_share=float(e["cached_share"]), state_kb=float(e["state_kb"]),
            residency=tuple(float(res[r]) for r in RESIDENCY_CLASSES),  # type: ignore[arg-type]
            delay_usd_per_s=float(e["delay_usd_per_s"]), overflow_usd=float(e["overflow_usd"]),
        ))

    w, f, wl = spec["weights"], spec["frictions"], spec["workload"]
    cost = CostParams(alpha=w["alpha"], beta=w["beta"], gamma=w["gamma"], eta=w["eta"],
                      carbon_price_usd_per_t=w["carbon_price_usd_per_t"], state_mult=f["state"],
                      cache_mult=f["cache"], egress_mult=f["egress"], replica_mult=f["replica"])
    arrival = ArrivalProcess(
        kind=wl["arrival"], rate_per_h=wl["rate_per_h"], horizon_h=wl["horizon_h"],
        requests_per_task=wl["requests_per_task"], slack_scale=wl["slack_scale"], slack_add_ms=wl["slack_add_ms"],
        diurnal_amplitude=wl["diurnal_amplitude"], diurnal_peak_local_h=wl["diurnal_peak_local_h"],
        bursty_high_factor=wl["bursty_high_factor"], bursty_low_factor=wl["bursty_low_factor"],
        bursty_mean_high_h=wl["bursty_mean_high_h"], bursty_mean_low_h=wl["bursty_mean_low_h"], trace=wl["trace"],
    )
    traces = {key.removeprefix("trace_"): _trace(spec, key) for key in spec["data"] if key.startswith("trace_")}

    scenario = Scenario(
        name=str(spec["name"]),
        region_names=tuple(regions),
        region_country=tuple(countries),
        region_continent=tuple(str(row["continent"]) for row in rows),
        region_in_eu=_readonly(np.array([bool(row["in_eu_eea"]) for row in rows])),
        region_adequacy=_readonly(np.array([bool(row["eu_adequacy_decision"]) for row in rows])),
        queue_ms=_readonly(np.array([v["queue_ms"] for v in per_region], dtype=np.float64)),
        node_names=tuple(nodes),
        node_home_idx=_readonly(np.array([regions.index(e["home"]) for e in nodes.values()], dtype=np.int64)),
        node_country=tuple(str(row["country_iso2"]) for row in node_rows),
        node_in_eu=_readonly(np.array([bool(row["in_eu_eea"]) for row in node_rows])),
        node_rtt_ms=_readonly(_rtt(spec, [e["location"] for e in nodes.values()], regions)),
        node_client_ms=_readonly(np.array([e["client_latency_ms"] for e in nodes.values()], dtype=np.float64)),
        node_utc_offset_h=_readonly(np.array([e["utc_offset_h"] for e in nodes.values()], dtype=np.float64)),
        node_share=_readonly(share / share.sum()) if share.size else _readonly(share),
        first_hour=int(spec["signals"]["first_hour"]),
        random_start=bool(spec["signals"]["random_start"]),
        price_usd_per_kwh=_readonly(price),
        carbon_g_per_kwh=_readonly(carbon),
        pue=_readonly(pue),
        capacity_gpu_s=_readonly(capacity),
        transfer_usd_per_gb=_readonly(_transfer_matrix(spec, regions, countries, juris)),
        models=models,
        classes=tuple(classes),
        cost=cost,
        replica_window_h=int(f["replica_window_h"]),
        bytes_per_token=float(f["bytes_per_token"]),
        residency_mode=str(spec["legal"]["residency_mode"]),
        arrival=arrival,
        traces=traces,
        spec=spec,
        notes=tuple(notes),
    )
    _check_every_class_can_run(scenario)
    return scenario


def _check_every_class_can_run(s: Scenario) -> None:
    """Reject a class that some node could send with no legal region within its largest budget.

    A task's budget is its latency at home plus its slack (see :mod:`envs.workload`), so region i is
    reachable when its extra network and queueing latency over home fits in the class's largest slack
    for some number of rounds. The extra latency is linear in the rounds, so the extremes decide: a
    region nearer than home but with a longer queue is reachable only with the most rounds.
    """
    allowed = residency_allowed(s.residency_mode, s.node_country, s.node_in_eu, s.region_country,
                                s.region_in_eu, s.region_adequacy)  # [N, 3, R]
    home = s.node_home_idx
    for c in s.classes:
        slack = c.slack_ms[1] * s.arrival.slack_scale + s.arrival.slack_add_ms
        reachable = np.zeros((s.num_nodes, s.num_regions), dtype=bool)
        for rounds in set(c.rounds):
            extra = rounds * (s.node_rtt_ms - s.node_rtt_ms[np.arange(s.num_nodes), home][:, None]) + (
                s.queue_ms[None, :] - s.queue_ms[home][:, None])  # [N, R]
            reachable |= extra <= slack + 1e-9
        for r, share in enumerate(c.residency):
            if share == 0:
                continue
            ok = (allowed[:, r, :] & reachable).any(axis=1)
            if not ok.all():
                node = s.node_names[int(np.argmin(ok))]
                raise ValueError(
                    f"workload_classes.{c.name}: {RESIDENCY_CLASSES[r]} tasks from service node {node!r} have no "
                    f"region they could ever run in (residency mode {s.residency_mode!r}, largest slack {slack} ms): "
                    "expected at least one legal region within the latency budget"
                )
