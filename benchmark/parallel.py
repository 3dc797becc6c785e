"""Embarrassingly parallel work (certificates, benchmark scoring, the paper's settings) on one of two backends.

* ``process``: a local process pool (:class:`concurrent.futures.ProcessPoolExecutor`), ``workers`` processes.
* ``ray``: Ray tasks, one CPU each. With no ``address`` an embedded Ray is started in this process with
  ``workers`` CPUs, listening on the loopback interface only; with ``address`` (``auto`` or ``HOST:PORT``) the
  tasks go to that cluster, which decides how many run at once. Every node must have geoinfer installed.
  Ray is an optional extra: ``pip install "geoinfer[ray]"``.

Both return results in the order of the inputs, so a run is the same whichever backend did the work.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
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


def require_ray(what: str = "this command") -> None:
    """``ImportError`` saying how to install the extra when Ray is missing (without importing it: the settings
    of an embedded Ray are read when ray is first imported, by :func:`init_ray`)."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        found = False
    if not found:
        raise ImportError(f"{what} needs Ray, an optional extra: {RAY_EXTRA}")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> ModuleType:
    """Connect to Ray once per process: the cluster at ``address``, or an embedded one with ``num_cpus`` CPUs.

    An already connected Ray is kept as it is (a test cluster, or a user's own ``ray.init``).
    """
    require_ray()
    env = {**_QUIET, **(_LOOPBACK_ONLY if address is None else {})}
    for key, value in env.items():
        os.environ.setdefault(key, value)  # read when ray is imported: before the import
    import ray

    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
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
    """``fn(*a)`` for each ``a`` in ``args``, yielded in input order as each becomes available.

    ``fn`` must be a module-level function (both backends pickle it by name) and its arguments picklable.
    ``workers == 1`` with the process backend runs in this process (no pool). Ray retries a task whose
    worker died (a lost node) up to three times; a task that raises is not retried: its error is raised here.
    """
    check_backend(backend, workers)
    jobs = [tuple(a) for a in args]
    if backend == "ray":
        ray = init_ray(address, num_cpus=workers)
        remote = ray.remote(num_cpus=1, max_retries=3)(fn)
        refs = [remote.remote(*a) for a in jobs]
        try:
            for ref in refs:
                yield ray.get(ref)
        finally:
            for ref in refs:  # an abandoned map (an error, a closed generator) frees the cluster
                ray.cancel(ref)
        return
    if address is not None:
        raise ValueError(f"address = {address!r}: only the ray backend connects to a cluster")
    if workers == 1 or len(jobs) <= 1:
        for a in jobs:
            yield fn(*a)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(fn, *a) for a in jobs]
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


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
