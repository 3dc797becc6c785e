"""Arrival processes and per-request physics: a :class:`~envs.Scenario` sampled into an :class:`~envs.Instance`.

Arrival processes (``[workload].arrival``), all with long-run mean ``rate_per_h`` tasks per hour:

* ``poisson``: homogeneous Poisson; nodes drawn by traffic share.
* ``diurnal``: each node n is a Poisson process of rate ``rate * share_n * (1 + A cos(2 pi (h_n(t) -
  peak) / 24))`` where ``h_n(t)`` is the node's local hour, so traffic follows the sun around the globe.
* ``bursty``: a two-state Markov-modulated Poisson process (high / low factors, exponential sojourns),
  normalised so its stationary mean is ``rate``.
* ``trace``: replay of an Azure LLM inference trace: its inter-arrival pattern, stretched in time to
  ``rate``, from a random phase; tasks of classes that draw tokens from that trace also take the
  replayed request's token counts.

With ``num_tasks`` given, exactly that many tasks are drawn from the same intensity (the Poisson
process conditioned on its count; for ``trace``, that many consecutive requests stretched over the
horizon). Sampling is vectorised: no Python loop over tasks.

Per request of model m with context c, generated g and cached share q (of the class):
GPU-s = (1 - q) c / prefill_tps + g / decode_tps at home, plus q c / prefill_tps to recompute the
cache elsewhere; IT energy = GPU-s * gpu_power_w / 3.6e6 kWh; first-token time =
ttft_base + (1 - q) c * prefill_ms_per_token (+ q c * prefill_ms_per_token elsewhere). A task's latency
budget is its latency at home plus a slack drawn from its class (times ``slack_scale``, plus
``slack_add_ms``), so local execution always meets the budget.

Each instance also carries two demand forecasts for the observation, never read from its own draws:
``arrival_rate_per_h`` (the arrival intensity by home region and slot) and ``captive_gpu_s_per_h`` (that
intensity times each node's expected GPU-s per task of the tasks that can run only at home, estimated
once per scenario from a fixed calibration sample, :func:`captive_gpu_s_per_task`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs.costs import home_latency_ms, residency_allowed, static_mask
from envs.instance import Instance
from envs.params import _readonly
from envs.scenario import Scenario


def _categorical(rng: np.random.Generator, probs: NDArray[np.float64], size: int) -> NDArray[np.int64]:
    cum = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(probs) - 1).astype(np.int64)


def _diurnal_hours(
    s: Scenario, start_hour: int, lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``[T, N]`` integral of each node's diurnal shape over ``[lo, hi)`` (hours since the start), in hours:
    closed form, the shape being a shifted cosine. Times the node's rate, the expected arrivals."""
    a = s.arrival
    phase = 2.0 * np.pi * (start_hour + s.node_utc_offset_h - a.diurnal_peak_local_h) / 24.0  # [N]
    w = 2.0 * np.pi / 24.0
    return (hi - lo)[:, None] + a.diurnal_amplitude / w * (
        np.sin(phase + w * hi[:, None]) - np.sin(phase + w * lo[:, None])
    )


def _diurnal(s: Scenario, rng: np.random.Generator, H: float, start_hour: int, K: int | None):
    """Joint (time, node) draws by thinning: proposal node ~ share, t ~ U(0, H); accept with the shape."""
    a = s.arrival
    amp = a.diurnal_amplitude

    def shape(t: NDArray[np.float64], node: NDArray[np.int64]) -> NDArray[np.float64]:
        local = (start_hour + t + s.node_utc_offset_h[node]) % 24.0
        return 1.0 + amp * np.cos(2.0 * np.pi * (local - a.diurnal_peak_local_h) / 24.0)

    if K is None:
        integral = _diurnal_hours(s, start_hour, np.zeros(1), np.full(1, H))[0]  # [N]
        K = int(rng.poisson(a.rate_per_h * float(s.node_share @ integral)))
    times, nodes = np.empty(0), np.empty(0, dtype=np.int64)
    while times.size < K:
        m = int((K - times.size) * (1 + amp) * 1.1) + 16
        t = rng.uniform(0.0, H, m)
        n = _categorical(rng, s.node_share, m)
        keep = rng.random(m) * (1.0 + amp) < shape(t, n)
        times, nodes = np.concatenate([times, t[keep]]), np.concatenate([nodes, n[keep]])
    return times[:K], nodes[:K]


