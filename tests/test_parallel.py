"""The parallel backends: a local process pool and Ray give the same certificates and benchmark rows as one process.

The Ray tests need the optional extra (``pip install -e ".[ray]"``) and are skipped without it; they start an
embedded Ray on the loopback interface, shared by the session and stopped at its end.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmark
from benchmark import certificates as cm
from benchmark.parallel import imap_unordered, pmap, require_ray
from envs.tasks import get_task

ROW_KEYS = ["task", "episode", "policy"]


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    """Everything but the planning times, which depend on the machine's load."""
    return df.drop(columns=["seconds"]).sort_values(ROW_KEYS).reset_index(drop=True)


def _same_certificates(a: list[cm.Certificate], b: list[cm.Certificate]) -> None:
    assert [(c.seed, c.start_hour) for c in a] == [(c.seed, c.start_hour) for c in b]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.plan, y.plan)
        assert (x.objective_usd, x.dual_bound_usd, x.status) == (y.objective_usd, y.dual_bound_usd, y.status)


def test_pmap_keeps_the_input_order_and_raises_a_worker_error() -> None:
    # a worker process imports the function by name: a library's, as a test module may not import there
    assert list(pmap(statistics.mean, [([2, 4],), ([1],), ([1, 2, 3],)], workers=2)) == [3, 1, 2]
    assert list(pmap(statistics.mean, [([3],)], workers=1)) == [3]
    with pytest.raises(statistics.StatisticsError):
        list(pmap(statistics.mean, [([1],), ([],)], workers=2))


def test_the_process_pool_does_not_hang_after_torch_ran_threads_here() -> None:
    # A fork taken after torch's OpenMP pool started in the parent hangs in the child's first parallel op; the
    # pool's workers come from a fork server instead. In a subprocess, so that a hang is a timeout, not a stall.
    code = (
        "import torch\n"
        "from benchmark.parallel import pmap\n"
        "torch.set_num_threads(2)\n"
        "torch.nn.init.orthogonal_(torch.empty(256, 256))\n"
        "out = list(pmap(torch.nn.init.orthogonal_, [(torch.empty(64, 64),)] * 2, workers=2))\n"
        "assert [tuple(t.shape) for t in out] == [(64, 64)] * 2\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _jobs_in_order_of_finishing(backend: str) -> list[int]:
    # worker 1 sleeps on job 0 while worker 2 does jobs 1, 2 and 3 in turn; jobs dealt ahead of time (or more
    # than two at once) would finish in another order
    jobs = [(2.0,), (0.0,), (0.3,), (0.0,)]
    return [i for i, _ in imap_unordered(time.sleep, jobs, workers=2, backend=backend)]


def test_jobs_come_back_as_they_finish_and_a_free_worker_takes_the_next() -> None:
    assert _jobs_in_order_of_finishing("process") == [1, 2, 3, 0]


def test_pmap_puts_results_back_in_input_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.parallel as bp

    finished = [(2, "c"), (0, "a"), (1, "b")]
    monkeypatch.setattr(bp, "imap_unordered", lambda *a, **k: iter(finished))
    assert list(bp.pmap(statistics.mean, [()] * 3)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "dask"}, "backend = 'dask': expected one of"),
        ({"workers": 0}, "workers = 0: expected an integer >= 1"),
        ({"address": "auto"}, "only the ray backend connects"),
    ],
)
def test_pmap_refuses_bad_settings_by_name(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        list(pmap(statistics.mean, [([1],)], **kwargs))


def test_a_missing_ray_says_how_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ImportError, match=r"geoinfer sweep needs Ray.*geoinfer\[ray\]"):
        require_ray("geoinfer sweep")
    with pytest.raises(ImportError, match=r"pip install"):
        list(pmap(statistics.mean, [([1],)], backend="ray"))


def test_the_benchmark_on_a_process_pool_equals_one_process() -> None:
    pols = ["greedy", "nearest", "oracle", "rolling_milp"]
    one = benchmark.evaluate(pols, tasks="residency,hubs", progress=False)
    pool = benchmark.evaluate(pols, tasks="residency,hubs", progress=False, workers=2)
    pd.testing.assert_frame_equal(_rows(one), _rows(pool))


