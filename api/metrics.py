"""The gateway's Prometheus metrics: a custom collector that builds every `pom_` family on
each scrape from one database read (`pom_actors.store.metrics.read`) and one parallel probe
of the actors, both cut off at one deadline (docs/api.md, "Metrics").

Nothing here imports Ray or opens a connection: the collector receives its sources
(`Sources`: a function that reads the database, the probes, the clock), so the unit tests
drive it with fakes. `api/routers/metrics.py` wires it to the pool and to Ray.

The ledger is counted incrementally (`LedgerTally`), the outbox from a low-water mark
(`OutboxMark`); the two reads that do grow with the data — the whole ledger once per gateway
process, each job's item total once per job — run on a background thread, never on a
scrape's clock.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pom_actors import names
from pom_actors.core.lifecycle import JobState
from pom_actors.core.orders import CHANNELS
from pom_actors.media.orderbook import DUPLICATE
from pom_actors.store.metrics import IMPORT_COUNTS, Figures, LedgerKey, LedgerQuery, LedgerRead, OutboxRead

log = logging.getLogger(__name__)

# A ledger row not yet visible was claimed at most (oldest open transaction + SLACK_S) real
# seconds ago: the slack covers the moment between a manager reading its clock and opening
# its transaction, and the skew between the clocks of the POM servers.
SLACK_S = 5.0
JOB_STATES = [str(s) for s in JobState]
ITEM_STATES = ("ready", "scheduled", "in_flight", "done")
MANAGER_COUNTERS = ("dispatched", "settled", "refused", "restricted", "adopted", "cycle_errors")
IMPORT_STATES = ("queued", "running", "paused", "stopped", "done", "failed")
AGENT_STATES = ("not_ready", "ready", "reserved", "on_call", "wrap_up")       # logged in
LICENSE_POOLS = ("preview", "predictive", "ports")
REFUSAL_REASONS = (DUPLICATE, "stale epoch")        # media/orderbook.py: every one exported, 0 included
AGENT_MANAGER = "agent_manager"                      # its `actor` and `kind` label
# A pacer's figures (core/pacing/live.py, HandlerPacer.figures) exported per job, manager, handler.
PACING_FIGURES = (
    ("dials", "pom_pacing_dial_level", "Dials a handler's pacer decided at its last decision."),
    ("lines", "pom_pacing_lines", "Lines a handler holds after its pacer's last decision: in flight, the new dials, "
              "talking."),
    ("agents", "pom_pacing_agents", "Agents the pacer paced by (this manager's share of the job's: ready, talking, "
               "wrapping)."),
    ("ready", "pom_pacing_ready_agents", "Ready agents in the pacer's share at its last decision."),
    ("lines_per_agent", "pom_pacing_lines_per_agent", "Lines per agent of the pacer's share (absent: no agent)."),
    ("abandon_rate", "pom_pacing_abandon_rate", "Abandon rate of the campaign's rule window as the pacer's formula "
                     "counts it (absent: no live answer in the window)."),
    ("window_s", "pom_pacing_window_seconds", "Length of the rule window the pacer reads."),
    ("live_answered", "pom_pacing_window_live_answered", "Live answers in the campaign's rule window."),
    ("abandoned", "pom_pacing_window_abandoned", "Abandoned calls in the campaign's rule window."),
    ("machine_detected", "pom_pacing_window_machine_detected", "Answering-machine detections in the campaign's rule "
                         "window."),
)
# Jobs whose managers exist: the active states and paused (its managers stay up, idle).
MANAGED = {str(s) for s in (JobState.RUNNING, JobState.PAUSING, JobState.PAUSED, JobState.RESUMING,
                            JobState.STOPPING)}


# -- the ledger, counted incrementally ----------------------------------------------------------
class LedgerTally:
    """Attempts by (channel, code, verdict, rule), every ledger row counted exactly once, at a
    cost per scrape that follows the rows added since the last scrape, not the ledger's size.

    Each ledger row's `created_at` is the business time its claim read from the manager's
    clock just before the claim's transaction began; an allowed attempt's row is written later,
    when its outcome settles, while its intent stands on its work item (`in_flight`, claimed at
    `in_flight_at` = that same time). So a row that is not visible to a scrape's snapshot is
    either (a) the attempt of an item in flight in that snapshot, or (b) from a claim not yet
    committed, whose clock read is no older than the oldest open transaction (plus `SLACK_S`).
    The horizon `until` is placed below every (b); the (a) below it are remembered by key
    (`pending`). Hence after each read:

    * `settled` holds every row below the horizon — final: rows below it can only still come
      from `pending`, which the next read looks up by primary key (`landed`);
    * `recent` holds the visible rows at or above the horizon, counted again next time.

    Exported totals are `settled + recent`: they never decrease, and equal `count(*)` of the
    ledger as of the snapshot. The first read has no horizon yet and counts the ledger whole.
    """

    def __init__(self) -> None:
        self.horizon: datetime | None = None
        self.settled: Counter[LedgerKey] = Counter()
        self.recent: Counter[LedgerKey] = Counter()
        self.pending: tuple[tuple[int, int], ...] = ()
        self.ready = False

    def query(self, business_now: datetime, scale: float, oldest_open_s: float) -> LedgerQuery:
        until = business_now - timedelta(seconds=(oldest_open_s + SLACK_S) * scale)
        if self.horizon is not None:
            until = max(until, self.horizon)       # the horizon never moves back
        return LedgerQuery(since=self.horizon, until=until, pending=self.pending if self.ready else ())

    def apply(self, query: LedgerQuery, read: LedgerRead) -> None:
        if query.since != self.horizon:            # not the read this tally asked for
            raise ValueError("a ledger read out of turn")
        self.settled.update(read.below)
        self.settled.update(read.landed)
        self.recent = Counter(read.above)
        self.pending = tuple(read.flying)
        self.horizon = query.until
        self.ready = True

    def totals(self) -> Counter[LedgerKey]:
        return self.settled + self.recent


class OutboxMark:
    """The lowest outbox id a read must look at. Every row below it was seen published (a
    published row never becomes unpublished again). A read proposes its lowest unpublished id
    (or its highest id + 1); the proposal is taken once every transaction that was running at
    that read has ended, so no row with a smaller id can still appear."""

    def __init__(self) -> None:
        self.low = 0
        self.proposal: tuple[int, int] | None = None        # (low id, xmax of its snapshot)

    def apply(self, read: OutboxRead) -> None:
        if self.proposal is not None and read.xmin >= self.proposal[1]:
            self.low = max(self.low, min(self.proposal[0], read.low_id))
        self.proposal = (read.low_id, read.xmax)


# -- what a scrape reads -------------------------------------------------------------------------
@dataclass
class Sources:
    """What the collector reads, all passed in.

    read(deadline, ledger_query | None, outbox_from) -> Figures, one snapshot, cut at deadline
    oldest_open_s(deadline | None) -> float   age of the oldest open transaction (seconds)
    read_ledger(query) -> LedgerRead          the whole-ledger first read (no deadline)
    job_totals(job_ids) -> {job: items}       read once per job (no deadline)
    probe(deadline) -> collect()              director, rule engine, gateways (as /health)
    probe_managers(names, deadline) -> collect()   each manager's status()
    probe_agents(deadline) -> collect()       the Agent Manager's metrics() (counts only)
    restarts() -> {actor name: restarts}      Ray's restart count of every live POM actor
    """
    read: Callable[[float, LedgerQuery | None, int], Figures]
    oldest_open_s: Callable[[float | None], float]
    read_ledger: Callable[[LedgerQuery], LedgerRead]
    job_totals: Callable[[list[int]], dict[int, int]]
    probe: Callable[[float], Callable[[], dict[str, dict]]]
    probe_managers: Callable[[list[str], float], Callable[[], dict[str, dict]]]
    probe_agents: Callable[[float], Callable[[], dict]] = field(default=lambda deadline: dict)
    restarts: Callable[[], dict[str, int]] = dict


@dataclass
class Scrape:
    """One scrape's inputs, as the families are built from them."""
    figures: Figures | None = None
    db_error: str | None = None
    actors: dict[str, dict] = field(default_factory=dict)
    managers: dict[str, dict] = field(default_factory=dict)
    expected_managers: dict[str, int] = field(default_factory=dict)     # name -> job id
    agents: dict | None = None            # the Agent Manager's metrics(), or {"state": "down", ...}
    restarts: dict[str, int] = field(default_factory=dict)              # actor name -> Ray's restarts
    ledger: Counter[LedgerKey] | None = None
    totals: dict[int, int] = field(default_factory=dict)


