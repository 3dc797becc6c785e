"""The built wheel holds every file the code reads at run time (an editable install would hide a miss).

``.ci/run`` goes further: it installs the wheel into a fresh virtual environment outside the checkout and
runs the CLI from another directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import envs

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "agents", "baselines", "benchmark", "experiments")
# Folders of run-time data inside the packages: every file in them must ship (partial certificates aside).
DATA_FOLDERS = ("envs/data", "envs/data/tasks", "experiments/configs", "benchmark/certificates")
BENCH = "experiments/bench"  # benchmark scripts: run from a checkout, never installed


def test_wheel_holds_every_runtime_file(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    # setuptools comes with the dev extra, so the build needs no download (and the test cannot skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob(f"geoinfer-{envs.__version__}-*.whl")  # the version has one home: envs.__version__
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        p.relative_to(ROOT).as_posix()
        for folder in DATA_FOLDERS
        for p in (ROOT / folder).iterdir()
        if p.is_file() and not p.name.endswith(".partial.npz")
    }
    wanted |= {f"{pkg}/py.typed" for pkg in PACKAGES}  # type hints for users' checkers (PEP 561)
    assert {"experiments/configs/frontier.toml", "envs/data/default.toml", "envs/data/tasks/hubs.toml"} <= wanted
    assert "benchmark/certificates/hubs-test.npz" in wanted
    missing = sorted(wanted - names)
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"
    modules = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    bench = {m for m in modules if m.startswith(f"{BENCH}/")}
    assert bench and not bench & names, "the benchmark scripts (development dependencies) stay out of the wheel"
    assert modules - bench <= names, f"the wheel lacks {sorted(modules - bench - names)}"
    wheel_zip = zipfile.ZipFile(wheel)
    for name in sorted(n for n in names if n.endswith(".py")):
        assert "pulp" not in wheel_zip.read(name).decode(), f"{name} uses PuLP, a development dependency"
