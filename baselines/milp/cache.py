"""The oracle's solutions kept on disk by episode content: ``oracle_<digest>.npz`` files, reused while the
plan still re-prices to its recorded objective, written atomically so that runs may share a folder."""

from __future__ import annotations

import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from baselines.milp.results import MilpResult
from baselines.milp.solve import solve_hindsight
from envs.costs import check_plan_feasible, evaluate_plan
from envs.instance import Instance

# Characters of the instance's digest in a cache file's name.
DIGEST_CHARS = 24
# Relative tolerance of a cached objective against today's re-pricing of its plan.
REPRICE_RTOL = 1e-7


@dataclass(frozen=True, slots=True, eq=False)
class OracleSolution:
    """What is kept of an oracle solve (:class:`MilpResult`): the plan, its cost, how it was proven, its time."""

    plan: NDArray[np.int64]  # [K] action per task (R = overflow)
    objective_usd: float
    status: str  # 'optimal' only when proven within the gap, else 'time_limit' or 'unproven'
    mip_gap: float  # relative
    solve_s: float  # wall time of the solve that produced it, s

    @staticmethod
    def of(res: MilpResult, solve_s: float) -> OracleSolution:
        return OracleSolution(
            np.asarray(res.plan, dtype=np.int64), float(res.objective_usd), str(res.status), float(res.mip_gap), solve_s
        )


def solve_oracle(inst: Instance, time_limit_s: float | None = None) -> OracleSolution:
    """The hindsight optimum of ``inst`` (:func:`solve_hindsight`), timed."""
    t = time.perf_counter()
    res = solve_hindsight(inst, time_limit_s=time_limit_s)
    return OracleSolution.of(res, time.perf_counter() - t)


def cached_oracle(inst: Instance, folder: str | Path, time_limit_s: float | None = None) -> OracleSolution:
    """:func:`solve_oracle`, its result kept in ``folder`` under the instance's :meth:`~envs.Instance.digest`.

    A cached result is reused for the same episode content only, and only if it is proven optimal or was
    solved with at least ``time_limit_s`` (``None``: no limit), and if its plan is still feasible and
    still costs its recorded objective under today's cost model (a changed model re-solves instead of
    returning a stale optimum). An unreadable file is a miss; writes are atomic, so runs may share a folder.
    """
    digest = inst.digest()
    path = Path(folder) / f"oracle_{digest[:DIGEST_CHARS]}.npz"
    wanted = math.inf if time_limit_s is None else time_limit_s
    hit = _read(path, digest, wanted)
    if hit is not None and _still_valid(inst, hit):
        return hit
    res = solve_oracle(inst, time_limit_s)
    _write(path, res, digest, wanted)
    return res


def _still_valid(inst: Instance, hit: OracleSolution) -> bool:
    """Whether a cached plan is feasible and re-prices to its recorded objective under today's cost model."""
    return not check_plan_feasible(inst, hit.plan) and math.isclose(
        evaluate_plan(inst, hit.plan).total_usd, hit.objective_usd, rel_tol=REPRICE_RTOL
    )


def _read(path: Path, digest: str, wanted_limit_s: float) -> OracleSolution | None:
    """The solution stored at ``path`` if it is for ``digest`` and good enough for ``wanted_limit_s``; else None."""
    try:
        with np.load(path) as z:
            if str(z["digest"]) != digest:
                return None
            # inf: solved without a limit
            if str(z["status"]) != "optimal" and float(z["time_limit_s"]) < wanted_limit_s:
                return None
            return OracleSolution(
                np.asarray(z["plan"], dtype=np.int64),
                float(z["objective_usd"]),
                str(z["status"]),
                float(z["mip_gap"]),
                float(z["solve_s"]),
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, truncated or foreign
        return None


def _write(path: Path, sol: OracleSolution, digest: str, time_limit_s: float) -> None:
    """Store ``sol`` at ``path`` (with the instance's ``digest`` and the solve's limit, inf for none), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        plan=sol.plan,
        objective_usd=sol.objective_usd,
        status=sol.status,
        mip_gap=sol.mip_gap,
        solve_s=sol.solve_s,
        digest=digest,
        time_limit_s=time_limit_s,
    )
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