class PomCollector(Collector):
    """A prometheus_client collector: `collect()` scrapes (one database read, one parallel
    probe, both bounded by `timeout_s`) and yields the families. Bind the sources of the
    request first (`bind`); scrapes are serialised by the caller."""

    def __init__(self, clock: Callable[[], datetime], scale: float, timeout_s: float = 3.0):
        self.clock, self.scale, self.timeout_s = clock, scale, timeout_s
        self.sources: Sources | None = None
        self.tally = LedgerTally()
        self.outbox = OutboxMark()
        self.totals: dict[int, int] = {}
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pom-metrics")
        self._backfill: Future | None = None
        self._counting: Future | None = None

    def bind(self, sources: Sources) -> None:
        self.sources = sources

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> list[Metric]:
        return []                         # families vary per scrape: never collected at register

    def collect(self) -> Iterator[Metric]:
        yield from families(self.scrape())

    # -- one scrape --------------------------------------------------------------------------------
    def scrape(self) -> Scrape:
        src = self.sources
        if src is None:
            raise RuntimeError("PomCollector.bind() was not called")
        deadline = time.monotonic() + self.timeout_s
        out = Scrape()
        collect_actors = src.probe(deadline)          # the actors work while the database answers
        collect_agents = src.probe_agents(deadline)
        query = None
        if self.tally.ready:
            try:
                query = self.tally.query(self.clock(), self.scale, src.oldest_open_s(deadline))
            except Exception as exc:
                out.db_error = _error(exc)
        elif self._backfill is None:
            self._backfill = self._background.submit(self._first_ledger_read, src)
        if out.db_error is None:
            try:
                out.figures = src.read(deadline, query, self.outbox.low)
            except Exception as exc:
                out.db_error = _error(exc)
                log.warning("metrics: database read failed: %s", out.db_error)
        if out.figures is not None:
            if query is not None and out.figures.ledger is not None:
                self.tally.apply(query, out.figures.ledger)
            self.outbox.apply(out.figures.outbox)
            out.expected_managers = {names.manager_name(j["id"], i): j["id"] for j in out.figures.live
                                     if j["state"] in MANAGED for i in range(j["managers"])}
            self._count_new_jobs(src, [j["id"] for j in out.figures.live])
        collect_managers = src.probe_managers(sorted(out.expected_managers), deadline)
        try:
            out.restarts = src.restarts()
        except Exception as exc:              # the actors' up/down still comes from their probes
            log.warning("metrics: reading actor restarts failed: %s", _error(exc))
        self._wait(deadline)
        out.actors = collect_actors()
        out.agents = collect_agents()
        out.managers = collect_managers() if out.expected_managers else {}
        if out.figures is not None:
            live = {j["id"] for j in out.figures.live}
            self.totals = {j: n for j, n in self.totals.items() if j in live}
            out.totals = dict(self.totals)
        out.ledger = self.tally.totals() if self.tally.ready else None
        return out

    def _first_ledger_read(self, src: Sources) -> tuple[LedgerQuery, LedgerRead]:
        query = self.tally.query(self.clock(), self.scale, src.oldest_open_s(None))
        return query, src.read_ledger(query)

    def _count_new_jobs(self, src: Sources, live: list[int]) -> None:
        missing = [j for j in live if j not in self.totals]
        if missing and self._counting is None:
            self._counting = self._background.submit(src.job_totals, missing)

    def _wait(self, deadline: float) -> None:
        """Take what the background reads finished (waiting for them until the deadline: on a
        small database the first scrape is complete)."""
        if self._backfill is not None and not self.tally.ready:
            try:
                query, read = self._backfill.result(timeout=max(0.0, deadline - time.monotonic()))
                self.tally.apply(query, read)
            except TimeoutError:
                pass
            except Exception as exc:      # try again at the next scrape
                log.warning("metrics: first ledger read failed: %s", _error(exc))
                self._backfill = None
        if self._counting is not None:
            try:
                self.totals.update(self._counting.result(timeout=max(0.0, deadline - time.monotonic())))
                self._counting = None
            except TimeoutError:
                pass
            except Exception as exc:
                log.warning("metrics: job totals failed: %s", _error(exc))
                self._counting = None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


