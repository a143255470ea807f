"""Everything a CampaignManager does, as a plain class: it works the shards of one job that
the director leased to it. The actor (`pom_actors/manager.py`) only creates it and runs it.

One cycle, in batches: renew leases (and adopt shards newly gained), collect outcomes from
the media gateways, then in ONE fenced transaction settle those outcomes (next step + ledger
+ outbox), claim due items (the claim records each attempt's intent on its work item), ask
the rule engine for the batch and record the restricted ones; only after the commit do the
orders leave for a gateway. Every decision is a `core` call; this class owns the order of
the steps, the memory of what is in flight, and the recovery from a failed cycle.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a `store.work.
WorkStore`; `rules.check(candidates)` the verdicts of a batch; `gateways` (`names()`,
`submit`, `poll`, `answers`, `lookup`, `fence`, `bridge`, raising `GatewayUnreachable` for a gateway that
is gone and `GatewaySlow` for one that did not answer in time) the media gateways; a clock; for agent-based
jobs `agents.snapshot(job_id, index, managers)`, this manager's share of the job's agents
(core/pacing/live.py: fetched every `AGENT_REFRESH_S`, never per contact), and `agents.reserve`
/ `agents.settle_calls` for the answered calls it bridges onto agents (`_bridge`: one batch per
cycle, the decision in core/agents/bridge.py; and, for a job with agent-based handlers, at once
when a gateway's long poll `answers` brings a notice — `_answer_watch`, beside the cycle, so an
answered call waits for neither the idle sleep nor the cycle's transaction). A preview handler's claimed contacts are held
as cards (`_preview`, core/agents/preview.py): `agents.offer_cards` shows them to ready agents
and returns their answers; an accepted card's order is dispatched then, and its call, once
answered, is bridged onto the agent who holds it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..config import Settings
from ..core.agents.bridge import ANSWERED, BRIDGE_WAIT_S, deadline, decide, expired
from ..core.agents.desk import preview_card, screen_pop
from ..core.agents.disposal import DISPOSE_WAIT_S, disposals
from ..core.agents.ports import PORTS_PROBE_S, PORTS_REFRESH_S, PORTS_RETRY_S
from ..core.finish import FinishCriteria
from ..core.agents.preview import HeldOrders
from ..core.clock import Clock
from ..core.events import ATTEMPTS_TOPIC, job_key, restricted_event, settled_event
from ..core.histogram import Histogram
from ..core.jobchanges import effective
from ..core.lifecycle import DISPATCHING
from ..core.load import SlowDown
from ..core.orders import Order, OrderRecord, Outcome, Refusal
from ..core.pacing.factory import parse_pacing_config
from ..core.pacing.live import AGENT_REFRESH_S, HandlerPacer, UnsettledAnswers, put_through
from ..core.pacing.snapshot import EventKind, PacerEvent, PacerSnapshot, PacingDecision, RuleCounters
from ..core.pacing.window import WARM_WINDOW_S, Outcomes, window_since
from ..core.reconcile import GatewaySlow, GatewayUnreachable, not_sent, reconcile
from ..core.rules import Candidate, Verdict
from ..core.shards import choose_gateway
from ..core.strategy import Strategy
from ..core.work import AttemptRow, Item, candidate, in_flight_row, make_item, plan, resend, settle
from ..names import on_node
from ..store.work import WorkStore

log = logging.getLogger(__name__)
IDLE_S = 0.05
RETRY_S = 0.5
ANSWERS_WAIT_S = 1.0      # real seconds a gateway's long poll for answered calls may wait
SUSPECT_S = (3.0, 30.0)   # a gateway that did not answer in time is not asked again for 3 s,
                          # doubling while it stays silent, up to 30 s
WINDOW_REFRESH_S = 2.0    # real seconds between two reads of the campaign's rule window
CRASH_DIR_ENV = "POM_CRASH_DIR"
CRASH_POINTS = ("after_claim", "after_intent", "after_dispatch", "after_result")


def crash_point(point: str) -> None:
    """Test hook (tests/chaos; docs/architecture.md, "Crash points"). Only when the
    environment variable POM_CRASH_DIR names a directory and a file called `point` is in it:
    remove the file and end this process at once, as a crash would (`os._exit`: no clean-up;
    the server rolls back the open transaction). Removing the file first makes it one crash
    per file, in whichever process gets there first. Unset, it does nothing."""
    armed = os.environ.get(CRASH_DIR_ENV)
    if not armed:
        return
    try:
        os.unlink(os.path.join(armed, point))
    except OSError:                 # not armed (or another process took it)
        return
    os._exit(1)


class RuleChecker(Protocol):
    async def check(self, candidates: list[Candidate]) -> list[Verdict]: ...


class Gateways(Protocol):
    def names(self) -> list[str]: ...
    async def submit(self, name: str, orders: list[Order]) -> list[Refusal]: ...
    async def poll(self, name: str, reply_to: str) -> list[Outcome]: ...
    async def answers(self, name: str, reply_to: str, wait_s: float) -> list[Outcome]: ...
    async def lookup(self, name: str, attempt_ids: list[str]) -> dict[str, OrderRecord]: ...
    async def fence(self, name: str, job_id: int, epochs: dict[int, int]) -> None: ...
    async def bridge(self, name: str, calls: dict[str, int]) -> list[str]: ...


class AgentSnapshots(Protocol):
    async def snapshot(self, job_id: int, index: int, managers: int) -> PacerSnapshot | None: ...
    async def reserve(self, job_id: int, call_ids: list[str], screens: dict[str, dict]) -> dict[str, int | None] | None: ...
    async def settle_calls(self, connect: list[str], release: list[str], hangup: list[str]) -> dict | None: ...
    async def take_dispositions(self, job_id: int) -> list[dict] | None: ...
    async def ports(self, job_id: int, index: int, managers: int, in_use: int, held: int | None,
                    wanting: bool) -> dict | None: ...
    async def offer_cards(self, job_id: int, owner: str, new: dict[str, dict], shown: list[str], *,
                          timeout_s: float | None, on_timeout: str, skip_codes: list[str]) -> dict | None: ...


class ManagerService:
    def __init__(self, settings: Settings, *, job_id: int, name: str, holder: str, managers: int,
                 open_store: Callable[[], WorkStore], rules: RuleChecker, gateways: Gateways,
                 clock: Clock, node_id: str = "", agents: AgentSnapshots | None = None, index: int = 0):
        self.settings, self.name, self.holder, self.node_id = settings, name, holder, node_id
        self.open_store, self.rules, self.gateways, self.clock = open_store, rules, gateways, clock
        self.store = open_store()
        job = self.store.job()
        self.job_id, self.campaign_id = job_id, job["campaign_id"]
        # the campaign's custom codes and the agent scripts its handlers name, as they are now
        # (changed through the API)
        strategy = self.store.strategy(job["strategy_id"])
        self.strategy: Strategy = strategy.with_codes(self.store.custom_codes(self.campaign_id)).with_scripts(
            self.store.scripts(strategy.script_names()))
        codes = self.strategy.codebook()
        self._live = {c.name for c in codes if c.human_contact or c.counts_as_abandon}
        self._abandon = {c.name for c in codes if c.counts_as_abandon}
        self.outcomes = Outcomes(self._live, self._abandon)
        # Each handler's pacer (core/pacing/live.py); one that paces by agents starts from the
        # campaign's recent outcomes (warm start) and reads its persisted rule window.
        self.agents, self.index, self.managers = agents, index, managers
        # A notification job's calls hold outbound ports: at most `ports_cap` of its calls in
        # flight, the cap asked of the Agent Manager every PORTS_REFRESH_S (`_refresh_ports`);
        # none known yet: no call. An agent-based job draws agents, not ports; without an Agent
        # Manager (agents None) nothing is licensed.
        self.port_calls = frozenset() if agents is None or any(h.agent_based for h in self.strategy.handlers.values()) \
            else frozenset(n for n, h in self.strategy.handlers.items() if h.type == "call")
        self.ports_cap: int | None = 0 if self.port_calls else None
        self.ports_due, self.ports_wanted = -float("inf"), True      # wanted: cut by the cap since the last ask
        self.dry: dict[str, bool] = {}                     # handler -> its last claim found fewer than asked
        self.probed = time.monotonic()                     # dry forgotten then: the cap may hide contacts due
        recent = self.store.warm_start(self.campaign_id, window_since(clock.now(), WARM_WINDOW_S)) \
            if any(h.agent_based for h in self.strategy.handlers.values()) else None
        self.pacers = {name: HandlerPacer(h.pacing, managers, recent, h.ring_timeout)
                       for name, h in self.strategy.handlers.items()}
        self.pacing_changes: dict[str, Any] = {}           # the job's run-time pacing (jobs.pacing) applied
        self._repace(self.store.job_pacing())
        self.agent_view: PacerSnapshot | None = None      # this manager's share of the agents, last fetched
        self.fetched = self.counted = -float("inf")        # time.monotonic() of the last fetch / read
        self.windows: dict[float, RuleCounters] = {}       # window seconds -> the campaign's counters
        self.events: dict[str, list[PacerEvent]] = defaultdict(list)   # handler -> outcomes not yet told
        self.alarmed: bool | None = None                   # the job's pacing alarm as last written
        # answered calls waiting for an agent: call -> (answered at, its deadline, gateway, screen pop)
        self.answered: dict[str, tuple[datetime, datetime, str, dict]] = {}
        # answered calls put through to an agent its share showed ready, until their end is
        # collected: no longer dials (that agent's talking)
        self.bridged: set[str] = set()
        # live answers seen that the last read of the rule window does not count yet
        self.unsettled = UnsettledAnswers()
        self.hangups: list[str] = []                       # bridged calls ended, not yet told
        # Answered calls are bridged by the cycle and, as soon as a gateway has them, by
        # `_answer_watch`, in rounds that may overlap (`_connect_round`): each takes the calls
        # waiting that no other round holds (`reserving`), so a call answered while others are
        # being bridged is reserved at once. The completions the watch took settle at the
        # next cycle (`carried`).
        self.reserving: set[str] = set()
        # Calls whose `reserve` got no answer: an agent may be held for them all the same (Ray
        # retries the call at a restarted Agent Manager). One that ends without an agent has
        # its reservation released (`unheld`), not left to time out with its agent.
        self.unsure: set[str] = set()
        self.rounds: set[asyncio.Task] = set()
        self.carried: list[Outcome] = []
        self.fast_bridge = agents is not None and any(h.agent_based for h in self.strategy.handlers.values())
        # calls ended unbridged whose agent may be held (accepted cards', unsure ones), not yet released
        self.unheld: list[str] = []
        # Preview handlers: their settings and their contacts held as cards until an agent answers.
        self.previews = {n: parse_pacing_config({**h.pacing.settings, "mode": "preview"})
                         for n, h in self.strategy.handlers.items() if h.type == "call" and h.pacing.mode == "preview"}
        self.cards = {n: HeldOrders() for n in self.previews}
        self.offered = -float("inf")                       # time.monotonic() of the last offer round
        # Seconds from the start of the claim to the gateway accepting the order (per order).
        self.dispatch_latency = Histogram()
        # Business seconds from a person answering to the call bridged onto an agent (the rule's 2 s).
        self.answer_to_agent = Histogram()
        self.state: str | None = job["state"]
        self.end_time = FinishCriteria.model_validate(job.get("finish") or {}).end_time   # no call-back after it
        self.undisposed: dict[str, dict[str, Any]] = {}   # attempt id -> disposition whose attempt is in flight
        self.held: dict[int, int] = {}
        # attempt id -> (item, its pending ledger row: epoch sent under, gateway, time sent)
        self.inflight: dict[str, tuple[Item, AttemptRow]] = {}
        self.watch: set[str] = set()          # attempts whose outcome must be looked up
        self.suspect: dict[str, tuple[float, float]] = {}   # gateway -> (asked again at, backoff)
        self.unfenced: dict[str, dict[int, int]] = {}   # gateway -> epochs it has not confirmed
        self.renewed = 0.0
        # No claims until the director says the server is not draining: a manager that Ray
        # restarts while `pom run` is away must not start dialling on its own.
        self.draining = True
        # Dialling slowed by this factor while the load restrictions say so (the director's
        # ping passes it on: core.load.restrictions); 1: full pace.
        self.slow_factor = 1.0
        self._slowdown = SlowDown()
        self.stats: Counter[str] = Counter()
        self.timing: Counter[str] = Counter()

    # -- control --------------------------------------------------------------------------------
    def refresh(self) -> None:
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

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "holder": self.holder, "job_id": self.job_id, "state": self.state,
                "waiting_for_agent": len(self.answered), "ports_cap": self.ports_cap,
                "draining": self.draining, "slow_factor": self.slow_factor, "shards": self.held, "in_flight": len(self.inflight),
                "seconds": {k: round(v, 3) for k, v in self.timing.items()},
                "pacing": {k: dict(p.figures) for k, p in self.pacers.items()},
                "dispatch_latency": self.dispatch_latency.as_dict(),
                "answer_to_agent": self.answer_to_agent.as_dict(),
                "cards": {n: {"queued": len(h.queued), "shown": len(h.shown), "dialled": len(h.dialled),
                              "ready": h.ready} for n, h in self.cards.items()}, **self.stats}

    async def run(self) -> None:
        """Cycle for ever; a failed cycle rolled back, so start again from the database.
        Beside it (a job with agent-based handlers), `_answer_watch` bridges answered calls."""
        answers = asyncio.get_running_loop().create_task(self._answer_watch()) if self.fast_bridge else None
        try:
            while True:
                try:
                    busy = await self.cycle()
                except Exception:
                    log.exception("%s: cycle failed", self.name)
                    self.recover()
                    busy = False
                    await asyncio.sleep(RETRY_S)
                if not busy:
                    await asyncio.sleep(IDLE_S)
        finally:
            if answers is not None:
                answers.cancel()
            for task in self.rounds:
                task.cancel()

    async def _answer_watch(self) -> None:
        """For ever: a long poll (`gateways.answers`) on each gateway with calls of this
        manager in flight; what one brings is bridged at once (`bridge_answers`)."""
        waits: dict[str, asyncio.Task] = {}
        try:
            while True:
                for name in sorted({row.gateway for _, row in self.inflight.values()} - waits.keys()):
                    if self._answers(name):
                        waits[name] = asyncio.ensure_future(self.gateways.answers(name, self.name, ANSWERS_WAIT_S))
                if not waits:
                    await asyncio.sleep(IDLE_S)
                    continue
                await asyncio.wait(list(waits.values()), timeout=IDLE_S, return_when=asyncio.FIRST_COMPLETED)
                found: list[Outcome] = []
                failed = False
                for name, task in list(waits.items()):
                    if task.done():
                        del waits[name]
                        try:
                            found.extend(task.result())
                        except Exception as exc:        # whatever it took is looked up
                            if not isinstance(exc, (GatewayUnreachable, GatewaySlow)):
                                log.warning("%s: long poll of %s failed: %r", self.name, name, exc)
                            self._lost_poll(name, exc)
                            failed = True
                if found:                   # bridged beside the long polls, which go out again now
                    task = asyncio.ensure_future(self.bridge_answers(found))
                    self.rounds.add(task)
                    task.add_done_callback(self._round_done)
                if failed:
                    await asyncio.sleep(RETRY_S)
        finally:
            for task in waits.values():
                task.cancel()

    async def bridge_answers(self, found: list[Outcome]) -> None:
        """Bridge the answered calls among `found` (outcomes a gateway's long poll brought) now,
        between two cycles; the rest settle at the next cycle."""
        self.carried.extend(self._intake(found))
        await self._connect_round()
        self.stats["bridged_at_answer"] += sum(1 for o in found if o.code == ANSWERED)

    def _round_done(self, task: asyncio.Task) -> None:
        self.rounds.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: bridging answered calls failed", self.name, exc_info=task.exception())

    def _lost_poll(self, name: str, exc: Exception) -> None:
        """A gateway that did not answer a poll: its calls' outcomes are looked up from now on."""
        if isinstance(exc, GatewaySlow):
            self._slow(name)
        self.watch.update(aid for aid, (_, row) in self.inflight.items() if row.gateway == name)

    def recover(self) -> None:
        """After a failed cycle: outcomes taken from the gateways may not have settled, so
        forget what is in memory and adopt every shard anew (items in flight are looked up by
        id); open a new store if the database connection is gone."""
        self.stats["cycle_errors"] += 1
        self.held, self.renewed = {}, 0.0
        self.inflight.clear()
        self.carried.clear()
        self.bridged.clear()
        self.watch.clear()
        self.unfenced.clear()
        for held in self.cards.values():                   # adopted anew and looked up: never dialled twice
            held.forget([*held.queued, *held.shown])
        if self.store.broken:
            try:
                self.store = self.open_store()
            except Exception as exc:          # still down: try again after the next cycle
                log.warning("%s: database unreachable: %s", self.name, exc)

    # -- the cycle ------------------------------------------------------------------------------
    async def cycle(self) -> bool:
        """One cycle; True when it moved anything (the loop idles otherwise)."""
        if time.monotonic() - self.renewed >= self.settings.lease_ttl_s / 3:
            await self._renew()
        with self._timed("collect"):
            outcomes = await self._collect()
        outcomes = self._intake(outcomes)
        if self.answered or self.hangups or self.unheld:
            with self._timed("bridge"):
                await self._connect_round()
        outcomes, self.carried = self.carried + outcomes, []
        dispatching = self.state in DISPATCHING and self.held and not self.draining
        if self.cards and self.agents is not None:
            with self._timed("preview"):
                outcomes = outcomes + await self._preview(bool(dispatching))
        await self._refresh_ports()
        now = self.clock.now()
        gateway = self._gateway() if dispatching else None     # none running yet: settle only
        if gateway:
            await self._refresh_pacing()
        budgets = self._budgets(now) if gateway else {}
        if not outcomes and not any(budgets.values()):
            return False
        sent: list[tuple[Item, AttemptRow, Order]] = []
        claim_started = time.monotonic()
        async with self._fenced() as valid:
            with self._timed("settle"):
                await self._settle(outcomes, valid)
            items = []
            for handler, n in budgets.items():
                with self._timed("claim"):
                    claimed = await self._db(self.store.claim, valid, handler, gateway, now, n) if n and valid else []
                with self._timed("items"):
                    items += [make_item(row, self.strategy) for row in claimed]
                self._unplaced(handler, n - len(claimed))
                if n:
                    self.dry[handler] = len(claimed) < n
            if items:
                crash_point("after_claim")
                sent = await self._plan(items, valid, gateway, now)
        # Committed: these attempts are in flight (a rolled-back cycle leaves nothing behind),
        # those outcomes are in the rule window.
        self.unsettled.settle(o.attempt_id for o in outcomes)
        self.inflight.update((item.attempt_id, (item, row)) for item, row, _ in sent)
        sent = self._hold_cards(sent)
        if sent:
            crash_point("after_intent")
            with self._timed("dispatch"):
                await self._dispatch(gateway, [order for _, _, order in sent], claim_started)
            crash_point("after_dispatch")
        return bool(items) or bool(outcomes)

    async def _plan(self, items: list[Item], valid: dict[int, int], gateway: str,
                    now: datetime) -> list[tuple[Item, AttemptRow, Order]]:
        """Verdicts for the claimed batch; the restricted ones are recorded here (inside the
        fenced transaction), the allowed ones returned to be sent after the commit."""
        with self._timed("rules"):
            verdicts = await self.rules.check([candidate(i, self.strategy, self.campaign_id) for i in items])
        with self._timed("plan"):
            plans = [plan(i, v, self.strategy, campaign_id=self.campaign_id, epoch=valid[i.shard],
                          gateway=gateway, reply_to=self.name, now=now) for i, v in zip(items, verdicts)]
        restricted = [p for p in plans if not p.order]
        with self._timed("restricted"):
            if restricted:
                await self._db(self._record_restricted, restricted)
        for p in restricted:
            self._unplaced(p.attempt.handler, 1)
        self.stats["restricted"] += len(restricted)
        return [(i, p.attempt, p.order) for i, p in zip(items, plans) if p.order]

    def _record_restricted(self, restricted: list) -> None:
        self.store.write_attempts([p.attempt for p in restricted])
        self.store.update_items([p.update for p in restricted])
        self.store.outbox(ATTEMPTS_TOPIC, job_key(self.job_id), [restricted_event(p.attempt) for p in restricted])

    async def _db(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`, a statement of the synchronous store, in a worker thread: its round
        trips and its commit's flush would otherwise hold this event loop, and an answered call
        whose notice arrives meanwhile would wait for them before its agent is reserved
        (docs/benchmarks.md, "Agents"). One at a time: the cycle awaits
        each, and nothing else here uses the store."""
        return await asyncio.to_thread(call, *args)

    @asynccontextmanager
    async def _fenced(self):
        """`store.fenced(held)` (timed as "transaction"), entered and left through `_db`: the
        fence's read and the commit are off the event loop too."""
        start = time.perf_counter()
        fenced = self.store.fenced(self.held)
        try:
            valid = await self._db(fenced.__enter__)
            try:
                yield valid
            except BaseException as exc:
                if not await self._db(fenced.__exit__, type(exc), exc, exc.__traceback__):
                    raise
            else:
                await self._db(fenced.__exit__, None, None, None)
        finally:
            self.timing["transaction"] += time.perf_counter() - start

    @contextmanager
    def _timed(self, phase: str):
        """Seconds spent per phase of the cycle, cumulative (reported by `status`)."""
        start = time.perf_counter()
        yield
        self.timing[phase] += time.perf_counter() - start

    def _budgets(self, now: datetime) -> dict[str, int]:
        """Dials each handler may start now: its pacer over this manager's in-flight calls,
        at most one batch (what the pacer grants beyond that is given back), slowed by
        `slow_factor` (what that withholds is spent: a paced handler dials at factor × rate)."""
        # Calls at a gateway that does not answer are not counted: a lost server's lines are
        # gone with it, and its calls' fate is left to reconciliation.
        flying: dict[str, list[float]] = defaultdict(list)
        waiting: dict[str, list[float]] = defaultdict(list)     # answered, waiting for an agent
        connected: Counter[str] = Counter()                     # answered, with an agent
        for aid, (item, row) in self.inflight.items():
            if aid in self.answered:
                waiting[item.handler].append(max(0.0, (now - self.answered[aid][0]).total_seconds()))
            elif aid in self.bridged and self._answers(row.gateway):
                connected[item.handler] += 1
            elif self._answers(row.gateway):
                flying[item.handler].append(max(0.0, (now - row.created_at).total_seconds()))
        budgets, decided = {}, {}
        room = None if self.ports_cap is None else self.ports_cap - self._calls_in_flight()
        for name, pacer in self.pacers.items():
            counters = self.unsettled.counters(self.windows.get(pacer.window_s) or RuleCounters())
            decision = pacer.decide(now, tuple(flying[name]), self.agent_view, counters,
                                    tuple(self.events.pop(name, ())), tuple(waiting[name]), connected[name])
            if pacer.by_agents:
                decided[name] = (pacer, decision)
            batch = min(decision.dials, self.settings.batch_size)
            if name in self.cards:              # preview: a contact per ready agent without a card
                batch = min(batch, self.cards[name].wanted(self.managers))
            budgets[name] = self._slowdown.scale(name, batch, self.slow_factor)
            if room is not None and name in self.port_calls:    # the job's outbound ports
                capped = max(0, min(budgets[name], room))
                self.ports_wanted |= capped < budgets[name] and not self.dry.get(name)
                self._unplaced(name, budgets[name] - capped)
                budgets[name], room = capped, room - capped
            pacer.figures["granted"] += budgets[name]
            self._unplaced(name, decision.dials - batch)
        self._alarm(decided)
        return budgets

    def _calls_in_flight(self) -> int:
        """This manager's calls holding outbound ports: every call in flight, at a gateway that
        answers or not (a port is free only once its call's end is known)."""
        return sum(1 for item, _ in self.inflight.values() if item.handler in self.port_calls)

    async def _refresh_ports(self) -> None:
        """A notification job's cap on this manager's calls in flight (its outbound ports),
        asked of the Agent Manager every `PORTS_REFRESH_S` — whatever the job's state, so the
        ports its calls free are known — with what it holds: calls in flight, its cap, whether
        the cap held back dials with contacts due (core/agents/ports.py; a handler whose claim
        found fewer than asked is taken to have none for `PORTS_PROBE_S`). No answer (the Agent
        Manager unreachable, or not told of the job yet): the cap held stands (none yet: 0),
        asked again after `PORTS_RETRY_S`."""
        if not self.port_calls or time.monotonic() < self.ports_due:
            return
        if time.monotonic() - self.probed >= PORTS_PROBE_S:   # contacts may be due again: look
            self.probed, self.dry = time.monotonic(), {}
        answer = await self.agents.ports(self.job_id, self.index, self.managers, self._calls_in_flight(),
                                         self.ports_cap, self.ports_wanted)
        self.ports_due = time.monotonic() + (PORTS_RETRY_S if answer is None else PORTS_REFRESH_S)
        self.ports_wanted = False
        if answer is not None:
            self.ports_cap = answer["cap"]

    async def _refresh_pacing(self) -> None:
        """For the pacers that pace by agents: this manager's share of the job's agents (every
        `AGENT_REFRESH_S`; None if the Agent Manager did not answer) and the campaign's rule
        windows (every `WINDOW_REFRESH_S`)."""
        windows = {p.window_s for p in self.pacers.values() if p.by_agents}
        if not windows:
            return
        t = time.monotonic()
        if self.agents is not None and t - self.fetched >= AGENT_REFRESH_S:
            self.fetched = t
            self.agent_view = await self.agents.snapshot(self.job_id, self.index, self.managers)
            await self._wrapped(await self.agents.take_dispositions(self.job_id) or [])
        if t - self.counted >= WINDOW_REFRESH_S:
            self.counted = t
            now = self.clock.now()
            self.windows = {w: (await self._db(self.store.pacing_window, self.campaign_id,
                                               window_since(now, w))).counters() for w in windows}
            self.unsettled.read()

    async def _wrapped(self, dispositions: list[dict[str, Any]]) -> None:
        """The agents' dispositions of the job's calls: each ends its after-call work, which the
        pacers of the handlers that pace by agents learn (`wrap_s`, as the agent reported it;
        not again for one handed out `again`), and reaches the ledger (`_dispose`)."""
        ends = [PacerEvent(EventKind.WRAP_END, float(d["wrap_s"])) for d in dispositions
                if d.get("wrap_s") is not None and not d.get("again")]
        if ends:
            for name, pacer in self.pacers.items():
                if pacer.by_agents:
                    self.events[name].extend(ends)
            self.stats["dispositions"] += len(ends)
        await self._dispose(dispositions)

    async def _dispose(self, dispositions: list[dict[str, Any]]) -> None:
        """Write the dispositions taken, with those still waiting, in one store call: the code
        becomes the attempt's completion code, a call-back schedules the contact again
        (core.agents.disposal). One whose attempt has not settled yet waits for a later cycle,
        at most `DISPOSE_WAIT_S` of business time; all wait while the database is unreachable."""
        now = self.clock.now()
        waiting = {**self.undisposed, **{str(d.get("call_id")): d for d in dispositions}}
        todo = disposals(waiting.values(), self.state, self.end_time)
        self.undisposed = {d.attempt_id: waiting[d.attempt_id] for d in todo}   # kept if the store fails
        if not todo:
            return
        done = await self._db(self.store.dispose, todo, now - timedelta(seconds=DISPOSE_WAIT_S))
        self.undisposed = {c: waiting[c] for c in done["pending"]
                           if (now - waiting[c]["at"]).total_seconds() < DISPOSE_WAIT_S}
        for key in ("applied", "refused", "called_back"):
            self.stats[f"disposals_{key}"] += len(done[key])
        if done["refused"]:
            log.warning("job %s: dispositions refused: %s", self.job_id, "; ".join(done["refused"][:5]))

    def _alarm(self, decided: dict[str, tuple[HandlerPacer, PacingDecision]]) -> None:
        """Raise the job's pacing alarm while a decision of an agent-based handler carries one,
        clear it when none does (written when that changes, and once at start)."""
        raised = sorted((name, pacer, d) for name, (pacer, d) in decided.items() if d.alarm)
        if not decided or self.alarmed == bool(raised):
            return
        if raised:
            name, pacer, d = raised[0]
            self.store.pacing_alarm(f"job {self.job_id} ({name}): {d.alarm}", pacer.figures["abandon_rate"] or 0.0,
                                    getattr(pacer.config, "target", 0.0))
        else:
            self.store.pacing_alarm(None, 0.0, 0.0)
        self.alarmed = bool(raised)

    def _unplaced(self, handler: str, count: int) -> None:
        if count > 0:
            self.pacers[handler].observe([PacerEvent(EventKind.UNPLACED, count=count)])

    def _gateway(self) -> str | None:
        live = [g for g in self.gateways.names() if self._answers(g)]
        return choose_gateway(live, [g for g in live if on_node(g, self.node_id)], self.name)

    def _answers(self, gateway: str) -> bool:
        return self.suspect.get(gateway, (0.0, 0.0))[0] <= time.monotonic()

    def _slow(self, gateway: str) -> None:
        """A gateway that did not answer in time: neither waited for nor sent orders for a
        while, longer each time it stays silent (a lost server's actors hang for seconds
        before Ray declares them dead)."""
        backoff = min(SUSPECT_S[1], 2 * self.suspect[gateway][1]) if gateway in self.suspect else SUSPECT_S[0]
        self.suspect[gateway] = (time.monotonic() + backoff, backoff)
        self.stats["gateway_timeouts"] += 1

    async def _dispatch(self, gateway: str, batch: list[Order], claim_started: float | None = None) -> None:
        try:
            refused = await self.gateways.submit(gateway, batch)
        except (GatewayUnreachable, GatewaySlow) as exc:
            # Whether the orders arrived is unknowable now: reconcile them by lookup.
            if isinstance(exc, GatewaySlow):
                self._slow(gateway)
            self.watch.update(o.attempt_id for o in batch)
            return
        self.suspect.pop(gateway, None)
        for r in refused:                       # a newer epoch took the shard: its holder reconciles
            self.inflight.pop(r.attempt_id, None)
            self.stats["refused"] += 1
            for cards in self.cards.values():
                if r.attempt_id in cards.dialled:    # an accepted card's order: its agent is free
                    cards.dialled.discard(r.attempt_id)
                    self.unheld.append(r.attempt_id)
        self.stats["dispatched"] += len(batch) - len(refused)
        if claim_started is not None:       # every accepted order of the batch: claim -> accepted
            self.dispatch_latency.observe(time.monotonic() - claim_started, len(batch) - len(refused))

    async def _collect(self) -> list[Outcome]:
        """Outcomes addressed to this manager, plus those of watched attempts found by lookup."""
        if self.unfenced:
            await self._fence_pending()
        names = sorted({row.gateway for _, row in self.inflight.values()})
        found: list[Outcome] = []
        failed = {n for n in names if not self._answers(n)}
        asked = [n for n in names if n not in failed]
        polls = await asyncio.gather(*[self.gateways.poll(n, self.name) for n in asked], return_exceptions=True)
        for name, result in zip(asked, polls):
            if isinstance(result, BaseException):
                if isinstance(result, GatewaySlow):
                    self._slow(name)
                failed.add(name)
            else:
                self.suspect.pop(name, None)
                found.extend(result)
        if failed:    # their outcomes can only be looked up now (and are in doubt if gone)
            self.watch.update(aid for aid, (_, row) in self.inflight.items() if row.gateway in failed)
        if self.watch:
            found.extend(await self._lookup(self.watch))
        return found

    def _intake(self, found: list[Outcome]) -> list[Outcome]:
        """Take the gateways' notices of answered calls out of `found` into `answered` (each
        with its screen pop) and note what the completions among them end; returns the
        completions, to settle."""
        outcomes = []
        for o in found:
            if o.code != ANSWERED:
                self.answered.pop(o.attempt_id, None)
                self.bridged.discard(o.attempt_id)
                if "agent_id" in o.details and self.agents is not None:
                    self.hangups.append(o.attempt_id)
                elif o.attempt_id in self.unsure:
                    self.unheld.append(o.attempt_id)
                self.unsure.discard(o.attempt_id)
                for held in self.cards.values():
                    if o.attempt_id in held.dialled:   # an accepted card's call ended
                        held.dialled.discard(o.attempt_id)
                        if "agent_id" not in o.details:    # never put through: its agent is free
                            self.unheld.append(o.attempt_id)
                outcomes.append(o)
            elif o.attempt_id in self.inflight and o.attempt_id not in self.answered:
                item, row = self.inflight[o.attempt_id]
                if self.unsettled.answered(o.attempt_id) and self.pacers[item.handler].by_agents:
                    self.events[item.handler].append(self.outcomes.answer(o.details))
                last = deadline(o.at, o.details.get("bridge_wait_s", BRIDGE_WAIT_S))
                self.answered[o.attempt_id] = (o.at, last, row.gateway, screen_pop(
                    o.attempt_id, self.job_id, item.contact, self.strategy, item.handler))
        if self.agents is None:
            self.answered.clear()
        return outcomes

    async def _connect_round(self) -> None:
        """Bridge the waiting calls that no other round holds onto agents: reserve (one Agent
        Manager call for the batch; the screen pops go out with it), decide
        (core/agents/bridge.py), bridge at the gateways (one call each), then connect,
        release and hang up at the Agent Manager (one call). A call with no agent in time
        is left to its gateway, which abandons it at its deadline (the notice says when)."""
        if self.agents is None:
            return
        asks = {c: a for c, a in self.answered.items() if c not in self.reserving}
        for call in expired({c: a[1] for c, a in asks.items()}, self.clock.now()):
            del self.answered[call], asks[call]
            self.stats["bridge_expired"] += 1
        self.reserving.update(asks)
        try:
            await self._put_through(asks)
        finally:                            # connected, released or still waiting: another round's
            self.reserving.difference_update(asks)

    async def _put_through(self, asks: dict[str, tuple[datetime, datetime, str, dict]]) -> None:
        """One round's calls (`_connect_round`) reserved, bridged and settled."""
        reserved = await self.agents.reserve(self.job_id, list(asks), {c: a[3] for c, a in asks.items()}) \
            if asks else {}
        if reserved is None:                # no answer: whether agents are held is unknown
            self.unsure.update(asks)
            reserved = {}
        else:
            self.unsure.difference_update(asks)
        d = decide({c: a[1] for c, a in asks.items()}, reserved, self.clock.now())
        by_gateway: dict[str, dict[str, int]] = defaultdict(dict)
        for call, agent in d.connect.items():
            by_gateway[asks[call][2]][call] = agent
        refused: set[str] = set()
        for name, calls in by_gateway.items():
            try:
                refused.update(await self.gateways.bridge(name, calls))
            except (GatewayUnreachable, GatewaySlow):
                refused.update(calls)
        connect = [c for c in d.connect if c not in refused]
        now = self.clock.now()
        for call in connect:
            self.answer_to_agent.observe(max(0.0, (now - asks[call][0]).total_seconds()))
        self.unsettled.put_through(connect)
        if connect and self.agent_view is not None:       # busy now, whatever the last fetch said
            # A call put through to an agent this manager's share did not show ready (another
            # manager's, or ready since the fetch) stays one of its lines in flight until it ends:
            # the manager whose share shows that agent ready may dial for it until its next fetch.
            self.agent_view, shown = put_through(self.agent_view, [d.connect[c] for c in connect], now)
            self.bridged.update(c for c in connect if str(d.connect[c]) in shown)
        release = [*d.release, *(c for c in d.connect if c in refused), *self.unheld]
        self.unheld = []
        for call in (*connect, *release, *d.abandon):
            self.answered.pop(call, None)
        hangups, self.hangups = self.hangups, []
        if connect or release or hangups:
            await self.agents.settle_calls(connect, release, hangups)
        self.stats["bridged"] += len(connect)
        self.stats["bridge_refused"] += len(release)

    def _hold_cards(self, sent: list[tuple[Item, AttemptRow, Order]]) -> list[tuple[Item, AttemptRow, Order]]:
        """Hold the orders of preview handlers as cards (their contact and script shown to an
        agent first); the others, to dispatch now."""
        out = []
        for item, row, order in sent:
            if item.handler in self.cards:
                self.cards[item.handler].hold(order, preview_card(
                    item.attempt_id, self.job_id, item.contact, self.previews[item.handler].timeout_s,
                    self.strategy.handlers[item.handler].script))
            else:
                out.append((item, row, order))
        return out

    async def _preview(self, dispatching: bool) -> list[Outcome]:
        """A round per preview handler (one Agent Manager call each, with cards to show, else
        every `AGENT_REFRESH_S`): its queued cards shown to ready agents (while the job
        dispatches; otherwise returned, never dialled), its shown cards' answers acted on:
        accepted (or timed out to dial) ones dispatched, the others' outcomes returned to be
        settled in this cycle (core/agents/preview.py). Accepted cards this manager does not
        hold (a lost shard, a restart) free their agents."""
        t = time.monotonic()
        if t - self.offered < AGENT_REFRESH_S and not (dispatching and any(h.queued for h in self.cards.values())):
            return []
        self.offered = t
        now, out, strays = self.clock.now(), [], []
        dial: dict[str, list[Order]] = defaultdict(list)
        for name, held in self.cards.items():
            cfg = self.previews[name]
            if not dispatching:
                for aid in list(held.queued):
                    held.queued.pop(aid)
                    out.append(Outcome(aid, "cancelled", now, {"card": "returned", "not_sent": True}))
            r = await self.agents.offer_cards(
                self.job_id, f"{self.name}/{name}", {a: c for a, (_, c) in held.queued.items()}, list(held.shown),
                timeout_s=cfg.timeout_s, on_timeout="dial" if cfg.dial_on_timeout else "skip",
                skip_codes=list(cfg.skip_codes))
            if r is None:                       # the Agent Manager did not answer: next round
                continue
            held.ready = r["ready"]
            held.placed(r["offered"])
            orders, settle, lost = held.answered(r["answers"])
            for order in orders:
                entry = self.inflight.get(order.attempt_id)
                if entry is None:                  # no longer this manager's to send
                    held.dialled.discard(order.attempt_id)
                    lost.append(order.attempt_id)
                else:
                    dial[entry[1].gateway].append(order)
            out += settle
            strays += lost
            self.stats["cards_shown"] += sum(1 for a in r["offered"].values() if a is not None)
            for a in r["answers"].values():
                self.stats[f"cards_{a['answer']}"] += 1
        if strays:
            await self.agents.settle_calls([], strays, [])
        for gateway, orders in dial.items():
            await self._dispatch(gateway, orders)
        return out

    async def _lookup(self, attempt_ids: set[str]) -> list[Outcome]:
        """Outcomes of watched attempts, decided by `core.reconcile` from the record of the
        gateway that took each order."""
        by_gateway: dict[str, list[str]] = defaultdict(list)
        for aid in attempt_ids:
            if aid in self.inflight:
                by_gateway[self.inflight[aid][1].gateway].append(aid)
        now, out = self.clock.now(), []
        for name, ids in by_gateway.items():
            if not self._answers(name) or name in self.unfenced:
                continue        # asked again later: "never received" counts only once it is fenced
            try:
                records: dict[str, OrderRecord] | GatewayUnreachable = await self.gateways.lookup(name, ids)
            except GatewaySlow:
                self._slow(name)
                continue
            except GatewayUnreachable as exc:
                records = exc
            for aid in ids:
                answer = records if isinstance(records, GatewayUnreachable) else records.get(aid)
                outcome = reconcile(aid, answer, now)
                if outcome is not None:
                    out.append(outcome)
        return out

    async def _settle(self, outcomes: list[Outcome], valid: dict[int, int]) -> None:
        """Next steps, ledger rows and outbox for outcomes of shards still held (inside `fenced`)."""
        settled = []
        for o in outcomes:
            entry = self.inflight.pop(o.attempt_id, None)
            self.watch.discard(o.attempt_id)
            if entry is None or entry[0].shard not in valid:
                continue
            item, row = entry
            # An order that never left: the item is due again, only its attempt number is spent.
            s = None if not_sent(o) else settle(item, o.code, self.strategy, o.at)
            settled.append((item, row, o, s))
        if not settled:
            return
        updates = [s.update if s else resend(item, o.at) for item, _, o, s in settled]
        applied = await self._db(self.store.update_items, updates,
                                 [(row.epoch, item.attempts) for item, row, _, _ in settled])
        done = [(row.complete(o.code, o.at, o.details), s) for item, row, o, s in settled if item.id in applied]
        for row, _ in done:
            if row.code in self._live:
                self.stats["live_answers"] += 1
                if row.code in self._abandon:
                    self.stats["abandons"] += 1
        calls = [row for row, s in done if s and row.channel == "call" and "card" not in row.details]
        await self._db(self._record_settled, done, calls)
        if calls:       # the pacers learn
            told = {item.id for item, _, _, _ in settled if self.unsettled.told(item.attempt_id)}
            for r in calls:
                if r.handler in self.pacers and self.pacers[r.handler].by_agents:
                    self.events[r.handler].extend(self.outcomes.events(r.code, r.details, r.work_item_id in told))
        self.stats["settled"] += len(done)

    def _record_settled(self, done: list[tuple[AttemptRow, Any]], calls: list[AttemptRow]) -> None:
        """The ledger rows of `_settle`, its calls in the campaign's rule window and its
        events in the outbox (inside `fenced`)."""
        self.store.write_attempts([row for row, _ in done])
        if calls:
            self.store.count_calls(self.campaign_id, self.outcomes.buckets(
                (r.code, r.completed_at, r.details) for r in calls))
        crash_point("after_result")
        self.store.outbox(ATTEMPTS_TOPIC, job_key(self.job_id), [settled_event(row, s.step) for row, s in done if s])

    # -- leases and adoption --------------------------------------------------------------------
    async def _renew(self) -> None:
        held, self.state, pacing = await self._db(self._read_leases)
        self._repace(pacing)
        gained = {s: e for s, e in held.items() if self.held.get(s) != e}
        self.held = held
        self.renewed = time.monotonic()
        for aid, (item, _) in list(self.inflight.items()):
            if item.shard not in held:      # lost: the new holder reconciles it
                del self.inflight[aid]
                self.bridged.discard(aid)
                self.watch.discard(aid)
                for cards in self.cards.values():
                    cards.forget([aid])
        if gained:
            await self._adopt(gained)
        self.unsettled.keep(self.inflight)

    def _read_leases(self) -> tuple[dict[int, int], str | None, dict[str, Any]]:
        """The leases renewed, the job's state and its run-time pacing: one trip to the thread."""
        return (self.store.renew(self.settings.lease_ttl_s), self.store.job_state(),
                self.store.job_pacing())

    def _repace(self, stored: dict[str, Any]) -> None:
        """Apply the job's run-time pacing (core/jobchanges.py; read at every lease renewal):
        a handler whose pacing changed gets a new pacer from it, warm-started as at start."""
        if stored == self.pacing_changes:
            return
        pacing = effective(self.strategy, stored)
        for name in sorted({*stored, *self.pacing_changes} & set(pacing)):
            if stored.get(name) != self.pacing_changes.get(name):
                recent = self.store.warm_start(self.campaign_id, window_since(self.clock.now(), WARM_WINDOW_S)) \
                    if pacing[name].agent_based else None
                self.pacers[name] = HandlerPacer(pacing[name], self.managers, recent,
                                                 self.strategy.handlers[name].ring_timeout)
                log.info("job %s handler %s: pacing changed to %s", self.job_id, name, pacing[name].model_dump())
        self.pacing_changes = stored

    async def _adopt(self, gained: dict[int, int]) -> None:
        """Adopt what earlier holders left in flight on `gained`: fence every gateway at the new
        epochs first, so no order of an old holder can still be accepted, then look up each
        attempt by id (principle 2: never blindly redialled)."""
        for name in self.gateways.names():
            due = self.unfenced.setdefault(name, {})
            for shard, epoch in gained.items():
                due[shard] = max(epoch, due.get(shard, epoch))
        await self._fence_pending()
        rows = await self._db(self.store.in_flight, gained)
        for row in rows:
            item = make_item(row, self.strategy)
            self.inflight[item.attempt_id] = (item, in_flight_row(
                item, self.strategy, campaign_id=self.campaign_id, epoch=row["in_flight_epoch"],
                gateway=row["in_flight_gateway"], at=row["in_flight_at"]))
            self.watch.add(item.attempt_id)
        self.stats["adopted"] += len(rows)

    async def _fence_pending(self) -> None:
        """Fence each gateway at the epochs it has not confirmed. One that does not answer in
        time stays due, and its attempts are not looked up until it is fenced: its "never
        received" would not yet exclude an order of the old holder still on its way. One that
        is gone takes no order any more."""
        due = [(n, e) for n, e in self.unfenced.items() if self._answers(n)]
        results = await asyncio.gather(*[self.gateways.fence(n, self.job_id, e) for n, e in due],
                                       return_exceptions=True)
        for (name, _), result in zip(due, results):
            if result is None or isinstance(result, GatewayUnreachable):
                del self.unfenced[name]
            elif isinstance(result, GatewaySlow):
                self._slow(name)
            else:
                raise result
