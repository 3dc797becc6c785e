"""The parts of a scenario: parameter dataclasses, constants and the value checks they share.

:mod:`envs.scenario` (the :class:`~envs.Scenario` itself), :mod:`envs.loader` (which fills these from
data files) and :mod:`envs.instance` (which carries a :class:`CostParams`) all import from here, and this
module imports no other module of ``envs``. Every check raises ``ValueError`` naming the field, the value
and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
    warm_regions: tuple[str, ...] = ()  # further regions where it is permanently deployed (hubs)

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