# -- the families ---------------------------------------------------------------------------------
def families(s: Scrape) -> Iterator[Metric]:
    """Every `pom_` family of one scrape (a family whose source did not answer is absent, or
    reported down: `pom_database_up`, `pom_actor_up`)."""
    up = GaugeMetricFamily("pom_database_up", "1 if the database read of this scrape succeeded.")
    up.add_metric([], 0.0 if s.figures is None else 1.0)
    yield up
    if s.figures is not None:
        yield from _database(s.figures, s.totals)
        yield from _imports(s.figures.imports)
    if s.ledger is not None:
        yield from _ledger(s.ledger)
    yield from _actors(s)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _database(f: Figures, totals: dict[int, int]) -> Iterator[Metric]:
    jobs = _gauge("pom_jobs", "Jobs by lifecycle state.", ["state"])
    for state in JOB_STATES:
        jobs.add_metric([state], f.jobs.get(state, 0))
    yield jobs
    info = _gauge("pom_job_info", "1 for each job not yet ended, with its campaign and state.",
                  ["job", "campaign", "state"])
    items = _gauge("pom_work_items", "Work items of each job not yet ended, by state (done: the "
                   "job's total less the others, once the total is read).", ["job", "state"])
    for job in f.live:
        jid = str(job["id"])
        info.add_metric([jid, job["campaign"], job["state"]], 1)
        counts = f.items.get(job["id"], {})
        for state in ("ready", "scheduled", "in_flight"):
            items.add_metric([jid, state], counts.get(state, 0))
        if job["id"] in totals:
            items.add_metric([jid, "done"], max(0, totals[job["id"]] - sum(counts.values())))
    yield info
    yield items
    yield from _load(f)
    rows = _gauge("pom_outbox_unpublished_rows", "Outbox rows not yet published (published_at IS NULL).")
    rows.add_metric([], f.outbox.unpublished)
    yield rows
    lag = _gauge("pom_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when none).")
    lag.add_metric([], f.outbox.oldest_age_s)
    yield lag


