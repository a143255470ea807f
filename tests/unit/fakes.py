"""In-memory stand-ins for the collaborators of the services: the database (with the same
fencing and claim semantics as `store.work` and `store.director`), the fleet of actors, and
the gateways (real `media.gateway.Gateway` objects, reached without Ray).

A `fenced()` block rolls back on an exception as the real transaction does, and the ledger
refuses a second row for one (work item, attempt no) as the real table's key does.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pom_actors.core.codes import CompletionCode
from pom_actors.core.scripts import AgentScript
from pom_actors.core.finish import FinishCriteria, JobCounts
from pom_actors.core.lifecycle import JobState
from pom_actors.core.orders import Order, OrderRecord, Outcome, Refusal
from pom_actors.core.pacing.window import Tally
from pom_actors.core.reconcile import GatewaySlow, GatewayUnreachable
from pom_actors.core.rules import DEFAULT_RULES, Candidate, Verdict
from pom_actors.core.strategy import Strategy
from pom_actors.core.zones import Zone, ZoneError
from pom_actors.names import DEFAULT_ZONE
from pom_actors.media.gateway import Gateway
from pom_actors.services.rule_engine import RuleService

CONTACT_COLUMNS = ("external_id", "first_name", "last_name", "phone1", "phone2", "email", "timezones",
                   "attributes")


class DatabaseDown(Exception):
    """What a statement raises while the fake database is down."""


class FakeDatabase:
    """Jobs, work items, shard leases, campaigns, the ledger and the outbox. `wall` is the
    database's own clock in seconds (lease expiry), moved by the tests."""

    def __init__(self, strategy: Strategy, contacts: list[dict[str, Any]]):
        self.strategies = {1: strategy}
        self.scripts: dict[str, AgentScript] = {}                 # stored agent scripts (enabled), by name
        self.contacts = {i + 1: c for i, c in enumerate(contacts)}
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.zones: dict[str, Zone] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.leases: dict[tuple[int, int], dict[str, Any]] = {}
        self.attempts: list[Any] = []
        self.events: list[dict[str, Any]] = []
        self.pacing: dict[tuple[int, datetime], Tally] = {}     # (campaign, bucket) -> call outcomes
        self.alarms: dict[str, str | None] = {}                 # pacing alarm source -> message (None: cleared)
        self.wall = 0.0
        self.down = False

    def check(self) -> None:
        if self.down:
            raise DatabaseDown("the database is down")

    def add_campaign(self, name: str = "c", *, schedule: dict | None = None, finish: dict | None = None,
                     created_at: datetime | None = None) -> int:
        cid = len(self.campaigns) + 1
        self.campaigns[cid] = {"id": cid, "name": name, "strategy_id": 1, "finish": finish or {},
                               "schedule": schedule, "enabled": True, "last_scheduled_at": None,
                               "created_at": created_at}
        return cid

    def create_job(self, campaign_id: int, shards: int, managers: int, now: datetime, zone: str | None = None,
                   default_zone: str = DEFAULT_ZONE) -> int:
        self.check()
        camp = self.campaigns[campaign_id]
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = {"id": job_id, "campaign_id": campaign_id, "strategy_id": camp["strategy_id"],
                             "state": "queued", "shards": shards, "managers": max(1, min(managers, shards)),
                             "finish": camp["finish"], "finishing": False, "reason": None,
                             "zone": zone or camp.get("zone") or default_zone, "placed_zone": None}
        initial = self.strategies[camp["strategy_id"]].initial
        for contact_id in self.contacts:
            item_id = len(self.items) + 1
            self.items[item_id] = {"id": item_id, "job_id": job_id, "contact_id": contact_id,
                                   "shard": contact_id % shards, "state": "ready", "next_at": now,
                                   "handler": initial, "address_index": 0, "retries": {},
                                   "address_attempts": {}, "attempts": 0, "last_code": None,
                                   "in_flight_epoch": None, "in_flight_gateway": None, "in_flight_at": None}
        for shard in range(shards):
            self.leases[job_id, shard] = {"shard": shard, "holder": None, "epoch": 0, "expires": None}
        return job_id

    def row(self, item: dict[str, Any]) -> dict[str, Any]:
        """A work item joined with its contact, as the store's statements return it."""
        contact = self.contacts[item["contact_id"]]
        return {**item, **{k: contact.get(k) for k in CONTACT_COLUMNS}}

    def grant(self, job_id: int, holders: dict[int, str], ttl_s: float) -> None:
        for shard, holder in holders.items():
            lease = self.leases[job_id, shard]
            lease.update(holder=holder, epoch=lease["epoch"] + 1, expires=self.wall + ttl_s)

    def job_items(self, job_id: int, *states: str) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if i["job_id"] == job_id and (not states or i["state"] in states)]

    @contextmanager
    def transaction(self):
        """All or nothing, as a PostgreSQL transaction."""
        self.check()
        saved = copy.deepcopy((self.items, self.leases, self.attempts, self.events, self.jobs, self.campaigns,
                               self.pacing))
        try:
            yield
        except BaseException:
            self.items, self.leases, self.attempts, self.events, self.jobs, self.campaigns, self.pacing = saved
            raise


