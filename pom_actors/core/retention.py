"""Retention and purges, as pure code: how long each kind of row is kept, when the director
starts a purge, and how a purge walks a table in short batches (docs/operations.md,
"Retention and purges"). `store/purges.py` runs the statements, `services/purges.py` the runs.

* **Targets** (`TARGETS`, in the order a run purges them): published outbox events, agent
  events (never an agent's latest: it rebuilds the Agent Manager), finished imports (their
  rejected rows and chunks, then the import itself), and the ledger's attempts — of ended
  jobs only (completed, stopped, failed), never of a job that can still run.
* Each target is kept `keep_days`; its **cut-off** is measured on the clock its rows are
  stamped with: the business clock for attempts and agent events, the database's for the
  outbox and imports (`cutoffs`).
* The director **decides** at each tick (`decide`): a pending run (asked for through the API,
  or interrupted) goes on; else a scheduled run is due `every_s` after the last one started.
  While the load monitor's "purges deferred" restriction holds, nothing deletes: a due run is
  recorded as deferred and starts when the restriction lifts.
* An id-keyed table is walked from its lowest id up to the first id whose row is newer than
  the cut-off (`boundary`: a bisection over ids, rows being appended in time order), `batch`
  rows at most per statement, each statement its own short transaction.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic

from .load import Restrictions


@dataclass(frozen=True)
class Target:
    name: str
    clock: Literal["business", "database"]    # what the rows' time stamps are measured on
    what: str


TARGETS: tuple[Target, ...] = (
    Target("outbox", "database", "published outbox events (never one not yet published)"),
    Target("agent_events", "business", "agent transitions (never an agent's latest)"),
    Target("imports", "database", "finished imports with their rejected rows and chunks"),
    Target("attempts", "business", "ledger rows of ended jobs (never of a job that can still run)"),
)
TARGET_NAMES = tuple(t.name for t in TARGETS)
RUN_STATES = ("queued", "deferred", "running", "done", "failed")
PENDING = ("queued", "deferred", "running")     # a run the director must (still) carry out
TRIGGERS = ("schedule", "manual")


class RetentionConfig(pydantic.BaseModel):
    """Retention and the purge schedule (stored in `retention_config`, changed through
    `PUT /api/v1/purges/config`; a document's missing fields take the defaults)."""
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    enabled: bool = pydantic.Field(True, description="the director purges on its schedule")
    every_s: float = pydantic.Field(86_400.0, ge=60, le=30 * 86_400, description="seconds between scheduled runs")
    batch: int = pydantic.Field(1000, ge=1, le=50_000, description="rows deleted per statement (transaction)")
    pause_s: float = pydantic.Field(0.02, ge=0, le=10, description="seconds between two batches")
    keep_days: dict[str, float] = pydantic.Field(
        default_factory=lambda: dict(DEFAULT_KEEP_DAYS),
        description="per target: rows older than this many days are purged")

    @pydantic.field_validator("keep_days")
    @classmethod
    def _targets(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(TARGET_NAMES))
        if unknown:
            raise ValueError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGET_NAMES)}")
        bad = sorted(k for k, v in value.items() if not 1 <= v <= 36_500)
        if bad:
            raise ValueError(f"keep_days of {', '.join(bad)} must be between 1 and 36500")
        return {**DEFAULT_KEEP_DAYS, **value}

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


DEFAULT_KEEP_DAYS: dict[str, float] = {"outbox": 7, "agent_events": 180, "imports": 30, "attempts": 400}


def cutoffs(config: RetentionConfig, business_now: datetime, database_now: datetime) -> dict[str, datetime]:
    """Per target: rows stamped before this are purged."""
    now = {"business": business_now, "database": database_now}
    return {t.name: now[t.clock] - timedelta(days=config.keep_days[t.name]) for t in TARGETS}


@dataclass(frozen=True)
class Decision:
    """What the director does about purges this tick. `action`: `run` (carry out `run_id`),
    `schedule` (record a new scheduled run, deferred if `deferred`), `defer` (mark `run_id`
    deferred) or `idle`; `why` is for the log and the run's message."""
    action: Literal["run", "schedule", "defer", "idle"]
    run_id: int | None = None
    deferred: bool = False
    why: str = ""


def decide(config: RetentionConfig, now: datetime, pending: Mapping[str, Any] | None,
           last_scheduled: datetime | None, restrictions: Restrictions) -> Decision:
    """`pending`: the oldest run not finished (id, state), if any; `last_scheduled`: when the
    latest scheduled run was created (on the database's clock, like `now`)."""
    held = not restrictions.allows("purge")
    why = "purges deferred under load (alarms: " + ", ".join(restrictions.because.get("purges_deferred", [])) + ")"
    if pending is not None:
        if held:
            return Decision("defer" if pending["state"] != "deferred" else "idle", pending["id"], True, why)
        return Decision("run", pending["id"])
    if config.enabled and (last_scheduled is None or (now - last_scheduled).total_seconds() >= config.every_s):
        return Decision("schedule", deferred=held, why=why if held else "due")
    return Decision("idle")


def boundary(lo: int, hi: int, is_old: Callable[[int], bool | None]) -> int:
    """The first id past the old rows of a table whose ids run from `lo` to `hi` in time order:
    `is_old(x)` tells whether the first row with an id at or over `x` is older than the cut-off
    (None: no row there). O(log(hi - lo)) probes. Rows out of order near the boundary are left
    for the next run (each delete checks the cut-off itself)."""
    if hi < lo or not is_old(lo):
        return lo
    while lo < hi:                      # invariant: the row at/after lo is old
        mid = (lo + hi + 1) // 2
        if is_old(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo + 1
