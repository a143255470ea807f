"""`GET /metrics` of a running system: the figures match the ledger, the jobs and the work items
in PostgreSQL, and every actor — director, rule engine, gateway, the job's managers — is up.

The session's system may be running other tests' jobs, so a comparison with the database is
taken only when the database read before and after the scrape agree."""
from __future__ import annotations

import time
from collections import Counter

import ray
from prometheus_client.parser import text_string_to_metric_families

from pom_actors.core.lifecycle import JobState
from pom_actors.names import gateways
from pom_actors.store import catalog

from .conftest import phone_contacts

VOICE = {
    "name": "metrics-voice",
    "initial": "call",
    "handlers": {
        "call": {
            "type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
            "caller_id": "+12125550100", "ring_timeout": 20,
            "pacing": {"max_concurrent": 20, "attempts_per_second": 40},
            "results": {"busy": {"action": "retry", "after": "30m", "max": 2}, "default": "done"},
        }
    },
}


def scrape(http) -> dict[str, dict[tuple, float]]:
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def samples(m, name: str, *labels: str) -> Counter:
    """{label values: value} of one sample name, summed over the labels not named."""
    out: Counter = Counter()
    for key, v in m.get(name, {}).items():
        d = dict(key)
        out[tuple(d[label] for label in labels)] += v
    return +out


def ledger(conn) -> dict[str, Counter]:
    return {
        "attempts": Counter({(ch, code): n for ch, code, n in conn.execute(
            "SELECT channel, code, count(*) FROM attempts GROUP BY 1, 2")}),
        "verdicts": Counter({(rule, verdict): n for rule, verdict, n in conn.execute(
            "SELECT rule, verdict, count(*) FROM attempts GROUP BY 1, 2")}),
        "jobs": Counter(dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall())),
        "outbox": conn.execute("SELECT count(*) FROM event_outbox WHERE published_at IS NULL").fetchone()[0],
    }


def matching_scrape(http, conn, tries: int = 20):
    """A scrape and the database's figures, taken while nothing else changed them."""
    for _ in range(tries):
        before = ledger(conn)
        m = scrape(http)
        if ledger(conn) == before:
            return m, before
        time.sleep(0.3)
    raise AssertionError("the database kept changing around every scrape")


def assert_matches(m, db) -> None:
    assert samples(m, "pom_attempts_total", "channel", "code") == db["attempts"]
    assert samples(m, "pom_rule_verdicts_total", "rule", "verdict") == db["verdicts"]
    jobs = samples(m, "pom_jobs", "state")
    assert all(jobs[(state,)] == db["jobs"].get(state, 0) for state in JobState)
    assert m["pom_outbox_unpublished_rows"][()] == db["outbox"]


def test_metrics_follow_a_job_and_match_the_ledger(http, campaigns, conn):
    m, db = matching_scrape(http, conn)                 # before the job: the whole ledger, once
    assert m["pom_database_up"][()] == 1
    assert_matches(m, db)

    contacts = phone_contacts(60)
    blocked = [contacts[i]["phone1"] for i in (3, 17, 41)]
    catalog.add_dnc(conn, addresses=blocked)
    job_id = campaigns.start(campaigns.make(VOICE, contacts))
    job = str(job_id)

    # While it runs: its managers answer, its items are reported, the counters only grow.
    deadline, seen_managers, last = time.monotonic() + 60, False, None
    while time.monotonic() < deadline and not seen_managers:
        m = scrape(http)
        up = samples(m, "pom_actor_up", "actor", "kind")
        managers = {a: v for (a, kind), v in up.items() if kind == "manager" and a.startswith(f"pom-manager-{job}-")}
        seen_managers = len(managers) == 2 and all(v == 1 for v in managers.values())
        if last is not None:
            now = samples(m, "pom_attempts_total", "channel", "code")
            assert all(now[k] >= v for k, v in last.items())
        last = samples(m, "pom_attempts_total", "channel", "code")
        time.sleep(0.2)
    assert seen_managers, up
    assert samples(m, "pom_job_info", "job", "state").get((job, "running")) == 1

    # Paused, nothing in flight: the items by state are exactly the database's.
    campaigns.command(job_id, "pause")
    campaigns.wait(job_id, states={JobState.PAUSED}, timeout=60)
    m, db = matching_scrape(http, conn)
    assert_matches(m, db)
    items = {state: v for (j, state), v in samples(m, "pom_work_items", "job", "state").items() if j == job}
    expected = campaigns.items(job_id)
    assert items.get("in_flight", 0) == 0
    for state in ("ready", "scheduled", "done"):
        assert items.get(state, 0) == expected.get(state, 0), (items, expected)
    assert sum(items.values()) == 60
    assert samples(m, "pom_manager_in_flight", "job").get((job,), 0) == 0

    campaigns.command(job_id, "resume")
    assert campaigns.wait(job_id, timeout=120)["state"] == "completed"

    m, db = matching_scrape(http, conn)
    assert_matches(m, db)
    mine = Counter({code: n for code, n in conn.execute(
        "SELECT code, count(*) FROM attempts WHERE job_id = %s GROUP BY 1", (job_id,))})
    assert mine["dnc_restricted"] == 3
    assert samples(m, "pom_rule_verdicts_total", "rule", "verdict")[("dnc_address", "restricted")] >= 3
    assert job not in {j for (j,) in samples(m, "pom_job_info", "job")}      # ended: no longer live

    # Every actor is up; each gateway's figures are those of its stats().
    up = samples(m, "pom_actor_up", "actor", "kind")
    assert up[("director", "director")] == 1 and up[("rule_engine", "rule_engine")] == 1
    live = gateways(refresh=True)
    assert live and all(up[(name, "gateway")] == 1 for name in live)
    for name, handle in live.items():
        stats = ray.get(handle.stats.remote())
        accepted = samples(m, "pom_gateway_orders_accepted_total", "gateway")[(name,)]
        assert accepted <= stats["orderbook"]["accepted"]          # the scrape came first
        calls = samples(m, "pom_gateway_orders_submitted_total", "gateway", "channel")[(name, "call")]
        assert calls <= stats["channels"]["call"]["submitted"]
    accepted = sum(samples(m, "pom_gateway_orders_accepted_total", "gateway").values())
    assert accepted >= sum(n for code, n in mine.items() if code not in ("dnc_restricted", "cancelled"))
    assert m["pom_director_ticks_total"][()] > 0
    restarts = {dict(key)["actor"]: n for key, n in m["pom_actor_restarts"].items()}    # Ray's own record
    assert {"pom-director", "pom-rule-engine", *live} <= set(restarts) and min(restarts.values()) >= 0

    # The scrape left the ledger's BRIN index summarized: its next range read is of the tail.
    m, db = matching_scrape(http, conn)
    assert conn.execute("SELECT brin_summarize_new_values('ix_attempts_created_at')").fetchone()[0] == 0


def test_a_scrape_is_bounded_in_time(http):
    started = time.monotonic()
    scrape(http)
    assert time.monotonic() - started < 3.5
