"""Saved runs with another deterministic decision: copies of their models with ``decision`` set, to score them.

Run: ``python -m experiments.bench.decision SRC DST --algo dagger [--decision grouped]``.

For every finished run folder ``SRC/ALGO/TASK/seed<S>`` (its ``run.json`` and ``model.zip``), writes
``DST/ALGO/TASK/seed<S>`` with the same ``run.json``, ``config.json`` and ``hyperparams.json`` and its models
(``best_model.zip``, ``model.zip``) loaded with ``policy_kwargs['decision']`` set (SB3's ``custom_objects``)
and saved again. The weights are the same; only how the masked region policy acts when deterministic changes
(:mod:`agents.policies`). ``python -m experiments.bench.agents --algo ALGO --out DST ...`` then reuses and
scores them. The best model is the one the run selected under its own decision. Prints one line per run.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from agents.policies import DECISIONS

COPIED = ("run.json", "config.json", "hyperparams.json")
MODELS = ("best_model.zip", "model.zip")


def with_decision(src: Path, dst: Path, decision: str) -> None:
    """Save the MaskablePPO model ``src`` as ``dst`` with its policy's ``decision`` set."""
    from sb3_contrib import MaskablePPO

    from agents.policies import MaskableRegionPolicy

    loaded = MaskablePPO.load(src, device="cpu")
    if not isinstance(loaded.policy, MaskableRegionPolicy):
        raise ValueError(f"model {str(src)!r}: a {type(loaded.policy).__name__}, expected a MaskableRegionPolicy")
    kwargs = dict(loaded.policy_kwargs)
    model = MaskablePPO.load(src, device="cpu", custom_objects={"policy_kwargs": {**kwargs, "decision": decision}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    model.save(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="an --out folder of experiments.bench.agents")
    ap.add_argument("dst", type=Path)
    ap.add_argument("--algo", required=True)
    ap.add_argument("--decision", default="grouped", choices=DECISIONS)
    args = ap.parse_args()
    runs = sorted(
        p.parent for p in (args.src / args.algo).glob("*/seed*/run.json") if (p.parent / "model.zip").is_file()
    )
    if not runs:
        raise SystemExit(f"no finished run under {args.src / args.algo}")
    for run in runs:
        out = args.dst / run.relative_to(args.src)
        out.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
        for name in MODELS:
            if (run / name).is_file():
                with_decision(run / name, out / name, args.decision)
        print(f"{run} -> {out} (decision {args.decision})", flush=True)


if __name__ == "__main__":
    main()