# The load monitors' readings (core.load.METRICS and the extra database figures) -> family, help.
LOAD_FAMILIES = {
    "server.cpu": ("pom_load_cpu_percent", "CPU in use on a POM server, percent (its load monitor's last sample)."),
    "server.memory": ("pom_load_memory_percent", "Memory in use on a POM server, percent."),
    "database.sessions": ("pom_load_db_active_sessions", "Database sessions running a query (pg_stat_activity)."),
    "database.idle": ("pom_load_db_idle_sessions", "Idle database sessions."),
    "database.idle_in_transaction": ("pom_load_db_idle_in_transaction_sessions",
                                     "Database sessions idle in a transaction."),
    "database.connections_count": ("pom_load_db_connections", "Database client connections."),
    "database.max_connections": ("pom_load_db_max_connections", "The database's max_connections."),
    "database.connections": ("pom_load_db_connections_percent", "Database connections, percent of max_connections."),
    "database.long_queries": ("pom_load_db_long_queries", "Queries running longer than the load monitor's long_query_s."),
    "database.blocked": ("pom_load_db_blocked_sessions", "Database sessions waiting on a lock another holds."),
    "pom.jobs": ("pom_load_active_jobs", "Active jobs, as the load monitor counts them."),
    "pom.agents": ("pom_load_agents_logged_in", "Agents logged in."),
    "pom.imports": ("pom_load_imports_running", "Imports running."),
}


def _load(f: Figures) -> Iterator[Metric]:
    """The load monitor: readings (per server for CPU and memory, the leading monitor's for the
    database and POM), the age of each server's last sample, active alarms, restrictions."""
    from pom_actors.core import load

    families = {m: _gauge(name, doc, ["server"] if m in load.SERVER_METRICS else [])
                for m, (name, doc) in LOAD_FAMILIES.items()}
    age = _gauge("pom_load_sample_age_seconds", "Seconds since a server's load monitor last sampled.", ["server"])
    for row in f.load:
        age.add_metric([row["server"]], row["age_s"])
        for metric, value in (row["readings"] or {}).items():
            if metric in families and (metric in load.SERVER_METRICS or row["leader"]):
                families[metric].add_metric([row["server"]] if metric in load.SERVER_METRICS else [], float(value))
    yield from families.values()
    yield age
    alarms = _gauge("pom_alarms_active", "1 for each active load alarm.", ["source", "component", "severity"])
    for source, severity in sorted(f.alarms.items()):
        alarms.add_metric([source, load.component(load.parse_source(source)[0]), severity], 1)
    yield alarms
    try:
        config = load.LoadConfig.build(f.load_config)
    except ValueError:
        config = load.LoadConfig()
    restrictions = load.restrictions(f.alarms, config)
    factor = _gauge("pom_load_dial_factor", "The fraction of their pace managers dial at (load restrictions; 1: not slowed).")
    factor.add_metric([], restrictions.dial_factor)
    yield factor
    imports = _gauge("pom_load_imports_restriction", "1 for the mode new imports are in: allowed, queued, refused.",
                     ["mode"])
    for mode in load.IMPORT_MODES:
        imports.add_metric([mode], 1.0 if restrictions.imports == mode else 0.0)
    yield imports


