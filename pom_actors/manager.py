"""CampaignManager actor: works the shards of one job that the director leased to it.

One cycle, in batches: renew leases (and reconcile shards newly gained), collect outcomes
from the media gateways, then in ONE fenced transaction settle those outcomes (next step +
ledger + outbox), claim due items (the claim records each attempt's intent on its work item),
ask the rule engine for the batch and record the restricted ones; only after the commit do
the orders leave for a gateway. Every decision is a
`core.work` call; this shell owns the timing, the connections and the recovery.
"""
from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import datetime

import psycopg
import ray

from .config import Settings
from .heap import tune_for_batches
from .core.clock import clock_from_spec
from .core.lifecycle import DISPATCHING, JobState
from .core.pacing import make_pacer
from .core.pacing.snapshot import EventKind, PacerEvent, PacerSnapshot
from .core.strategy import Handler, Strategy
from .core.rules import Verdict
from .core.wire import pack, unpack
from .core.work import AttemptRow, Item, candidate, in_flight_row, make_item, plan, resend, settle
from .media.base import Order, Outcome
from .media_gateway import gateways
from .rule_engine import NAME as RULE_ENGINE
from .store import catalog
from .store.database import connect
from .store.jobs import job as load_job
from .store.work import WorkStore

log = logging.getLogger(__name__)
IDLE_S = 0.05
EVENTS_TOPIC = "pom.attempts"
# Codes a manager writes itself when an attempt cannot reach or be found at a gateway.
NOT_SENT, IN_DOUBT = "cancelled", "in_doubt"
UNBOUNDED_RATE = 1_000_000