def _bursty(s: Scenario, rng: np.random.Generator, H: float, K: int | None):
    """Two-state MMPP: piecewise-constant intensity from the modulating chain, then arrivals in it."""
    a = s.arrival
    p_high = a.bursty_mean_high_h / (a.bursty_mean_high_h + a.bursty_mean_low_h)
    norm = p_high * a.bursty_high_factor + (1 - p_high) * a.bursty_low_factor
    state = bool(rng.random() < p_high)
    edges, factors, t = [0.0], [], 0.0
    while t < H:  # loop over sojourns (a handful per hour), not tasks
        t = min(H, t + rng.exponential(a.bursty_mean_high_h if state else a.bursty_mean_low_h))
        edges.append(t)
        factors.append((a.bursty_high_factor if state else a.bursty_low_factor) / norm)
        state = not state
    e, f = np.array(edges), np.array(factors)
    weight = a.rate_per_h * f * np.diff(e)
    counts = rng.poisson(weight) if K is None else rng.multinomial(K, weight / weight.sum())
    seg = np.repeat(np.arange(f.size), counts)
    times = e[seg] + rng.random(seg.size) * (e[seg + 1] - e[seg])
    return times, _categorical(rng, s.node_share, times.size)


def _trace(s: Scenario, rng: np.random.Generator, H: float, K: int | None):
    """Replay the trace's arrival pattern stretched to the target rate; returns times and trace rows."""
    tr = s.traces[s.arrival.trace]
    n = tr.offset_s.size
    gap_h = tr.span_s / 3600.0 / (n - 1)
    period_h = tr.span_s / 3600.0 + gap_h  # the trace tiles with one mean gap between copies
    stretch = (n / period_h) / s.arrival.rate_per_h
    offset_h = tr.offset_s / 3600.0
    if K is None:
        phase = rng.uniform(0.0, period_h)
        tiles = np.arange(math.floor(phase / period_h), math.ceil((phase + H / stretch) / period_h) + 1)
        t = (offset_h[None, :] + tiles[:, None] * period_h).ravel()
        rows = np.tile(np.arange(n), tiles.size)
        inside = (t >= phase) & (t < phase + H / stretch)
        return (t[inside] - phase) * stretch, rows[inside]
    j = rng.integers(n) + np.arange(K + 1)
    t = offset_h[j % n] + (j // n) * period_h
    span = t[-1] - t[0]
    times = (t[:K] - t[0]) / span * H if span > 0 else np.zeros(K)
    return np.minimum(times, np.nextafter(H, 0.0)), j[:K] % n


def forecast_rate_per_h(
    s: Scenario, H: float, start_hour: int, num_tasks: int | None = None, per_task: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """``[S, R]`` forecast arrival rate of the tasks whose home is each region, tasks/h, per hourly slot.

    The arrival process's intensity averaged over each slot (the last one possibly partial), summed over
    the service nodes of each home region: the diurnal cosine in closed form, the long-run mean for the
    other processes (a bursty process's state and a trace's phase cannot be known ahead). With
    ``num_tasks``, scaled so the episode expects exactly that many tasks, as its arrivals are drawn. With
    ``per_task`` (``[N]``, an expected quantity per task of each node), the rate of that quantity instead
    (its unit per hour).
    """
    a, S = s.arrival, math.ceil(H)
    lo = np.arange(S, dtype=np.float64)
    hi = np.minimum(lo + 1.0, H)
    node = np.broadcast_to(a.rate_per_h * s.node_share, (S, s.num_nodes)).copy()  # [S, N]
    if a.kind == "diurnal":
        node *= _diurnal_hours(s, start_hour, lo, hi) / (hi - lo)[:, None]  # the shape's mean over the slot
    if num_tasks is not None:
        expected = float((node * (hi - lo)[:, None]).sum())
        node *= num_tasks / expected if expected > 0 else 0.0
    home = np.zeros((s.num_nodes, s.num_regions))
    home[np.arange(s.num_nodes), s.node_home_idx] = 1.0 if per_task is None else per_task
    return node @ home


CALIBRATION_TASKS = 16384  # tasks sampled once per scenario to estimate captive_gpu_s_per_task
CALIBRATION_SEED = 0


@functools.lru_cache(maxsize=8)  # keyed by the scenario object (Scenario compares by identity)
def captive_gpu_s_per_task(s: Scenario) -> NDArray[np.float64]:
    """``[N]`` expected GPU-s (at home) per task of each service node from the tasks that can run only at
    their home region: every other region is over their latency budget or outside their residency.

    Estimated from one fixed sample of ``CALIBRATION_TASKS`` tasks of the scenario (seed
    ``CALIBRATION_SEED``) with the shared cost model's static mask, as an operator would estimate it from
    past traffic: deterministic per scenario, independent of the episode being forecast. A node without
    tasks in the sample gets 0.
    """
    inst = _sample(
        s, np.random.default_rng(CALIBRATION_SEED), CALIBRATION_TASKS, 1.0, s.first_hour, captive_per_task=None
    )
    mask = static_mask(inst)[:, : inst.num_regions]
    captive = mask[np.arange(inst.num_tasks), inst.home_idx] & (mask.sum(axis=1) == 1)
    total = np.bincount(inst.node_idx, weights=inst.gpu_s * captive, minlength=s.num_nodes)
    count = np.bincount(inst.node_idx, minlength=s.num_nodes)
    out = np.divide(total, count, out=np.zeros(s.num_nodes), where=count > 0)
    out.setflags(write=False)
    return out


def episode_hours(scenario: Scenario, horizon_h: float | None = None) -> float:
    """The episode length, h: ``horizon_h`` (default ``[workload].horizon_h``), checked to be a positive
    number of hours whose slots fit in the scenario's signal slice."""
    value = scenario.arrival.horizon_h if horizon_h is None else horizon_h
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"horizon_h = {horizon_h!r}: expected a positive number of hours")
    if scenario.num_hours < math.ceil(value):
        raise ValueError(f"horizon_h = {value}: expected at most the {scenario.num_hours} hours of the signal slice")
    return float(value)


def sample_instance(
    scenario: Scenario,
    seed: int | None = None,
    *,
    num_tasks: int | None = None,
    horizon_h: float | None = None,
    start_hour: int | None = None,
    rng: np.random.Generator | None = None,
) -> Instance:
    """Sample one episode of ``scenario``.

    Args:
        seed: seeds a fresh ``np.random.Generator`` (ignored when ``rng`` is given; the instance then
            records no seed).
        num_tasks: exact number of tasks; default: the arrival process's own random count (Poisson for
            ``poisson`` and ``diurnal``, overdispersed for ``bursty``; for ``trace``, the replayed
            requests that fall in the horizon), with long-run mean ``rate_per_h * horizon_h``.
        horizon_h: episode length in hours (default ``[workload].horizon_h``); a last partial hour gets
            the matching share of its slot's capacity.
        start_hour: hour of the year (UTC) of the first slot; default a random 00:00 UTC inside the
            signal slice (``random_start``; one of ``start_days`` when the scenario lists them; the
            slice's first hour when it holds no midnight early enough) or its first hour.
        rng: a generator to draw from, for callers that manage their own streams.
    """
    s = scenario
    if rng is not None:
        seed = None  # the episode is not reproducible from a seed the caller's generator ignored
    rng = np.random.default_rng(seed) if rng is None else rng
    H = episode_hours(s, horizon_h)
    if num_tasks is not None and (
        isinstance(num_tasks, bool) or not isinstance(num_tasks, int | np.integer) or num_tasks < 0
    ):
        raise ValueError(f"num_tasks = {num_tasks!r}: expected an integer >= 0")
    if start_hour is not None and (isinstance(start_hour, bool) or not isinstance(start_hour, int | np.integer)):
        raise ValueError(f"start_hour = {start_hour!r}: expected an integer hour of the year")
    S = math.ceil(H)
    last = s.first_hour + s.num_hours - S  # latest admissible start hour
    if start_hour is not None:
        if not (s.first_hour <= start_hour <= last):
            raise ValueError(f"start_hour = {start_hour}: expected an hour of year in [{s.first_hour}, {last}]")
        offset = int(start_hour) - s.first_hour
    elif s.random_start:
        first_day = -(-s.first_hour // 24)  # the first midnight inside the slice
        days = np.arange(first_day, last // 24 + 1)
        if s.start_days:  # a benchmark split: only starts whose every day is in it and fits in the slice
            allowed = set(s.start_days)
            span = range(math.ceil(S / 24))
            fits = [d for d in s.start_days if d * 24 <= last and all(d + j in allowed for j in span)]
            days = np.array(fits, dtype=np.int64)
            if not days.size:
                raise ValueError(
                    f"signals.start_days = {list(s.start_days)}: no day leaves room for a {H} h episode "
                    f"before hour {last + S} of the signal slice"
                )
        offset = int(rng.choice(days)) * 24 - s.first_hour if days.size else 0
    else:
        offset = 0
    return _sample(
        s, rng, None if num_tasks is None else int(num_tasks), H, s.first_hour + offset, captive_gpu_s_per_task(s), seed
    )


def _sample(
    s: Scenario,
    rng: np.random.Generator,
    K: int | None,
    H: float,
    hour0: int,
    captive_per_task: NDArray[np.float64] | None,
    seed: int | None = None,
) -> Instance:
    """The draws of :func:`sample_instance`, arguments checked; ``captive_per_task`` ``None`` leaves the
    captive forecast at 0 (the calibration sample that estimates it). The draws are made in a fixed
    order (arrivals, class attributes, token counts), so a seed always gives the same episode."""
    times, nodes, trace_rows = _arrivals(s, rng, K, H, hour0)
    cls, residency, rounds, slack = _class_draws(s, rng, times.size)
    context, generated = _token_counts(s, rng, cls, trace_rows)
    inst = Instance(
        arrival_h=_readonly(times),
        slot_idx=_readonly(np.minimum(np.floor(times), math.ceil(H) - 1).astype(np.int64)),
        node_idx=_readonly(nodes.astype(np.int64)),
        home_idx=_readonly(s.node_home_idx[nodes]),
        class_idx=_readonly(cls),
        residency_idx=_readonly(residency),
        budget_ms=_readonly(np.zeros(times.size)),  # set below from the home latency
        rounds=_readonly(rounds),
        **_task_physics(s, cls, context, generated),
        **_episode_arrays(s, H, hour0, K, captive_per_task),
        scenario_name=s.name,
        seed=seed,
        horizon_h=float(H),
    )
    return inst.replace(budget_ms=_readonly(home_latency_ms(inst) + slack))


def _arrivals(
    s: Scenario, rng: np.random.Generator, K: int | None, H: float, hour0: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64] | None]:
    """Arrival times (h since the start, sorted), their service nodes, and for ``trace`` the replayed trace
    rows (else ``None``)."""
    a = s.arrival
    trace_rows = None
    if a.kind == "poisson":
        n_tasks = int(rng.poisson(a.rate_per_h * H)) if K is None else K
        times, nodes = rng.uniform(0.0, H, n_tasks), _categorical(rng, s.node_share, n_tasks)
    elif a.kind == "diurnal":
        times, nodes = _diurnal(s, rng, H, hour0, K)
    elif a.kind == "bursty":
        times, nodes = _bursty(s, rng, H, K)
    else:
        times, trace_rows = _trace(s, rng, H, K)
        nodes = _categorical(rng, s.node_share, times.size)
    order = np.argsort(times, kind="stable")
    return times[order], nodes[order], None if trace_rows is None else trace_rows[order]


def _class_draws(
    s: Scenario, rng: np.random.Generator, n: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Each task's workload class, and from the class its residency class, round trips and latency slack
    (ms, times ``slack_scale`` plus ``slack_add_ms``)."""
    a = s.arrival
    cls = _categorical(rng, np.array([c.share for c in s.classes]), n)
    res_cum = np.cumsum(np.array([c.residency for c in s.classes]), axis=1)
    res_cum /= res_cum[:, -1:]
    # min(): the last cumulative share is 1.0 up to rounding, never below a uniform draw's range
    residency = np.minimum((rng.random(n)[:, None] >= res_cum[cls]).sum(axis=1), 2).astype(np.int64)
    rlo, rhi = (np.array([c.rounds[j] for c in s.classes], dtype=np.int64) for j in (0, 1))
    rounds = rlo[cls] + np.floor(rng.random(n) * (rhi - rlo + 1)[cls]).astype(np.int64)
    slo, shi = (np.array([c.slack_ms[j] for c in s.classes]) for j in (0, 1))
    slack = (slo[cls] + rng.random(n) * (shi - slo)[cls]) * a.slack_scale + a.slack_add_ms
    return cls, residency, rounds, slack


def _token_counts(
    s: Scenario, rng: np.random.Generator, cls: NDArray[np.int64], trace_rows: NDArray[np.int64] | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Context and generated tokens per request: resampled from each class's token trace, or the replayed
    request's when the class draws from the trace being replayed."""
    context = np.zeros(cls.size, dtype=np.int64)
    generated = np.zeros(cls.size, dtype=np.int64)
    for j, c in enumerate(s.classes):  # loop over classes, vectorised over their tasks
        idx = np.flatnonzero(cls == j)
        tr = s.traces[c.tokens]
        rows = rng.integers(0, tr.offset_s.size, idx.size)
        if trace_rows is not None and c.tokens == s.arrival.trace:
            rows = trace_rows[idx]
        context[idx], generated[idx] = tr.context_tokens[rows], tr.generated_tokens[rows]
    return context, generated


def _task_physics(
    s: Scenario, cls: NDArray[np.int64], context: NDArray[np.int64], generated: NDArray[np.int64]
) -> dict[str, Any]:
    """The per-task fields of :class:`Instance` that follow from the class and token counts: model, cohort
    size, GPU time, energy, first-token time (with and without the cache), bytes moved and charges."""
    m = s.models
    model = np.array([c.model_idx for c in s.classes], dtype=np.int64)[cls]
    prefill_tps = np.array([x.prefill_tokens_per_gpu_s for x in m])[model]
    decode_tps = np.array([x.decode_tokens_per_gpu_s for x in m])[model]
    power_kw = np.array([x.gpu_power_w for x in m])[model] / 1000.0
    ms_per_tok = np.array([x.prefill_ms_per_token for x in m])[model]
    cached = context * np.array([c.cached_share for c in s.classes])[cls]
    fresh = context - cached
    req = s.arrival.requests_per_task
    gpu_s_req = fresh / prefill_tps + generated / decode_tps
    cache_gpu_s_req = cached / prefill_tps
    state_kb = np.array([c.state_kb for c in s.classes])[cls]
    return {
        "model_idx": _readonly(model),
        "requests": _readonly(np.full(cls.size, req, dtype=np.int64)),
        "context_tokens": _readonly(context),
        "generated_tokens": _readonly(generated),
        "gpu_s": _readonly(req * gpu_s_req),
        "energy_kwh": _readonly(req * gpu_s_req * power_kw / 3600.0),
        "inference_ms": _readonly(np.array([x.ttft_base_ms for x in m])[model] + fresh * ms_per_tok),
        "cache_gpu_s": _readonly(req * cache_gpu_s_req),
        "cache_kwh": _readonly(req * cache_gpu_s_req * power_kw / 3600.0),
        "cache_ms": _readonly(cached * ms_per_tok),
        "state_gb": _readonly(req * (context * s.bytes_per_token + state_kb * 1000.0) / 1e9),
        "response_gb": _readonly(req * generated * s.bytes_per_token / 1e9),
        "delay_usd_per_ms": _readonly(np.array([c.delay_usd_per_s for c in s.classes])[cls] * req / 1000.0),
        "overflow_usd": _readonly(np.array([c.overflow_usd for c in s.classes])[cls] * req),
    }


def _episode_arrays(
    s: Scenario, H: float, hour0: int, K: int | None, captive_per_task: NDArray[np.float64] | None
) -> dict[str, Any]:
    """The per-episode fields of :class:`Instance`: the scenario's slice of ``ceil(H)`` slots from
    ``hour0`` (a last partial hour holding its share of the capacity), its static arrays, the two demand
    forecasts, and the scalars and names."""
    S, R, M = math.ceil(H), s.num_regions, len(s.models)
    permanent = np.zeros((R, M), dtype=bool)
    warm = np.array([x.warm_at_home for x in s.models])
    permanent[np.unique(s.node_home_idx)[:, None], np.flatnonzero(warm)[None, :]] = True
    for m, model in enumerate(s.models):  # hubs: permanent replicas at named regions
        permanent[[s.region_names.index(r) for r in model.warm_regions], m] = True
    rows_t = slice(hour0 - s.first_hour, hour0 - s.first_hour + S)
    capacity = np.array(s.capacity_gpu_s[rows_t])
    capacity[-1] *= H - (S - 1)  # a last partial hour holds that share of the slot's GPU-seconds
    return {
        "price_usd_per_kwh": _readonly(s.price_usd_per_kwh[rows_t]),
        "carbon_g_per_kwh": _readonly(s.carbon_g_per_kwh[rows_t]),
        "pue": _readonly(s.pue[rows_t]),
        "capacity_gpu_s": _readonly(capacity),
        "node_rtt_ms": s.node_rtt_ms,
        "node_client_ms": s.node_client_ms,
        "queue_ms": s.queue_ms,
        "transfer_usd_per_gb": s.transfer_usd_per_gb,
        "residency_ok": _readonly(
            residency_allowed(
                s.residency_mode, s.node_country, s.node_in_eu, s.region_country, s.region_in_eu, s.region_adequacy
            )
        ),
        "replica_usd": _readonly(np.array([x.replica_usd for x in s.models])),
        "permanent_replica": _readonly(permanent),
        "arrival_rate_per_h": _readonly(forecast_rate_per_h(s, H, hour0, K)),
        "captive_gpu_s_per_h": _readonly(
            np.zeros((S, R)) if captive_per_task is None else forecast_rate_per_h(s, H, hour0, K, captive_per_task)
        ),
        "replica_window_h": s.replica_window_h,
        "start_hour": hour0,
        "cost": s.cost,
        "region_names": s.region_names,
        "node_names": s.node_names,
        "class_names": tuple(c.name for c in s.classes),
        "model_names": tuple(x.name for x in s.models),
    }


def sample_episode(
    scenario: Scenario, rng: np.random.Generator, num_tasks: int | None = None, horizon_h: float | None = None
) -> Instance:
    """An episode an env can step: :func:`sample_instance`, drawn again while a random count comes out zero
    (with the count still random: a fixed one would scale the forecasts to it and so reveal it). The
    single env, the vector env and the training envs all use it, so they play the same episodes for a seed.
    """
    for _ in range(_MAX_EMPTY_DRAWS):
        inst = sample_instance(scenario, rng=rng, num_tasks=num_tasks, horizon_h=horizon_h)
        if inst.num_tasks > 0:
            return inst
    raise ValueError(
        f"horizon_h = {episode_hours(scenario, horizon_h)}: {_MAX_EMPTY_DRAWS} episodes in a row had no task; "
        f"expected a horizon and arrival rate ({scenario.arrival.rate_per_h} tasks/h) that bring tasks"
    )


_MAX_EMPTY_DRAWS = 100  # P(100 empty draws) < 1e-9 once an episode expects 0.21 tasks