def _ledger(totals: Counter[LedgerKey]) -> Iterator[Metric]:
    attempts = _counter("pom_attempts", "Attempts in the ledger by channel and completion code.",
                        ["channel", "code"])
    by_code: Counter[tuple[str, str]] = Counter()
    verdicts: Counter[tuple[str, str]] = Counter()
    for (channel, code, verdict, rule), n in totals.items():
        by_code[channel, code] += n
        verdicts[rule, verdict] += n
    for key, n in sorted(by_code.items()):
        attempts.add_metric(list(key), n)
    yield attempts
    rules = _counter("pom_rule_verdicts", "Attempts in the ledger by the rule that decided their "
                     "verdict, and the verdict (allowed, restricted).", ["rule", "verdict"])
    for key, n in sorted(verdicts.items()):
        rules.add_metric(list(key), n)
    yield rules


def _actors(s: Scrape) -> Iterator[Metric]:
    up = _gauge("pom_actor_up", "1 if the actor answered its probe within the scrape's timeout.",
                ["actor", "kind"])
    info = _gauge("pom_actor_info", "1 for each actor that answered, with the node it runs on.",
                  ["actor", "kind", "node"])
    for actor, answer in s.actors.items():
        kind = "gateway" if names.gateway_node(actor) else actor
        alive = answer.get("state", "up") != "down"
        up.add_metric([actor, kind], 1.0 if alive else 0.0)
        if alive:
            node = names.gateway_node(actor) if kind == "gateway" else answer.get("node")
            info.add_metric([actor, kind, str(node or "")], 1)
    for name in sorted(s.expected_managers):
        answer = s.managers.get(name, {})
        alive = "holder" in answer               # a manager's status(); else it did not answer
        up.add_metric([name, "manager"], 1.0 if alive else 0.0)
        if alive:
            info.add_metric([name, "manager", str(answer.get("node") or "")], 1)
    if s.agents is not None:
        alive = "agents" in s.agents                    # its metrics(); else it did not answer
        up.add_metric([AGENT_MANAGER, AGENT_MANAGER], 1.0 if alive else 0.0)
        if alive:
            info.add_metric([AGENT_MANAGER, AGENT_MANAGER, str(s.agents.get("node") or "")], 1)
    yield up
    yield info
    restarts = _gauge("pom_actor_restarts", "Times Ray restarted the live actor after it died (0: never; "
                      "an actor created anew, like a new gateway incarnation, starts from 0).", ["actor", "kind"])
    for name, n in sorted(s.restarts.items()):
        restarts.add_metric([name, names.kind(name)], n)
    yield restarts
    if s.agents is not None and "agents" in s.agents:
        yield from _agents(s.agents)
    yield from _director(s.actors.get("director", {}), s.actors.get("rule_engine", {}))
    yield from _gateways({a: v for a, v in s.actors.items() if names.gateway_node(a) and "channels" in v})
    yield from _managers({n: a for n, a in s.managers.items() if "holder" in a}, s.expected_managers)


def _director(director: dict, rules: dict) -> Iterator[Metric]:
    if "ticks" in director:
        ticks = _counter("pom_director_ticks", "Director ticks since the director (re)started.")
        ticks.add_metric([], director["ticks"])
        yield ticks
        draining = _gauge("pom_director_draining", "1 while the director drains (no claims, no schedules).")
        draining.add_metric([], 1.0 if director.get("state") == "draining" else 0.0)
        yield draining
        gateways = _gauge("pom_director_gateways", "Media gateways the director knows of.")
        gateways.add_metric([], len(director.get("gateways", [])))
        yield gateways
        zones = _gauge("pom_zone_servers", "Live POM servers per zone, as the director last read them from Ray "
                       "(zone \"\": servers without a zone resource, which get no managers).", ["zone"])
        for zone, count in sorted(director.get("zone_servers", {}).items()):
            zones.add_metric([zone], count)
        zones.add_metric([""], director.get("unzoned_servers", 0))
        yield zones
    if "checked" in rules:
        checked = _counter("pom_rule_engine_checked", "Candidates the rule engine checked since it (re)started.")
        checked.add_metric([], rules["checked"])
        yield checked
        loaded = _gauge("pom_rule_engine_rules", "Rules the rule engine has loaded.")
        loaded.add_metric([], rules.get("rules", 0))
        yield loaded
        tracked = _gauge("pom_rule_engine_tracked_addresses", "Addresses the nuisance tracker follows.")
        tracked.add_metric([], rules.get("tracked_addresses", 0))
        yield tracked


