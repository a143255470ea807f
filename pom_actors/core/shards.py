"""Which manager holds which shard of a job.

A job's work items are split into `n` shards by contact id; the director leases shards to the
job's managers. Every moved shard costs a lease takeover (epoch bump, in-doubt reconciliation),
so reallocation after a manager joins or dies keeps as many current holders as balance allows.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence


def shard_of(contact_id: int, n_shards: int) -> int:
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return contact_id % n_shards


def allocate(shards: Sequence[int], managers: Sequence[str],
             current: Mapping[int, str]) -> dict[int, str]:
    """Assign every shard to a live manager: balanced (counts differ by at most 1), with the
    fewest moves from `current`, and the same answer for the same inputs in any order.

    The managers that already hold the most shards get the larger share, each keeps its
    lowest-numbered shards up to its share, and the rest go, lowest first, to the managers
    below their share in name order. No managers: nothing is assigned.
    """
    live = sorted(set(managers))
    todo = sorted(set(shards))
    if not live:
        return {}
    held: dict[str, list[int]] = {m: [] for m in live}
    for shard in todo:
        holder = current.get(shard)
        if holder in held:
            held[holder].append(shard)
    base, extra = divmod(len(todo), len(live))
    by_holding = sorted(live, key=lambda m: (-len(held[m]), m))
    share = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_holding)}
    result: dict[int, str] = {}
    for m in live:
        for shard in held[m][:share[m]]:
            result[shard] = m
    free = iter([s for s in todo if s not in result])
    for m in live:
        for _ in range(max(0, share[m] - len(held[m]))):
            result[next(free)] = m
    return dict(sorted(result.items()))


def moves(before: Mapping[int, str], after: Mapping[int, str]) -> dict[int, tuple[str | None, str]]:
    """Shard -> (old holder or None, new holder) for shards of `after` whose holder changed.

    Shards absent from `after` (no live manager) are not listed: the caller revokes them.
    """
    return {shard: (before.get(shard), holder) for shard, holder in sorted(after.items())
            if before.get(shard) != holder}


def choose_gateway(live: Sequence[str], local: Sequence[str], key: str) -> str | None:
    """The gateway a manager sends its orders to: one on its own server when there is one,
    else any live one; managers spread over several by `key` (stable across processes)."""
    pool = sorted(local) or sorted(live)
    return pool[zlib.crc32(key.encode()) % len(pool)] if pool else None
