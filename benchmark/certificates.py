"""Optimality certificates: the hindsight optimum of every fixed episode of a task, solved once and shipped.

A certificate file ``benchmark/certificates/<task>-<split>.npz`` holds, for each fixed episode of the
split (:meth:`envs.tasks.Task.instances`), the oracle's plan, its objective, a valid dual bound (so the
relative gap ``(objective - bound) / objective``), the solve's status and time, and two digests:

* the *episode digest*: :meth:`envs.Instance.digest` (portable) of the episode the seed and start hour
  draw today; a change to the scenario file, the data or the sampler changes it;
* the *cost digest*: the cost model's values on that episode (every pair's weighted cost and GPU time,
  the admissible pairs, the replica charges, and :data:`envs.costs.COST_MODEL_VERSION`, the version of
  the rules written in code: capacity per slot, replica windows, free permanent replicas; see
  :func:`cost_digest`); a change to the cost model that touches any cost of the episode changes it.

:func:`load_optima` refuses (``StaleCertificate``) a certificate whose episode or cost digest differs
from today's, whose plan is infeasible, or whose plan no longer re-prices to its objective with
:func:`envs.evaluate_plan`: a stale optimum is never used. Files are plain arrays (``allow_pickle=False``).
Anyone can check a certificate: re-price ``plan`` with ``evaluate_plan`` and compare with ``objective_usd``.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from envs import __version__
from envs.costs import (
    COST_MODEL_VERSION,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    replica_charge_usd,
    static_mask,
)
from envs.instance import Instance
from envs.tasks import Task

FORMAT_VERSION = 1
REPRICE_RTOL = 1e-7  # a plan re-priced today must match its recorded objective this closely
TARGET_GAP = 1e-6  # the relative gap a certificate is solved to
WORST_GAP = 1e-4  # a certificate above this gap is not written (see make_certificates)


class StaleCertificate(ValueError):
    """A shipped certificate that does not certify today's episode under today's cost model."""


def certificates_dir() -> Path:
    """The folder of shipped certificates (``benchmark/certificates``)."""
    return Path(str(resources.files("benchmark") / "certificates"))


def certificate_path(task: Task, split: str, folder: str | Path | None = None) -> Path:
    return Path(folder or certificates_dir()) / f"{task.name}-{split}.npz"


def _update(h: hashlib._Hash, name: str, a: NDArray) -> None:
    a = np.ascontiguousarray(a.astype(np.float32) if a.dtype.kind == "f" else a)
    h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
    h.update(a.tobytes())


def cost_digest(inst: Instance) -> str:
    """SHA-256 of what the oracle optimises on ``inst``: every pair's weighted cost and GPU-seconds, the
    admissible pairs and the replica charges, rounded to float32 (portable across machines)."""
    pc = cost_matrix(inst)
    h = hashlib.sha256()
    h.update(f"rules:{COST_MODEL_VERSION}".encode())  # the rules in code (capacity, windows, replicas)
    _update(h, "total_usd", pc.total_usd)
    _update(h, "gpu_s", pc.gpu_s)
    _update(h, "mask", static_mask(inst, pc))
    _update(h, "replica_charge_usd", replica_charge_usd(inst))
    return h.hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class Certificate:
    """The certified optimum of one episode (see the module docstring)."""

    seed: int
    start_hour: int
    plan: NDArray[np.int64]  # [K] the oracle's action per task (R = overflow)
    objective_usd: float  # evaluate_plan(instance, plan).total_usd when solved
    dual_bound_usd: float  # a valid lower bound on the optimum
    status: str  # 'optimal' (within TARGET_GAP) or 'time_limit' / 'unproven' (gap reported)
    solve_s: float  # wall time of the solve, s
    episode_digest: str
    cost_digest: str

    @property
    def gap(self) -> float:
        """Relative gap of the plan to the bound."""
        return max(0.0, (self.objective_usd - self.dual_bound_usd) / abs(self.objective_usd))

    def check(self, inst: Instance) -> None:
        """Raise :class:`StaleCertificate` unless this certifies ``inst`` under today's cost model."""
        where = f"certificate of episode (seed {self.seed}, start hour {self.start_hour})"
        if inst.digest(portable=True) != self.episode_digest:
            raise StaleCertificate(
                f"{where}: the episode drawn today differs from the certified one (scenario, data or sampler "
                "changed): regenerate the certificates (geoinfer certify)"
            )
        if cost_digest(inst) != self.cost_digest:
            raise StaleCertificate(
                f"{where}: the cost model's values on this episode changed since it was certified: regenerate "
                "the certificates (geoinfer certify)"
            )
        if self.plan.shape != (inst.num_tasks,) or check_plan_feasible(inst, self.plan):
            raise StaleCertificate(f"{where}: its plan is not a feasible plan of the episode")
        cost = evaluate_plan(inst, self.plan).total_usd
        if not math.isclose(cost, self.objective_usd, rel_tol=REPRICE_RTOL):
            raise StaleCertificate(
                f"{where}: its plan re-prices to {cost!r} USD, not its objective {self.objective_usd!r}"
            )
        if self.dual_bound_usd > self.objective_usd * (1 + REPRICE_RTOL):
            raise StaleCertificate(f"{where}: bound {self.dual_bound_usd} above objective {self.objective_usd}")
        if self.gap > WORST_GAP:
            raise StaleCertificate(f"{where}: gap {self.gap:.2e} above {WORST_GAP:g}: it bounds no regret closely")


