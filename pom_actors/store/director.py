"""The director's statements, on one connection: jobs, their lifecycle, leases and zones, and
the campaigns whose schedules it runs (`store.jobs`, `store.zones` and `store.catalog` hold
the SQL)."""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from ..core.finish import FinishCriteria, JobCounts
from ..core.lifecycle import JobState
from ..core.strategy import Strategy
from ..core.zones import Zone
from . import catalog, jobs, zones
from .base import Store


class DirectorStore(Store):
    """A statement that waits for a lock gives up after a while (the tick fails, is logged
    and runs again): a frozen manager's locks must not hang every job's tick."""

    SESSION = {"lock_timeout": "2s"}

    def transaction(self) -> AbstractContextManager:
        return self.conn.transaction()

    # -- campaigns and schedules ------------------------------------------------------------
    def campaign(self, ref: int | str) -> dict[str, Any]:
        return catalog.campaign(self.conn, ref)

    def campaigns(self) -> list[dict[str, Any]]:
        return catalog.campaigns(self.conn)

    def strategy(self, strategy_id: int) -> Strategy:
        return catalog.load_strategy(self.conn, strategy_id)

    def mark_scheduled(self, campaign_id: int, at: datetime) -> None:
        """The campaign's schedule has been served up to `at`."""
        self.conn.execute("UPDATE campaigns SET last_scheduled_at = %s WHERE id = %s", (at, campaign_id))

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, campaign_id: int, shards: int, managers: int, now: datetime, zone: str | None,
                   default_zone: str) -> int:
        return jobs.create_job(self.conn, campaign_id, shards, managers, now, zone, default_zone)

    def job(self, job_id: int) -> dict[str, Any]:
        return jobs.job(self.conn, job_id)

    def jobs(self, states: tuple[str, ...]) -> list[dict[str, Any]]:
        return jobs.jobs(self.conn, states)

    def set_state(self, job_id: int, expected: str, new: JobState | str, *, reason: str | None = None,
                  finishing: bool | None = None) -> bool:
        return jobs.set_state(self.conn, job_id, expected, new, reason=reason, finishing=finishing)

    def lock(self, job_id: int) -> str | None:
        return jobs.lock(self.conn, job_id)

    def counts(self, job_id: int, criteria: FinishCriteria | None, now: datetime) -> JobCounts:
        return jobs.counts(self.conn, job_id, criteria, now)

    def in_flight(self, job_id: int) -> int:
        return jobs.in_flight(self.conn, job_id)

    def cancel_open(self, job_id: int) -> int:
        return jobs.cancel_open(self.conn, job_id)

    # -- leases ------------------------------------------------------------------------------
    def leases(self, job_id: int) -> list[dict[str, Any]]:
        return jobs.leases(self.conn, job_id)

    def grant(self, job_id: int, holders: Mapping[int, str], ttl_s: float) -> None:
        jobs.grant(self.conn, job_id, holders, ttl_s)

    def release_all(self, job_id: int) -> None:
        jobs.release_all(self.conn, job_id)

    # -- zones -------------------------------------------------------------------------------
    def zones(self) -> dict[str, Zone]:
        return zones.zone_map(self.conn)

    def ensure_zone(self, name: str) -> None:
        zones.ensure(self.conn, name)

    def check_zone(self, name: str) -> None:
        zones.check_exists(self.conn, name)

    def set_placed(self, job_id: int, expected: str | None, zone: str | None) -> bool:
        return zones.set_placed(self.conn, job_id, expected, zone)
