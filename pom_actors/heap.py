"""Garbage-collector settings for the hot-path actors.

A manager, the rule engine and a gateway allocate tens of thousands of short-lived objects
per batch beside a large long-lived heap (Ray, the modules, caches). With CPython's defaults
a full collection, which walks all of it, runs every few thousand attempts. Freezing what
exists at start-up takes it out of every collection, and a larger young generation makes
collections rarer; nothing here is cyclic garbage that needs prompt collection.
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_for_batches() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)
