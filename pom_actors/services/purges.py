"""The director's purge duty, as a plain class (docs/operations.md, "Retention and purges").

At a director tick (`tick`, at most every `CHECK_S`) it asks `core.retention.decide` what to
do: record a scheduled run when one is due, mark a pending run deferred while the load
monitor's "purges deferred" restriction holds, or carry out the oldest pending run — in a
thread of its own on its own connection, so the director's tick (leases, drains) never waits
for a purge.

A run (`carry_out`) fixes its cut-offs when it first starts (kept on the run, so a run resumed
after a restart deletes against the same ones), then walks the targets in order, one short
batch per statement, recording its counts after each batch and pausing `pause_s` between two.
Between batches it re-reads the restrictions (at most every `RESTRICTIONS_S`): once purges are
deferred it stops, marked deferred, and the director resumes it when the restriction lifts.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a `store.purges.
PurgeStore`; `clock` the business clock; `sleep`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from ..core.clock import Clock
from ..core.retention import TARGETS, Decision, RetentionConfig, boundary, cutoffs, decide

log = logging.getLogger(__name__)
CHECK_S = 2.0            # how often a tick looks at the schedule and the pending runs
RESTRICTIONS_S = 1.0     # how often a run re-reads the load restrictions between batches
PAGE = 100               # jobs or imports looked up at a time


class Deferred(Exception):
    """The "purges deferred" restriction came into force during a run."""


class PurgeDuty:
    def __init__(self, *, open_store: Callable[[], Any], clock: Clock, sleep: Callable[[float], None] = time.sleep):
        self.open_store, self.clock, self.sleep = open_store, clock, sleep
        self.store: Any = None
        self.worker: threading.Thread | None = None
        self.checked = float("-inf")

    # -- at a director tick ------------------------------------------------------------------------
    def tick(self) -> Decision | None:
        """Start what is due (never waits for a purge); the decision taken, None if not looked."""
        if self.busy() or time.monotonic() - self.checked < CHECK_S:
            return None
        self.checked = time.monotonic()
        store = self._store()
        decision = decide(store.config(), store.database_now(), store.pending_run(), store.last_scheduled(),
                          store.restrictions())
        if decision.action == "schedule":
            run = store.create_run("schedule", state="deferred" if decision.deferred else "queued",
                                   message=decision.why if decision.deferred else None)
            log.info("purge %s scheduled%s", run["id"], " (deferred: under load)" if decision.deferred else "")
            if not decision.deferred:
                self._start(run["id"])
        elif decision.action == "defer":
            store.update_run(decision.run_id, state="deferred", message=decision.why)
            log.info("purge %s deferred: %s", decision.run_id, decision.why)
        elif decision.action == "run":
            self._start(decision.run_id)
        return decision

    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def _store(self) -> Any:
        if self.store is None or self.store.broken:
            self.store = self.open_store()
        return self.store

    def _start(self, run_id: int) -> None:
        self.worker = threading.Thread(target=self.carry_out, args=(run_id,), name=f"purge-{run_id}", daemon=True)
        self.worker.start()

    # -- a run -----------------------------------------------------------------------------------
    def carry_out(self, run_id: int) -> str:
        """Carry out (or resume) a run; its final state: done, deferred or failed (left running
        if the database went away: resumed at a later tick)."""
        store = self._store()
        run = store.run(run_id)
        config = store.config()
        cuts = {k: datetime.fromisoformat(v) for k, v in (run["cutoffs"] or {}).items()}
        if not cuts:
            cuts = cutoffs(config, self.clock.now(), store.database_now())
            store.update_run(run_id, cutoffs={k: v.isoformat() for k, v in cuts.items()},
                             started_at=store.database_now())
        counts = {t.name: int((run["counts"] or {}).get(t.name, 0)) for t in TARGETS}
        batches = int(run["batches"] or 0)
        store.update_run(run_id, state="running", message=None)
        checked = time.monotonic()
        try:
            for target in TARGETS:
                for deleted in self.batches(target.name, cuts[target.name], config):
                    counts[target.name] += deleted
                    batches += 1
                    store.update_run(run_id, counts=counts, batches=batches)
                    if time.monotonic() - checked >= RESTRICTIONS_S:
                        checked = time.monotonic()
                        if not (held := store.restrictions()).allows("purge"):
                            raise Deferred(", ".join(held.because.get("purges_deferred", [])))
                    if config.pause_s:
                        self.sleep(config.pause_s)
        except Deferred as exc:
            store.update_run(run_id, state="deferred", message=f"purges deferred under load (alarms: {exc})")
            return self._ended(run_id, "deferred", counts)
        except Exception as exc:
            if store.broken:             # the database away: still running, resumed later
                log.warning("purge %s interrupted: %s", run_id, exc)
                return self._ended(run_id, "running", counts)
            log.exception("purge %s failed", run_id)
            store.update_run(run_id, state="failed", message=f"{type(exc).__name__}: {exc}"[:1000],
                             finished_at=store.database_now())
            return self._ended(run_id, "failed", counts)
        store.update_run(run_id, state="done", finished_at=store.database_now())
        return self._ended(run_id, "done", counts)

    @staticmethod
    def _ended(run_id: int, state: str, counts: dict[str, int]) -> str:
        log.info("purge %s %s: %s", run_id, state, counts)
        return state

    def batches(self, target: str, cutoff: datetime, config: RetentionConfig) -> Iterator[int]:
        """The rows each batch of `target` deletes (the caller records and paces)."""
        store, n = self.store, config.batch
        if target in ("outbox", "agent_events"):
            span = store.id_range(target)
            if span is None:
                return
            below = boundary(span[0], span[1], lambda x: store.is_old(target, cutoff, x))
            after = span[0] - 1
            while True:
                deleted, top = store.delete_ids(target, cutoff, after, below, n)
                if deleted:
                    yield deleted
                if deleted < n:
                    return
                after = top
        elif target == "imports":
            yield from self._paged(lambda after: store.old_imports(cutoff, after, PAGE),
                                   lambda i: store.delete_import_rows(i, n), until_zero=True, n=n)
        else:
            yield from self._paged(lambda after: store.ended_jobs_with_old_attempts(cutoff, after, PAGE),
                                   lambda j: store.delete_attempts(j, cutoff, n), until_zero=False, n=n)

    @staticmethod
    def _paged(page: Callable[[int], list[int]], delete: Callable[[int], int], *, until_zero: bool,
               n: int) -> Iterator[int]:
        """For each id of each page: delete batches until one deletes nothing (`until_zero`: the
        last step removes the parent row) or fewer than `n`."""
        after = 0
        while ids := page(after):
            for key in ids:
                while deleted := delete(key):
                    yield deleted
                    if not until_zero and deleted < n:
                        break
            if len(ids) < PAGE:
                return
            after = ids[-1]
