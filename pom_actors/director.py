"""CampaignDirector actor: one per cluster (named, detached, restarted forever).

Every tick it reconciles the world with the database: one media gateway per POM server, due
schedules turned into jobs, and for each live job its managers (in a placement group spread
over the POM servers), the shard leases (core.shards.allocate over the managers that answer),
pause/stop drains and finish criteria. It keeps no state of its own that matters: after a
restart it rebuilds everything from PostgreSQL and re-attaches to the named managers.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time

import psycopg
import ray
from ray.util.placement_group import get_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from .config import Settings
from .core.clock import clock_from_spec
from .core.finish import FinishCriteria, finish_reason
from .core.lifecycle import ACTIVE, JobEvent, JobState, StateChanged, transition
from .core.schedule import Schedule, due_runs
from .core.shards import allocate
from .manager import CampaignManager, manager_name
from .media_gateway import PREFIX as GATEWAY_PREFIX, MediaGateway, gateways
from .store import catalog, jobs as jobstore
from .store.database import connect

log = logging.getLogger(__name__)
NAME = "pom-director"
SERVER_RESOURCE = "pom_server"
GATEWAY_CHECK_S = 5.0
E, S = JobEvent, JobState


def pg_name(job_id: int) -> str:
    return f"pom-pg-{job_id}"


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class CampaignDirector:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = clock_from_spec(settings.clock)
        self.conn = connect(settings.database_url, autocommit=True)
        self.lock = asyncio.Lock()
        self.ticks = 0
        self.draining = False
        self.gateways_checked = 0.0
        self._task: asyncio.Task | None = None
        # Start the loop as soon as the actor is up, also after Ray restarted it.
        ray.get_runtime_context().current_actor.ping.remote()

    # -- commands ------------------------------------------------------------------------------
    async def ping(self) -> str:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return NAME

    async def create_job(self, campaign: int | str, start: bool = True) -> int:
        """A new job of `campaign` (id or name) over its whole list; started unless told not to."""
        async with self.lock:
            camp = catalog.campaign(self.conn, campaign)
            with self.conn.transaction():
                job_id = jobstore.create_job(self.conn, camp["id"], self.settings.shards_per_job,
                                             self._manager_count(), self.clock.now())
            if start:
                jobstore.set_state(self.conn, job_id, S.QUEUED, transition(S.QUEUED, E.START))
        await self._tick()
        return job_id

    async def command(self, job_id: int, event: str) -> str:
        """Apply a user command (start, pause, resume, stop); IllegalTransition if not allowed."""
        async with self.lock:
            job = jobstore.job(self.conn, job_id)
            state = JobState(job["state"])
            new = transition(state, JobEvent(event))
            if not jobstore.set_state(self.conn, job_id, state, new, reason=f"user {event}"):
                raise StateChanged(f"job {job_id} changed state concurrently; try again")
        await self._tick()
        return str(new)

    async def drain(self, timeout_s: float = 15.0) -> dict[str, int]:
        """Before a shutdown: stop claiming everywhere and wait for in-flight attempts."""
        self.draining = True
        names = [manager_name(j["id"], i) for j in jobstore.jobs(self.conn, tuple(ACTIVE))
                 for i in range(j["managers"])]
        handles = [h for h in map(_actor, names) if h]
        left = await asyncio.gather(*[h.drain.remote(timeout_s) for h in handles], return_exceptions=True)
        return {n: (r if isinstance(r, int) else -1) for n, r in zip(names, left)}

    async def serve(self) -> None:
        """Leave a drain: schedules and managers work again (after `drain`, on a new start)."""
        self.draining = False
        for job in jobstore.jobs(self.conn, tuple(ACTIVE)):
            for i in range(job["managers"]):
                handle = _actor(manager_name(job["id"], i))
                if handle:
                    await handle.serve.remote()

    async def status(self) -> dict:
        return {"state": "draining" if self.draining else "up", "ticks": self.ticks,
                "gateways": sorted(gateways()), "node": ray.get_runtime_context().get_node_id()}

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:
                log.exception("director tick failed")
                if self.conn.broken or self.conn.closed:       # e.g. the database restarted
                    try:
                        self.conn = connect(self.settings.database_url, autocommit=True)
                    except psycopg.OperationalError as exc:    # still down: try again next tick
                        log.warning("database unreachable: %s", exc)
            await asyncio.sleep(self.settings.tick_s)

    async def _tick(self) -> None:
        async with self.lock:
            self.ticks += 1
            self._ensure_gateways()
            if not self.draining:
                self._run_schedules()
            for job in jobstore.jobs(self.conn, tuple(ACTIVE)):
                try:
                    await self._drive(job)
                except Exception:   # one job's fault must not stop the others
                    log.exception("driving job %s failed", job["id"])

    def _ensure_gateways(self) -> None:
        """One gateway per live POM server; the node list is a GCS round trip, so it is read
        every GATEWAY_CHECK_S (a server added or lost is served within that)."""
        if time.monotonic() - self.gateways_checked < GATEWAY_CHECK_S and gateways():
            return
        self.gateways_checked = time.monotonic()
        present = gateways()
        for node in ray.nodes():
            if not node["Alive"] or SERVER_RESOURCE not in node["Resources"]:
                continue
            node_id = node["NodeID"]
            if any(node_id[:12] in name for name in present):
                continue
            name = f"{GATEWAY_PREFIX}{node_id[:12]}-{secrets.token_hex(3)}"
            MediaGateway.options(
                name=name, lifetime="detached", max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self.settings, name)
            gateways(refresh=True)
            log.info("started gateway %s", name)

    def _run_schedules(self) -> None:
        now = self.clock.now()
        for camp in catalog.campaigns(self.conn):
            if not camp["schedule"] or not camp["enabled"]:
                continue
            try:
                schedule = Schedule(**camp["schedule"])
            except ValueError as exc:   # refused at creation; an old row must not stop the tick
                log.error("campaign %s has an invalid schedule: %s", camp["name"], exc)
                continue
            since = camp["last_scheduled_at"] or camp["created_at"]
            if since > now:
                # created_at is the database's time: on a scaled clock that runs behind it, the
                # first run would wait out the gap. Count from the business clock's now instead.
                self.conn.execute("UPDATE campaigns SET last_scheduled_at = %s WHERE id = %s", (now, camp["id"]))
                continue
            run_at = due_runs(schedule, since, now)
            if run_at is None:
                continue
            with self.conn.transaction():
                self.conn.execute("UPDATE campaigns SET last_scheduled_at = %s WHERE id = %s",
                                  (run_at, camp["id"]))
                job_id = jobstore.create_job(self.conn, camp["id"], self.settings.shards_per_job,
                                             self._manager_count(), now)
                jobstore.set_state(self.conn, job_id, S.QUEUED, S.RUNNING, reason=f"schedule {run_at}")
            log.info("schedule of campaign %s started job %s", camp["name"], job_id)

    async def _drive(self, job: dict) -> None:
        job_id, state = job["id"], JobState(job["state"])
        live = await self._managers(job)
        self._lease(job_id, live)
        if state == S.RESUMING and live:
            jobstore.set_state(self.conn, job_id, state, transition(state, E.RESUMED))
        elif state == S.RUNNING:
            criteria = FinishCriteria(**job["finish"]) if job["finish"] else None
            counts = jobstore.counts(self.conn, job_id, criteria)
            reason = finish_reason(criteria, counts, self.clock.now())
            if reason:
                jobstore.set_state(self.conn, job_id, state, transition(state, E.FINISH),
                                   reason=reason, finishing=True)
        elif state in (S.PAUSING, S.STOPPING) and jobstore.in_flight(self.conn, job_id) == 0:
            if state == S.PAUSING:
                jobstore.set_state(self.conn, job_id, state, transition(state, E.PAUSED))
                return
            with self.conn.transaction():
                jobstore.cancel_open(self.conn, job_id)
                jobstore.release_all(self.conn, job_id)
                jobstore.set_state(self.conn, job_id, state,
                                   transition(state, E.DRAINED, finishing=job["finishing"]))
            self._retire(job)

    # -- managers and leases --------------------------------------------------------------------
    def _manager_count(self) -> int:
        """Managers for a new job: as configured, or one per live POM server."""
        servers = sum(1 for n in ray.nodes() if n["Alive"] and SERVER_RESOURCE in n["Resources"])
        return self.settings.managers_per_job or max(1, servers)

    async def _managers(self, job: dict) -> list[str]:
        """Lease holder identities of the job's managers that answer now; missing ones are
        (re)created."""
        job_id, count = job["id"], job["managers"]
        pg = self._placement_group(job_id, count)
        handles = {}
        for i in range(count):
            name = manager_name(job_id, i)
            handles[name] = _actor(name) or CampaignManager.options(
                name=name, lifetime="detached", resources={SERVER_RESOURCE: 0.001},
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i),
            ).remote(self.settings, job_id, i, count)
        # The ping also tells each manager whether to claim (a restarted one waits for it).
        pings = await asyncio.gather(*[asyncio.wait_for(h.ping.remote(self.draining), self.settings.lease_ttl_s)
                                       for h in handles.values()], return_exceptions=True)
        return [p for p in pings if not isinstance(p, BaseException)]

    def _placement_group(self, job_id: int, count: int):
        try:
            return get_placement_group(pg_name(job_id))
        except ValueError:
            return placement_group([{SERVER_RESOURCE: 0.001}] * count, strategy="SPREAD",
                                   name=pg_name(job_id), lifetime="detached")

    def _lease(self, job_id: int, live: list[str]) -> None:
        """Shards of lapsed or dead holders go to live managers, balanced (epochs bumped)."""
        rows = jobstore.leases(self.conn, job_id)
        current = {r["shard"]: r["holder"] for r in rows
                   if r["holder"] in live and not r["lapsed"]}
        target = allocate([r["shard"] for r in rows], live, current)
        moved = {s: h for s, h in target.items() if current.get(s) != h}
        if moved:
            jobstore.grant(self.conn, job_id, moved, self.settings.lease_ttl_s)
            for holder in set(moved.values()):
                handle = _actor(holder.split("#")[0])
                if handle:
                    handle.refresh.remote()
            log.info("job %s: leased shards %s", job_id, moved)

    def _retire(self, job: dict) -> None:
        for i in range(job["managers"]):
            handle = _actor(manager_name(job["id"], i))
            if handle:
                ray.kill(handle, no_restart=True)
        try:
            remove_placement_group(get_placement_group(pg_name(job["id"])))
        except ValueError:
            pass
        log.info("job %s ended", job["id"])


def _actor(name: str):
    try:
        return ray.get_actor(name)
    except ValueError:
        return None
