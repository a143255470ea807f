"""The gateway's record of every order it took: the media side of "never lost, never twice".

After a crash the new shard holder reconciles its in-doubt attempts against this record, so
the record answers three things: was this attempt id ever received, did it complete, and
how. It also fences: an order whose epoch is older than the newest seen for its
(job, shard) comes from a deposed holder and is refused before anything is dialled.
Pure bookkeeping: no I/O, no clock.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Mapping, Sequence

from pom_actors.core.orders import COMPLETED, PENDING, Order, OrderRecord, Outcome, Refusal

DUPLICATE = "duplicate attempt id"


class OrderBook:
    def __init__(self) -> None:
        # attempt id -> its epoch while pending, its outcome (which carries the epoch) once
        # complete: no object per order beyond what the caller made (100,000 orders/s).
        self._entries: dict[str, int | Outcome] = {}
        self._epochs: dict[int, dict[int, int]] = {}  # job -> shard -> newest epoch seen
        self._refused: Counter[str] = Counter()
        self._completed = 0

    def accept(self, orders: Sequence[Order]) -> tuple[list[Order], list[Refusal]]:
        """Record the orders that may go out; refuse repeats and orders of a stale epoch.

        Orders are taken in sequence, so a newer epoch earlier in the same batch already
        fences an older one after it. The newest epoch per (job, shard) only ever grows."""
        entries, epochs = self._entries, self._epochs
        accepted: list[Order] = []
        refused: list[Refusal] = []
        for order in orders:
            if order.attempt_id in entries:
                refused.append(Refusal(order.attempt_id, DUPLICATE))
                self._refused[DUPLICATE] += 1
                continue
            shards = epochs.get(order.job_id)
            if shards is None:
                shards = epochs[order.job_id] = {}
            newest = shards.get(order.shard)
            if newest is not None and order.epoch < newest:
                refused.append(Refusal(order.attempt_id, f"stale epoch {order.epoch} < {newest}"))
                self._refused["stale epoch"] += 1
                continue
            if newest is None or order.epoch > newest:
                shards[order.shard] = order.epoch
            entries[order.attempt_id] = order.epoch
            accepted.append(order)
        return accepted, refused

    def fence(self, job_id: int, epochs: Mapping[int, int]) -> None:
        """Raise the newest epoch of shards to `epochs` before any order of that epoch
        arrives: a new shard holder calls this before it looks up what its predecessor left
        in flight, so a late order of the predecessor can no longer be accepted here."""
        shards = self._epochs.setdefault(job_id, {})
        for shard, epoch in epochs.items():
            if epoch > shards.get(shard, -1):
                shards[shard] = epoch

    def complete(self, outcome: Outcome) -> None:
        """Record how an accepted attempt ended. The first outcome stands; a later one for
        the same attempt is ignored. An attempt id never accepted is a KeyError."""
        entry = self._entries[outcome.attempt_id]
        if entry.__class__ is int:
            if outcome.epoch != entry:
                outcome = replace(outcome, epoch=entry)
            self._entries[outcome.attempt_id] = outcome
            self._completed += 1

    def lookup(self, attempt_ids: Iterable[str]) -> dict[str, OrderRecord]:
        """The record of each attempt id received; ids never received are absent, which tells
        the caller the order never reached this gateway."""
        found: dict[str, OrderRecord] = {}
        for attempt_id in attempt_ids:
            entry = self._entries.get(attempt_id)
            if entry is None:
                continue
            if entry.__class__ is int:
                found[attempt_id] = OrderRecord(attempt_id, PENDING, entry)
            else:
                found[attempt_id] = OrderRecord(attempt_id, COMPLETED, entry.epoch, entry.code, entry.at,
                                                dict(entry.details))
        return found

    def order_ids(self) -> list[str]:
        """Every attempt id ever accepted; a dict key each, so never one twice."""
        return list(self._entries)

    def stats(self) -> dict:
        accepted = len(self._entries)
        return {
            "accepted": accepted,
            "refused": dict(self._refused),
            "pending": accepted - self._completed,
            "completed": self._completed,
        }