class FakeWorkStore:
    """`store.work.WorkStore` over a FakeDatabase."""

    def __init__(self, db: FakeDatabase, job_id: int, holder: str):
        self.db, self.job_id, self.holder = db, job_id, holder
        db.check()

    @property
    def broken(self) -> bool:
        return self.db.down

    def job(self) -> dict[str, Any]:
        self.db.check()
        return dict(self.db.jobs[self.job_id])

    def strategy(self, strategy_id: int) -> Strategy:
        return self.db.strategies[strategy_id]

    def custom_codes(self, campaign_id: int) -> list[CompletionCode]:
        """As store.codes: a campaign's `codes` if a test set them, else its strategy's (copied
        when a campaign is created)."""
        camp = self.db.campaigns[campaign_id]
        if "codes" in camp:
            return list(camp["codes"])
        return [c.code() for c in self.db.strategies[camp["strategy_id"]].custom_codes]

    def job_pacing(self) -> dict[str, Any]:
        return dict(self.db.jobs[self.job_id].get("pacing") or {})

    def scripts(self, names) -> dict[str, AgentScript]:
        """As store.scripts.found: the enabled stored scripts of `names` (`db.scripts`)."""
        return {n: s for n, s in self.db.scripts.items() if n in set(names)}

    def renew(self, ttl_s: float) -> dict[int, int]:
        self.db.check()
        held = {}
        for (job_id, shard), lease in self.db.leases.items():
            if job_id == self.job_id and lease["holder"] == self.holder:
                lease["expires"] = self.db.wall + ttl_s
                held[shard] = lease["epoch"]
        return held

    @contextmanager
    def fenced(self, held: dict[int, int]):
        with self.db.transaction():
            yield {s: e for s, e in held.items()
                   if (lease := self.db.leases.get((self.job_id, s))) and lease["holder"] == self.holder
                   and lease["epoch"] == e}

    def claim(self, epochs: dict[int, int], handler: str, gateway: str, now: datetime, limit: int) -> list[dict]:
        out = []
        for item in self.db.job_items(self.job_id, "ready", "scheduled"):
            if len(out) == limit:
                break
            if item["shard"] in epochs and item["handler"] == handler and item["next_at"] <= now:
                before = item["attempts"]
                item.update(state="in_flight", attempts=before + 1, in_flight_epoch=epochs[item["shard"]],
                            in_flight_gateway=gateway, in_flight_at=now)
                out.append({**self.db.row(item), "attempts": before})
        return out

    def write_attempts(self, rows) -> None:
        keys = {(a.work_item_id, a.attempt_no) for a in self.db.attempts}
        for r in rows:
            assert (r.work_item_id, r.attempt_no) not in keys, f"ledger key {r.work_item_id}.{r.attempt_no} twice"
            self.db.attempts.append(copy.deepcopy(r))

    def update_items(self, updates, expect=None) -> set[int]:
        expect = expect or [(None, None)] * len(updates)
        applied = set()
        for u, (epoch, attempt) in zip(updates, expect):
            item = self.db.items[u.id]
            if attempt is not None and not (item["state"] == "in_flight" and item["in_flight_epoch"] == epoch
                                            and item["attempts"] == attempt):
                continue
            item.update(state=u.state, next_at=u.next_at, handler=u.handler, address_index=u.address_index,
                        retries=dict(u.retries), address_attempts=dict(u.address_attempts), attempts=u.attempts,
                        last_code=u.last_code, in_flight_epoch=None, in_flight_gateway=None, in_flight_at=None)
            applied.add(u.id)
        return applied

    def outbox(self, topic: str, key: str, events: list[dict]) -> None:
        self.db.events.extend(events)

    def in_flight(self, shards) -> list[dict]:
        shards = set(shards)
        return [self.db.row(i) for i in self.db.job_items(self.job_id, "in_flight") if i["shard"] in shards]

    def job_state(self) -> str:
        return self.db.jobs[self.job_id]["state"]

    def count_calls(self, campaign_id: int, buckets) -> None:
        for bucket, tally in buckets.items():
            key = (campaign_id, bucket)
            self.db.pacing[key] = self.db.pacing.get(key, Tally()) + tally

    def pacing_window(self, campaign_id: int, since: datetime) -> Tally:
        self.db.check()
        return sum((t for (c, b), t in self.db.pacing.items() if c == campaign_id and b >= since), Tally())

    warm_start = pacing_window          # the seeded buckets carry the wrap-ups too

    def pacing_alarm(self, message: str | None, value: float, target: float) -> None:
        self.db.alarms[f"pacing.amd@job-{self.job_id}"] = message

    def dispose(self, disposals, expire_before=None) -> dict[str, list[str]]:
        self.db.check()
        out: dict[str, list[str]] = {"applied": [], "pending": [], "refused": [], "called_back": [], "written": [],
                                     "expired": []}
        ledger = {(a.work_item_id, a.attempt_no): a for a in self.db.attempts}
        for d in disposals:
            row, item = ledger.get((d.work_item_id, d.attempt_no)), self.db.items.get(d.work_item_id)
            if row is None:
                in_flight = item is not None and item["state"] == "in_flight" and item["attempts"] == d.attempt_no
                expired = in_flight and expire_before is not None and d.at < expire_before
                out["expired" if expired else "pending" if in_flight else "refused"].append(d.attempt_id)
                continue
            if row.code != d.code:
                row.details = {**row.details, "code_set": {"from": row.code}}
                row.code = d.code
            out["applied"].append(d.attempt_id)
            if d.asked_callback_at is None or row.details.get("callback", {}).get("scheduled"):
                continue
            moved = d.callback_at is not None and item["attempts"] == d.attempt_no and item["state"] != "in_flight"
            if moved:
                item.update(state="scheduled", next_at=d.callback_at)
                out["called_back"].append(d.attempt_id)
            row.details = {**row.details, "callback": {"at": d.asked_callback_at, "scheduled": moved}}
        return out


