"""What a long-running service does once its start-up objects (unit tree, catalog, clients) exist."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable


def freeze_startup_objects() -> None:
    """Move every object alive now out of the garbage collector's reach.

    The unit tree and what the frameworks load are ~100,000 objects that live as long as the
    process. Left in the collector's generations, each full collection walks them all, and the
    pause lands on whichever request happens to trigger it (docs/benchmarks.md). Frozen, a full
    collection only walks what requests allocated. Call it once, at the end of start-up.
    """
    gc.collect()
    gc.freeze()


async def freeze_survivors_forever(
    every_s: float = 10.0,
    full_every_s: float = 3600.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Keep a long-running process's growing state out of the garbage collector's reach.

    The aggregator's state (every unit's figures and totals documents: millions of small objects)
    grows after start-up; left in the collector's oldest generation, each full collection walks all
    of it (a pause growing with the state) and lands on whichever report is being applied. Every
    ``every_s`` this freezes what is alive, without collecting (a forced collection is itself the
    pause to avoid); the young generations still collect what dies young, and frozen objects are
    still freed by reference counting when dropped. Only cycles that die after being frozen wait:
    every ``full_every_s`` everything is unfrozen and collected once."""
    last_full = clock()
    while True:
        await sleep(every_s)
        if clock() - last_full >= full_every_s:
            gc.unfreeze()
            gc.collect()
            last_full = clock()
        gc.freeze()