def certify(inst: Instance, time_limit_s: float | None = 60.0, threads: int | None = None) -> Certificate:
    """Solve ``inst``'s hindsight optimum (:func:`baselines.milp.solve_hindsight`) into a certificate.

    ``threads``: blocks the solver works on side by side (its ``workers``; default: its own).
    """
    from baselines.milp import solve_hindsight  # the MILP is needed to make certificates, not to read them

    if inst.seed is None:
        raise ValueError("instance has no seed: expected an episode drawn from a seed (Task.instances)")
    t = time.perf_counter()
    res = solve_hindsight(inst, time_limit_s=time_limit_s, mip_rel_gap=TARGET_GAP, workers=threads)
    return Certificate(
        seed=int(inst.seed),
        start_hour=int(inst.start_hour),
        plan=np.asarray(res.plan, dtype=np.int64),
        objective_usd=float(res.objective_usd),
        dual_bound_usd=float(res.dual_bound_usd),
        status=str(res.status),
        solve_s=time.perf_counter() - t,
        episode_digest=inst.digest(portable=True),
        cost_digest=cost_digest(inst),
    )


def certify_hard(inst: Instance, time_limit_s: float | None, threads: int | None = None) -> Certificate:
    """:func:`certify`; an episode left above :data:`WORST_GAP` is solved once more with four times the time."""
    cert = certify(inst, time_limit_s, threads)
    if cert.gap > WORST_GAP and time_limit_s is not None:
        cert = min(cert, certify(inst, 4 * time_limit_s, threads), key=lambda c: c.gap)
    return cert


def make_certificates(
    task: Task,
    split: str = "test",
    time_limit_s: float | None = 60.0,
    folder: str | Path | None = None,
    progress: Callable[[Iterable[Certificate]], Iterable[Certificate]] = iter,
    *,
    workers: int = 1,
    backend: str = "process",
    address: str | None = None,
) -> Path:
    """Certify every fixed episode of ``task``'s ``split`` and write the file; returns its path.

    An episode that ends above :data:`WORST_GAP` is solved again with four times ``time_limit_s``; if it
    still does, ``RuntimeError`` is raised (writing nothing): a certificate
    must bound the regret it is used for to at most 0.01% of the optimum.

    Episodes are solved ``workers`` at a time on ``backend`` (:func:`benchmark.parallel.imap_unordered`). With
    more than one worker (or a Ray cluster) each solve uses one solver thread, so the process pool and Ray
    write the same file; one process lets the solver use its default threads, which may pick another of
    equally good plans. ``progress`` wraps the stream of finished certificates (a progress bar). Each finished
    episode is added to ``<task>-<split>.partial.npz`` as it finishes: an interrupted run resumes from them.
    """
    from benchmark.parallel import check_backend, imap_unordered

    check_backend(backend, workers)
    path = certificate_path(task, split, folder)
    partial = path.with_name(f"{path.stem}.partial.npz")
    done = {(c.seed, c.start_hour, c.episode_digest): c for c in _read_file(partial, task, split, missing_ok=True)}
    instances = task.instances(split)

    def reusable(inst: Instance) -> Certificate | None:
        cert = done.get((int(inst.seed or 0), inst.start_hour, inst.digest(portable=True)))
        ok = cert is not None and cert.cost_digest == cost_digest(inst) and cert.gap <= WORST_GAP
        return cert if ok else None

    kept = [reusable(inst) for inst in instances]
    todo = [i for i, c in enumerate(kept) if c is None]
    threads = 1 if workers > 1 or address is not None else None
    jobs = [(instances[i], time_limit_s, threads) for i in todo]
    solved = (c for _, c in imap_unordered(certify_hard, jobs, workers=workers, backend=backend, address=address))
    certs = [c for c in kept if c is not None]
    reused = len(certs)
    for k, cert in enumerate(progress(_chain(certs, solved))):
        if k >= reused:  # a new solve: kept at once
            certs.append(cert)
            write_certificates(partial, task, split, certs)
    order = {(c.seed, c.start_hour): c for c in certs}
    certs = [order[(int(inst.seed or 0), inst.start_hour)] for inst in instances]
    worst = max(certs, key=lambda c: c.gap)
    if worst.gap > WORST_GAP:
        raise RuntimeError(
            f"{task.name}/{split}: episode (seed {worst.seed}) ended at gap {worst.gap:.2e} after "
            f"{worst.solve_s:.0f} s: expected at most {WORST_GAP:g}; give it more time (time_limit_s = {time_limit_s})"
        )
    write_certificates(path, task, split, certs)
    partial.unlink(missing_ok=True)
    return path