class FakeDirectorStore:
    """`store.director.DirectorStore` over a FakeDatabase."""

    def __init__(self, db: FakeDatabase):
        self.db = db
        db.check()

    @property
    def broken(self) -> bool:
        return self.db.down

    def transaction(self):
        return self.db.transaction()

    def campaign(self, ref):
        return dict(self.db.campaigns[ref])

    def campaigns(self):
        self.db.check()
        return [dict(c) for c in self.db.campaigns.values()]

    def strategy(self, strategy_id):
        return self.db.strategies[strategy_id]

    def mark_scheduled(self, campaign_id: int, at: datetime) -> None:
        self.db.campaigns[campaign_id]["last_scheduled_at"] = at

    def create_job(self, campaign_id, shards, managers, now, zone, default_zone) -> int:
        return self.db.create_job(campaign_id, shards, managers, now, zone, default_zone)

    def job(self, job_id):
        return dict(self.db.jobs[job_id])

    def jobs(self, states):
        self.db.check()
        return [dict(j) for j in self.db.jobs.values() if j["state"] in states]

    def lock(self, job_id):
        job = self.db.jobs.get(job_id)
        return None if job is None else job["state"]

    def set_state(self, job_id, expected, new, *, reason=None, finishing=None) -> bool:
        job = self.db.jobs[job_id]
        if job["state"] != str(expected):
            return False
        job["state"] = str(JobState(new))
        if reason is not None:
            job["reason"] = reason
        if finishing is not None:
            job["finishing"] = finishing
        return True

    def counts(self, job_id, criteria: FinishCriteria | None, now: datetime) -> JobCounts:
        done = self.db.job_items(job_id, "done")
        by_code: dict[str, int] = {}
        for i in done:
            by_code[i["last_code"]] = by_code.get(i["last_code"], 0) + 1
        return JobCounts(done=len(done), by_code=by_code,
                         has_open=bool(self.db.job_items(job_id, "ready", "scheduled", "in_flight")))

    def in_flight(self, job_id) -> int:
        return len(self.db.job_items(job_id, "in_flight"))

    def cancel_open(self, job_id) -> int:
        items = self.db.job_items(job_id, "ready", "scheduled")
        for i in items:
            i.update(state="done", last_code="cancelled")
        return len(items)

    def leases(self, job_id):
        return [{**lease, "lapsed": lease["expires"] is not None and lease["expires"] < self.db.wall}
                for (j, _), lease in sorted(self.db.leases.items()) if j == job_id]

    def grant(self, job_id, holders, ttl_s) -> None:
        self.db.grant(job_id, holders, ttl_s)

    def release_all(self, job_id) -> None:
        for (j, _), lease in self.db.leases.items():
            if j == job_id:
                lease.update(holder=None, epoch=lease["epoch"] + 1, expires=None)

    def zones(self) -> dict[str, Zone]:
        self.db.check()
        return dict(self.db.zones)

    def ensure_zone(self, name: str) -> None:
        self.db.zones.setdefault(name, Zone(name))

    def check_zone(self, name: str) -> None:
        if name not in self.db.zones:
            raise ZoneError("zone", f"zone {name!r} does not exist")

    def set_placed(self, job_id, expected, zone) -> bool:
        job = self.db.jobs[job_id]
        if job["placed_zone"] != expected:
            return False
        job["placed_zone"] = zone
        return True


