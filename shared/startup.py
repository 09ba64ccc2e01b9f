"""What a long-running service does once its start-up objects (unit tree, catalog, clients) exist."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Move every object alive now out of the garbage collector's reach.

    The unit tree and what the frameworks load are ~100,000 objects that live as long as the
    process. Left in the collector's generations, each full collection walks them all: 17 ms
    measured here, landing on whichever request happens to trigger it (the read API's p99 at
    500 requests/s). Frozen, a full collection only walks what requests allocated. Call it once,
    at the end of start-up.
    """
    gc.collect()
    gc.freeze()
