"""`GET /metrics` without Ray or a database: the collector over fake sources (one database
read, one actor probe per scrape), the families it builds, and the route."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import auth, deps
from api.app import create_app
from api.metrics import PomCollector, Sources, exported_families
from api.routers import metrics as route
from pom_actors.config import Settings
from pom_actors.store.metrics import Figures, LedgerQuery, LedgerRead, OutboxRead

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
GW = "pom-gateway-aaaaaaaaaaaa-000001"
GW2 = "pom-gateway-bbbbbbbbbbbb-000002"
ACTORS = {
    "director": {"state": "up", "ticks": 42, "gateways": [GW, GW2], "node": "n-head",
                 "zone_servers": {"default": 2, "east": 1}, "unzoned_servers": 0},
    "rule_engine": {"state": "up", "checked": 900, "rules": 4, "tracked_addresses": 12},
    GW: {"name": GW, "channels": {"call": {"submitted": 30, "in_flight": 3}, "sms": {"submitted": 5, "in_flight": 0},
                                  "email": {"submitted": 0, "in_flight": 0}, "custom": {"submitted": 0, "in_flight": 0}},
         "pending": 3, "queued": {"pom-manager-7-0": 2},
         "orderbook": {"accepted": 35, "refused": {"stale epoch": 1}, "pending": 3, "completed": 32}},
    GW2: {"state": "down", "error": "TimeoutError"},
}
MANAGER = {"name": "pom-manager-7-0", "holder": "pom-manager-7-0#abcd", "job_id": 7, "state": "running",
           "draining": False, "shards": {0: 1, 1: 1}, "in_flight": 3, "seconds": {"claim": 0.5, "rules": 0.25},
           "settled": 20, "dispatched": 23, "restricted": 4, "node": "n-worker", "live_answers": 9, "abandons": 1,
           "dispatch_latency": {"le": [0.01, 0.1, 1.0], "buckets": [5, 20, 23], "sum": 1.25, "count": 23},
           "answer_to_agent": {"le": [0.5, 2.0], "buckets": [3, 4], "sum": 2.5, "count": 5},
           "pacing": {"call": {"mode": "predictive", "applied": "predictive", "rate": 20.0, "max_concurrent": 10,
                               "granted": 30, "in_flight": 3, "dials": 4, "lines": 7, "agents": 3, "ready": 1,
                               "lines_per_agent": 2.333, "abandon_rate": 0.02, "window_s": 2592000.0,
                               "live_answered": 100, "abandoned": 2, "machine_detected": 30, "alarm": None},
                      "sms": {"mode": "time_based", "rate": None, "max_concurrent": None, "granted": 0,
                              "in_flight": 0}}}
AGENTS = {"agents": [{"state": "ready", "job_id": 7, "count": 2}, {"state": "on_call", "job_id": 7, "count": 1},
                     {"state": "not_ready", "job_id": None, "count": 4}],
          "pools": {"preview": {"size": 5, "in_use": 0}, "predictive": {"size": None, "in_use": 3},
                    "ports": {"size": 50, "in_use": None}},
          "grants": [{"job_id": 7, "pool": "predictive", "granted": None}, {"job_id": 9, "pool": "ports", "granted": 50}],
          "reserved": 12, "no_agent": 2, "reservation_timeouts": 1,
          "connect_latency": {"le": [0.01, 0.1, 1.0], "buckets": [8, 10, 10], "sum": 0.07, "count": 10},
          "nailed": {"attached": 3, "grace": 1}, "node": "n-head"}


class FakeDb:
    """The store as the collector sees it; records what it was asked."""

    def __init__(self):
        self.reads: list[LedgerQuery | None] = []
        self.outbox_from: list[int] = []
        self.ledger_reads: list[LedgerQuery] = []
        self.totals_asked: list[list[int]] = []
        self.down = False
        self.ledger_step = LedgerRead(below={("call", "busy", "allowed", "allowed"): 2},
                                      above={("call", "answered", "allowed", "allowed"): 1})

    def figures(self) -> Figures:
        return Figures(jobs={"running": 1, "completed": 3, "queued": 1},
                       live=[{"id": 7, "state": "running", "managers": 2, "campaign": "spring"},
                             {"id": 8, "state": "queued", "managers": 1, "campaign": "autumn"}],
                       items={7: {"ready": 50, "scheduled": 10, "in_flight": 3}, 8: {"ready": 5}},
                       imports={"done": {"imports": 2, "rows_read": 100, "rows_loaded": 90, "rows_rejected": 4,
                                         "duplicates": 6, "dnc_flagged": 3},
                                "running": {"imports": 1, "rows_read": 10, "rows_loaded": 10, "rows_rejected": 0,
                                            "duplicates": 0, "dnc_flagged": 1}},
                       outbox=OutboxRead(unpublished=4, oldest_age_s=1.5, low_id=10,   # no transaction
                                         xmin=100 + len(self.reads), xmax=100 + len(self.reads)))  # open

    def read(self, deadline, query, outbox_from):
        if self.down:
            raise OSError("connection refused")
        self.reads.append(query)
        self.outbox_from.append(outbox_from)
        f = self.figures()
        if query is not None:
            f.ledger = self.ledger_step
        return f

    def read_ledger(self, query):
        self.ledger_reads.append(query)
        return LedgerRead(below={("call", "answered", "allowed", "allowed"): 100,
                                 ("sms", "dnc", "restricted", "dnc"): 7},
                          above={("call", "answered", "allowed", "allowed"): 1}, flying=((5, 1),))

    def job_totals(self, job_ids):
        self.totals_asked.append(list(job_ids))
        return {7: 100, 8: 5}


def fake_sources(db: FakeDb, actors=ACTORS, managers=None, probe_log=None, agents=AGENTS) -> Sources:
    managers = {"pom-manager-7-0": MANAGER} if managers is None else managers

    def probe(deadline):
        if probe_log is not None:
            probe_log.append(("probe", deadline))
        return lambda: dict(actors)

    def probe_managers(names, deadline):
        if probe_log is not None:
            probe_log.append(("managers", tuple(names)))
        return lambda: {n: managers.get(n, {"state": "down", "error": "ValueError"}) for n in names}

    return Sources(read=db.read, oldest_open_s=lambda deadline: 0.5, read_ledger=db.read_ledger,
                   job_totals=db.job_totals, probe=probe, probe_managers=probe_managers,
                   probe_agents=lambda deadline: lambda: dict(agents),
                   restarts=lambda: {"pom-director": 2, "pom-manager-7-0": 1, GW: 0})


def scrape_text(collector: PomCollector) -> dict[str, dict]:
    """{family: {(sample name, sorted labels): value}} of one exposition."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    registry.unregister(collector)
    return parse(text)