class LocalAgentLegs:
    """The gateways holding the Agent Manager's nailed sessions in-process, as
    `media_gateway.RayAgentLegs` tells them over Ray (every gateway, every time)."""

    def __init__(self, gateways: dict[str, Gateway]):
        self.gateways = gateways

    async def hold(self, sessions: dict[str, int], version: int) -> dict[str, dict]:
        return {name: await g.nail(dict(sessions)) for name, g in self.gateways.items()}


class LocalGateways:
    """Gateways reached in-process, as `media_gateway.RayGateways` reaches them over Ray.
    `vanish(name)` takes one away as a lost server would."""

    def __init__(self, *gateways: Gateway):
        self.live = {g.config.name: g for g in gateways}
        self.slow: set[str] = set()        # these answer nothing in time (a server being lost)
        self.fences: list[tuple[str, int, dict[int, int]]] = []

    def names(self) -> list[str]:
        return sorted(self.live)

    def _get(self, name: str) -> Gateway:
        if name not in self.live:
            raise GatewayUnreachable(name)
        if name in self.slow:
            raise GatewaySlow(name)
        return self.live[name]

    def vanish(self, name: str) -> Gateway:
        return self.live.pop(name)

    async def submit(self, name: str, orders: list[Order]) -> list[Refusal]:
        return await self._get(name).submit(copy.deepcopy(orders))

    async def poll(self, name: str, reply_to: str) -> list[Outcome]:
        return await self._get(name).poll(reply_to)

    async def answers(self, name: str, reply_to: str, wait_s: float) -> list[Outcome]:
        return await self._get(name).answers(reply_to, wait_s)

    async def lookup(self, name: str, attempt_ids: list[str]) -> dict[str, OrderRecord]:
        return await self._get(name).lookup(attempt_ids)

    async def fence(self, name: str, job_id: int, epochs: dict[int, int]) -> None:
        gateway = self._get(name)
        self.fences.append((name, job_id, dict(epochs)))
        await gateway.fence(job_id, epochs)

    async def bridge(self, name: str, calls: dict[str, int]) -> list[str]:
        return await self._get(name).bridge(dict(calls))

    async def order_ids(self) -> list[str]:
        return [aid for g in self.live.values() for aid in await g.order_ids()]

    async def submit_directly(self, name: str, orders: list[Order]) -> list[Refusal]:
        """An order that was on its way while the gateway was unreachable, arriving now."""
        return await self.live[name].submit(copy.deepcopy(orders))


