"""Everything the CampaignDirector does, as a plain class (the actor in `pom_actors/director.py`
only creates it, runs its loop and answers for it).

Every tick it reconciles the world with the database: one media gateway per POM server, due
schedules turned into jobs (and import schedules into imports: services/import_schedules.py),
and for each live job the zone it runs in (`core.zones.
effective_zone`: its own, or along its failover chain; a move drains the old zone's managers
for up to POM_ZONE_DRAIN_S, retires them and places new ones, which take the shards over
with new epochs), its managers, the shard leases (`core.shards.allocate` over the managers
that answer), pause/stop drains and finish criteria. It keeps no state of its own that
matters: after a restart it rebuilds everything from PostgreSQL and re-attaches to the named
managers.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a `store.director.
DirectorStore`; `fleet` places and reaches the actors (`pom_actors/fleet.py` on Ray); a clock.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..config import Settings
from ..core.agents.jobs import job_demands
from ..core.clock import Clock
from ..core.finish import FinishCriteria, finish_reason
from ..core.lifecycle import ACTIVE, TERMINAL, JobEvent, JobState, StateChanged, transition
from ..core.load import NONE, Restrictions
from ..core.lifecycle import DISPATCHING
from ..core.schedule import due_runs, parsed
from ..core.shards import allocate
from ..core.strategy import Strategy
from ..core.zones import Zone, effective_zone
from ..names import manager_name
from ..store.director import DirectorStore
from .import_schedules import ImportScheduleDuty
from .purges import PurgeDuty

log = logging.getLogger(__name__)
LIVE = tuple(str(s) for s in JobState if s not in TERMINAL)     # a campaign's job not yet ended
GATEWAY_CHECK_S = 5.0
E, S = JobEvent, JobState


class _StillInFlight(Exception):
    """A claim committed between the drain check and the job's end: it is not the end yet."""


class Fleet(Protocol):
    """The actors the director places: a media gateway per POM server, managers per job."""
    def servers(self) -> int: ...
    def zone_servers(self) -> Mapping[str | None, int]: ...
    def gateway_names(self) -> list[str]: ...
    def ensure_gateways(self) -> None: ...
    async def managers(self, job_id: int, count: int, zone: str, draining: bool,
                       slow_factor: float = 1.0) -> list[str]: ...
    async def stop_claiming(self, job_id: int, count: int) -> list[str]: ...
    def refresh(self, holders: set[str]) -> None: ...
    async def drain(self, names: list[str], timeout_s: float) -> dict[str, int]: ...
    async def serve(self, names: list[str]) -> None: ...
    def retire(self, job_id: int, count: int, zone: str | None) -> None: ...
    def set_agent_jobs(self, jobs: list, notifications: list) -> None: ...