def _gateways(stats: dict[str, dict]) -> Iterator[Metric]:
    labels = ["gateway", "node"]
    in_flight = _gauge("pom_gateway_orders_in_flight", "Orders a media gateway has out, by channel.",
                       labels + ["channel"])
    submitted = _counter("pom_gateway_orders_submitted", "Orders a media gateway sent, by channel.",
                         labels + ["channel"])
    pending = _gauge("pom_gateway_orders_pending", "Orders a gateway accepted whose outcome is not known yet.",
                     labels)
    accepted = _counter("pom_gateway_orders_accepted", "Orders a gateway accepted into its order record.", labels)
    completed = _counter("pom_gateway_orders_completed", "Orders a gateway recorded an outcome for.", labels)
    refused = _counter("pom_gateway_orders_refused", "Orders a gateway refused, by reason.", labels + ["reason"])
    queued = _gauge("pom_gateway_outcomes_queued", "Outcomes waiting for their manager's poll.", labels)
    for name, st in sorted(stats.items()):
        where = [name, names.gateway_node(name) or ""]
        for channel in CHANNELS:
            figures = st.get("channels", {}).get(channel, {})
            in_flight.add_metric(where + [channel], figures.get("in_flight", 0))
            submitted.add_metric(where + [channel], figures.get("submitted", 0))
        pending.add_metric(where, st.get("pending", 0))
        book = st.get("orderbook", {})
        accepted.add_metric(where, book.get("accepted", 0))
        completed.add_metric(where, book.get("completed", 0))
        reasons = {**{r: 0 for r in REFUSAL_REASONS}, **book.get("refused", {})}
        for reason, n in sorted(reasons.items()):
            refused.add_metric(where + [reason], n)
        queued.add_metric(where, sum(st.get("queued", {}).values()))
    yield from (in_flight, submitted, pending, accepted, completed, refused, queued)