class FakeRuleStore:
    """`store.rules.RuleStore` with the default rules and a DNC list in memory."""

    def __init__(self, dnc: set[str] = frozenset()):
        self.dnc_addresses = set(dnc)
        self.broken = False

    def rules(self):
        return list(DEFAULT_RULES)

    def dnc(self, campaign_ids, addresses, contact_ids):
        """The in-memory list applies to every campaign (as the system list does)."""
        return {(c, a): "system" for c in campaign_ids for a in set(addresses) & self.dnc_addresses}, {}

    def dialled_since(self, since):
        return []


class LocalRules:
    """The real rule service reached in-process (`rule_engine.RayRules` reaches it over Ray)."""

    def __init__(self, service: RuleService):
        self.service = service

    async def check(self, candidates: list[Candidate]) -> list[Verdict]:
        return self.service.check(candidates)


class FakeFleet:
    """`fleet.RayFleet` in memory: managers are ManagerService objects made by `make_manager`;
    a name in `silent` does not answer pings (a frozen or lost manager). `servers_in` is the
    live servers per zone (all in the default zone unless a test says otherwise); `placed`
    the zone each manager was created in."""

    def __init__(self, make_manager, servers: int = 1, gateways: tuple[str, ...] = ("gw-a",)):
        self.make_manager, self.server_count, self.gateways = make_manager, servers, list(gateways)
        self.servers_in: dict[str | None, int] = {DEFAULT_ZONE: servers}
        self.managers_by_name: dict[str, Any] = {}
        self.placed: dict[str, str] = {}
        self.silent: set[str] = set()
        self.retired: list[int] = []
        self.retired_zones: list[tuple[int, str | None]] = []
        self.ensured = 0
        self.agent_jobs: list[tuple[list, list]] = []     # what the Agent Manager was told

    def servers(self) -> int:
        return self.server_count

    def zone_servers(self) -> dict[str | None, int]:
        return {z: n for z, n in self.servers_in.items() if n}

    def gateway_names(self) -> list[str]:
        return list(self.gateways)

    def ensure_gateways(self) -> None:
        self.ensured += 1

    def set_agent_jobs(self, jobs: list, notifications: list) -> None:
        self.agent_jobs.append((list(jobs), list(notifications)))

    async def managers(self, job_id: int, count: int, zone: str, draining: bool,
                       slow_factor: float = 1.0) -> list[str]:
        from pom_actors.names import manager_name
        live = []
        for i in range(count):
            name = manager_name(job_id, i)
            if name not in self.managers_by_name:
                self.managers_by_name[name] = self.make_manager(job_id, i, count)
                self.placed[name] = zone
            if name not in self.silent:
                self.managers_by_name[name].draining = draining
                self.managers_by_name[name].slow_factor = slow_factor
                live.append(self.managers_by_name[name].holder)
        return live

    async def stop_claiming(self, job_id: int, count: int) -> list[str]:
        from pom_actors.names import manager_name
        live = []
        for i in range(count):
            name = manager_name(job_id, i)
            if name in self.managers_by_name and name not in self.silent:
                self.managers_by_name[name].draining = True
                live.append(self.managers_by_name[name].holder)
        return live

    def refresh(self, holders: set[str]) -> None:
        for m in self.managers_by_name.values():
            if m.holder in holders:
                m.refresh()

    async def drain(self, names, timeout_s):
        return {n: await self.managers_by_name[n].drain(timeout_s) for n in names if n in self.managers_by_name}

    async def serve(self, names) -> None:
        for n in names:
            if n in self.managers_by_name:
                self.managers_by_name[n].draining = False

    def retire(self, job_id: int, count: int, zone: str | None) -> None:
        from pom_actors.names import manager_name
        for i in range(count):
            self.managers_by_name.pop(manager_name(job_id, i), None)
            self.placed.pop(manager_name(job_id, i), None)
        self.retired.append(job_id)
        self.retired_zones.append((job_id, zone))
