"""Sampling episodes (envs/workload.py) and the Instance container (envs/instance.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs import Instance, Scenario, sample_instance
from envs.costs import home_latency_ms, static_mask
from envs.instance import EPISODE_FIELDS, TASK_FIELDS
from envs.workload import captive_gpu_s_per_task

KINDS = ("poisson", "diurnal", "bursty", "trace")
CONTENDED = Path(envs.__file__).parent / "data" / "tasks" / "contended.toml"
ALL_FIELDS = (*TASK_FIELDS, *EPISODE_FIELDS)


@pytest.fixture(scope="module")
def by_kind() -> dict[str, Scenario]:
    """The default scenario with each arrival process."""
    return {k: Scenario.from_overrides({"workload": {"arrival": k}}) for k in KINDS}


def assert_same_instance(a: Instance, b: Instance) -> None:
    for name in ALL_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for name in (
        "replica_window_h",
        "start_hour",
        "cost",
        "region_names",
        "node_names",
        "class_names",
        "model_names",
        "scenario_name",
        "seed",
        "horizon_h",
    ):
        assert getattr(a, name) == getattr(b, name), name


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_tasks", [None, 40])
def test_same_seed_same_instance(by_kind: dict[str, Scenario], kind: str, num_tasks: int | None) -> None:
    s = by_kind[kind]
    a = sample_instance(s, 123, num_tasks=num_tasks, horizon_h=6.0)
    b = sample_instance(s, 123, num_tasks=num_tasks, horizon_h=6.0)
    assert_same_instance(a, b)
    assert a.seed == 123
    c = sample_instance(s, 124, num_tasks=num_tasks, horizon_h=6.0)
    assert a.num_tasks != c.num_tasks or not np.array_equal(a.arrival_h, c.arrival_h)


def test_generator_argument_is_used(default_scenario: Scenario) -> None:
    a = sample_instance(default_scenario, num_tasks=20, rng=np.random.default_rng(7))
    b = sample_instance(default_scenario, 999, num_tasks=20, rng=np.random.default_rng(7))  # seed ignored
    np.testing.assert_array_equal(a.arrival_h, b.arrival_h)
    np.testing.assert_array_equal(a.budget_ms, b.budget_ms)
    # one generator, two draws: two different episodes
    rng = np.random.default_rng(7)
    c, d = (sample_instance(default_scenario, num_tasks=20, rng=rng) for _ in range(2))
    np.testing.assert_array_equal(a.arrival_h, c.arrival_h)
    assert not np.array_equal(c.arrival_h, d.arrival_h)


# ------------------------------------------------------------------------ counts and times
@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    num_tasks=st.integers(0, 150),
    seed=st.integers(0, 2**32 - 1),
    horizon=st.sampled_from([1.0, 2.5, 24.0, 72.0]),
)
def test_num_tasks_is_exact_and_arrivals_are_ordered(
    by_kind: dict[str, Scenario], kind: str, num_tasks: int, seed: int, horizon: float
) -> None:
    inst = sample_instance(by_kind[kind], seed, num_tasks=num_tasks, horizon_h=horizon)
    assert inst.num_tasks == num_tasks
    S = math.ceil(horizon)
    assert inst.num_slots == S and inst.price_usd_per_kwh.shape[0] == S
    t = inst.arrival_h
    assert np.all(np.diff(t) >= 0)
    assert np.all((t >= 0) & (t < horizon))
    np.testing.assert_array_equal(inst.slot_idx, np.floor(t).astype(np.int64))
    assert np.all(inst.slot_idx < S)
    np.testing.assert_array_equal(inst.window_idx, inst.slot_idx // inst.replica_window_h)


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1), horizon=st.sampled_from([0.5, 3.0, 24.0]))
def test_free_counts_are_ordered_and_inside_the_horizon(
    by_kind: dict[str, Scenario], kind: str, seed: int, horizon: float
) -> None:
    inst = sample_instance(by_kind[kind], seed, horizon_h=horizon)
    t = inst.arrival_h
    assert np.all(np.diff(t) >= 0) and np.all((t >= 0) & (t < horizon))
    np.testing.assert_array_equal(inst.slot_idx, np.floor(t).astype(np.int64))


def test_poisson_rate(by_kind: dict[str, Scenario]) -> None:
    # 100 tasks/h over 24 h: the count is Poisson(2400); the mean of 30 episodes has sd sqrt(2400/30) ~ 9
    counts = [sample_instance(by_kind["poisson"], seed).num_tasks for seed in range(30)]
    assert abs(np.mean(counts) - 2400) < 5 * math.sqrt(2400 / 30)
    # the spread is Poisson's too (sd 49): not a fixed count, not wildly dispersed
    assert 25 < np.std(counts) < 80


@pytest.mark.parametrize("kind", ["diurnal", "bursty", "trace"])
def test_long_run_rate_of_the_other_processes(by_kind: dict[str, Scenario], kind: str) -> None:
    # each process has long-run mean rate_per_h; bursty and trace are overdispersed (sd ~ 550 per
    # episode here), so the mean of 40 episodes is checked loosely (about 4 standard errors)
    counts = [sample_instance(by_kind[kind], seed).num_tasks for seed in range(40)]
    assert abs(np.mean(counts) - 2400) < 0.15 * 2400


def test_bursty_rate_is_normalised_for_any_factors() -> None:
    # high 6x for 1 h, low 1x for 1 h: unnormalised the mean rate would be 3.5x rate_per_h
    s = Scenario.from_overrides(
        {
            "workload": {
                "arrival": "bursty",
                "bursty_high_factor": 6.0,
                "bursty_low_factor": 1.0,
                "bursty_mean_high_h": 1.0,
                "bursty_mean_low_h": 1.0,
            }
        }
    )
    counts = [sample_instance(s, seed).num_tasks for seed in range(40)]
    assert abs(np.mean(counts) - 2400) < 0.15 * 2400


def test_rate_scales_the_count() -> None:
    s = Scenario.from_overrides({"workload": {"arrival": "poisson", "rate_per_h": 10.0, "horizon_h": 48.0}})
    counts = [sample_instance(s, seed).num_tasks for seed in range(30)]
    assert abs(np.mean(counts) - 480) < 5 * math.sqrt(480 / 30)


def test_diurnal_arrivals_peak_at_local_afternoon() -> None:
    s = Scenario.from_overrides(
        {"workload": {"arrival": "diurnal", "diurnal_amplitude": 1.0, "diurnal_peak_local_h": 14.0}}
    )
    inst = sample_instance(s, 0, num_tasks=6000, start_hour=24 * 100)
    for node in ("us-east", "frankfurt", "pune", "tokyo", "us-west"):
        n = s.node_names.index(node)
        mine = inst.node_idx == n
        assert mine.sum() > 300, node
        local = (inst.start_hour + inst.arrival_h[mine] + s.node_utc_offset_h[n]) % 24.0
        angle = 2 * np.pi * local / 24.0
        peak = (np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) * 24.0 / (2 * np.pi)) % 24.0
        # circular mean of the local hour near the 14:00 peak
        assert abs(peak - 14.0) < 1.5, (node, peak)
        # intensity 1 + cos: about 82% of arrivals within 6 h of the peak (50% if flat)
        near = np.abs(((local - 14.0 + 12.0) % 24.0) - 12.0) <= 6.0
        assert near.mean() > 0.72, (node, near.mean())


def test_diurnal_nodes_peak_at_different_utc_hours() -> None:
    s = Scenario.from_overrides({"workload": {"arrival": "diurnal", "diurnal_amplitude": 1.0}})
    inst = sample_instance(s, 1, num_tasks=4000, start_hour=0)

    def utc_peak(node: str) -> float:
        t = inst.arrival_h[inst.node_idx == s.node_names.index(node)] % 24.0
        angle = 2 * np.pi * t / 24.0
        return float(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) * 24.0 / (2 * np.pi)) % 24.0

    # peak at 14:00 local: 19:00 UTC in New York (UTC-5), 05:00 UTC in Tokyo (UTC+9)
    assert abs(utc_peak("us-east") - 19.0) < 1.5
    assert abs(utc_peak("tokyo") - 5.0) < 1.5


def test_zero_amplitude_diurnal_is_flat() -> None:
    s = Scenario.from_overrides({"workload": {"arrival": "diurnal", "diurnal_amplitude": 0.0}})
    inst = sample_instance(s, 2, num_tasks=4800, start_hour=0)
    per_hour = np.bincount(inst.slot_idx, minlength=24)
    assert per_hour.min() > 120 and per_hour.max() < 280  # 200 per hour on average, Poisson noise


def test_forecast_rate_is_the_expected_arrivals_per_home_region() -> None:
    # 2,000 tasks/h: each (slot, home region) cell expects tens to hundreds of tasks, Poisson noise sqrt of that
    s = Scenario.from_overrides({"workload": {"arrival": "diurnal", "rate_per_h": 2000.0}})
    inst = sample_instance(s, 3, start_hour=24 * 50)
    counts = np.zeros((inst.num_slots, inst.num_regions))
    np.add.at(counts, (inst.slot_idx, inst.home_idx), 1.0)
    f = inst.arrival_rate_per_h
    assert (np.abs(counts - f) < 5 * np.sqrt(f) + 2).all()
    # the diurnal shape is in it: amplitude 0.6 gives each home region a day/night ratio near 1.6 / 0.4
    busy = f.max(axis=0) > 0
    assert (f.max(axis=0)[busy] / f.min(axis=0)[busy] > 2.5).all()
    # regions that are no node's home expect none
    homes = np.unique(s.node_home_idx)
    assert (np.delete(f, homes, axis=1) == 0).all()


def test_captive_forecast_is_the_home_only_demand_of_a_fresh_sample() -> None:
    # a day at 2,000 tasks/h, drawn apart from the fixed calibration sample behind the forecast
    s = Scenario.from_toml(CONTENDED).with_overrides({"workload": {"rate_per_h": 2000.0}})
    inst = sample_instance(s, 5, horizon_h=24.0)
    mask = static_mask(inst)[:, : inst.num_regions]
    home_only = mask[np.arange(inst.num_tasks), inst.home_idx] & (mask.sum(axis=1) == 1)
    realised = np.bincount(inst.home_idx, weights=inst.gpu_s * home_only, minlength=inst.num_regions)
    forecast = inst.captive_gpu_s_per_h.sum(axis=0)  # 24 whole slots: GPU-s over the day
    homes = np.unique(s.node_home_idx)
    # both estimates carry a few % of sampling noise per region (heavy-tailed token counts)
    np.testing.assert_allclose(forecast[homes], realised[homes], rtol=0.25)
    assert (np.delete(forecast, homes) == 0).all()
    # the captive share differs by region: the 1-GPU homes of tight traffic (Brazil South) far above others
    share = forecast / np.maximum(np.bincount(inst.home_idx, weights=inst.gpu_s, minlength=inst.num_regions), 1)
    assert share[s.region_names.index("Brazil South")] > 2 * share[s.region_names.index("East US")]
    # deterministic per scenario: the same scenario loaded afresh (a new object) gives the same figures
    again = Scenario.from_toml(CONTENDED).with_overrides({"workload": {"rate_per_h": 2000.0}})
    assert again is not s
    np.testing.assert_array_equal(captive_gpu_s_per_task(again), captive_gpu_s_per_task(s))


def test_forecasts_do_not_read_the_episode_s_own_arrivals(by_kind: dict[str, Scenario]) -> None:
    # an operator's forecast: the same for every draw of the same day, whatever arrived
    s = by_kind["bursty"]
    a, b = (sample_instance(s, seed, horizon_h=6.0, start_hour=s.first_hour) for seed in (1, 2))
    assert a.num_tasks != b.num_tasks or not np.array_equal(a.arrival_h, b.arrival_h)
    np.testing.assert_array_equal(a.arrival_rate_per_h, b.arrival_rate_per_h)
    np.testing.assert_array_equal(a.captive_gpu_s_per_h, b.captive_gpu_s_per_h)
    assert (a.captive_gpu_s_per_h > 0).any()


def test_no_captive_demand_when_every_task_may_go_anywhere(default_scenario: Scenario) -> None:
    anywhere = {"residency": {"global": 1.0, "regional": 0.0, "domestic": 0.0}}
    s = default_scenario.with_overrides(
        {"workload": {"slack_add_ms": 1e5}, "workload_classes": {c.name: anywhere for c in default_scenario.classes}}
    )
    inst = sample_instance(s, 0, num_tasks=200)
    assert (inst.captive_gpu_s_per_h == 0).all()
    assert (sample_instance(default_scenario, 0, num_tasks=200).captive_gpu_s_per_h > 0).any()


@pytest.mark.parametrize("kind", KINDS)
def test_forecast_rate_of_each_process(by_kind: dict[str, Scenario], kind: str) -> None:
    s = by_kind[kind]
    share = np.zeros(s.num_regions)
    np.add.at(share, s.node_home_idx, s.node_share)
    # with a fixed count, the forecast expects exactly that many tasks (a last half hour counts half)
    inst = sample_instance(s, 0, num_tasks=500, horizon_h=10.5)
    length = np.r_[np.ones(10), 0.5]
    assert float(length @ inst.arrival_rate_per_h.sum(axis=1)) == pytest.approx(500)
    # with a free count: the rate per node share, in the diurnal case shaped by the time of day
    inst = sample_instance(s, 0, horizon_h=24.0)
    total = inst.arrival_rate_per_h.sum(axis=1)
    if kind == "diurnal":
        assert float(total.mean()) == pytest.approx(s.arrival.rate_per_h, rel=1e-9)  # a whole day of cosine
    else:
        np.testing.assert_allclose(inst.arrival_rate_per_h, np.tile(s.arrival.rate_per_h * share, (24, 1)))


def test_bursty_is_overdispersed(by_kind: dict[str, Scenario]) -> None:
    # a Markov-modulated process clusters arrivals: hourly counts vary far more than Poisson's
    inst = sample_instance(by_kind["bursty"], 3, horizon_h=240.0)
    per_hour = np.bincount(inst.slot_idx, minlength=240)
    assert per_hour.var() > 5 * per_hour.mean()
    flat = np.bincount(sample_instance(by_kind["poisson"], 3, horizon_h=240.0).slot_idx, minlength=240)
    assert flat.var() < 2 * flat.mean()


# ------------------------------------------------------------------------------------ trace
def test_trace_replay_takes_tokens_and_timing_from_the_trace(by_kind: dict[str, Scenario]) -> None:
    s = by_kind["trace"]
    assert s.arrival.trace == "conv"
    tr = s.traces["conv"]
    n, K, H = tr.offset_s.size, 200, 5.0
    inst = sample_instance(s, 4, num_tasks=K, horizon_h=H)
    # tasks of classes that draw tokens from the replayed trace take consecutive requests of it
    from_trace = np.array([s.classes[c].tokens == "conv" for c in inst.class_idx])
    assert from_trace.sum() > 50
    ks = np.flatnonzero(from_trace)
    starts = np.arange(n)
    ok = np.ones(n, dtype=bool)
    for k in ks:
        rows = (starts + k) % n
        ok &= (tr.context_tokens[rows] == inst.context_tokens[k]) & (
            tr.generated_tokens[rows] == inst.generated_tokens[k]
        )
    assert ok.any(), "the conv-token tasks are not consecutive trace requests"
    j0 = int(np.flatnonzero(ok)[0])
    # and their arrival times are the trace's offsets, stretched so that K + 1 requests span H hours
    period = tr.span_s + tr.span_s / (n - 1)  # the trace tiles with one mean gap between copies
    j = j0 + np.arange(K + 1)
    t = tr.offset_s[j % n] + (j // n) * period
    expected = (t[:K] - t[0]) / (t[-1] - t[0]) * H
    np.testing.assert_allclose(inst.arrival_h, expected, rtol=1e-9, atol=1e-9)


def test_trace_tokens_for_free_counts(by_kind: dict[str, Scenario]) -> None:
    s = by_kind["trace"]
    inst = sample_instance(s, 5, horizon_h=2.0)
    for name in ("conv", "code"):
        tr = s.traces[name]
        pairs = set(zip(tr.context_tokens.tolist(), tr.generated_tokens.tolist(), strict=True))
        mine = [k for k in range(inst.num_tasks) if s.classes[inst.class_idx[k]].tokens == name]
        assert mine
        assert all((int(inst.context_tokens[k]), int(inst.generated_tokens[k])) in pairs for k in mine)


# ------------------------------------------------------------------------ task attributes
def test_per_request_physics(default_scenario: Scenario) -> None:
    s = default_scenario
    inst = sample_instance(s, 6, num_tasks=300)
    req = s.arrival.requests_per_task
    for k in range(inst.num_tasks):
        c = s.classes[inst.class_idx[k]]
        m = s.models[inst.model_idx[k]]
        assert inst.model_idx[k] == c.model_idx
        ctx, gen = int(inst.context_tokens[k]), int(inst.generated_tokens[k])
        cached = c.cached_share * ctx
        fresh = ctx - cached
        gpu = req * (fresh / m.prefill_tokens_per_gpu_s + gen / m.decode_tokens_per_gpu_s)
        cache_gpu = req * cached / m.prefill_tokens_per_gpu_s
        assert inst.requests[k] == req
        assert inst.gpu_s[k] == pytest.approx(gpu, rel=1e-12)
        assert inst.cache_gpu_s[k] == pytest.approx(cache_gpu, rel=1e-12, abs=1e-15)
        # GPU-s * W / 3.6e6 = kWh
        assert inst.energy_kwh[k] == pytest.approx(gpu * m.gpu_power_w / 3.6e6, rel=1e-12)
        assert inst.cache_kwh[k] == pytest.approx(cache_gpu * m.gpu_power_w / 3.6e6, rel=1e-12, abs=1e-15)
        assert inst.inference_ms[k] == pytest.approx(m.ttft_base_ms + fresh * m.prefill_ms_per_token, rel=1e-12)
        assert inst.cache_ms[k] == pytest.approx(cached * m.prefill_ms_per_token, rel=1e-12, abs=1e-15)
        assert inst.state_gb[k] == pytest.approx(req * (ctx * s.bytes_per_token + c.state_kb * 1e3) / 1e9, rel=1e-12)
        assert inst.response_gb[k] == pytest.approx(req * gen * s.bytes_per_token / 1e9, rel=1e-12, abs=1e-18)
        assert inst.delay_usd_per_ms[k] == pytest.approx(c.delay_usd_per_s * req / 1000, rel=1e-12)
        assert inst.overflow_usd[k] == pytest.approx(c.overflow_usd * req, rel=1e-12)
        assert c.rounds[0] <= inst.rounds[k] <= c.rounds[1]
        assert c.residency[inst.residency_idx[k]] > 0
        assert inst.home_idx[k] == s.node_home_idx[inst.node_idx[k]]


def test_budget_is_home_latency_plus_class_slack() -> None:
    s = Scenario.from_overrides({"workload": {"slack_scale": 2.0, "slack_add_ms": 7.0}})
    inst = sample_instance(s, 8, num_tasks=400)
    slack = inst.budget_ms - home_latency_ms(inst)
    lo = np.array([s.classes[c].slack_ms[0] for c in inst.class_idx]) * 2.0 + 7.0
    hi = np.array([s.classes[c].slack_ms[1] for c in inst.class_idx]) * 2.0 + 7.0
    assert np.all(slack >= lo - 1e-9) and np.all(slack <= hi + 1e-9)
    # uniform inside the range: the spread covers most of it
    frac = (slack - lo) / (hi - lo)
    assert frac.min() < 0.1 and frac.max() > 0.9


def test_class_node_and_residency_frequencies(poisson_scenario: Scenario) -> None:
    s = poisson_scenario
    inst = sample_instance(s, 9, num_tasks=6000)
    class_share = np.array([c.share for c in s.classes])
    np.testing.assert_allclose(
        np.bincount(inst.class_idx, minlength=len(s.classes)) / 6000,
        class_share / class_share.sum(),
        atol=0.025,
    )
    np.testing.assert_allclose(np.bincount(inst.node_idx, minlength=s.num_nodes) / 6000, s.node_share, atol=0.02)
    chat = inst.class_idx == [c.name for c in s.classes].index("chat")
    np.testing.assert_allclose(
        np.bincount(inst.residency_idx[chat], minlength=3) / chat.sum(), [0.7, 0.2, 0.1], atol=0.04
    )


def test_replicas_are_permanent_at_homes_for_warm_models() -> None:
    s = Scenario.from_overrides({"models": {"llm-70b": {"warm_at_home": False}}})
    inst = sample_instance(s, 10, num_tasks=5)
    homes = set(s.node_home_idx.tolist())
    small, large = inst.model_names.index("llm-8b"), inst.model_names.index("llm-70b")
    np.testing.assert_array_equal(inst.permanent_replica[:, small], [r in homes for r in range(s.num_regions)])
    assert not inst.permanent_replica[:, large].any()
    # Australia Southeast is no node's home: no permanent replica there
    assert not inst.permanent_replica[s.region_names.index("Australia Southeast")].any()


# ------------------------------------------------------------------------------- start hours
def test_random_start_is_a_midnight_inside_the_slice(default_scenario: Scenario) -> None:
    starts = {sample_instance(default_scenario, seed, num_tasks=1).start_hour for seed in range(30)}
    assert len(starts) > 20
    assert all(h % 24 == 0 and 0 <= h <= 8760 - 24 for h in starts)


def test_start_hour_selects_signal_rows(default_scenario: Scenario) -> None:
    inst = sample_instance(default_scenario, 0, num_tasks=3, start_hour=1000, horizon_h=30.0)
    assert inst.start_hour == 1000
    for name in ("price_usd_per_kwh", "carbon_g_per_kwh", "pue", "capacity_gpu_s"):
        np.testing.assert_array_equal(getattr(inst, name), getattr(default_scenario, name)[1000:1030])


def test_random_start_respects_an_unaligned_slice() -> None:
    s = Scenario.from_overrides({"signals": {"first_hour": 30, "num_hours": 100}})
    starts = {sample_instance(s, seed, num_tasks=1).start_hour for seed in range(40)}
    # midnights h with 30 <= h and h + 24 <= 130: 48, 72, 96
    assert starts == {48, 72, 96}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon_h": 0.0}, r"horizon_h = 0\.0: expected a positive number of hours"),
        ({"horizon_h": float("nan")}, r"horizon_h = nan"),
        ({"horizon_h": 9000.0}, r"horizon_h = 9000\.0: expected at most the 8760 hours"),
        ({"num_tasks": -1}, r"num_tasks = -1: expected an integer >= 0"),
        ({"num_tasks": 2.5}, r"num_tasks = 2\.5"),
        ({"start_hour": 8750}, r"start_hour = 8750: expected an hour of year in \[0, 8736\]"),
        ({"start_hour": -1}, r"start_hour = -1"),
    ],
)
def test_bad_sampling_arguments(default_scenario: Scenario, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sample_instance(default_scenario, 0, **kwargs)


# ------------------------------------------------------------------------- Instance files
def test_save_load_round_trip(tmp_path: Path, by_kind: dict[str, Scenario], toy_instance: Instance) -> None:
    for name, inst in [
        ("toy", toy_instance),
        ("trace", sample_instance(by_kind["trace"], 11, num_tasks=60)),
        ("diurnal", sample_instance(by_kind["diurnal"], None, horizon_h=3.5)),
    ]:
        path = tmp_path / f"{name}.npz"
        inst.save(path)
        back = Instance.load(path)
        assert_same_instance(inst, back)
        assert back.num_tasks == inst.num_tasks and back.num_slots == inst.num_slots
        assert not back.budget_ms.flags.writeable
        assert back.digest() == inst.digest()


def test_digest_tells_episodes_apart(toy_instance: Instance) -> None:
    d = toy_instance.digest()
    assert toy_instance.replace(seed=7).digest() == d  # a label, not content
    assert toy_instance.replace(budget_ms=toy_instance.budget_ms + 1.0).digest() != d
    assert toy_instance.replace(start_hour=24).digest() != d
    assert toy_instance.subset(slice(0, 4)).digest() != d
    assert toy_instance.replace(cost=dataclasses.replace(toy_instance.cost, alpha=0.5)).digest() != d
    assert toy_instance.replace(horizon_h=toy_instance.num_slots - 0.5).digest() != d


# The .npz array keys, in the file's order (also the digest's): the format FORMAT_VERSION names.
FILE_ARRAYS = [
    "arrival_h",
    "slot_idx",
    "node_idx",
    "home_idx",
    "class_idx",
    "model_idx",
    "residency_idx",
    "budget_ms",
    "rounds",
    "requests",
    "context_tokens",
    "generated_tokens",
    "gpu_s",
    "energy_kwh",
    "inference_ms",
    "cache_gpu_s",
    "cache_kwh",
    "cache_ms",
    "state_gb",
    "response_gb",
    "delay_usd_per_ms",
    "overflow_usd",
    "price_usd_per_kwh",
    "carbon_g_per_kwh",
    "pue",
    "capacity_gpu_s",
    "node_rtt_ms",
    "node_client_ms",
    "queue_ms",
    "transfer_usd_per_gb",
    "residency_ok",
    "replica_usd",
    "permanent_replica",
    "arrival_rate_per_h",
    "captive_gpu_s_per_h",
]
# The toy instance's digest as computed before the fields were declared once: same content, same digest.
TOY_DIGEST = "00b62101ad0de1835b9d755de34cd3ff98dcaa62302dbe19e51e446c143652de"


def test_instance_arrays_are_declared_once_as_fields() -> None:
    arrays = [f for f in dataclasses.fields(Instance) if str(f.type).startswith("NDArray[")]
    assert [f.name for f in arrays] == [*TASK_FIELDS, *EPISODE_FIELDS]  # every array field, in declaration order
    for f in arrays:  # the dtype in the metadata is the annotation's
        assert getattr(np, str(f.type).removeprefix("NDArray[np.").removesuffix("]")) is f.metadata["dtype"], f.name
    assert all(TASK_FIELDS[f.name] is f.metadata["dtype"] for f in arrays if f.metadata["axes"] == "K")
    for name, (_, axes) in EPISODE_FIELDS.items():
        assert set(axes.split(",")) <= {"S", "R", "N", "M", "3"}, name
    assert EPISODE_FIELDS["residency_ok"] == (np.bool_, "N,3,R") and TASK_FIELDS["rounds"] is np.int64


def test_the_file_format_and_digest_are_unchanged(tmp_path: Path, toy_instance: Instance) -> None:
    assert [*TASK_FIELDS, *EPISODE_FIELDS] == FILE_ARRAYS
    toy_instance.save(tmp_path / "toy.npz")
    with np.load(tmp_path / "toy.npz") as z:
        assert z.files == ["__meta__", *FILE_ARRAYS]
    assert toy_instance.digest() == TOY_DIGEST
    assert Instance.load(tmp_path / "toy.npz").digest() == TOY_DIGEST


def test_save_load_keeps_cost_params(tmp_path: Path, toy_instance: Instance) -> None:
    from envs import CostParams

    cost = CostParams(
        alpha=0.5,
        beta=2.0,
        gamma=0.1,
        eta=3.0,
        carbon_price_usd_per_t=42.0,
        state_mult=1.5,
        cache_mult=0.0,
        egress_mult=2.0,
        replica_mult=0.25,
    )
    inst = toy_instance.replace(cost=cost, seed=17, start_hour=4800, scenario_name="named")
    inst.save(tmp_path / "x.npz")
    back = Instance.load(tmp_path / "x.npz")
    assert back.cost == cost and back.seed == 17 and back.start_hour == 4800 and back.scenario_name == "named"


def test_loading_files_that_are_not_instances(tmp_path: Path, toy_instance: Instance) -> None:
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match=r"other\.npz' is not a geoinfer instance file \(no metadata\)"):
        Instance.load(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.arange(3))
    with pytest.raises(ValueError, match=r"array\.npy' is not a geoinfer instance file"):
        Instance.load(tmp_path / "array.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"text\.npz' is not a geoinfer instance file"):
        Instance.load(tmp_path / "text.npz")
    # a newer format, and a file missing arrays
    toy_instance.save(tmp_path / "toy.npz")
    with np.load(tmp_path / "toy.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = str(arrays["__meta__"]).replace('"format_version": 4', '"format_version": 99')
    np.savez(tmp_path / "future.npz", **{**arrays, "__meta__": np.array(meta)})
    with pytest.raises(ValueError, match=r"format_version = 99: expected one of \(3, 4\)"):
        Instance.load(tmp_path / "future.npz")
    # a version-3 file (before horizon_h) still reads, as whole slots
    meta3 = json.loads(str(arrays["__meta__"]))
    meta3["format_version"] = 3
    del meta3["horizon_h"]
    np.savez(tmp_path / "v3.npz", **{**arrays, "__meta__": np.array(json.dumps(meta3))})
    old = Instance.load(tmp_path / "v3.npz")
    assert old.horizon_h is None and old.slot_end_h[-1] == old.num_slots
    np.testing.assert_array_equal(old.budget_ms, toy_instance.budget_ms)
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "budget_ms"})
    with pytest.raises(ValueError, match=r"lacks the arrays \['budget_ms'\]"):
        Instance.load(tmp_path / "partial.npz")


# ---------------------------------------------------------------------- Instance validation
@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"budget_ms": np.array([1.0, 2.0])},
            r"Instance\.budget_ms: expected a float64 array of shape \(5,\)",
        ),
        ({"rounds": np.ones(5)}, r"Instance\.rounds: expected a int64 array of shape \(5,\), got float64"),
        (
            {"gpu_s": np.array([1.0, -1.0, 1.0, 1.0, 1.0])},
            r"Instance\.gpu_s\[1\] = -1\.0: expected a finite number >= 0",
        ),
        (
            {"energy_kwh": np.array([1.0, np.nan, 1.0, 1.0, 1.0])},
            r"Instance\.energy_kwh\[1\] = nan: expected a finite number >= 0",
        ),
        (
            {"price_usd_per_kwh": np.ones((3, 2))},
            r"Instance\.price_usd_per_kwh: expected a float64 array of shape "
            r"\(3, 3\)",
        ),
        ({"residency_ok": np.ones((2, 2, 3), dtype=bool)}, r"Instance\.residency_ok: .*shape \(2, 3, 3\)"),
        ({"slot_idx": np.array([0, 0, 1, 2, 3])}, r"Instance\.slot_idx\[4\] = 3: expected an integer in \[0, 3\)"),
        ({"node_idx": np.array([0, 0, 1, 2, 0])}, r"Instance\.node_idx\[3\] = 2: expected an integer in \[0, 2\)"),
        (
            {"residency_idx": np.array([0, 0, 1, 3, 1])},
            r"Instance\.residency_idx\[3\] = 3: expected an integer in \[0, 3\)",
        ),
        ({"rounds": np.array([1, 0, 1, 1, 1])}, r"Instance\.rounds\[1\] = 0: expected an integer >= 1"),
        (
            {"slot_idx": np.array([0, 0, 1, 1, 2])},
            r"Instance\.slot_idx\[3\] = 1: expected 2, the hour of arrival_h",
        ),
        (
            {"arrival_h": np.array([0.25, 0.5, 1.5, 2.5, 2.25])},
            r"Instance\.arrival_h\[4\] = .*2\.25 < arrival_h\[3\]: expected tasks in arrival order",
        ),
        ({"replica_window_h": 0}, r"Instance\.replica_window_h = 0: expected an integer >= 1"),
        ({"horizon_h": 2.0}, r"Instance\.horizon_h = 2\.0: expected a number of hours in \(2, 3\] for 3 slots"),
        ({"horizon_h": 3.5}, r"Instance\.horizon_h = 3\.5: expected"),
        ({"horizon_h": float("nan")}, r"Instance\.horizon_h = nan: expected"),
        ({"horizon_h": "3"}, r"Instance\.horizon_h = '3': expected a number of hours"),
    ],
)
def test_instance_rejects_bad_arrays(toy_instance: Instance, change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        toy_instance.replace(**change)


def test_subset_keeps_episode_arrays(toy_instance: Instance) -> None:
    sub = toy_instance.subset(np.array([3, 1]))  # kept in arrival order whatever the index order
    assert sub.num_tasks == 2
    np.testing.assert_array_equal(sub.budget_ms, [200.0, 100.0])
    np.testing.assert_array_equal(sub.price_usd_per_kwh, toy_instance.price_usd_per_kwh)
    assert sub.num_windows == 2 and toy_instance.num_actions == 4 and toy_instance.overflow_action == 3


def test_review_edge_cases_of_sampling(default_scenario: Scenario) -> None:
    # a last partial hour holds that share of its slot's capacity
    half = sample_instance(default_scenario, seed=0, num_tasks=20, horizon_h=2.5, start_hour=24)
    np.testing.assert_allclose(half.capacity_gpu_s[-1], 0.5 * default_scenario.capacity_gpu_s[24 + 2])
    assert half.horizon_h == 2.5 and list(half.slot_end_h) == [1.0, 2.0, 2.5]
    np.testing.assert_allclose(half.capacity_gpu_s[0], default_scenario.capacity_gpu_s[24])
    # a caller's generator: the seed argument is ignored, so it is not recorded
    assert sample_instance(default_scenario, seed=5, rng=np.random.default_rng(1), num_tasks=3).seed is None
    assert sample_instance(default_scenario, seed=5, num_tasks=3).seed == 5
    for kwargs, match in (
        ({"start_hour": 10.7}, "start_hour = 10.7"),
        ({"num_tasks": True}, "num_tasks = True"),
        ({"horizon_h": "abc"}, "horizon_h = 'abc'"),
    ):
        with pytest.raises(ValueError, match=match):
            sample_instance(default_scenario, seed=0, **kwargs)
