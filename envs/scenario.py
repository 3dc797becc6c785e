"""The static placement problem: regions, service nodes, hourly signals, models, workload classes.

A :class:`Scenario` is immutable. Build it with :meth:`Scenario.default` (real 2023 data packaged in
``envs/data``) or :meth:`Scenario.from_toml` (the default with a user file's overrides). Every check
raises ``ValueError`` naming the field, the value and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs import spec as spec_mod
from envs.spec import Spec

RESIDENCY_CLASSES = ("global", "regional", "domestic")
RESIDENCY_MODES = ("off", "strict", "adequacy")
ARRIVAL_KINDS = ("poisson", "diurnal", "bursty", "trace")
SLOT_S = 3600.0  # one signal / capacity slot is one hour


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r}: expected {expected}")


def _finite_nonneg(name: str, value: float) -> None:
    _require(
        isinstance(value, int | float) and math.isfinite(value) and value >= 0, name, value, "a finite number >= 0"
    )


def _positive(name: str, value: float) -> None:
    _require(isinstance(value, int | float) and math.isfinite(value) and value > 0, name, value, "a finite number > 0")


def _check_array(name: str, a: NDArray[Any], shape: tuple[int, ...], nonneg: bool = True) -> None:
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}: expected {shape}")
    bad = ~np.isfinite(a) | (a < 0) if nonneg else ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(j) for j in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(idx)} = {a[idx].item()!r}: expected a finite number{' >= 0' if nonneg else ''}")


@dataclass(frozen=True, slots=True)
class CostParams:
    """Objective weights and friction multipliers (dimensionless unless a unit is named)."""

    alpha: float = 1.0  # energy cost weight
    beta: float = 1.0  # carbon cost weight
    gamma: float = 1.0  # delay penalty weight
    eta: float = 1.0  # migration friction weight (state, egress, replica)
    carbon_price_usd_per_t: float = 100.0  # USD per tonne CO2
    state_mult: float = 1.0  # state-transfer fees
    cache_mult: float = 1.0  # recomputed KV-cache prefill (energy, GPU time, latency)
    egress_mult: float = 1.0  # response egress fees
    replica_mult: float = 1.0  # warm-replica fixed charges

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            _finite_nonneg(f"CostParams.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class ModelClass:
    """A served model: per-token compute (amortised per GPU), power, first-token latency, replica charge."""

    name: str
    prefill_tokens_per_gpu_s: float  # tokens / GPU-second
    decode_tokens_per_gpu_s: float  # tokens / GPU-second
    gpu_power_w: float  # W per busy GPU
    ttft_base_ms: float  # ms
    prefill_ms_per_token: float  # ms / context token
    replica_usd: float  # USD per (region, replica window) where no permanent replica exists
    warm_at_home: bool  # permanently deployed at every service node's home region

    def __post_init__(self) -> None:
        for name in ("prefill_tokens_per_gpu_s", "decode_tokens_per_gpu_s", "gpu_power_w"):
            _positive(f"models.{self.name}.{name}", getattr(self, name))
        for name in ("ttft_base_ms", "prefill_ms_per_token", "replica_usd"):
            _finite_nonneg(f"models.{self.name}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class WorkloadClass:
    """A class of inference tasks (see ``default.toml`` for the meaning of each field)."""

    name: str
    share: float  # relative weight of the class in the traffic
    model_idx: int
    tokens: str  # name of the token trace the counts are resampled from
    slack_ms: tuple[float, float]  # latency slack above the home latency, uniform [low, high], ms
    rounds: tuple[int, int]  # service<->compute round trips, uniform integers [low, high]
    cached_share: float  # share of context held as KV cache at home
    state_kb: float  # kB per request shipped besides the prompt
    residency: tuple[float, float, float]  # shares of global / regional / domestic tasks
    delay_usd_per_s: float  # USD per request per second of latency
    overflow_usd: float  # USD per request when not served

    def __post_init__(self) -> None:
        p = f"workload_classes.{self.name}"
        _finite_nonneg(f"{p}.share", self.share)
        lo, hi = self.slack_ms
        _require(
            math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi,
            f"{p}.slack_ms",
            list(self.slack_ms),
            "[low, high] with 0 <= low <= high",
        )
        rlo, rhi = self.rounds
        _require(1 <= rlo <= rhi, f"{p}.rounds", list(self.rounds), "[low, high] integers with 1 <= low <= high")
        _require(0.0 <= self.cached_share <= 1.0, f"{p}.cached_share", self.cached_share, "a number in [0, 1]")
        for name in ("state_kb", "delay_usd_per_s", "overflow_usd"):
            _finite_nonneg(f"{p}.{name}", getattr(self, name))
        for r, s in zip(RESIDENCY_CLASSES, self.residency, strict=True):
            _finite_nonneg(f"{p}.residency.{r}", s)
        _require(sum(self.residency) > 0, f"{p}.residency", self.residency, "shares with a positive sum")


@dataclass(frozen=True, slots=True)
class ArrivalProcess:
    """How tasks arrive (see ``default.toml``). Rates in tasks per hour, times in hours."""

    kind: str
    rate_per_h: float
    horizon_h: float
    requests_per_task: int
    slack_scale: float
    slack_add_ms: float
    diurnal_amplitude: float
    diurnal_peak_local_h: float
    bursty_high_factor: float
    bursty_low_factor: float
    bursty_mean_high_h: float
    bursty_mean_low_h: float
    trace: str

    def __post_init__(self) -> None:
        _require(self.kind in ARRIVAL_KINDS, "workload.arrival", self.kind, f"one of {ARRIVAL_KINDS}")
        _positive("workload.rate_per_h", self.rate_per_h)
        _positive("workload.horizon_h", self.horizon_h)
        _require(
            isinstance(self.requests_per_task, int) and self.requests_per_task >= 1,
            "workload.requests_per_task",
            self.requests_per_task,
            "an integer >= 1",
        )
        _finite_nonneg("workload.slack_scale", self.slack_scale)
        _finite_nonneg("workload.slack_add_ms", self.slack_add_ms)
        _require(
            0.0 <= self.diurnal_amplitude <= 1.0,
            "workload.diurnal_amplitude",
            self.diurnal_amplitude,
            "a number in [0, 1]",
        )
        _require(
            math.isfinite(self.diurnal_peak_local_h),
            "workload.diurnal_peak_local_h",
            self.diurnal_peak_local_h,
            "a finite hour",
        )
        for name in ("bursty_high_factor", "bursty_low_factor", "bursty_mean_high_h", "bursty_mean_low_h"):
            _positive(f"workload.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class TokenTrace:
    """A replayable request trace: arrival offsets (s from the first request) and token counts."""

    name: str
    offset_s: NDArray[np.float64]  # [n] seconds since the first request, non-decreasing
    context_tokens: NDArray[np.int64]  # [n]
    generated_tokens: NDArray[np.int64]  # [n]

    def __post_init__(self) -> None:
        n = self.offset_s.shape[0]
        _require(n >= 2, f"trace {self.name}", n, "at least 2 requests")
        _check_array(f"trace {self.name}.context_tokens", self.context_tokens, (n,))
        _check_array(f"trace {self.name}.generated_tokens", self.generated_tokens, (n,))
        _check_array(f"trace {self.name}.offset_s", self.offset_s, (n,))
        _require(
            bool(np.all(np.diff(self.offset_s) >= 0)),
            f"trace {self.name}.offset_s",
            "unsorted",
            "non-decreasing timestamps",
        )

    @property
    def span_s(self) -> float:
        return float(self.offset_s[-1] - self.offset_s[0])


@dataclass(frozen=True, slots=True, eq=False)
class Scenario:
    """An immutable placement problem. Axes: ``[time, region]`` and ``[node, region]``.

    Indices: R compute regions, N service nodes, T hourly slots of the signal slice, M model classes.
    """

    name: str
    region_names: tuple[str, ...]  # [R]
    region_country: tuple[str, ...]  # [R] ISO 3166 alpha-2
    region_continent: tuple[str, ...]  # [R]
    region_in_eu: NDArray[np.bool_]  # [R] GDPR applies directly (EU/EEA)
    region_adequacy: NDArray[np.bool_]  # [R] EU adequacy decision covers the country
    queue_ms: NDArray[np.float64]  # [R] static queueing delay, ms
    node_names: tuple[str, ...]  # [N]
    node_home_idx: NDArray[np.int64]  # [N] home compute region
    node_country: tuple[str, ...]  # [N]
    node_in_eu: NDArray[np.bool_]  # [N]
    node_rtt_ms: NDArray[np.float64]  # [N, R] service -> compute round trip, ms
    node_client_ms: NDArray[np.float64]  # [N] client -> service latency, ms
    node_utc_offset_h: NDArray[np.float64]  # [N]
    node_share: NDArray[np.float64]  # [N] traffic shares, sum 1
    first_hour: int  # hour of year (UTC) of signal row 0
    random_start: bool
    price_usd_per_kwh: NDArray[np.float64]  # [T, R]
    carbon_g_per_kwh: NDArray[np.float64]  # [T, R]
    pue: NDArray[np.float64]  # [T, R]
    capacity_gpu_s: NDArray[np.float64]  # [T, R] GPU-seconds per slot
    transfer_usd_per_gb: NDArray[np.float64]  # [R, R] source region -> destination region
    models: tuple[ModelClass, ...]  # [M]
    classes: tuple[WorkloadClass, ...]
    cost: CostParams
    replica_window_h: int  # slots per replica window
    bytes_per_token: float
    residency_mode: str
    arrival: ArrivalProcess
    traces: Mapping[str, TokenTrace]
    spec: Spec = field(repr=False)  # the merged specification this scenario was built from
    notes: tuple[str, ...] = ()  # what the loader did to the data (filled hours, floored prices)

    def __post_init__(self) -> None:
        R, N, T = len(self.region_names), len(self.node_names), self.price_usd_per_kwh.shape[0]
        _require(R >= 1, "regions", list(self.region_names), "at least one region")
        _require(len(set(self.region_names)) == R, "regions", list(self.region_names), "distinct names")
        _require(N >= 1, "service_nodes", list(self.node_names), "at least one node with traffic_share > 0")
        for name in ("price_usd_per_kwh", "carbon_g_per_kwh", "pue", "capacity_gpu_s"):
            _check_array(name, getattr(self, name), (T, R))
        _require(bool(np.all(self.pue >= 1.0)), "pue", float(self.pue.min()), "PUE >= 1")
        _check_array("node_rtt_ms", self.node_rtt_ms, (N, R))
        _check_array("transfer_usd_per_gb", self.transfer_usd_per_gb, (R, R))
        _check_array("queue_ms", self.queue_ms, (R,))
        _check_array("node_client_ms", self.node_client_ms, (N,))
        _require(
            bool(np.all((self.node_home_idx >= 0) & (self.node_home_idx < R))),
            "node_home_idx",
            self.node_home_idx.tolist(),
            f"indices in [0, {R})",
        )
        _require(self.replica_window_h >= 1, "frictions.replica_window_h", self.replica_window_h, "an integer >= 1")
        _positive("frictions.bytes_per_token", self.bytes_per_token)
        _require(
            self.residency_mode in RESIDENCY_MODES,
            "legal.residency_mode",
            self.residency_mode,
            f"one of {RESIDENCY_MODES}",
        )
        _require(
            math.ceil(self.arrival.horizon_h) <= T,
            "signals.num_hours",
            T,
            f">= the episode horizon ({self.arrival.horizon_h} h)",
        )
        _require(len(self.classes) >= 1, "workload_classes", [], "at least one class with share > 0")
        for c in self.classes:
            _require(
                0 <= c.model_idx < len(self.models), f"workload_classes.{c.name}.model", c.model_idx, "a known model"
            )
            _require(
                c.tokens in self.traces, f"workload_classes.{c.name}.tokens", c.tokens, f"one of {sorted(self.traces)}"
            )
        _require(
            self.arrival.trace in self.traces, "workload.trace", self.arrival.trace, f"one of {sorted(self.traces)}"
        )

    # ----------------------------------------------------------------------------------- sizes
    @property
    def num_regions(self) -> int:
        return len(self.region_names)

    @property
    def num_nodes(self) -> int:
        return len(self.node_names)

    @property
    def num_hours(self) -> int:
        return int(self.price_usd_per_kwh.shape[0])

    # ---------------------------------------------------------------------------- constructors
    @classmethod
    def default(cls) -> Scenario:
        """The real-data default scenario (``envs/data/default.toml``), loaded from packaged files only."""
        return cls.from_spec(spec_mod.default_spec())

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        """The default scenario with the overrides of the TOML file at ``path``."""
        override = spec_mod.load_toml(path)
        return cls.from_spec(spec_mod.merge_spec(spec_mod.default_spec(), override))

    @classmethod
    def from_overrides(cls, override: Spec) -> Scenario:
        """The default scenario with overrides given as a nested dict (the TOML file's shape)."""
        return cls.from_spec(spec_mod.merge_spec(spec_mod.default_spec(), override))

    def with_overrides(self, override: Spec) -> Scenario:
        """This scenario with overrides given as a nested dict (the TOML file's shape)."""
        return Scenario.from_spec(spec_mod.merge_spec(self.spec, override))

    @classmethod
    def from_spec(cls, spec: Spec) -> Scenario:
        """Build from a complete, merged specification (see :mod:`envs.spec`)."""
        from envs.loader import build_scenario

        return build_scenario(spec)