def _chain(first: list[Certificate], rest: Iterable[Certificate]) -> Iterator[Certificate]:
    yield from list(first)
    yield from rest


def write_certificates(path: Path, task: Task, split: str, certs: list[Certificate]) -> None:
    """Store ``certs`` as plain arrays, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = np.array([c.plan.size for c in certs], dtype=np.int64)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(
        tmp,
        format_version=np.int64(FORMAT_VERSION),
        task=np.str_(task.name),
        split=np.str_(split),
        geoinfer_version=np.str_(__version__),
        seed=np.array([c.seed for c in certs], dtype=np.int64),
        start_hour=np.array([c.start_hour for c in certs], dtype=np.int64),
        plan_offsets=np.concatenate([[0], np.cumsum(sizes)]),
        plans=np.concatenate([c.plan for c in certs]).astype(np.int16),
        objective_usd=np.array([c.objective_usd for c in certs]),
        dual_bound_usd=np.array([c.dual_bound_usd for c in certs]),
        status=np.array([c.status for c in certs], dtype=np.str_),
        solve_s=np.array([c.solve_s for c in certs]),
        episode_digest=np.array([c.episode_digest for c in certs], dtype=np.str_),
        cost_digest=np.array([c.cost_digest for c in certs], dtype=np.str_),
    )
    os.replace(tmp, path)


def read_certificates(task: Task, split: str = "test", folder: str | Path | None = None) -> list[Certificate]:
    """The certificates of ``task``'s ``split`` as stored (unchecked: :func:`load_optima` checks them)."""
    return _read_file(certificate_path(task, split, folder), task, split)


def _read_file(path: Path, task: Task, split: str, missing_ok: bool = False) -> list[Certificate]:
    if missing_ok and not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != FORMAT_VERSION or str(z["task"]) != task.name or str(z["split"]) != split:
                raise StaleCertificate(f"{path}: expected format {FORMAT_VERSION} for {task.name}/{split}")
            off = z["plan_offsets"]
            return [
                Certificate(
                    seed=int(z["seed"][i]),
                    start_hour=int(z["start_hour"][i]),
                    plan=z["plans"][off[i] : off[i + 1]].astype(np.int64),
                    objective_usd=float(z["objective_usd"][i]),
                    dual_bound_usd=float(z["dual_bound_usd"][i]),
                    status=str(z["status"][i]),
                    solve_s=float(z["solve_s"][i]),
                    episode_digest=str(z["episode_digest"][i]),
                    cost_digest=str(z["cost_digest"][i]),
                )
                for i in range(len(z["seed"]))
            ]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no certificates for task {task.name!r}, split {split!r} at {path}: make them with "
            f"`geoinfer certify --tasks {task.name} --split {split}`"
        ) from None
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StaleCertificate(f"{path}: not a certificate file of this version ({exc})") from None


def load_optima(
    task: Task, split: str = "test", folder: str | Path | None = None
) -> list[tuple[Instance, Certificate]]:
    """The fixed episodes of ``task``'s ``split`` with their certificates, each checked (:meth:`Certificate.check`)."""
    instances = task.instances(split)
    certs = read_certificates(task, split, folder)
    want = [(e.seed, e.start_hour) for e in task.episodes[split]]
    got = [(c.seed, c.start_hour) for c in certs]
    if got != want:
        raise StaleCertificate(
            f"certificates of {task.name}/{split} are for episodes {got}: expected the task file's {want}"
        )
    for inst, cert in zip(instances, certs, strict=True):
        cert.check(inst)
    return list(zip(instances, certs, strict=True))