class DirectorService:
    def __init__(self, settings: Settings, *, open_store: Callable[[], DirectorStore], fleet: Fleet,
                 clock: Clock, restrictions: Callable[[], Restrictions] = lambda: NONE,
                 purges: PurgeDuty | None = None, import_schedules: ImportScheduleDuty | None = None):
        self.settings, self.open_store, self.fleet, self.clock = settings, open_store, fleet, clock
        self.restrictions = restrictions          # the load restrictions in force (store.load)
        self.purges = purges                      # retention: scheduled and asked-for purges
        self.import_schedules = import_schedules  # SQL-query imports at their due times
        self.slow_factor = 1.0
        self.store = open_store()
        self.store.ensure_zone(settings.default_zone)
        self.zones: dict[str, Zone] = {}
        self.zone_servers: Mapping[str | None, int] = {}
        self.leaving: dict[int, float] = {}            # job -> when it began to leave its zone
        self.lock = asyncio.Lock()
        self.ticks = 0
        self.draining = False
        self.gateways_checked = 0.0
        self.strategies: dict[int, Strategy] = {}      # strategy versions never change: parsed once

    # -- commands ------------------------------------------------------------------------------
    async def create_job(self, campaign: int | str, start: bool = True, zone: str | None = None) -> int:
        """A new job of `campaign` (id or name) over its whole list, in `zone` (default: the
        campaign's, else the default zone); started unless told not to."""
        async with self.lock:
            camp = self.store.campaign(campaign)
            if zone is not None:
                self.store.check_zone(zone)
            with self.store.transaction():
                job_id = self.store.create_job(camp["id"], self.settings.shards_per_job, self._manager_count(),
                                               self.clock.now(), zone, self.settings.default_zone)
            if start:
                self.store.set_state(job_id, S.QUEUED, transition(S.QUEUED, E.START))
        await self.tick()
        return job_id

    async def command(self, job_id: int, event: str) -> str:
        """Apply a user command (start, pause, resume, stop); IllegalTransition if not allowed."""
        async with self.lock:
            state = JobState(self.store.job(job_id)["state"])
            new = transition(state, JobEvent(event))
            if not self.store.set_state(job_id, state, new, reason=f"user {event}"):
                raise StateChanged(f"job {job_id} changed state concurrently; try again")
        await self.tick()
        return str(new)

    async def drain(self, timeout_s: float = 15.0) -> dict[str, int]:
        """Before a shutdown: stop claiming everywhere and wait for in-flight attempts."""
        self.draining = True
        return await self.fleet.drain(self._active_managers(), timeout_s)

    async def serve(self) -> None:
        """Leave a drain: schedules and managers work again (after `drain`, on a new start)."""
        self.draining = False
        await self.fleet.serve(self._active_managers())

    def status(self) -> dict[str, Any]:
        return {"state": "draining" if self.draining else "up", "ticks": self.ticks, "slow_factor": self.slow_factor,
                "gateways": self.fleet.gateway_names(),
                "zone_servers": {z: n for z, n in self.zone_servers.items() if z is not None},
                "unzoned_servers": self.zone_servers.get(None, 0)}

    def _active_managers(self) -> list[str]:
        return [manager_name(j["id"], i) for j in self.store.jobs(tuple(ACTIVE)) for i in range(j["managers"])]

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("director tick failed")
                self.recover()
            await asyncio.sleep(self.settings.tick_s)

    def recover(self) -> None:
        """After a failed tick: a new connection if the database restarted (still down: the
        next tick tries again)."""
        if self.store.broken:
            try:
                self.store = self.open_store()
            except Exception as exc:
                log.warning("database unreachable: %s", exc)

    async def tick(self) -> None:
        async with self.lock:
            self.ticks += 1
            # The node list is a round trip to Ray's control store: read it every
            # GATEWAY_CHECK_S (a server added or lost is served within that).
            if time.monotonic() - self.gateways_checked >= GATEWAY_CHECK_S or not self.fleet.gateway_names():
                self.gateways_checked = time.monotonic()
                self.fleet.ensure_gateways()
            if not self.draining:
                self._run_schedules()
                self._start_imports()
            self._read_restrictions()
            self._purge()
            self.zones, self.zone_servers = self.store.zones(), self.fleet.zone_servers()
            jobs = self.store.jobs(tuple(ACTIVE))
            for job in jobs:
                try:
                    await self._drive(job)
                except Exception:   # one job's fault must not stop the others
                    log.exception("driving job %s failed", job["id"])
            self._tell_agents(jobs)

    def _purge(self) -> None:
        """Start the purge that is due, if any (services/purges.py): it runs beside the tick, on
        its own connection, and waits while the load defers purges."""
        if self.purges is None or self.draining:
            return
        try:
            self.purges.tick()
        except Exception:                 # looked at again at a later tick
            log.exception("purge duty failed")

    def _start_imports(self) -> None:
        """The imports whose schedules are due (the Importer actor takes them up)."""
        if self.import_schedules is None:
            return
        try:
            self.import_schedules.tick()
        except Exception:                 # looked at again at the next tick
            log.exception("import schedules failed")

    def _read_restrictions(self) -> None:
        """The factor dialling is slowed by, passed on to every manager with its ping."""
        try:
            self.slow_factor = self.restrictions().dial_factor
        except Exception as exc:          # the restrictions unreadable: the last factor stands
            log.warning("load restrictions unreadable: %s", exc)

    def _tell_agents(self, jobs: list[dict]) -> None:
        """The running jobs to the Agent Manager: agent-based ones with their priority (their
        own, changed through the API, else the campaign's), agents' limits, skills and pacing mode; agent-less ones as demands on the
        outbound ports (`core.agents.jobs`). Every tick: it ignores a list it already has, and a
        restarted one learns the jobs at once."""
        running = [j for j in jobs if JobState(j["state"]) in DISPATCHING]
        try:
            specs, ports = [], []
            if running:
                priorities = {c["id"]: c.get("priority", 5) for c in self.store.campaigns()}
                for j in running:
                    if j["strategy_id"] not in self.strategies:
                        self.strategies[j["strategy_id"]] = self.store.strategy(j["strategy_id"])
                specs, ports = job_demands([{**j, "priority": j.get("priority") or priorities.get(j["campaign_id"], 5)}
                                            for j in running],
                                           self.strategies)
            self.fleet.set_agent_jobs(specs, ports)
        except Exception:       # the agents are told again at the next tick
            log.exception("telling the agent manager the running jobs failed")

    def _run_schedules(self) -> None:
        """Start a job of each enabled campaign whose schedule is due — unless a job of that
        campaign is still live (not completed, stopped or failed): that due time is served
        and skipped, so a schedule never piles jobs on a campaign whose last one runs on (a
        cron of every minute on a fast clock would start one per tick)."""
        now = self.clock.now()
        live: set[int] | None = None                    # read once, when a run is first due
        for camp in self.store.campaigns():
            if not camp["schedule"] or not camp["enabled"]:
                continue
            try:
                schedule = parsed(camp["schedule"])
            except ValueError as exc:   # refused at creation; an old row must not stop the tick
                log.error("campaign %s has an invalid schedule: %s", camp["name"], exc)
                continue
            since = camp["last_scheduled_at"] or camp["created_at"]
            if since > now:
                # created_at is the database's time: on a scaled clock that runs behind it, the
                # first run would wait out the gap. Count from the business clock's now instead.
                self.store.mark_scheduled(camp["id"], now)
                continue
            run_at = due_runs(schedule, since, now)
            if run_at is None:
                continue
            if live is None:
                live = {j["campaign_id"] for j in self.store.jobs(LIVE)}
            if camp["id"] in live:
                self.store.mark_scheduled(camp["id"], run_at)
                log.info("schedule of campaign %s skipped %s: its last job is still live", camp["name"], run_at)
                continue
            with self.store.transaction():
                self.store.mark_scheduled(camp["id"], run_at)
                job_id = self.store.create_job(camp["id"], self.settings.shards_per_job, self._manager_count(), now,
                                               None, self.settings.default_zone)
                self.store.set_state(job_id, S.QUEUED, S.RUNNING, reason=f"schedule {run_at}")
            log.info("schedule of campaign %s started job %s", camp["name"], job_id)

    async def _drive(self, job: dict) -> None:
        job_id, state = job["id"], JobState(job["state"])
        zone = effective_zone(job["zone"], self.zones, self.zone_servers)
        if zone != job["placed_zone"] and not await self._move(job, zone):
            return
        live = await self.fleet.managers(job_id, job["managers"], zone, self.draining,
                                         self.slow_factor) if zone else []
        self._lease(job_id, live)
        if state == S.RESUMING and live:
            self.store.set_state(job_id, state, transition(state, E.RESUMED))
        elif state == S.RUNNING:
            criteria = FinishCriteria(**job["finish"]) if job["finish"] else None
            now = self.clock.now()
            if finish_reason(criteria, self.store.counts(job_id, criteria, now), now):
                # Counted again under the job's row: an agent's call-back scheduled meanwhile
                # keeps the job open (store/dispositions.py takes the row too).
                with self.store.transaction():
                    if self.store.lock(job_id) == state and (
                            reason := finish_reason(criteria, self.store.counts(job_id, criteria, now), now)):
                        self.store.set_state(job_id, state, transition(state, E.FINISH), reason=reason,
                                             finishing=True)
        elif state in (S.PAUSING, S.STOPPING) and self.store.in_flight(job_id) == 0:
            if state == S.PAUSING:
                self.store.set_state(job_id, state, transition(state, E.PAUSED))
                return
            try:
                with self.store.transaction():
                    # The job's row, then the leases: that waits for any manager transaction
                    # still holding them (a claim that began before the stop) and fences every
                    # later one; only then is "nothing in flight" final.
                    self.store.lock(job_id)
                    self.store.release_all(job_id)
                    if self.store.in_flight(job_id):
                        raise _StillInFlight
                    self.store.cancel_open(job_id)
                    self.store.set_state(job_id, state, transition(state, E.DRAINED, finishing=job["finishing"]))
            except _StillInFlight:          # rolled back: the managers settle it, next tick ends it
                return
            self.fleet.retire(job_id, job["managers"], job["placed_zone"])
            log.info("job %s ended", job_id)

    async def _move(self, job: dict, zone: str | None) -> bool:
        """The job runs in another zone now (or, with `zone` None, in none: it waits). Its
        managers stop claiming and are retired once nothing of the job is in flight, or after
        POM_ZONE_DRAIN_S, or at once if none answers (its servers are gone); the next tick
        places new ones in `zone`, which take every shard over with a new epoch (the takeover
        of any lost manager: what was still in flight is reconciled with the gateways).
        True if the job may be placed in `zone` at once (it had no managers to retire)."""
        job_id, old = job["id"], job["placed_zone"]
        if old is not None:
            since = self.leaving.setdefault(job_id, time.monotonic())
            answering = await self.fleet.stop_claiming(job_id, job["managers"])
            if (answering and self.store.in_flight(job_id)
                    and time.monotonic() - since < self.settings.zone_drain_s):
                return
            self.fleet.retire(job_id, job["managers"], old)
        self.leaving.pop(job_id, None)
        if not self.store.set_placed(job_id, old, zone):
            return False
        log.info("job %s: zone %s -> %s%s", job_id, old, zone, "" if zone else " (waiting for a zone)")
        job["placed_zone"] = zone
        return old is None

    def _manager_count(self) -> int:
        """Managers for a new job: as configured, or one per live POM server."""
        return self.settings.managers_per_job or max(1, self.fleet.servers())

    def _lease(self, job_id: int, live: list[str]) -> None:
        """Shards of lapsed or dead holders go to live managers, balanced (epochs bumped)."""
        rows = self.store.leases(job_id)
        current = {r["shard"]: r["holder"] for r in rows if r["holder"] in live and not r["lapsed"]}
        target = allocate([r["shard"] for r in rows], live, current)
        moved = {s: h for s, h in target.items() if current.get(s) != h}
        if moved:
            self.store.grant(job_id, moved, self.settings.lease_ttl_s)
            self.fleet.refresh(set(moved.values()))
            log.info("job %s: leased shards %s", job_id, moved)