def _managers(status: dict[str, dict], expected: dict[str, int]) -> Iterator[Metric]:
    labels = ["job", "manager"]
    counters = {k: _counter(f"pom_manager_{k}", f"Attempts {k.replace('_', ' ')} by a manager since it "
                            "(re)started." if k != "cycle_errors" else
                            "Failed cycles of a manager since it (re)started.", labels)
                for k in MANAGER_COUNTERS}
    in_flight = _gauge("pom_manager_in_flight", "Attempts a manager has in flight.", labels)
    shards = _gauge("pom_manager_shards", "Shards a manager holds.", labels)
    draining = _gauge("pom_manager_draining", "1 while a manager does not claim (drain).", labels)
    seconds = _counter("pom_manager_phase_seconds", "Seconds a manager spent in each phase of its cycle.",
                       labels + ["phase"])
    live = _counter("pom_manager_live_answers", "Outcomes a manager settled that a person answered "
                    "(codes with human_contact or counts_as_abandon).", labels)
    abandons = _counter("pom_manager_abandons", "Outcomes a manager settled that count as abandoned "
                        "(counts_as_abandon).", labels)
    latency = HistogramMetricFamily("pom_manager_dispatch_latency_seconds", "Seconds from the start of an "
                                    "attempt's claim to the gateway accepting its order.", labels=labels)
    answer = HistogramMetricFamily("pom_manager_answer_to_agent_seconds", "Business seconds from a person "
                                   "answering an agent-based call to the call bridged onto an agent (the "
                                   "abandon rule allows 2 s; calls abandoned before are not in it).", labels=labels)
    hlabels = labels + ["handler"]
    pacing = _gauge("pom_pacing_info", "1 per handler a manager paces: the mode its strategy asks for, and "
                    "the pacing the manager applies (the mode, or time_based for agent-less and preview handlers).",
                    hlabels + ["mode", "applied"])
    rate = _gauge("pom_pacing_rate_per_second", "The attempts per second a manager may start for a handler "
                  "(its share of attempts_per_second; absent: unbounded).", hlabels)
    cap = _gauge("pom_pacing_max_concurrent", "The attempts a manager may have in progress for a handler "
                 "(its share of max_concurrent; absent: unbounded).", hlabels)
    granted = _counter("pom_pacing_granted", "Dials a manager's pacer granted for a handler (after the load "
                       "slow-down) since it (re)started.", hlabels)
    flying = _gauge("pom_pacing_in_flight", "A handler's attempts in flight that the pacer counted at its last "
                    "decision.", hlabels)
    figures = {key: _gauge(name, doc, hlabels) for key, name, doc in PACING_FIGURES}
    alarm = _gauge("pom_pacing_alarm", "1 while a handler's pacer stops the job with an alarm (AMD false positives "
                   "alone over the target).", hlabels)
    for name, st in sorted(status.items()):
        where = [str(st.get("job_id", expected.get(name, ""))), name]
        for k in MANAGER_COUNTERS:
            counters[k].add_metric(where, st.get(k, 0))
        in_flight.add_metric(where, st.get("in_flight", 0))
        shards.add_metric(where, len(st.get("shards") or {}))
        draining.add_metric(where, 1.0 if st.get("draining") else 0.0)
        for phase, value in sorted((st.get("seconds") or {}).items()):
            seconds.add_metric(where + [phase], value)
        live.add_metric(where, st.get("live_answers", 0))
        abandons.add_metric(where, st.get("abandons", 0))
        if st.get("dispatch_latency"):
            _observe(latency, where, st["dispatch_latency"])
        if st.get("answer_to_agent"):
            _observe(answer, where, st["answer_to_agent"])
        for handler, p in sorted((st.get("pacing") or {}).items()):
            at = where + [handler]
            pacing.add_metric(at + [str(p.get("mode", "")), str(p.get("applied", "time_based"))], 1)
            for key, family in figures.items():
                if p.get(key) is not None:
                    family.add_metric(at, p[key])
            alarm.add_metric(at, 1.0 if p.get("alarm") else 0.0)
            if p.get("rate") is not None:
                rate.add_metric(at, p["rate"])
            if p.get("max_concurrent") is not None:
                cap.add_metric(at, p["max_concurrent"])
            granted.add_metric(at, p.get("granted", 0))
            flying.add_metric(at, p.get("in_flight", 0))
    yield from counters.values()
    yield from (in_flight, shards, draining, seconds, live, abandons, latency, answer, pacing, rate, cap, granted,
                flying)
    yield from figures.values()
    yield alarm


def _observe(family: HistogramMetricFamily, labels: list[str], h: dict) -> None:
    """One histogram series from an actor's `core.histogram.Histogram.as_dict()`."""
    buckets = [(_le(le), n) for le, n in zip(h["le"], h["buckets"])] + [("+Inf", h["count"])]
    family.add_metric(labels, buckets, sum_value=h["sum"])


def _le(bound: float) -> str:
    return repr(float(bound))


