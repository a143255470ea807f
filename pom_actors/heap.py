"""Garbage-collector settings for the hot-path actors.

A manager, the rule engine and a gateway allocate tens of thousands of short-lived objects
per batch beside a large long-lived heap (Ray, the modules, caches). With CPython's defaults
a full collection, which walks all of it, runs every few thousand attempts. Freezing what
exists at start-up takes it out of every collection, and a larger young generation makes
collections rarer; nothing here is cyclic garbage that needs prompt collection.
"""
from __future__ import annotations

import gc
import time

YOUNG_THRESHOLD = 50_000


def tune_for_batches() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)


class HeapKeeper:
    """Keeps a process's full collections off its hot path while its long-lived heap grows
    (the Agent Manager's agents and change feed; a gateway's agent WebSockets). Measured at
    10,000 agents (bench/agents.py): a full collection stopped the Agent Manager for 80–170 ms
    and the gateway for 1.6 s, each time delaying every screen pop queued meanwhile.

    `settle()`, called at the process's quiet points, at most every `every_s`: a young
    collection (cyclic garbage among recent objects is still found), then `gc.freeze()`
    (O(1)): what survived leaves every automatic collection, which then only walks what was
    allocated since. Garbage cycles among frozen objects (a closed connection's, say) are
    collected by one full pass every `full_every_s` — the only full-heap pause left.

    The young collection walks what survived since the last one, so its pause is proportional
    to `every_s`: at 10,000 desktops, once a second stopped the gateway for 13 ms on average
    (up to 94 ms) while its screen pops waited; five times a second does the same work in
    pauses a fifth as long."""

    def __init__(self, every_s: float = 0.2, full_every_s: float = 3600.0, clock=time.monotonic):
        self.every_s, self.full_every_s, self.clock = every_s, full_every_s, clock
        self.last = self.last_full = self.clock()
        self.full = 0

    def settle(self) -> bool:
        """Freeze the heap if `every_s` passed since the last time; True if it did."""
        now = self.clock()
        if now - self.last < self.every_s:
            return False
        self.last = now
        if now - self.last_full >= self.full_every_s:
            self.last_full, self.full = now, self.full + 1
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()
        return True