def parse(text: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return out


def value(families, family, sample=None, **labels):
    return families[family][(sample or family, tuple(sorted(labels.items())))]


@pytest.fixture
def collector():
    c = PomCollector(lambda: NOW, 1.0, timeout_s=1.0)
    yield c
    c.close()


def test_one_scrape_exposes_every_family(collector):
    db = FakeDb()
    collector.bind(fake_sources(db))
    m = scrape_text(collector)
    # jobs by state: every state, zero when there is none
    assert value(m, "pom_jobs", state="running") == 1 and value(m, "pom_jobs", state="completed") == 3
    assert value(m, "pom_jobs", state="paused") == 0
    # work items of each live job; done = the job's total less the rest
    assert value(m, "pom_work_items", job="7", state="ready") == 50
    assert value(m, "pom_work_items", job="7", state="in_flight") == 3
    assert value(m, "pom_work_items", job="7", state="done") == 100 - 63
    assert value(m, "pom_work_items", job="8", state="done") == 0
    assert value(m, "pom_job_info", job="7", campaign="spring", state="running") == 1
    # the ledger: the first read counted it whole (settled + recent), by channel/code and by rule
    assert value(m, "pom_attempts", "pom_attempts_total", channel="call", code="answered") == 101
    assert value(m, "pom_attempts", "pom_attempts_total", channel="sms", code="dnc") == 7
    assert value(m, "pom_rule_verdicts", "pom_rule_verdicts_total", rule="dnc", verdict="restricted") == 7
    assert value(m, "pom_rule_verdicts", "pom_rule_verdicts_total", rule="allowed", verdict="allowed") == 101
    # outbox
    assert value(m, "pom_outbox_unpublished_rows") == 4 and value(m, "pom_outbox_lag_seconds") == 1.5
    # actors: the probe's answers; a gateway that timed out is down and has no figures
    assert value(m, "pom_actor_up", actor="director", kind="director") == 1
    assert value(m, "pom_actor_up", actor="rule_engine", kind="rule_engine") == 1
    assert value(m, "pom_actor_up", actor=GW, kind="gateway") == 1
    assert value(m, "pom_actor_up", actor=GW2, kind="gateway") == 0
    assert value(m, "pom_actor_info", actor=GW, kind="gateway", node="aaaaaaaaaaaa") == 1
    assert value(m, "pom_actor_info", actor="director", kind="director", node="n-head") == 1
    # managers of managed jobs only (job 8 is queued): one answered, one did not
    assert value(m, "pom_actor_up", actor="pom-manager-7-0", kind="manager") == 1
    assert value(m, "pom_actor_up", actor="pom-manager-7-1", kind="manager") == 0
    # how often Ray restarted each live actor (its GCS record)
    assert value(m, "pom_actor_restarts", actor="pom-director", kind="pom-director") == 2
    assert value(m, "pom_actor_restarts", actor="pom-manager-7-0", kind="manager") == 1
    assert value(m, "pom_actor_restarts", actor=GW, kind="gateway") == 0
    assert value(m, "pom_actor_info", actor="pom-manager-7-0", kind="manager", node="n-worker") == 1
    assert not any(dict(k[1]).get("actor", "").startswith("pom-manager-8") for k in m["pom_actor_up"])
    assert value(m, "pom_manager_dispatched", "pom_manager_dispatched_total", job="7", manager="pom-manager-7-0") == 23
    assert value(m, "pom_manager_cycle_errors", "pom_manager_cycle_errors_total", job="7",
                 manager="pom-manager-7-0") == 0
    assert value(m, "pom_manager_in_flight", job="7", manager="pom-manager-7-0") == 3
    assert value(m, "pom_manager_shards", job="7", manager="pom-manager-7-0") == 2
    assert value(m, "pom_manager_phase_seconds", "pom_manager_phase_seconds_total", job="7",
                 manager="pom-manager-7-0", phase="rules") == 0.25
    # gateways: per channel, and the order record
    where = {"gateway": GW, "node": "aaaaaaaaaaaa"}
    assert value(m, "pom_gateway_orders_in_flight", channel="call", **where) == 3
    assert value(m, "pom_gateway_orders_submitted", "pom_gateway_orders_submitted_total", channel="sms", **where) == 5
    assert value(m, "pom_gateway_orders_pending", **where) == 3
    assert value(m, "pom_gateway_orders_refused", "pom_gateway_orders_refused_total", reason="stale epoch",
                 **where) == 1
    assert value(m, "pom_gateway_outcomes_queued", **where) == 2
    assert value(m, "pom_director_ticks", "pom_director_ticks_total") == 42
    assert value(m, "pom_zone_servers", zone="east") == 1 and value(m, "pom_zone_servers", zone="") == 0
    assert value(m, "pom_rule_engine_checked", "pom_rule_engine_checked_total") == 900
    assert value(m, "pom_database_up") == 1
    # refusal reasons: every one, 0 included
    assert value(m, "pom_gateway_orders_refused", "pom_gateway_orders_refused_total", reason="duplicate attempt id",
                 **where) == 0
    # imports by state (every state) and their rows
    assert value(m, "pom_imports", state="done") == 2 and value(m, "pom_imports", state="failed") == 0
    assert value(m, "pom_import_rows_by_state", state="done", kind="rejected") == 4
    assert value(m, "pom_import_rows", "pom_import_rows_total", kind="read") == 110
    assert value(m, "pom_import_rows", "pom_import_rows_total", kind="dnc_flagged") == 4
    # the Agent Manager: agents by state and job, licenses, reservations, answered-to-agent latency
    assert value(m, "pom_actor_up", actor="agent_manager", kind="agent_manager") == 1
    assert value(m, "pom_agents", state="ready", job="7") == 2
    assert value(m, "pom_agents", state="not_ready", job="") == 4
    assert value(m, "pom_agents_by_state", state="wrap_up") == 0
    assert value(m, "pom_licenses_size", pool="preview") == 5 and ("pom_licenses_size", (("pool", "predictive"),)) \
        not in m["pom_licenses_size"]                                  # unlimited: absent
    assert value(m, "pom_licenses_in_use", pool="predictive") == 3
    assert ("pom_licenses_in_use", (("pool", "ports"),)) not in m["pom_licenses_in_use"]
    assert value(m, "pom_license_grant", job="9", pool="ports") == 50
    assert value(m, "pom_agent_reservations", "pom_agent_reservations_total") == 12
    assert value(m, "pom_agent_connect_latency_seconds", "pom_agent_connect_latency_seconds_bucket", le="0.01") == 8
    assert value(m, "pom_agent_connect_latency_seconds", "pom_agent_connect_latency_seconds_bucket", le="+Inf") == 10
    assert value(m, "pom_agent_connect_latency_seconds", "pom_agent_connect_latency_seconds_count") == 10
    assert value(m, "pom_agent_sessions_nailed", state="attached") == 3
    assert value(m, "pom_agent_sessions_nailed", state="grace") == 1
    # a manager's pacing, answers and dispatch latency
    mgr = {"job": "7", "manager": "pom-manager-7-0"}
    assert value(m, "pom_pacing_info", handler="call", mode="predictive", applied="predictive", **mgr) == 1
    assert value(m, "pom_pacing_info", handler="sms", mode="time_based", applied="time_based", **mgr) == 1
    assert value(m, "pom_pacing_dial_level", handler="call", **mgr) == 4
    assert value(m, "pom_pacing_lines_per_agent", handler="call", **mgr) == 2.333
    assert value(m, "pom_pacing_abandon_rate", handler="call", **mgr) == 0.02
    assert value(m, "pom_pacing_window_machine_detected", handler="call", **mgr) == 30
    assert value(m, "pom_pacing_alarm", handler="call", **mgr) == 0
    assert ("pom_pacing_lines_per_agent", tuple(sorted({**mgr, "handler": "sms"}.items()))) \
        not in m["pom_pacing_lines_per_agent"]                         # no agent: absent
    assert value(m, "pom_pacing_rate_per_second", handler="call", **mgr) == 20.0
    assert ("pom_pacing_rate_per_second", tuple(sorted({**mgr, "handler": "sms"}.items()))) \
        not in m["pom_pacing_rate_per_second"]                         # unbounded: absent
    assert value(m, "pom_pacing_granted", "pom_pacing_granted_total", handler="call", **mgr) == 30
    assert value(m, "pom_manager_abandons", "pom_manager_abandons_total", **mgr) == 1
    assert value(m, "pom_manager_dispatch_latency_seconds", "pom_manager_dispatch_latency_seconds_bucket",
                 le="0.1", **mgr) == 20
    assert value(m, "pom_manager_dispatch_latency_seconds", "pom_manager_dispatch_latency_seconds_sum", **mgr) == 1.25
    assert value(m, "pom_manager_answer_to_agent_seconds", "pom_manager_answer_to_agent_seconds_bucket",
                 le="2.0", **mgr) == 4
    assert value(m, "pom_manager_answer_to_agent_seconds", "pom_manager_answer_to_agent_seconds_count", **mgr) == 5
    assert set(m) == set(exported_families())      # the list the dashboards are checked against


def test_later_scrapes_read_the_ledger_from_the_horizon_only(collector):
    db = FakeDb()
    collector.bind(fake_sources(db))
    scrape_text(collector)
    assert db.ledger_reads[0].since is None               # the first read: the whole ledger
    assert db.reads == [None]                             # the scrape itself did not count it
    m = scrape_text(collector)
    q = db.reads[-1]
    assert q.since == db.ledger_reads[0].until and q.pending == ((5, 1),)
    assert len(db.ledger_reads) == 1                      # never again
    # settled 100 + below 2 (busy) ; recent replaced by this read's `above`
    assert value(m, "pom_attempts", "pom_attempts_total", channel="call", code="busy") == 2
    assert value(m, "pom_attempts", "pom_attempts_total", channel="call", code="answered") == 101
    assert db.outbox_from == [0, 0]                       # a proposal is taken at the next read
    scrape_text(collector)
    assert db.outbox_from[-1] == 10
    assert db.totals_asked == [[7, 8]]                    # each job's total is read once


def test_the_database_down_is_reported_and_the_actors_still_are(collector):
    db = FakeDb()
    db.down = True
    collector.bind(fake_sources(db))
    m = scrape_text(collector)
    assert value(m, "pom_database_up") == 0
    assert "pom_jobs" not in m
    assert value(m, "pom_actor_up", actor="director", kind="director") == 1


def test_the_agent_manager_down_is_reported_without_its_families(collector):
    collector.bind(fake_sources(FakeDb(), agents={"state": "down", "error": "TimeoutError"}))
    m = scrape_text(collector)
    assert value(m, "pom_actor_up", actor="agent_manager", kind="agent_manager") == 0
    assert "pom_agents" not in m and "pom_agent_connect_latency_seconds" not in m


def test_the_actors_are_probed_before_the_database_is_read_and_managers_once(collector):
    db, log = FakeDb(), []
    sources = fake_sources(db, probe_log=log)
    real_read = sources.read
    sources.read = lambda *a: (log.append(("read",)), real_read(*a))[1]
    collector.bind(sources)
    scrape_text(collector)
    assert [e[0] for e in log] == ["probe", "read", "managers"]
    assert log[2][1] == ("pom-manager-7-0", "pom-manager-7-1")


def test_a_slow_first_ledger_read_does_not_hold_the_scrape(collector):
    db, release = FakeDb(), threading.Event()
    sources = fake_sources(db)
    slow = sources.read_ledger
    sources.read_ledger = lambda q: (release.wait(10), slow(q))[1]
    collector.bind(sources)
    started = time.monotonic()
    m = scrape_text(collector)
    assert time.monotonic() - started < 2.0               # the 1 s timeout, not the read's time
    assert "pom_attempts" not in m and value(m, "pom_jobs", state="running") == 1
    release.set()
    collector._backfill.result(5)
    m = scrape_text(collector)
    assert value(m, "pom_attempts", "pom_attempts_total", channel="call", code="answered") == 101


# -- the route ------------------------------------------------------------------------------------
def _app(db: FakeDb):
    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    app.dependency_overrides[route.metric_sources] = lambda: fake_sources(db)
    return app


def test_the_route_serves_the_text_format_and_each_app_has_its_own_registry():
    db1, db2 = FakeDb(), FakeDb()
    db2.figures = lambda: Figures(jobs={"running": 9}, live=[], items={}, outbox=OutboxRead())
    a1, a2 = _app(db1), _app(db2)
    with TestClient(a1, headers=auth.for_tests(a1)) as c1, TestClient(a2, headers=auth.for_tests(a2)) as c2:
        r1, r2 = c1.get("/metrics"), c2.get("/metrics")
        assert r1.status_code == 200 and r1.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert value(parse(r1.text), "pom_jobs", state="running") == 1
        assert value(parse(r2.text), "pom_jobs", state="running") == 9


def test_the_route_without_database_or_ray_answers_within_the_timeout(monkeypatch):
    """The real sources over a pool that cannot connect and a probe that never answers."""
    monkeypatch.setattr(deps, "COMPONENT_TIMEOUT_S", 0.5)

    class DeadPool:
        def connection(self, timeout=None):
            raise OSError("connection refused")

    def probe(deadline):
        return lambda: (time.sleep(max(0.0, deadline - time.monotonic())),
                        {"director": {"state": "down", "error": "TimeoutError"}})[1]

    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    app.dependency_overrides[deps.pool] = DeadPool
    app.dependency_overrides[deps.actor_probe] = lambda: probe
    with TestClient(app, headers=auth.for_tests(app)) as client:
        started = time.monotonic()
        r = client.get("/metrics")
        assert time.monotonic() - started < 1.5
    m = parse(r.text)
    assert r.status_code == 200
    assert value(m, "pom_database_up") == 0 and value(m, "pom_actor_up", actor="director", kind="director") == 0
