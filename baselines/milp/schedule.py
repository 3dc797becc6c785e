"""Blocks solved side by side: ``workers`` at a time, largest first, under one shared wall-clock budget."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from baselines.milp.block import BlockSolution, SolveOptions, ensure_single_thread_scheduler, solve_block
from baselines.milp.pairs import Pairs
from envs.instance import Instance


class Budget:
    """Shares a wall-clock budget among blocks solved ``workers`` at a time.

    Each block is owed ``workers * (deadline - now) * size / total size``. A block may run while the
    worker-time left before the deadline exceeds what the other running blocks hold and what the blocks
    not started yet are owed; its allowance is renewed whenever it runs out and such time is free. So
    blocks that finish early leave their time to the others, and hard blocks use it. Times are
    ``time.perf_counter`` values.
    """

    def __init__(self, sizes: dict[int, int], deadline: float, workers: int) -> None:
        self._lock = threading.Lock()
        self._workers = workers
        total = max(sum(sizes.values()), 1)
        limit = deadline - time.perf_counter()
        self._owed = {b: workers * limit * n / total for b, n in sizes.items()}
        self._running: dict[int, float] = {}
        self.deadline = deadline

    def _grant(self, b: int, now: float) -> None:
        """Set ``b``'s allowance to the free worker-time (lock held)."""
        if math.isinf(self.deadline):
            self._running[b] = math.inf
            return
        held = sum(max(0.0, e - now) for r, e in self._running.items() if r != b)
        free = self._workers * (self.deadline - now) - held - sum(self._owed.values())
        self._running[b] = now + min(max(free, 0.0), self.deadline - now)

    def start(self, b: int) -> None:
        with self._lock:
            self._owed.pop(b)
            self._grant(b, time.perf_counter())

    def expired(self, b: int) -> bool:
        """Whether ``b`` must stop now (its allowance is over and no free time can renew it)."""
        now = time.perf_counter()
        if now <= self._running[b]:
            return False
        with self._lock:
            self._grant(b, now)
            return self._running[b] - now < 0.1

    def finish(self, b: int) -> None:
        with self._lock:
            del self._running[b]


def solve_blocks(
    inst: Instance, blocks: Sequence[Pairs], deadline: float, workers: int, opt: SolveOptions
) -> list[BlockSolution]:
    """Solve the blocks (each given by its pairs) directly, largest first, ``workers`` at a time, sharing the
    time until ``deadline`` (a ``time.perf_counter`` value, ``inf`` for none; see :class:`Budget`)."""
    ensure_single_thread_scheduler()
    order = sorted(range(len(blocks)), key=lambda b: -blocks[b].task.size)
    budget = Budget({b: int(blocks[b].task.size) for b in order}, deadline, workers)
    out: list[BlockSolution | None] = [None] * len(blocks)

    def run(b: int) -> None:
        budget.start(b)
        try:
            out[b] = solve_block(inst, blocks[b], budget.deadline, partial(budget.expired, b), opt)
        finally:
            budget.finish(b)

    if workers <= 1 or len(blocks) <= 1:
        for b in order:
            run(b)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(run, b) for b in order]:
                f.result()
    return [o for o in out if o is not None]
