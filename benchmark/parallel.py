"""Embarrassingly parallel work (certificates, benchmark scoring, the paper's settings) on one of two backends.

* ``process``: a local process pool (:class:`concurrent.futures.ProcessPoolExecutor`), ``workers`` processes.
* ``ray``: Ray tasks, one CPU each, ``workers`` at a time. With no ``address`` an embedded Ray is started in
  this process with ``workers`` CPUs, listening on the loopback interface only; with ``address`` (``auto`` or
  ``HOST:PORT``) the tasks go to that cluster. Every node must have geoinfer installed.
  Ray is an optional extra: ``pip install "geoinfer[ray]"``.

:func:`pmap` returns results in the order of the inputs, :func:`imap_unordered` as they finish; either way a
run is the same whichever backend did the work.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from types import ModuleType
from typing import Any, TypeVar

BACKENDS = ("process", "ray")
RAY_EXTRA = 'pip install "geoinfer[ray]"  (or, in a checkout: pip install -e ".[ray]")'
# Ray advertises and binds the machine's address unless told that the node is not part of a cluster; an
# embedded instance is not, so it stays on the loopback interface (the variable's name is Ray's).
_LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# no usage reports (machines may be offline), Tune's plain reporter (silent at verbose=0)
_QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0"}

T = TypeVar("T")
R = TypeVar("R")


class MissingExtra(ImportError):
    """An optional extra that a command needs is not installed (the message says how to install it)."""


def require_ray(what: str = "this command") -> None:
    """:class:`MissingExtra` (an ``ImportError``) saying how to install the extra when Ray is missing.

    Ray is not imported here: an embedded Ray reads its settings when ray is first imported (:func:`init_ray`).
    """
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        found = False
    if not found:
        raise MissingExtra(f"{what} needs Ray, an optional extra: {RAY_EXTRA}")


def init_ray(address: str | None = None, num_cpus: int | None = None, what: str = "--backend ray") -> ModuleType:
    """Connect to Ray once per process: the cluster at ``address``, or an embedded one with ``num_cpus`` CPUs.

    An already connected Ray is kept as it is (a test cluster, or a user's own ``ray.init``).
    """
    require_ray(what)
    env = {**_QUIET, **(_LOOPBACK_ONLY if address is None else {})}
    for key, value in env.items():
        os.environ.setdefault(key, value)  # read when ray is imported: before the import
    import ray

    if not ray.is_initialized():
        if address is None:  # "local": a new instance, never a cluster that RAY_ADDRESS or `ray start` left here
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray


def check_backend(backend: str, workers: int) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: expected one of {BACKENDS}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers = {workers!r}: expected an integer >= 1")


def pmap(
    fn: Callable[..., R],
    args: Iterable[Sequence[Any]],
    *,
    workers: int = 1,
    backend: str = "process",
    address: str | None = None,
) -> Iterator[R]:
    """``fn(*a)`` for each ``a`` in ``args``, yielded in input order (see :func:`imap_unordered`)."""
    done: dict[int, R] = {}
    at = 0
    for i, result in imap_unordered(fn, args, workers=workers, backend=backend, address=address):
        done[i] = result
        while at in done:
            yield done.pop(at)
            at += 1


def imap_unordered(
    fn: Callable[..., R],
    args: Iterable[Sequence[Any]],
    *,
    workers: int = 1,
    backend: str = "process",
    address: str | None = None,
) -> Iterator[tuple[int, R]]:
    """``(i, fn(*args[i]))`` for every job, as each finishes.

    At most ``workers`` jobs run at once, and a free worker takes the next job in input order, on either
    backend (Ray would otherwise queue jobs on its workers ahead of time, which leaves one busy with long
    jobs while another idles). ``fn`` must be a module-level function (both backends pickle it by name) and its
    arguments picklable. ``workers == 1`` with the process backend runs in this process (no pool). Ray
    retries a job whose worker died (a lost node) up to three times; a job that raises is not retried: its
    error is raised here, and the jobs still running are cancelled.
    """
    check_backend(backend, workers)
    jobs = [tuple(a) for a in args]
    if backend == "ray":
        yield from _ray_unordered(fn, jobs, workers, address)
        return
    if address is not None:
        raise ValueError(f"address = {address!r}: only the ray backend connects to a cluster")
    if workers == 1 or len(jobs) <= 1:
        for i, a in enumerate(jobs):
            yield i, fn(*a)
        return
    # Workers start from a fresh fork server, never a fork of this process: a fork made after torch (or any
    # OpenMP user) has started its thread pool here can hang in the child's first parallel op (seen: a benchmark
    # of saved models, each worker stuck in torch's orthogonal init). Spawn where there is no fork server (Windows).
    fresh = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(fresh)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx)
    futures = {pool.submit(fn, *a): i for i, a in enumerate(jobs)}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an abandoned map (an error) starts nothing more


def _apply(fn: Callable[..., R], args: tuple[Any, ...]) -> R:
    """``fn(*args)``: the one remote function, so that ``fn`` may be any picklable callable (a builtin too)."""
    return fn(*args)


def _ray_unordered(
    fn: Callable[..., R], jobs: list[tuple[Any, ...]], workers: int, address: str | None
) -> Iterator[tuple[int, R]]:
    if not jobs:
        return
    ray = init_ray(address, num_cpus=workers)
    remote = ray.remote(num_cpus=1, max_retries=3)(_apply)
    pending: dict[Any, int] = {}
    following = iter(enumerate(jobs))
    try:
        while True:
            while len(pending) < workers:
                nxt = next(following, None)
                if nxt is None:
                    break
                pending[remote.remote(fn, nxt[1])] = nxt[0]
            if not pending:
                return
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            yield i, ray.get(ref)
    finally:
        for ref in pending:  # an abandoned map (an error, a closed generator) frees the cluster
            ray.cancel(ref)


def add_backend_arguments(parser: Any, workers_help: str, workers_default: int | None = None) -> None:
    """``--workers``, ``--backend`` and ``--address`` on an argparse parser (the commands with parallel work)."""
    parser.add_argument("--workers", type=int, default=workers_default, metavar="N", help=workers_help)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="process",
        help="where the workers run: a local process pool, or Ray (an optional extra) (default: process)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="with --backend ray: the cluster to use (default: an embedded Ray on this machine)",
    )
