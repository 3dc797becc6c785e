"""Scenario loading (envs/spec.py, envs/loader.py, envs/scenario.py): the default, overrides, bad input.

Every bad input must raise ``ValueError`` naming the key and the offending value; user TOML files are
written to ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs import NAMED_SCENARIOS, Scenario, evaluate_plan, sample_instance
from envs import loader as loader_mod
from envs import spec as spec_mod

DEFAULT_NODES = (
    "us-east",
    "us-west",
    "us-south",
    "toronto",
    "sao-paulo",
    "frankfurt",
    "pune",
    "tokyo",
    "seoul",
    "singapore",
    "sydney",
)
DEFAULT_CLASSES = ("chat", "code", "rag", "agentic", "batch")

# A two-region scenario: East US and West US, the nodes homed elsewhere dropped by traffic_share = 0.
SMALL_REGIONS = 'regions = ["East US", "West US"]\n'
SMALL_NODES = "".join(f"[service_nodes.{n}]\ntraffic_share = 0.0\n" for n in DEFAULT_NODES[2:])


def write_toml(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> Scenario:
    return Scenario.from_toml(write_toml(tmp_path, text))


def default_regions_without(*names: str) -> str:
    regions = [r for r in spec_mod.default_spec()["regions"] if r not in names]
    return "regions = [" + ", ".join(f'"{r}"' for r in regions) + "]\n"


# ------------------------------------------------------------------------------- the default
def test_default_scenario_shape(default_scenario: Scenario) -> None:
    s = default_scenario
    R, N = s.num_regions, s.num_nodes
    assert R >= 12
    assert len(set(s.region_continent)) >= 4
    assert N >= 6
    assert s.num_hours == 8760
    for name in ("price_usd_per_kwh", "carbon_g_per_kwh", "pue", "capacity_gpu_s"):
        a = getattr(s, name)
        assert a.shape == (8760, R), name
        assert np.isfinite(a).all() and (a >= 0).all(), name
    assert (s.pue >= 1).all() and (s.capacity_gpu_s > 0).all()
    # a real signal varies over the year and between regions
    assert s.price_usd_per_kwh.std(axis=0).min() > 0 and s.carbon_g_per_kwh.std(axis=0).min() > 0
    assert np.ptp(s.carbon_g_per_kwh.mean(axis=0)) > 100  # g/kWh between the cleanest and dirtiest grid
    assert s.node_rtt_ms.shape == (N, R) and np.isfinite(s.node_rtt_ms).all()
    assert s.transfer_usd_per_gb.shape == (R, R) and not np.diag(s.transfer_usd_per_gb).any()
    assert s.node_share.sum() == pytest.approx(1.0) and (s.node_share > 0).all()
    # every node is homed in the region of its own metro: 1 ms intra-region RTT there
    np.testing.assert_array_equal(s.node_rtt_ms[np.arange(N), s.node_home_idx], 1.0)
    assert {c.name for c in s.classes} == set(DEFAULT_CLASSES)
    assert set(s.traces) == {"conv", "code"}
    assert s.residency_mode == "strict"


def test_scenario_is_immutable(default_scenario: Scenario) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_scenario.name = "changed"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        default_scenario.price_usd_per_kwh[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        default_scenario.node_rtt_ms[0, 0] = 1.0


def test_default_reads_only_packaged_files(default_scenario: Scenario) -> None:
    for key in default_scenario.spec["data"]:
        path = loader_mod._data_path(default_scenario.spec, key)
        assert path.parent.resolve() == spec_mod.data_dir().resolve(), key
        assert path.parent.name == "data" and path.parent.parent.name == "envs"


def test_default_loads_offline_from_the_data_folder_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No network: any connection attempt fails the test.
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scenario loader tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    # The packaged folder copied elsewhere and made the only data folder: loading must use it alone.
    copy = tmp_path / "data"
    shutil.copytree(spec_mod.data_dir(), copy)
    monkeypatch.setattr(spec_mod, "data_dir", lambda: copy)
    monkeypatch.setattr(loader_mod, "data_dir", lambda: copy)
    s = Scenario.default()
    assert s.num_regions >= 12
    for key in s.spec["data"]:
        assert loader_mod._data_path(s.spec, key).parent == copy
    # remove a file from the copy: loading now fails, so nothing else was being read instead
    (copy / "cloud_region_metadata_jurisdiction.csv").unlink()
    with pytest.raises(ValueError, match=r"data\.jurisdiction = 'cloud_region_metadata_jurisdiction\.csv'"):
        Scenario.default()


def test_default_overrides_are_identity(default_scenario: Scenario) -> None:
    s = Scenario.from_overrides({})
    assert s.region_names == default_scenario.region_names
    np.testing.assert_array_equal(s.price_usd_per_kwh, default_scenario.price_usd_per_kwh)
    assert s.cost == default_scenario.cost


# --------------------------------------------------------------------------- bad input: keys
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('colour = "red"\n', r"unknown key 'colour' \(value 'red'\); expected one of: .*regions"),
        (
            "[workload]\nrate = 5.0\n",
            r"unknown key 'workload\.rate' \(value 5\.0\); expected one of: .*rate_per_h",
        ),
        ("[signals.extra]\nx = 1\n", r"unknown key 'signals\.extra'"),
        ('[data]\nrtt_p99 = "x.csv"\n', r"unknown key 'data\.rtt_p99'"),
        (
            "[workload_classes.chat]\nslack = [1.0, 2.0]\n",
            r"unknown key 'workload_classes\.chat\.slack' \(value \[1\.0, 2\.0\]\); "
            r"expected one of: .*slack_ms",
        ),
        (
            "[workload_classes.chat]\nresidency = { global = 1.0, regional = 0.0, domestic = 0.0, planet = 0.0 }\n",
            r"unknown key 'workload_classes\.chat\.residency\.planet'",
        ),
        ("[models.llm-8b]\nvram_gb = 16.0\n", r"unknown key 'models\.llm-8b\.vram_gb'"),
        (
            '[service_nodes.tokyo]\nhome_region = "Japan East"\n',
            r"unknown key 'service_nodes\.tokyo\.home_region'",
        ),
        (
            '[region_overrides."East US"]\ngpus = 4\n',
            r"unknown key 'region_overrides\.East US\.gpus' \(value 4\)",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load(tmp_path, text)


# -------------------------------------------------------------------------- bad input: types
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 5\n", r"name = 5: expected str"),
        ('regions = "East US"\n', r"regions = 'East US': expected list"),
        ('regions = ["East US", 3]\n', r"regions\[1\] = 3: expected str"),
        ("weights = 3\n", r"weights = 3: expected a table"),
        ('[workload]\nrate_per_h = "fast"\n', r"workload\.rate_per_h = 'fast': expected float"),
        ("[workload]\nrate_per_h = true\n", r"workload\.rate_per_h = True: expected float"),
        ("[workload]\nrequests_per_task = 2.5\n", r"workload\.requests_per_task = 2\.5: expected int"),
        ("[signals]\nrandom_start = 1\n", r"signals\.random_start = 1: expected bool"),
        ("[signals]\nfirst_hour = 0.5\n", r"signals\.first_hour = 0\.5: expected int"),
        ("[region_defaults]\nnum_gpus = 2.5\n", r"region_defaults\.num_gpus = 2\.5: expected int"),
        ("[legal]\nresidency_mode = 1\n", r"legal\.residency_mode = 1: expected str"),
        (
            "[workload_classes.chat]\nrounds = [1.0, 2.0]\n",
            r"workload_classes\.chat\.rounds\[0\] = 1\.0: expected int",
        ),
        (
            "[workload_classes.chat]\nslack_ms = 30.0\n",
            r"workload_classes\.chat\.slack_ms = 30\.0: expected list",
        ),
        (
            "[workload_classes.chat]\nresidency = 0.5\n",
            r"workload_classes\.chat\.residency = 0\.5: expected a table",
        ),
        ("[workload_classes.chat]\nmodel = 70\n", r"workload_classes\.chat\.model = 70: expected str"),
        ("[models.llm-8b]\nwarm_at_home = 1\n", r"models\.llm-8b\.warm_at_home = 1: expected bool"),
        ("workload_classes = 4\n", r"workload_classes = 4: expected a table of named entries"),
        ("workload_classes = { chat = 4 }\n", r"workload_classes\.chat = 4: expected a table"),
        ("region_overrides = 1\n", r"region_overrides = 1: expected a table of region names"),
        ('region_overrides = { "East US" = 2 }\n', r"region_overrides\.East US = 2: expected a table"),
        (
            '[region_overrides."East US"]\nnum_gpus = 2.5\n',
            r"region_overrides\.East US\.num_gpus = 2\.5: expected int",
        ),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load(tmp_path, text)


# -------------------------------------------------------------- bad input: NaN, negative, range
NUMBER_CASES = [
    # (table, key, TOML value, message fragment: the key as the user wrote it, and the value)
    ("weights", "alpha", "nan", "weights.alpha = nan"),
    ("weights", "beta", "-1.0", "weights.beta = -1.0"),
    ("weights", "gamma", "inf", "weights.gamma = inf"),
    ("weights", "eta", "nan", "weights.eta = nan"),
    ("weights", "carbon_price_usd_per_t", "-100.0", "weights.carbon_price_usd_per_t = -100.0"),
    ("frictions", "state", "nan", "frictions.state = nan"),
    ("frictions", "cache", "-0.5", "frictions.cache = -0.5"),
    ("frictions", "egress", "nan", "frictions.egress = nan"),
    ("frictions", "replica", "-1.0", "frictions.replica = -1.0"),
    ("frictions", "intra_region_rtt_ms", "nan", "frictions.intra_region_rtt_ms = nan"),
    ("frictions", "intra_region_rtt_ms", "-1.0", "frictions.intra_region_rtt_ms = -1.0"),
    ("frictions", "same_proxy_usd_per_gb", "nan", "frictions.same_proxy_usd_per_gb = nan"),
    ("frictions", "same_proxy_usd_per_gb", "-0.01", "frictions.same_proxy_usd_per_gb = -0.01"),
    ("frictions", "bytes_per_token", "nan", "frictions.bytes_per_token = nan"),
    ("frictions", "bytes_per_token", "0.0", "frictions.bytes_per_token = 0.0"),
    ("frictions", "replica_window_h", "0", "frictions.replica_window_h = 0"),
    ("signals", "price_floor_usd_per_kwh", "nan", "signals.price_floor_usd_per_kwh = nan"),
    ("signals", "price_floor_usd_per_kwh", "-0.05", "signals.price_floor_usd_per_kwh = -0.05"),
    ("signals", "first_hour", "-1", "signals.first_hour = -1"),
    ("signals", "num_hours", "0", "signals.num_hours = 0"),
    ("signals", "first_hour", "8750", "signals.first_hour = 8750, signals.num_hours = 8760"),
    ("signals", "num_hours", "12", "signals.num_hours = 12: expected >= the episode horizon (24.0 h)"),
    ("region_defaults", "queue_ms", "nan", "region_defaults.queue_ms (region 'East US') = nan"),
    ("region_defaults", "num_gpus", "-1", "region_defaults.num_gpus (region 'East US') = -1"),
    ("region_defaults", "pue", "nan", "region_defaults.pue (region 'East US') = nan"),
    ("region_defaults", "pue", "0.9", "region_defaults.pue (region 'East US') = 0.9: expected a finite number >= 1"),
    ('region_overrides."Japan East"', "queue_ms", "-5.0", 'region_overrides."Japan East".queue_ms = -5.0'),
    ("capacity", "scale", "nan", "capacity.scale = nan"),
    ("capacity", "scale", "-1.0", "capacity.scale = -1.0"),
    ("workload", "rate_per_h", "nan", "workload.rate_per_h = nan"),
    ("workload", "rate_per_h", "0.0", "workload.rate_per_h = 0.0"),
    ("workload", "horizon_h", "-1.0", "workload.horizon_h = -1.0"),
    ("workload", "requests_per_task", "0", "workload.requests_per_task = 0"),
    ("workload", "slack_scale", "-1.0", "workload.slack_scale = -1.0"),
    ("workload", "slack_add_ms", "nan", "workload.slack_add_ms = nan"),
    ("workload", "diurnal_amplitude", "1.5", "workload.diurnal_amplitude = 1.5"),
    ("workload", "diurnal_amplitude", "nan", "workload.diurnal_amplitude = nan"),
    ("workload", "diurnal_peak_local_h", "nan", "workload.diurnal_peak_local_h = nan"),
    ("workload", "bursty_high_factor", "-1.0", "workload.bursty_high_factor = -1.0"),
    ("workload", "bursty_low_factor", "0.0", "workload.bursty_low_factor = 0.0"),
    ("workload", "bursty_mean_high_h", "nan", "workload.bursty_mean_high_h = nan"),
    ("workload", "bursty_mean_low_h", "-2.0", "workload.bursty_mean_low_h = -2.0"),
    ("models.llm-8b", "gpu_power_w", "nan", "models.llm-8b.gpu_power_w = nan"),
    ("models.llm-70b", "prefill_tokens_per_gpu_s", "0.0", "models.llm-70b.prefill_tokens_per_gpu_s = 0.0"),
    ("models.llm-70b", "decode_tokens_per_gpu_s", "-1.0", "models.llm-70b.decode_tokens_per_gpu_s = -1.0"),
    ("models.llm-70b", "ttft_base_ms", "nan", "models.llm-70b.ttft_base_ms = nan"),
    ("models.llm-70b", "prefill_ms_per_token", "-0.1", "models.llm-70b.prefill_ms_per_token = -0.1"),
    ("models.llm-70b", "replica_usd", "-1.0", "models.llm-70b.replica_usd = -1.0"),
    ("workload_classes.chat", "share", "nan", "workload_classes.chat.share = nan"),
    ("workload_classes.chat", "share", "-0.5", "workload_classes.chat.share = -0.5"),
    ("workload_classes.chat", "cached_share", "1.5", "workload_classes.chat.cached_share = 1.5"),
    ("workload_classes.chat", "cached_share", "nan", "workload_classes.chat.cached_share = nan"),
    ("workload_classes.rag", "state_kb", "-1.0", "workload_classes.rag.state_kb = -1.0"),
    ("workload_classes.chat", "delay_usd_per_s", "nan", "workload_classes.chat.delay_usd_per_s = nan"),
    ("workload_classes.batch", "overflow_usd", "-1.0", "workload_classes.batch.overflow_usd = -1.0"),
    ("workload_classes.chat", "slack_ms", "[nan, 10.0]", "workload_classes.chat.slack_ms = [nan, 10.0]"),
    ("workload_classes.chat", "slack_ms", "[50.0, 10.0]", "workload_classes.chat.slack_ms = [50.0, 10.0]"),
    ("workload_classes.chat", "slack_ms", "[-1.0, 10.0]", "workload_classes.chat.slack_ms = [-1.0, 10.0]"),
    (
        "workload_classes.chat",
        "slack_ms",
        "[1.0]",
        "workload_classes.chat.slack_ms = [1.0]: expected [low, high]",
    ),
    ("workload_classes.chat", "rounds", "[0, 1]", "workload_classes.chat.rounds = [0, 1]"),
    ("workload_classes.chat", "rounds", "[3, 1]", "workload_classes.chat.rounds = [3, 1]"),
    (
        "workload_classes.chat",
        "rounds",
        "[1, 2, 3]",
        "workload_classes.chat.rounds = [1, 2, 3]: expected [low, high]",
    ),
    (
        "workload_classes.chat",
        "residency",
        "{ global = nan, regional = 0.2, domestic = 0.1 }",
        "workload_classes.chat.residency.global = nan",
    ),
    (
        "workload_classes.chat",
        "residency",
        "{ global = 0.7, regional = -0.2, domestic = 0.1 }",
        "workload_classes.chat.residency.regional = -0.2",
    ),
    (
        "workload_classes.chat",
        "residency",
        "{ global = 0.0, regional = 0.0, domestic = 0.0 }",
        "workload_classes.chat.residency = (0.0, 0.0, 0.0): expected shares with a positive sum",
    ),
    ("service_nodes.tokyo", "traffic_share", "nan", "service_nodes.tokyo.traffic_share = nan"),
    ("service_nodes.tokyo", "traffic_share", "-0.1", "service_nodes.tokyo.traffic_share = -0.1"),
    ("service_nodes.tokyo", "client_latency_ms", "nan", "service_nodes.tokyo.client_latency_ms = nan"),
    ("service_nodes.tokyo", "client_latency_ms", "-1.0", "service_nodes.tokyo.client_latency_ms = -1.0"),
    ("service_nodes.tokyo", "utc_offset_h", "nan", "service_nodes.tokyo.utc_offset_h = nan"),
    ("service_nodes.tokyo", "utc_offset_h", "inf", "service_nodes.tokyo.utc_offset_h = inf"),
]


@pytest.mark.parametrize(
    ("table", "key", "value", "fragment"), NUMBER_CASES, ids=[f"{t}.{k}={v}" for t, k, v, _ in NUMBER_CASES]
)
def test_bad_numbers(tmp_path: Path, table: str, key: str, value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        load(tmp_path, f"[{table}]\n{key} = {value}\n")


# ------------------------------------------------------------------ bad input: cross references
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('regions = ["East US", "Atlantis"]\n', r"regions\[1\] = 'Atlantis': expected an Azure region"),
        (
            'regions = ["East US", "East US"]\n',
            r"regions = \['East US', 'East US'\]: expected distinct names",
        ),
        ("regions = []\n", r"regions = \[\]: expected at least one compute region"),
        (
            default_regions_without().replace("]\n", ', "France Central"]\n'),
            r"region 'France Central': no hourly carbon series .*zone nan",
        ),
        (
            default_regions_without("Japan East"),
            r"service_nodes\.tokyo\.home = 'Japan East': expected one of",
        ),
        ('[service_nodes.tokyo]\nhome = "Japan West"\n', r"service_nodes\.tokyo\.home = 'Japan West'"),
        ('[service_nodes.tokyo]\nlocation = "Atlantis"\n', r"service_nodes\.tokyo\.location = 'Atlantis'"),
        ('[legal]\nresidency_mode = "lenient"\n', r"legal\.residency_mode = 'lenient': expected one of"),
        ('[workload]\narrival = "weekly"\n', r"workload\.arrival = 'weekly': expected one of"),
        ('[workload]\ntrace = "images"\n', r"workload\.trace = 'images': expected one of \['code', 'conv'\]"),
        (
            '[workload_classes.chat]\nmodel = "gpt-9"\n',
            r"workload_classes\.chat\.model = 'gpt-9': expected one of",
        ),
        ('[workload_classes.chat]\ntokens = "images"\n', r"workload_classes\.chat\.tokens = 'images'"),
        ('[data]\nrtt_ms = "nope.csv"\n', r"data\.rtt_ms = 'nope\.csv': expected an existing file"),
        (
            '[region_overrides."Japan West"]\nnum_gpus = 4\n',
            r"region_overrides names \['Japan West'\]: expected regions of the scenario",
        ),
        (
            '[workload_classes.vision]\nshare = 0.1\nmodel = "llm-8b"\n',
            r"new entry 'workload_classes\.vision' lacks the fields \[.*'cached_share'.*\]",
        ),
        (
            "[models.llm-405b]\ngpu_power_w = 700.0\n",
            r"new entry 'models\.llm-405b' lacks the fields \[.*'replica_usd'",
        ),
        (
            '[service_nodes.paris]\nlocation = "France Central"\n',
            r"new entry 'service_nodes\.paris' lacks the fields \[.*'home'",
        ),
        (
            "".join(f"[workload_classes.{c}]\nshare = 0.0\n" for c in DEFAULT_CLASSES),
            r"workload_classes = \[\]: expected at least one class with share > 0",
        ),
        (
            "".join(f"[service_nodes.{n}]\ntraffic_share = 0.0\n" for n in DEFAULT_NODES),
            r"service_nodes = \[\]: expected at least one node",
        ),
    ],
)
def test_bad_references(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load(tmp_path, text)


def test_a_new_entry_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    text = (
        '[service_nodes.paris]\nlocation = "Germany West Central"\nhome = "Germany West Central"\n'
        "utc_offset_h = 1.0\nclient_latency_ms = 10.0\ntraffic_share = 0.1\nmetro = 1\n"
    )
    with pytest.raises(ValueError, match=r"unknown key 'service_nodes\.paris\.metro'"):
        load(tmp_path, text)


def test_files_that_are_not_scenarios(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"does not exist"):
        Scenario.from_toml(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match=r"is not valid TOML"):
        load(tmp_path, "[workload\nrate_per_h = 1.0\n")


# ------------------------------------------------------------------- bad input: data files
def write_rtt(path: Path, names: list[str], rtt: dict[tuple[str, str], float]) -> None:
    rows = [{"source_region": a, **{b: rtt.get((a, b), "") for b in names}} for a in names]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_latency_matrix_that_does_not_cover_the_regions(tmp_path: Path) -> None:
    write_rtt(
        tmp_path / "rtt.csv",
        ["East US", "West US"],
        {("East US", "West US"): 60.0, ("West US", "East US"): 60.0},
    )
    with pytest.raises(
        ValueError,
        match=r"data\.rtt_ms = 'rtt\.csv': the latency matrix does not cover \[.*"
        r"'Japan East'",
    ):
        load(tmp_path, '[data]\nrtt_ms = "rtt.csv"\n')


def test_latency_matrix_with_a_blank_pair(tmp_path: Path) -> None:
    write_rtt(tmp_path / "rtt.csv", ["East US", "West US"], {("West US", "East US"): 60.0})
    with pytest.raises(ValueError, match=r"data\.rtt_ms = 'rtt\.csv': no RTT from 'East US' to 'West US'"):
        load(tmp_path, SMALL_REGIONS + '[data]\nrtt_ms = "rtt.csv"\n' + SMALL_NODES)


def test_user_latency_matrix_next_to_the_toml(tmp_path: Path) -> None:
    write_rtt(
        tmp_path / "rtt.csv",
        ["East US", "West US"],
        {("East US", "West US"): 60.0, ("West US", "East US"): 62.0},
    )
    s = load(
        tmp_path,
        SMALL_REGIONS + '[data]\nrtt_ms = "rtt.csv"\n[frictions]\nintra_region_rtt_ms = 2.0\n' + SMALL_NODES,
    )
    # rows: nodes us-east (East US), us-west (West US); columns: regions; diagonal = intra-region RTT
    np.testing.assert_array_equal(s.node_rtt_ms, [[2.0, 60.0], [62.0, 2.0]])


def write_hourly(path: Path, columns: dict[str, list[float]]) -> None:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame(
        {
            "datetime_utc": pd.date_range("2023-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:00Z"),
            **columns,
        }
    )
    frame.to_csv(path, index=False)


def test_user_carbon_series(tmp_path: Path) -> None:
    east = [100.0] * 48
    west = [200.0] * 48
    west[10], west[11], west[12] = 200.0, float("nan"), 300.0  # a blank hour: interpolated to 250
    write_hourly(tmp_path / "carbon.csv", {"East US": east, "West US": west})
    header = SMALL_REGIONS + '[data]\ncarbon_g_per_kwh = "carbon.csv"\n[signals]\nnum_hours = 48\n'
    s = load(tmp_path, header + SMALL_NODES)
    assert s.carbon_g_per_kwh.shape == (48, 2)
    np.testing.assert_array_equal(s.carbon_g_per_kwh[:, 0], 100.0)
    assert s.carbon_g_per_kwh[11, 1] == pytest.approx(250.0)
    assert any("carbon West US" in note and "1 blank hours" in note for note in s.notes)


@pytest.mark.parametrize(
    ("west", "match"),
    [
        ([float("nan")] * 48, r"region 'West US': the carbon series 'West US' is blank over the slice"),
        (
            [200.0] * 5 + [-3.0] + [200.0] * 42,
            r"carbon\.csv: column 'West US', row 5 = -3\.0: expected a finite number >= 0 or a blank cell \(line 7",
        ),
        ([200.0] * 5 + [float("inf")] + [200.0] * 42, r"carbon\.csv: column 'West US', row 5 = inf: expected a finite"),
    ],
)
def test_bad_signal_values(tmp_path: Path, west: list[float], match: str) -> None:
    write_hourly(tmp_path / "carbon.csv", {"East US": [100.0] * 48, "West US": west})
    header = SMALL_REGIONS + '[data]\ncarbon_g_per_kwh = "carbon.csv"\n[signals]\nnum_hours = 48\n'
    with pytest.raises(ValueError, match=match):
        load(tmp_path, header + SMALL_NODES)


def test_signal_file_missing_a_region(tmp_path: Path) -> None:
    write_hourly(tmp_path / "carbon.csv", {"East US": [100.0] * 48})
    header = SMALL_REGIONS + '[data]\ncarbon_g_per_kwh = "carbon.csv"\n[signals]\nnum_hours = 48\n'
    with pytest.raises(ValueError, match=r"region 'West US': no hourly carbon series in carbon\.csv"):
        load(tmp_path, header + SMALL_NODES)


def test_trace_file_with_wrong_columns(tmp_path: Path) -> None:
    pd.DataFrame({"TIMESTAMP": ["2023-11-16 18:15:46", "2023-11-16 18:15:47"], "Tokens": [1, 2]}).to_csv(
        tmp_path / "trace.csv", index=False
    )
    with pytest.raises(ValueError, match=r"data\.trace_conv = trace\.csv: expected columns \['ContextTokens'"):
        load(tmp_path, '[data]\ntrace_conv = "trace.csv"\n')


# ------------------------------------------------------------------------- no region to run in
def test_domestic_class_with_no_region_in_its_country(tmp_path: Path) -> None:
    # Germany West Central dropped and frankfurt (a German node) homed in Austria: its domestic tasks
    # (every default class has some) may run in Germany only, and no German region is left.
    text = default_regions_without("Germany West Central") + '[service_nodes.frankfurt]\nhome = "Austria East"\n'
    with pytest.raises(
        ValueError,
        match=r"workload_classes\.chat: domestic tasks from service node 'frankfurt' "
        r"have no region they could ever run in \(residency mode 'strict'",
    ):
        load(tmp_path, text)
    # with residency rules off the same geography is fine
    s = load(tmp_path, text + '[legal]\nresidency_mode = "off"\n')
    assert s.region_names[s.node_home_idx[s.node_names.index("frankfurt")]] == "Austria East"


def test_regional_class_depends_on_the_legal_mode(tmp_path: Path) -> None:
    # No EU region left, frankfurt homed in East US, no domestic tasks: regional (EU) data has nowhere
    # to go under "strict", but may go to the US (adequacy decision) under "adequacy".
    text = (
        default_regions_without("Germany West Central", "Austria East")
        + '[service_nodes.frankfurt]\nhome = "East US"\n'
        + "".join(f"[workload_classes.{c}.residency]\ndomestic = 0.0\n" for c in DEFAULT_CLASSES)
    )
    with pytest.raises(ValueError, match=r"workload_classes\.chat: regional tasks from service node 'frankfurt'"):
        load(tmp_path, text)
    s = load(tmp_path, text + '[legal]\nresidency_mode = "adequacy"\n')
    assert "Germany West Central" not in s.region_names and s.residency_mode == "adequacy"


def test_class_reachable_only_with_more_rounds_is_accepted(tmp_path: Path) -> None:
    # toronto homed in East US (18 ms away); Canada Central, its own country's region, has a 50 ms queue.
    # Extra latency at Canada Central over home for r rounds: r * (1 - 18) + (50 - 5) = 45 - 17 r ms:
    # 28 ms with 1 round (over the 20 ms slack), -6 ms with 3 rounds (inside it).
    base = (
        '[region_overrides."Canada Central"]\nqueue_ms = 50.0\n'
        '[service_nodes.toronto]\nhome = "East US"\ntraffic_share = 0.5\n'
        "[workload_classes.code]\nslack_ms = [0.0, 20.0]\n"
        "residency = { global = 0.0, regional = 0.0, domestic = 1.0 }\n"
    )
    with pytest.raises(ValueError, match=r"workload_classes\.code: domestic tasks from service node 'toronto'"):
        load(tmp_path, base + "rounds = [1, 1]\n")
    s = load(tmp_path, base + "rounds = [1, 3]\n")
    # and indeed the 3-round domestic tasks of toronto are admissible there
    from envs import static_mask

    inst = sample_instance(s, 0, num_tasks=1000)
    cc, code = s.region_names.index("Canada Central"), [c.name for c in s.classes].index("code")
    mine = (inst.node_idx == s.node_names.index("toronto")) & (inst.class_idx == code) & (inst.residency_idx == 2)
    mask = static_mask(inst)
    assert (mine & (inst.rounds == 3)).sum() >= 5 and (mine & (inst.rounds == 1)).sum() >= 5
    assert mask[mine & (inst.rounds == 3), cc].all()
    assert not mask[mine & (inst.rounds == 1), cc].any()


# ----------------------------------------------------------------------------- overrides apply
def test_weight_overrides(tmp_path: Path, default_scenario: Scenario) -> None:
    s = load(tmp_path, "[weights]\nalpha = 0.5\ncarbon_price_usd_per_t = 250\n")
    assert (s.cost.alpha, s.cost.carbon_price_usd_per_t) == (0.5, 250.0)
    assert (s.cost.beta, s.cost.gamma, s.cost.eta) == (1.0, 1.0, 1.0)
    # the same episode costs what the new weights say
    inst0 = sample_instance(default_scenario, 5, num_tasks=50)
    inst1 = sample_instance(s, 5, num_tasks=50)
    np.testing.assert_array_equal(inst0.gpu_s, inst1.gpu_s)
    plan = inst0.home_idx
    b0, b1 = evaluate_plan(inst0, plan), evaluate_plan(inst1, plan)
    assert b1.carbon_usd == pytest.approx(2.5 * b0.carbon_usd)
    assert b1.total_usd == pytest.approx(b0.total_usd - 0.5 * b0.energy_usd + 1.5 * b0.carbon_usd)


def test_friction_multipliers_take_effect(default_scenario: Scenario) -> None:
    s = Scenario.from_overrides({"frictions": {"state": 2.0, "egress": 0.0, "cache": 0.0, "replica": 3.0}})
    assert (s.cost.state_mult, s.cost.egress_mult, s.cost.cache_mult, s.cost.replica_mult) == (
        2.0,
        0.0,
        0.0,
        3.0,
    )
    inst0 = sample_instance(default_scenario, 11, num_tasks=80)
    inst1 = sample_instance(s, 11, num_tasks=80)
    np.testing.assert_array_equal(inst0.budget_ms, inst1.budget_ms)  # the episode itself is unchanged
    plan = (inst0.home_idx + 1) % inst0.num_regions  # every task away from home
    b0, b1 = evaluate_plan(inst0, plan), evaluate_plan(inst1, plan)
    np.testing.assert_allclose(b1.task.state_usd, 2.0 * b0.task.state_usd)
    assert not b1.task.egress_usd.any() and b0.task.egress_usd.any()
    np.testing.assert_allclose(b1.task.it_kwh, inst1.energy_kwh)  # no recomputed cache
    assert (b0.task.it_kwh >= inst0.energy_kwh).all() and (b0.task.it_kwh > inst0.energy_kwh).any()
    assert b1.replica_usd == pytest.approx(3.0 * b0.replica_usd) and b0.replica_usd > 0


def test_regions_subset_dropping_nodes(tmp_path: Path, default_scenario: Scenario) -> None:
    s = load(tmp_path, SMALL_REGIONS + SMALL_NODES)
    assert s.region_names == ("East US", "West US")
    assert s.node_names == ("us-east", "us-west")
    np.testing.assert_array_equal(s.node_home_idx, [0, 1])
    # shares renormalised: 0.18 and 0.12 of the default -> 0.6 and 0.4
    np.testing.assert_allclose(s.node_share, [0.6, 0.4])
    d = default_scenario
    cols = [d.region_names.index("East US"), d.region_names.index("West US")]
    np.testing.assert_array_equal(s.price_usd_per_kwh, d.price_usd_per_kwh[:, cols])
    np.testing.assert_array_equal(s.carbon_g_per_kwh, d.carbon_g_per_kwh[:, cols])
    np.testing.assert_array_equal(s.transfer_usd_per_gb, d.transfer_usd_per_gb[np.ix_(cols, cols)])
    rows = [d.node_names.index("us-east"), d.node_names.index("us-west")]
    np.testing.assert_array_equal(s.node_rtt_ms, d.node_rtt_ms[np.ix_(rows, cols)])
    inst = sample_instance(s, 0, num_tasks=30)
    assert set(inst.node_idx.tolist()) <= {0, 1} and inst.num_regions == 2
    assert inst.permanent_replica.all()  # both regions are homes, and both models are warm at home


def test_capacity_scale_and_region_overrides(tmp_path: Path, default_scenario: Scenario) -> None:
    s = load(
        tmp_path,
        '[capacity]\nscale = 2.5\n[region_overrides."Brazil South"]\nnum_gpus = 6\nqueue_ms = 9.0\npue = 1.4\n',
    )
    br = s.region_names.index("Brazil South")
    # capacity = GPUs * 3600 s * scale: 2 * 3600 * 2.5 = 18000 GPU-s, and 6 * 3600 * 2.5 = 54000 in Brazil
    expected = np.full(s.num_regions, 18000.0)
    expected[br] = 54000.0
    np.testing.assert_array_equal(s.capacity_gpu_s, np.broadcast_to(expected, (8760, s.num_regions)))
    assert s.queue_ms[br] == 9.0 and np.delete(s.queue_ms, br).tolist() == [5.0] * (s.num_regions - 1)
    assert (s.pue[:, br] == 1.4).all() and (np.delete(s.pue, br, axis=1) == 1.185).all()
    np.testing.assert_array_equal(default_scenario.capacity_gpu_s, 7200.0)


def test_signals_slice(tmp_path: Path, default_scenario: Scenario) -> None:
    first, num = 24 * 40, 72
    s = load(tmp_path, f"[signals]\nfirst_hour = {first}\nnum_hours = {num}\nrandom_start = false\n")
    assert (s.num_hours, s.first_hour, s.random_start) == (num, first, False)
    np.testing.assert_array_equal(s.carbon_g_per_kwh, default_scenario.carbon_g_per_kwh[first : first + num])
    # prices straight from the packaged CSV (USD/MWh -> USD/kWh, floored at 0)
    raw = pd.read_csv(spec_mod.data_dir() / "electricity_price_hourly_2023_usd_per_mwh.csv")
    zones = pd.read_csv(spec_mod.data_dir() / "cloud_region_metadata_jurisdiction.csv")
    zones = zones[zones["provider"] == "azure"].set_index("region")["hourly_price_zone"]
    expected = raw[[zones[r] for r in s.region_names]].iloc[first : first + num].to_numpy() / 1000.0
    assert not np.isnan(expected).any()
    np.testing.assert_allclose(s.price_usd_per_kwh, np.maximum(expected, 0.0), rtol=1e-12)
    # an episode of the sliced scenario starts at its first hour and sees those rows
    inst = sample_instance(s, 1, num_tasks=5)
    assert inst.start_hour == first
    np.testing.assert_array_equal(inst.price_usd_per_kwh, s.price_usd_per_kwh[:24])


def test_new_named_entries(tmp_path: Path) -> None:
    text = (
        "[models.llm-1b]\nprefill_tokens_per_gpu_s = 50000.0\ndecode_tokens_per_gpu_s = 5000.0\n"
        "gpu_power_w = 350.0\nttft_base_ms = 5.0\nprefill_ms_per_token = 0.005\nreplica_usd = 0.01\n"
        "warm_at_home = false\n"
        '[workload_classes.vision]\nshare = 0.5\nmodel = "llm-1b"\ntokens = "code"\nslack_ms = [10.0, 20.0]\n'
        "rounds = [1, 2]\ncached_share = 0.0\nstate_kb = 100.0\n"
        "residency = { global = 1.0, regional = 0.0, domestic = 0.0 }\ndelay_usd_per_s = 1e-4\n"
        "overflow_usd = 0.02\n"
        '[service_nodes.hamburg]\nlocation = "Germany North"\nhome = "Germany West Central"\n'
        "utc_offset_h = 1.0\nclient_latency_ms = 7.0\ntraffic_share = 0.1\n"
    )
    s = load(tmp_path, text)
    assert s.models[-1].name == "llm-1b" and s.models[-1].warm_at_home is False
    vision = s.classes[-1]
    assert (vision.name, vision.share, s.models[vision.model_idx].name) == ("vision", 0.5, "llm-1b")
    assert s.node_names[-1] == "hamburg" and s.node_country[-1] == "DE" and s.node_in_eu[-1]
    assert s.region_names[s.node_home_idx[-1]] == "Germany West Central"
    inst = sample_instance(s, 2, num_tasks=400)
    is_vision = inst.class_idx == len(s.classes) - 1
    assert 100 < is_vision.sum() < 300  # about half the tasks
    assert (inst.residency_idx[is_vision] == 0).all()
    assert not inst.permanent_replica[:, len(s.models) - 1].any()  # not warm anywhere
    assert (inst.node_idx == s.num_nodes - 1).any()


def test_residency_mode_override_reaches_the_instances() -> None:
    s = Scenario.from_overrides({"legal": {"residency_mode": "off"}})
    assert sample_instance(s, 0, num_tasks=5).residency_ok.all()


def test_a_typo_in_a_user_series_is_an_error_not_a_blank(tmp_path: Path) -> None:
    write_hourly(tmp_path / "carbon.csv", {"East US": [100.0] * 48, "West US": [200.0] * 48})
    text = (tmp_path / "carbon.csv").read_text().splitlines()
    text[8] = text[8].rsplit(",", 1)[0] + ',"12,5"'  # a decimal comma: not a number
    (tmp_path / "carbon.csv").write_text("\n".join(text) + "\n")
    header = SMALL_REGIONS + '[data]\ncarbon_g_per_kwh = "carbon.csv"\n[signals]\nnum_hours = 48\n'
    with pytest.raises(ValueError, match=r"carbon.csv: column 'West US', row 7 = '12,5': expected a finite number"):
        load(tmp_path, header + SMALL_NODES)


def test_a_new_class_must_give_its_whole_residency_table(tmp_path: Path) -> None:
    entry = dict(Scenario.default().spec["workload_classes"]["chat"])
    fields = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in entry.items() if k != "residency")
    text = f"[workload_classes.vision]\n{fields}\nresidency = {{ global = 1.0 }}\n"
    with pytest.raises(
        ValueError,
        match=r"new entry 'workload_classes.vision': residency lacks \['domestic', "
        r"'regional'\]",
    ):
        load(tmp_path, text)


# --------------------------------------------------------------------------- Scenario.load: naming a scenario
REGISTERED = ", ".join(repr(n) for n in NAMED_SCENARIOS)  # how an error lists the registered names


def test_load_returns_a_scenario_as_is(default_scenario: Scenario) -> None:
    assert Scenario.load(default_scenario) is default_scenario


@pytest.mark.parametrize("source", [None, "default"])
def test_load_none_and_default_are_the_default(default_scenario: Scenario, source: str | None) -> None:
    s = Scenario.load(source)
    # the default itself, not its file read again as overrides (which would make its data paths absolute)
    assert s.spec == default_scenario.spec == spec_mod.default_spec()
    assert s.name == "default" and s.notes == default_scenario.notes
    np.testing.assert_array_equal(s.price_usd_per_kwh, default_scenario.price_usd_per_kwh)
    np.testing.assert_array_equal(s.capacity_gpu_s, default_scenario.capacity_gpu_s)


def test_load_with_no_argument_is_the_default(default_scenario: Scenario) -> None:
    assert Scenario.load().spec == default_scenario.spec


def test_the_registry_names_packaged_toml_files() -> None:
    assert {"default", "contended"} <= set(NAMED_SCENARIOS)
    for name, path in NAMED_SCENARIOS.items():
        assert path.is_file() and path.suffix == ".toml", name
        assert path.parent.resolve() in (spec_mod.data_dir().resolve(), (spec_mod.data_dir() / "tasks").resolve())
        assert Scenario.load(name).name == name  # each file names its scenario after its registry key


def test_load_a_registered_name_reads_its_packaged_file(default_scenario: Scenario) -> None:
    s = Scenario.load("contended")
    want = Scenario.from_toml(NAMED_SCENARIOS["contended"])
    assert s.name == "contended" and s.spec == want.spec
    np.testing.assert_array_equal(s.capacity_gpu_s, want.capacity_gpu_s)
    assert not np.array_equal(s.capacity_gpu_s, default_scenario.capacity_gpu_s)


def test_load_a_toml_path_as_str_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, SMALL_REGIONS + SMALL_NODES)
    want = Scenario.from_toml(path)
    assert want.region_names == ("East US", "West US")
    for source in (path, str(path)):
        s = Scenario.load(source)
        assert s.spec == want.spec
        np.testing.assert_array_equal(s.price_usd_per_kwh, want.price_usd_per_kwh)
    monkeypatch.chdir(tmp_path)  # a relative path is relative to the working folder
    assert Scenario.load(path.name).spec == want.spec
    assert Scenario.load(Path(path.name)).spec == want.spec


def test_a_str_is_a_registered_name_first_a_path_is_always_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_toml(tmp_path, SMALL_REGIONS + SMALL_NODES, name="contended")
    assert Scenario.load("contended").name == "contended"  # the registered scenario
    assert Scenario.load(Path("contended")).region_names == ("East US", "West US")  # the file


@pytest.mark.parametrize("source", [42, 1.5, True, b"default", ["default"], {"regions": []}])
def test_load_rejects_other_types(source: object) -> None:
    with pytest.raises(ValueError) as info:
        Scenario.load(source)  # type: ignore[arg-type]
    msg = str(info.value)
    assert msg.startswith(f"scenario = {source!r}: expected a Scenario, None, a registered name ({REGISTERED})")
    assert "path of a TOML file" in msg


@pytest.mark.parametrize(
    "source", ["nosuch", "Default", "no/such/file.toml", Path("no/such/file.toml"), Path("default")]
)
def test_load_rejects_unknown_names_and_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        Scenario.load(source)
    msg = str(info.value)
    assert msg.startswith(f"scenario = {source!r}: neither a registered name ({REGISTERED}) nor an existing file")


def test_load_rejects_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"scenario = {re.escape(repr(str(tmp_path)))}: neither a registered name"):
        Scenario.load(str(tmp_path))


def test_load_reports_what_is_wrong_with_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"is not valid TOML"):
        Scenario.load(write_toml(tmp_path, "[workload\nrate_per_h = 1.0\n"))
    with pytest.raises(ValueError, match=r"unknown key 'colour'"):
        Scenario.load(str(write_toml(tmp_path, 'colour = "red"\n')))


def test_the_command_lines_name_scenarios_through_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import paper
    from experiments.cli import main

    assert main(["scenario", "--config", "contended"]) == 0
    assert capsys.readouterr().out.startswith("scenario 'contended':")
    assert main(["scenario", "--config", "no-such-scenario"]) == 2
    assert "scenario = 'no-such-scenario': neither a registered name" in capsys.readouterr().err
    # an experiment config keeps a registered name as it is and resolves a relative path against its folder
    cfg = write_toml(tmp_path, 'scenario = "contended"\n', name="exp.toml")
    assert paper.load_config("frontier", cfg).scenario == "contended"
    cfg.write_text('scenario = "mine.toml"\n')
    assert paper.load_config("frontier", cfg).scenario == str((tmp_path / "mine.toml").resolve())
