"""Shipped optimality certificates: they re-price, they are proven, and a stale one is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import benchmark.certificates as cm
from benchmark.certificates import (
    WORST_GAP,
    StaleCertificate,
    certificate_path,
    certify,
    load_optima,
    read_certificates,
    write_certificates,
)
from envs import TASKS, evaluate_plan, get_task
from envs.costs import check_plan_feasible

SHIPPED = [(t, s) for t in sorted(TASKS) for s in ("test", "validation") if certificate_path(TASKS[t], s).is_file()]


def test_every_task_ships_test_certificates() -> None:
    assert {t for t, s in SHIPPED if s == "test"} == set(TASKS)


@pytest.mark.parametrize(("name", "split"), SHIPPED)
def test_every_shipped_certificate_reprices_to_its_objective_within_its_gap(name: str, split: str) -> None:
    pairs = load_optima(TASKS[name], split)  # checks digests, feasibility and re-pricing
    assert len(pairs) == len(TASKS[name].episodes[split])
    for inst, cert in pairs:
        assert not check_plan_feasible(inst, cert.plan)
        assert np.isclose(evaluate_plan(inst, cert.plan).total_usd, cert.objective_usd, rtol=1e-9)
        assert cert.dual_bound_usd <= cert.objective_usd * (1 + 1e-9)
        assert cert.gap <= WORST_GAP


def _small(name: str = "hubs", tasks: int = 60):  # type: ignore[no-untyped-def]
    task = get_task(name)
    inst = task.instances("validation")[0].subset(slice(0, tasks))
    return task, inst, certify(inst, time_limit_s=30)


def test_a_certificate_round_trips_through_its_file_without_pickle(tmp_path: Path) -> None:
    task, inst, cert = _small()
    assert cert.status == "optimal" and cert.gap <= 1e-6
    path = tmp_path / "hubs-validation.npz"
    write_certificates(path, task, "validation", [cert])
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    (back,) = read_certificates(task, "validation", tmp_path)
    np.testing.assert_array_equal(back.plan, cert.plan)
    assert back.objective_usd == cert.objective_usd and back.cost_digest == cert.cost_digest
    back.check(inst)


def test_a_change_to_the_cost_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, inst, cert = _small()
    real = cm.cost_matrix

    def changed(i):  # type: ignore[no-untyped-def]  # a cost model whose carbon term moved by 1%
        pc = real(i)
        return dataclasses.replace(pc, total_usd=pc.total_usd + 0.01 * pc.carbon_usd)

    monkeypatch.setattr(cm, "cost_matrix", changed)
    with pytest.raises(StaleCertificate, match="cost model's values on this episode changed"):
        cert.check(inst)


def test_a_changed_episode_or_a_tampered_plan_is_refused() -> None:
    _, inst, cert = _small()
    heavier = inst.replace(energy_kwh=inst.energy_kwh * 1.01)
    with pytest.raises(StaleCertificate, match="episode drawn today differs"):
        cert.check(heavier)
    other = np.array(cert.plan)
    other[0] = inst.num_regions  # overflow the first task: feasible, but dearer
    with pytest.raises(StaleCertificate, match="re-prices to"):
        dataclasses.replace(cert, plan=other).check(inst)


def test_the_portable_digest_ignores_last_bit_differences() -> None:
    inst = get_task("hubs").instances("validation")[0]
    nudged = inst.replace(arrival_rate_per_h=np.nextafter(inst.arrival_rate_per_h, np.inf))
    assert nudged.digest() != inst.digest()
    assert nudged.digest(portable=True) == inst.digest(portable=True)


def test_missing_or_foreign_files_say_what_to_do(tmp_path: Path) -> None:
    task = get_task("hubs")
    with pytest.raises(FileNotFoundError, match="geoinfer certify --tasks hubs --split test"):
        read_certificates(task, "test", tmp_path)
    (tmp_path / "hubs-test.npz").write_bytes(b"not a zip")
    with pytest.raises(StaleCertificate, match="not a certificate file"):
        read_certificates(task, "test", tmp_path)


def test_an_interrupted_certification_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task, real, calls = get_task("residency"), cm.certify, []

    def failing(inst, *args):  # type: ignore[no-untyped-def]
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(inst.seed)
        return real(inst, *args)

    monkeypatch.setattr(cm, "certify", failing)
    with pytest.raises(KeyboardInterrupt):
        cm.make_certificates(task, "validation", 30, tmp_path)
    assert (tmp_path / "residency-validation.partial.npz").is_file()
    calls.clear()
    monkeypatch.setattr(cm, "certify", lambda inst, *a: calls.append(inst.seed) or real(inst, *a))
    path = cm.make_certificates(task, "validation", 30, tmp_path)
    assert len(calls) == len(task.episodes["validation"]) - 2  # the first two were kept
    assert not (tmp_path / "residency-validation.partial.npz").exists()
    assert len(load_optima(task, "validation", path.parent)) == 5


def test_a_new_version_of_the_cost_rules_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, inst, cert = _small()
    cert.check(inst)
    monkeypatch.setattr(cm, "COST_MODEL_VERSION", cm.COST_MODEL_VERSION + 1)
    with pytest.raises(StaleCertificate, match="cost model's values on this episode changed"):
        cert.check(inst)


def test_a_certificate_above_the_worst_gap_is_refused() -> None:
    _, inst, cert = _small()
    loose = dataclasses.replace(cert, dual_bound_usd=cert.objective_usd * (1 - 10 * WORST_GAP))
    with pytest.raises(StaleCertificate, match=r"above 0\.0001"):
        loose.check(inst)