def manager_name(job_id: int, index: int) -> str:
    return f"pom-manager-{job_id}-{index}"


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class CampaignManager:
    def __init__(self, settings: Settings, job_id: int, index: int, managers: int):
        self.settings = settings
        self.name = manager_name(job_id, index)
        # Leases name the incarnation, not the actor: a restarted manager is a new holder, so
        # taking its shards back bumps their epochs and fences whatever the old one left.
        self.holder = f"{self.name}#{secrets.token_hex(4)}"
        self.clock = clock_from_spec(settings.clock)
        self.conn = connect(settings.database_url, autocommit=True)
        self.store = WorkStore(self.conn, job_id, self.holder)
        job = load_job(self.conn, job_id)
        self.job_id, self.campaign_id = job_id, job["campaign_id"]
        self.strategy: Strategy = catalog.load_strategy(self.conn, job["strategy_id"])
        self.pacers = {name: make_pacer(_pacing_config(h, managers))
                       for name, h in self.strategy.handlers.items()}
        self.rules = ray.get_actor(RULE_ENGINE)
        self.held: dict[int, int] = {}
        self.state: str | None = job["state"]
        # attempt id -> (item, its pending ledger row: epoch sent under, gateway, time sent)
        self.inflight: dict[str, tuple[Item, AttemptRow]] = {}
        self.watch: set[str] = set()          # adopted attempts whose outcome we must look up
        self.renewed = 0.0
        # No claims until the director's ping says the server is not draining: a manager that
        # Ray restarts while `pom run` is away must not start dialling on its own.
        self.draining = True
        self.stats: Counter[str] = Counter()
        self.timing: Counter[str] = Counter()
        self._task: asyncio.Task | None = None
        tune_for_batches()
        # Start the loop as soon as the actor is up, also after Ray restarted it.
        ray.get_runtime_context().current_actor.ping.remote()

    # -- control ------------------------------------------------------------------------------
    async def ping(self, draining: bool | None = None) -> str:
        """Liveness probe of the director, answering the lease holder identity and passing
        on whether the server is draining; also (re)starts the loop after an actor restart."""
        if draining is not None:
            self.draining = draining
        if self._task is None or self._task.done():
            if self._task is not None and self._task.exception():
                log.error("manager loop died: %r", self._task.exception())
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self.holder

    async def refresh(self) -> None:
        """The director moved leases: renew (and adopt) at the next cycle, not in seconds."""
        self.renewed = 0.0

    async def drain(self, timeout_s: float) -> int:
        """Stop claiming and wait (up to `timeout_s` real seconds) for what is in flight to
        settle; returns how many attempts are still out."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return len(self.inflight)

    async def serve(self) -> None:
        """Claim again after a drain (a new `pom run` attached to this running cluster)."""
        self.draining = False

    async def status(self) -> dict:
        return {"name": self.name, "holder": self.holder, "job_id": self.job_id, "state": self.state,
                "draining": self.draining, "shards": self.held, "in_flight": len(self.inflight),
                "node": ray.get_runtime_context().get_node_id(),
                "seconds": {k: round(v, 3) for k, v in self.timing.items()}, **self.stats}

    async def _run(self) -> None:
        while True:
            try:
                busy = await self._cycle()
            except Exception:  # a failed cycle rolled back: start again from the database
                log.exception("%s: cycle failed", self.name)
                self.stats["cycle_errors"] += 1
                # Outcomes taken from the gateways may not have settled: forget what is in
                # memory and adopt every shard anew (items in flight are looked up by id).
                self.held, self.renewed = {}, 0.0
                self.inflight.clear()
                self.watch.clear()
                if self.conn.broken or self.conn.closed:       # e.g. the database restarted
                    try:
                        self.conn = connect(self.settings.database_url, autocommit=True)
                        self.store = WorkStore(self.conn, self.job_id, self.holder)
                    except psycopg.OperationalError as exc:    # still down: try again next cycle
                        log.warning("%s: database unreachable: %s", self.name, exc)
                busy = False
                await asyncio.sleep(0.5)
            if not busy:
                await asyncio.sleep(IDLE_S)

    # -- the cycle ---------------------------------------------------------------------------
    async def _cycle(self) -> bool:
        if time.monotonic() - self.renewed >= self.settings.lease_ttl_s / 3:
            await self._renew()
        with self._timed("collect"):
            outcomes = await self._collect()
        now = self.clock.now()
        dispatching = self.state in DISPATCHING and self.held and not self.draining
        gateway = self._gateway() if dispatching else None     # none running yet: settle only
        budgets = self._budgets(now) if gateway else {}
        if not outcomes and not any(budgets.values()):
            return False
        orders: list[Order] = []
        sent: list[tuple[Item, AttemptRow]] = []
        with self._timed("transaction"), self.store.fenced(self.held) as valid:
            with self._timed("settle"):
                self._settle(outcomes, valid)
            items = []
            for handler, n in budgets.items():
                with self._timed("claim"):
                    claimed = self.store.claim(valid, handler, gateway, now, n) if n and valid else []
                with self._timed("items"):
                    items += [make_item(row, self.strategy) for row in claimed]
                self._unplaced(handler, n - len(claimed))
            if items:
                with self._timed("rules"):
                    verdicts = unpack(Verdict, await self.rules.check.remote(
                        pack([candidate(i, self.strategy, self.campaign_id) for i in items])))
                with self._timed("plan"):
                    plans = [plan(i, v, self.strategy, campaign_id=self.campaign_id, epoch=valid[i.shard],
                                  gateway=gateway, reply_to=self.name, now=now) for i, v in zip(items, verdicts)]
                restricted = [p for p in plans if not p.order]
                with self._timed("restricted"):
                    self.store.write_attempts([p.attempt for p in restricted])
                    self.store.update_items([p.update for p in restricted])
                for i, p in zip(items, plans):
                    if p.order:
                        orders.append(Order(**p.order))
                        sent.append((i, p.attempt))
                for p in restricted:
                    self._unplaced(p.attempt.handler, 1)
                self.store.outbox(EVENTS_TOPIC, f"job-{self.job_id}", [
                    {"attempt_id": f"{p.attempt.work_item_id}.{p.attempt.attempt_no}", "job_id": self.job_id,
                     "contact_id": p.attempt.contact_id, "handler": p.attempt.handler,
                     "address": p.attempt.address, "code": p.attempt.code, "rule": p.attempt.rule,
                     "at": now.isoformat()} for p in restricted])
                self.stats["restricted"] += len(restricted)
        # Committed: these attempts are in flight (a rolled-back cycle leaves nothing behind).
        self.inflight.update((item.attempt_id, (item, row)) for item, row in sent)
        if orders:
            with self._timed("dispatch"):
                await self._dispatch(gateway, orders)
        return bool(items) or bool(outcomes)

    @contextmanager
    def _timed(self, phase: str):
        """Seconds spent per phase of the cycle, cumulative (reported by `status`)."""
        start = time.perf_counter()
        yield
        self.timing[phase] += time.perf_counter() - start

    def _budgets(self, now: datetime) -> dict[str, int]:
        """Dials each handler may start now: its pacer over this manager's in-flight calls,
        at most one batch (what the pacer grants beyond that is given back)."""
        flying = Counter(item.handler for item, _ in self.inflight.values())
        budgets = {}
        for name, pacer in self.pacers.items():
            granted = pacer.decide(PacerSnapshot(now=now, dialling=(0.0,) * flying[name])).dials
            budgets[name] = min(granted, self.settings.batch_size)
            self._unplaced(name, granted - budgets[name])
        return budgets

    def _unplaced(self, handler: str, count: int) -> None:
        if count > 0:
            self.pacers[handler].observe([PacerEvent(EventKind.UNPLACED, count=count)])

    async def _dispatch(self, gateway_name: str, batch: list[Order]) -> None:
        handle = gateways().get(gateway_name)
        try:
            if handle is None:
                raise ray.exceptions.ActorDiedError()
            refused = await handle.submit.remote(pack(batch))
        except ray.exceptions.RayActorError:
            # Whether the orders arrived is unknowable now: reconcile them by lookup.
            self.watch.update(o.attempt_id for o in batch)
            return
        for r in refused:                       # a newer epoch took the shard: its holder reconciles
            self.inflight.pop(r.attempt_id, None)
            self.stats["refused"] += 1
        self.stats["dispatched"] += len(batch) - len(refused)

    async def _collect(self) -> list[Outcome]:
        """Outcomes addressed to this manager, plus those of adopted attempts found by lookup."""
        names = {row.gateway for _, row in self.inflight.values()}
        handles = gateways()
        found: list[Outcome] = []
        live = [n for n in names if n in handles]
        polls = [handles[n].poll.remote(self.name) for n in live]
        failed = set(names) - set(live)
        for name, result in zip(live, await asyncio.gather(*polls, return_exceptions=True)):
            if isinstance(result, BaseException):
                failed.add(name)
            else:
                found.extend(unpack(Outcome, result))
        if failed:    # their outcomes can only be looked up now (and are in doubt if gone)
            self.watch.update(aid for aid, (_, row) in self.inflight.items() if row.gateway in failed)
        if self.watch:
            found.extend(await self._lookup(self.watch))
        return found

    async def _lookup(self, attempt_ids: set[str]) -> list[Outcome]:
        """Outcomes of attempts not addressed to us, from the gateway that took each order."""
        by_gateway: dict[str, list[str]] = defaultdict(list)
        for aid in attempt_ids:
            if aid in self.inflight:
                by_gateway[self.inflight[aid][1].gateway].append(aid)
        handles, now, out = gateways(), self.clock.now(), []
        for name, ids in by_gateway.items():
            try:
                records = await handles[name].lookup.remote(ids) if name in handles else None
            except ray.exceptions.RayActorError:
                records = None
            for aid in ids:
                rec = None if records is None else records.get(aid, {"state": "absent"})
                if rec is None:
                    out.append(Outcome(aid, IN_DOUBT, now, {"reason": f"gateway {name} unreachable"}))
                elif rec["state"] == "absent":
                    out.append(Outcome(aid, NOT_SENT, now, {"not_sent": True,
                                                            "reason": "order never reached a gateway"}))
                elif rec["state"] == "completed":
                    out.append(Outcome(aid, rec["code"], datetime.fromisoformat(rec["at"]), {"adopted": True}))
        return out

    def _settle(self, outcomes: list[Outcome], valid: dict[int, int]) -> None:
        """Next steps, ledger rows and outbox for outcomes of shards still held (inside `fenced`)."""
        settled = []
        for o in outcomes:
            entry = self.inflight.pop(o.attempt_id, None)
            self.watch.discard(o.attempt_id)
            if entry is None or entry[0].shard not in valid:
                continue
            item, row = entry
            # An order that never left: the item is due again, only its attempt number is spent.
            s = None if o.details.get("not_sent") else settle(item, o.code, self.strategy, o.at)
            settled.append((item, row, o, s))
        if not settled:
            return
        updates = [s.update if s else resend(item, o.at) for item, _, o, s in settled]
        applied = self.store.update_items(updates, [(row.epoch, item.attempts) for item, row, _, _ in settled])
        done = [row.complete(o.code, o.at, o.details) for item, row, o, _ in settled if item.id in applied]
        self.store.write_attempts(done)
        self.store.outbox(EVENTS_TOPIC, f"job-{self.job_id}",
                          [s.event for item, _, _, s in settled if s and item.id in applied])
        self.stats["settled"] += len(done)

    # -- leases and recovery --------------------------------------------------------------------
    async def _renew(self) -> None:
        held = self.store.renew(self.settings.lease_ttl_s)
        self.state = self.store.job_state()
        gained = {s: e for s, e in held.items() if self.held.get(s) != e}
        self.held = held
        self.renewed = time.monotonic()
        for aid, (item, _) in list(self.inflight.items()):
            if item.shard not in held:      # lost: the new holder reconciles it
                del self.inflight[aid]
                self.watch.discard(aid)
        if gained:
            await self._reconcile(gained)

    async def _reconcile(self, gained: dict[int, int]) -> None:
        """Adopt what earlier holders left in flight on `gained`: fence every gateway at the new
        epochs first, so no order of an old holder can still be accepted, then look up each
        attempt by id (principle 2: never blindly redialled)."""
        fences = [h.fence.remote(self.job_id, gained) for h in gateways().values()]
        await asyncio.gather(*fences, return_exceptions=True)
        rows = self.store.in_flight(gained)
        self.conn.commit()
        for row in rows:
            item = make_item(row, self.strategy)
            self.inflight[item.attempt_id] = (item, in_flight_row(
                item, self.strategy, campaign_id=self.campaign_id, epoch=row["in_flight_epoch"],
                gateway=row["in_flight_gateway"], at=row["in_flight_at"]))
            self.watch.add(item.attempt_id)
        self.stats["adopted"] += len(rows)

    def _gateway(self) -> str | None:
        """The gateway on this manager's node if there is one, else any live one."""
        handles = gateways()
        if not handles:
            return None
        node = ray.get_runtime_context().get_node_id()
        local = [n for n in handles if node[:12] in n]
        return (local or sorted(handles))[hash(self.name) % len(local or handles)]


def _pacing_config(handler: Handler, managers: int) -> dict:
    """A handler's time-based pacing, shared evenly by the job's managers (unset = unbounded)."""
    rate = handler.pacing.attempts_per_second
    cap = handler.pacing.max_concurrent
    per_manager = rate / managers if rate else UNBOUNDED_RATE
    return {"mode": "time_based", "rate": per_manager, "per": "second",
            "max_concurrent": math.ceil(cap / managers) if cap else None,
            "burst": max(1, math.ceil(per_manager)) if rate else UNBOUNDED_RATE}