def test_certificates_on_a_process_pool_equal_one_process(tmp_path: Path) -> None:
    task = get_task("residency")
    one = cm.make_certificates(task, "validation", 30, tmp_path / "one")
    pool = cm.make_certificates(task, "validation", 30, tmp_path / "pool", workers=2)
    # one process lets the solver use two threads, the pool one per episode: the optima agree, not the plans
    for x, y in zip(
        cm.read_certificates(task, "validation", one.parent),
        cm.read_certificates(task, "validation", pool.parent),
        strict=True,
    ):
        assert (x.seed, x.start_hour, x.status) == (y.seed, y.start_hour, "optimal")
        assert y.objective_usd == pytest.approx(x.objective_usd, rel=2e-6)


# --- Ray (optional extra)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    from benchmark.parallel import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=4)  # more CPUs than the tests' workers: the window of jobs in flight is pmap's own
    list(pmap(time.sleep, [(0.5,)] * 4, workers=4, backend="ray"))  # its worker processes up and warm
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_listens_on_the_loopback_interface_only(ray_local) -> None:  # type: ignore[no-untyped-def]
    nodes = ray_local.nodes()
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)


@pytest.mark.ray
def test_on_ray_a_free_worker_takes_the_next_job_and_at_most_workers_run(ray_local) -> None:  # type: ignore[no-untyped-def]
    assert _jobs_in_order_of_finishing("ray") == [1, 2, 3, 0]


@pytest.mark.ray
def test_pmap_on_ray_keeps_the_order_and_raises_a_task_error(ray_local) -> None:  # type: ignore[no-untyped-def]
    assert list(pmap(statistics.mean, [([2, 4],), ([1],), ([1, 2, 3],)], workers=2, backend="ray")) == [3, 1, 2]
    with pytest.raises(statistics.StatisticsError):
        list(pmap(statistics.mean, [([1],), ([],)], workers=2, backend="ray"))


@pytest.mark.ray
def test_certificates_on_ray_equal_the_process_pool(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = get_task("residency")
    pool = cm.make_certificates(task, "validation", 30, tmp_path / "pool", workers=2)
    on_ray = cm.make_certificates(task, "validation", 30, tmp_path / "ray", workers=2, backend="ray")
    _same_certificates(
        cm.read_certificates(task, "validation", pool.parent), cm.read_certificates(task, "validation", on_ray.parent)
    )


@pytest.mark.ray
def test_the_benchmark_on_ray_equals_the_process_pool(ray_local) -> None:  # type: ignore[no-untyped-def]
    pols = ["greedy", "online_mpc", "oracle"]
    pool = benchmark.evaluate(pols, tasks="residency,hubs", progress=False, workers=2)
    on_ray = benchmark.evaluate(pols, tasks="residency,hubs", progress=False, workers=2, backend="ray")
    pd.testing.assert_frame_equal(_rows(pool), _rows(on_ray))


def _paper_rows(backend: str, workers: int, out: Path) -> pd.DataFrame:
    import dataclasses

    from experiments.paper import load_config, run_experiment

    cfg = dataclasses.replace(load_config("frontier", quick=True), workers=workers)
    df = run_experiment(cfg, out, progress=False, backend=backend)
    return df.drop(columns=["solve_s"]).sort_values(["policy", "seed", "setting"]).reset_index(drop=True)


def test_a_paper_experiment_on_a_process_pool_equals_one_process(tmp_path: Path) -> None:
    one = _paper_rows("process", 1, tmp_path / "one")
    pool = _paper_rows("process", 2, tmp_path / "pool")
    # one process lets the oracle use two threads, the pool one per setting: the same optima, to the gap
    pd.testing.assert_frame_equal(one.drop(columns=["mip_gap"]), pool.drop(columns=["mip_gap"]), rtol=1e-5)


@pytest.mark.ray
def test_a_paper_experiment_on_ray_equals_the_process_pool(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(_paper_rows("process", 2, tmp_path / "pool"), _paper_rows("ray", 2, tmp_path / "ray"))
