"""``geoinfer benchmark``, ``tasks``, ``certify`` and ``replay``: the task suite from the command line.

``geoinfer benchmark --policy P [P ...] [--tasks all|NAMES] [--split test|validation] --out DIR`` writes
``episodes.csv`` (one row per task, episode and policy: every cost term, J*, regret, score),
``leaderboard.md`` (IQM score with stratified-bootstrap 95% intervals, mean regret, per-task regret) and
figures (per-task scores, aggregates, performance profile). ``geoinfer replay --task T --policy P --out
FILE.gif|FILE.mp4`` plays one episode as a map video and writes a placement report beside it.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmark.parallel import add_backend_arguments
from envs.tasks import EVAL_SPLITS, TASKS, select_tasks


def cmd_tasks(args: argparse.Namespace) -> int:
    for t in TASKS.values():
        print(f"{t.env_id}  ({t.name}): {t.title}")
        print(f"  hard: {t.hard}")
        print(f"  realistic: {t.realistic}")
        print(f"  splits: {t.generalisation}")
        days = ", ".join(f"{s} {len(t.days[s])} days" for s in t.days)
        eps = ", ".join(f"{s} {len(t.episodes[s])} episodes" for s in t.episodes)
        print(f"  {days}; {eps}\n")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    import benchmark

    out = Path(args.out)
    t = time.perf_counter()
    df = benchmark.evaluate(
        args.policy,
        tasks=args.tasks,
        split=args.split,
        certificates=args.certificates,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
    )
    out.mkdir(parents=True, exist_ok=True)
    # planning times vary run to run: printed, not in the CSV, so that a run reproduces its CSV exactly
    df.drop(columns="seconds").to_csv(out / "episodes.csv", index=False)
    board = benchmark.leaderboard_markdown(df, knows=benchmark.knows_of(df), reps=args.reps)
    source = f"the certificates in {args.certificates}" if args.certificates else "the shipped certificates"
    header = (
        f"geoinfer benchmark, split {args.split!r}, tasks {', '.join(sorted(df['task'].unique()))}; "
        f"{df['episode'].nunique()} episodes per task; J* from {source} (worst gap "
        f"{df['optimum_gap'].max():.1e}); scores: local = 0, oracle = 1.\n\n"
    )
    (out / "leaderboard.md").write_text(header + board + "\n")
    figures = [] if args.no_figures else benchmark.plot_scores(df, out, reps=args.reps)
    print(header + board)
    print(f"\nwrote {out / 'episodes.csv'}, {out / 'leaderboard.md'}" + "".join(f", {p}" for p in figures))
    sums = df.groupby("policy", sort=False)[["seconds", "num_tasks"]].sum()
    ms = 1e3 * sums["seconds"] / sums["num_tasks"]
    print("planning time per task: " + ", ".join(f"{p} {v:.3g} ms" for p, v in ms.items()))
    sums.assign(ms_per_task=ms).drop(columns="seconds").to_csv(out / "planning_time.csv")
    print(f"benchmark took {time.perf_counter() - t:.1f} s")
    return 0


def cmd_certify(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from benchmark.certificates import make_certificates, read_certificates

    t0 = time.perf_counter()
    for split in args.split:
        for task in select_tasks(args.tasks):
            t = time.perf_counter()
            bar = partial(tqdm, desc=task.name, leave=False, total=len(task.episodes[split]))
            path = make_certificates(
                task,
                split,
                args.time_limit,
                args.out,
                progress=bar,
                workers=args.workers,
                backend=args.backend,
                address=args.address,
            )
            certs = read_certificates(task, split, args.out)
            proven = sum(c.status == "optimal" for c in certs)
            print(
                f"{task.name}/{split}: {len(certs)} episodes, {proven} proven to 1e-6, worst gap "
                f"{max(c.gap for c in certs):.1e}, {time.perf_counter() - t:.0f} s -> {path}"
            )
    print(f"certify took {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from benchmark.replay import VIDEO_SUFFIXES, placement_report, replay, write_video

    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--out {out}: expected a file ending in {' or '.join(VIDEO_SUFFIXES)}")
    t = time.perf_counter()
    rep = replay(
        args.task,
        args.policy,
        split=args.split,
        episode=args.episode,
        seed=args.seed,
        frames=args.frames,
        color_by=args.color_by,
    )
    video = write_video(rep.frames, out, args.fps)
    report = placement_report(rep, out.with_name(out.stem + "-report.png"))
    which = f"seed {args.seed}" if args.seed is not None else f"episode {args.episode}"
    print(
        f"{rep.task.name}/{args.split} ({which}, {rep.instance.num_tasks} tasks), policy {rep.policy}: "
        f"{len(rep.frames)} frames -> {video}; "
        f"report -> {report} ({time.perf_counter() - t:.1f} s)"
    )
    return 0


def add_subcommands(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="list the benchmark's tasks: what makes each hard, its splits")
    tasks.set_defaults(func=cmd_tasks)

    bench = sub.add_parser("benchmark", help="score policies on the tasks' fixed episodes against certified optima")
    bench.add_argument(
        "--policy",
        nargs="+",
        required=True,
        metavar="P",
        help="heuristic name, online_mpc, rolling_milp, oracle, a saved model .zip (a pickle: only trusted "
        "files; a path with {task} for one model per task), or module:attr (act(obs, mask) / act_batch)",
    )
    bench.add_argument("--tasks", default="all", help="'all' or comma-separated task names (geoinfer tasks)")
    bench.add_argument("--split", default="test", choices=EVAL_SPLITS)
    bench.add_argument("--out", required=True, metavar="DIR")
    bench.add_argument("--certificates", default=None, metavar="DIR", help="certificate folder (default: shipped)")
    bench.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    bench.add_argument("--no-figures", action="store_true", help="write the CSV and the leaderboard only")
    add_backend_arguments(bench, "(task, policy) pairs planned side by side (default 1)", 1)
    bench.set_defaults(func=cmd_benchmark)

    cert = sub.add_parser("certify", help="solve and write the optimality certificates of the tasks' fixed episodes")
    cert.add_argument("--tasks", default="all", help="'all' or comma-separated task names")
    cert.add_argument("--split", nargs="+", default=["test", "validation"], choices=EVAL_SPLITS)
    cert.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="per episode (default 60 s)")
    cert.add_argument("--out", default=None, metavar="DIR", help="folder (default: the package's certificates)")
    add_backend_arguments(cert, "episodes solved side by side, one solver thread each (default 1)", 1)
    cert.set_defaults(func=cmd_certify)

    rep = sub.add_parser("replay", help="play one episode with a policy: a map video and a placement report")
    rep.add_argument("--task", required=True, help="a benchmark task (geoinfer tasks)")
    rep.add_argument("--policy", required=True, metavar="P", help="anything geoinfer benchmark --policy takes")
    rep.add_argument("--split", default="test", choices=EVAL_SPLITS)
    rep.add_argument("--episode", type=int, default=0, help="which fixed episode of the split (default 0)")
    rep.add_argument("--seed", type=int, default=None, help="draw a day of the split with this seed instead")
    rep.add_argument(
        "--out", required=True, metavar="FILE.gif|FILE.mp4", help="the video; the report is written beside it"
    )
    rep.add_argument("--frames", type=int, default=120, help="frames over the episode (default 120)")
    rep.add_argument("--fps", type=float, default=8.0)
    rep.add_argument("--color-by", default="price", choices=("price", "carbon"), help="what colours the regions")
    rep.set_defaults(func=cmd_replay)