def _imports(imports: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """Imports by state, and their row counts (`import_jobs`)."""
    count = _gauge("pom_imports", "Imports by state.", ["state"])
    rows = _gauge("pom_import_rows_by_state", "Rows of the imports in each state, by count (read, loaded, rejected, "
                  "duplicates, dnc_flagged).", ["state", "kind"])
    total = _counter("pom_import_rows", "Rows of every import, by count (grows as imports load chunks).", ["kind"])
    for state in sorted(set(IMPORT_STATES) | set(imports)):
        figures = imports.get(state, {})
        count.add_metric([state], figures.get("imports", 0))
        for kind in IMPORT_COUNTS:
            rows.add_metric([state, kind.removeprefix("rows_")], figures.get(kind, 0))
    for kind in IMPORT_COUNTS:
        total.add_metric([kind.removeprefix("rows_")], sum(f.get(kind, 0) for f in imports.values()))
    yield count
    yield rows
    yield total


def _agents(m: dict) -> Iterator[Metric]:
    """The Agent Manager's `metrics()`: agents by state and job, licenses, reservations."""
    agents = _gauge("pom_agents", "Logged-in agents by state and the job they are attached to (job \"\": "
                    "none).", ["state", "job"])
    by_state = {s: 0 for s in AGENT_STATES}
    for row in m.get("agents", []):
        agents.add_metric([row["state"], "" if row["job_id"] is None else str(row["job_id"])], row["count"])
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["count"]
    yield agents
    states = _gauge("pom_agents_by_state", "Logged-in agents by state (every state, 0 included).", ["state"])
    for state, n in by_state.items():
        states.add_metric([state], n)
    yield states
    size = _gauge("pom_licenses_size", "Licenses in a pool (absent: unlimited).", ["pool"])
    in_use = _gauge("pom_licenses_in_use", "Licenses of a pool in use: agents attached to the pool's running "
                    "jobs; for ports, the notification jobs' calls in flight as their managers last told.", ["pool"])
    for pool, p in sorted(m.get("pools", {}).items()):
        if p.get("size") is not None:
            size.add_metric([pool], p["size"])
        if p.get("in_use") is not None:
            in_use.add_metric([pool], p["in_use"])
    yield size
    yield in_use
    grant = _gauge("pom_license_grant", "Licenses granted to a running job from its pool (absent: unlimited).",
                   ["job", "pool"])
    for g in m.get("grants", []):
        if g.get("granted") is not None:
            grant.add_metric([str(g["job_id"]), g["pool"]], g["granted"])
    yield grant
    for key, name, doc in (("reserved", "pom_agent_reservations", "Answered calls an agent was reserved for."),
                           ("no_agent", "pom_agent_no_agent", "Answered calls that found no ready agent."),
                           ("reservation_timeouts", "pom_agent_reservation_timeouts",
                            "Reservations released unconnected after the reservation timeout.")):
        c = _counter(name, doc + " Since the Agent Manager (re)started.")
        c.add_metric([], m.get(key, 0))
        yield c
    nailed = _gauge("pom_agent_sessions_nailed", "Agents' nailed sessions (agent legs held between calls): "
                    "serving a job, or kept in their grace for the next one.", ["state"])
    for state, n in sorted(m.get("nailed", {}).items()):
        nailed.add_metric([state], n)
    yield nailed
    latency = HistogramMetricFamily("pom_agent_connect_latency_seconds", "Seconds from an answered call's agent "
                                    "reservation to its connect (answered-to-agent; preview cards excluded).",
                                    labels=[])
    if m.get("connect_latency"):
        _observe(latency, [], m["connect_latency"])
    yield latency


def exported_families() -> dict[str, str]:
    """Name -> type of every family `families` can yield (the dashboards' test checks every
    panel's expressions against this)."""
    full = Scrape(
        figures=Figures(jobs={}, live=[{"id": 1, "state": "running", "managers": 1, "campaign": "c"}],
                        items={1: {}}, outbox=OutboxRead()),
        actors={"director": {"state": "up", "ticks": 1, "gateways": []},
                "rule_engine": {"state": "up", "checked": 0},
                "pom-gateway-aaaaaaaaaaaa-000001": {"channels": {}, "orderbook": {"refused": {"x": 1}}}},
        managers={"pom-manager-1-0": {"holder": "h", "job_id": 1, "seconds": {"claim": 0.1},
                                      "dispatch_latency": {"le": [1.0], "buckets": [0], "sum": 0, "count": 0},
                                      "answer_to_agent": {"le": [1.0], "buckets": [0], "sum": 0, "count": 0},
                                      "pacing": {"call": {"mode": "progressive", "rate": 1, "max_concurrent": 1,
                                                          **{key: 1 for key, _, _ in PACING_FIGURES}}}}},
        agents={"agents": [{"state": "ready", "job_id": 1, "count": 1}],
                "pools": {"preview": {"size": 1, "in_use": 0}}, "grants": [{"job_id": 1, "pool": "preview",
                                                                             "granted": 1}],
                "connect_latency": {"le": [1.0], "buckets": [0], "sum": 0, "count": 0}},
        restarts={"pom-director": 1}, expected_managers={"pom-manager-1-0": 1}, ledger=Counter({("call", "answered", "allowed", "allowed"): 1}),
        totals={1: 1})
    return {m.name: m.type for m in families(full)}


def scale_of(clock_spec: dict[str, Any] | None) -> float:
    """Business seconds per real second of the clock a spec describes (1 for the system clock)."""
    return float((clock_spec or {}).get("scale", 1.0))
