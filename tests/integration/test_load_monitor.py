"""The load monitor for real: each kind of load driven over its threshold — idle connections
opened, a lock held so sessions block, a long `pg_sleep`, a running job, the server's real
memory and CPU against thresholds set low — and the alarm seen raised (API, table, outbox
event), the restriction in force (API; dialling slowed: the managers' factor; imports refused
or held; reports limited; purges deferred), then cleared when the load goes."""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta

import pytest
import ray

from pom_actors import names
from pom_actors.store import load as loadstore
from pom_actors.store import purges as purgestore
from pom_actors.store.database import connect

from .conftest import phone_contacts

pytestmark = pytest.mark.integration
HIGH = 1e9
# Every threshold out of reach but for the one a test lowers: a busy test machine raises nothing.
QUIET = {"sample_s": 0.25, "long_query_s": 1.0,
         "thresholds": {m: {"raise_at": HIGH, "clear_below": HIGH, "samples": 1} for m in
                        ("database.sessions", "database.connections", "database.long_queries", "database.blocked",
                         "pom.jobs", "pom.agents", "pom.imports", "server.cpu", "server.memory")}}
SLOW_CALLS = {
    "name": "load-slow", "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "caller_id": "+12125550100",
                          "pacing": {"attempts_per_second": 2, "max_concurrent": 4},
                          "results": {"default": "done"}}},
}


@pytest.fixture
def quiet(http, conn):
    """The quiet configuration for the test, changed through the API; the defaults after."""
    def configure(**thresholds):
        doc = {**QUIET, "thresholds": {**QUIET["thresholds"], **thresholds}}
        r = http.put("/api/v1/load/config", json=doc)
        assert r.status_code == 200, r.text
        return r.json()
    configure()
    yield configure
    configure()
    wait_for(lambda: not loadstore.active_alarms(conn), "every alarm cleared")
    conn.execute("DELETE FROM load_config")


def wait_for(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def monitors() -> dict[str, object]:
    """The load monitor of every POM server, once the director placed them."""
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and names.SERVER_RESOURCE in n["Resources"]]
    return wait_for(lambda: (h := {names.server_name(n): names.actor(names.load_monitor_name(n)) for n in nodes})
                    and all(h.values()) and h, "a load monitor on every server", timeout=30)


def alarm_seen(http, conn, source: str, state: str, alarm_id: int | None = None) -> dict:
    """The alarm of `source` (that one, if given) in `state` through the API, as in the table,
    with its outbox event."""
    def found():
        page = http.get("/api/v1/alarms", params={"state": state}).json()
        return next((a for a in page if a["source"] == source and alarm_id in (None, a["id"])), None)
    alarm = wait_for(found, f"alarm {source} {state}")
    row = conn.execute("SELECT cleared_at IS NULL FROM alarms WHERE id = %s", (alarm["id"],)).fetchone()
    assert row == (state == "active",)
    wanted = "raised" if state == "active" else "cleared"
    events = [e for (e,) in conn.execute(
        "SELECT e FROM event_outbox o, jsonb_array_elements(o.payload) e WHERE o.topic = 'pom.alarms' "
        "AND o.key = %s AND (e->>'alarm_id')::int = %s", ("alarm-" + source, alarm["id"]))]
    assert [e["state"] for e in events if e["state"] == wanted] == [wanted], events
    return alarm


def load(http) -> dict:
    r = http.get("/api/v1/load")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_monitor_per_server_and_the_readings_through_the_api(pom, http, quiet):
    servers = monitors()
    def leaders():
        status = [ray.get(h.status.remote(), timeout=10) for h in servers.values()]
        return all(st["samples"] for st in status) and [st["server"] for st in status if st["leader"]]
    assert len(wait_for(leaders, "every monitor sampled, one leading")) == 1
    body = wait_for(lambda: (b := load(http)) and b["database"] and b["pom"] and b, "readings of the leader")
    assert {s["server"] for s in body["servers"]} >= set(servers)
    assert all(0 <= s["readings"]["server.memory"] <= 100 for s in body["servers"])
    assert body["database"]["database.max_connections"] > 0 and "pom.jobs" in body["pom"]
    assert body["restrictions"] == {"dial_factor": 1.0, "imports": "allowed", "reports": "allowed",
                                    "purges": "allowed", "because": {}}
    assert http.put("/api/v1/load/config", json={"thresholds": {"server.cpu": {"raise_at": 5, "clear_below": 9}}}
                    ).json()["errors"][0]["path"].startswith("thresholds")
    metrics = http.get("/metrics").text
    assert "pom_load_memory_percent{" in metrics and "pom_load_dial_factor 1.0" in metrics


def test_database_saturated_slows_dialling_and_refuses_imports(pom, http, conn, quiet, campaigns):
    """Idle connections over the threshold: `database.connections` raised, the running job's
    managers slowed to the factor, a new import refused (503); all lifted when they close."""
    job_id = campaigns.start(campaigns.make(SLOW_CALLS, phone_contacts(400)))
    managers = [names.manager_name(job_id, i) for i in range(2)]
    wait_for(lambda: all(names.actor(m) for m in managers), "the job's managers")
    now = wait_for(lambda: load(http)["database"].get("database.connections_count"), "a database reading")
    max_conn = load(http)["database"]["database.max_connections"]
    per_conn = 100.0 / max_conn
    # 14 more connections cross the threshold; under it again once they close (others come and go)
    quiet(**{"database.connections": {"raise_at": (now + 9) * per_conn, "clear_below": (now + 9) * per_conn,
                                      "samples": 1, "dial_factor": 0.25}})
    with ExitStack() as stack:
        for _ in range(14):
            stack.enter_context(connect(pom.settings.database_url, autocommit=True))
        alarm = alarm_seen(http, conn, "database.connections", "active")
        assert alarm["severity"] == "critical" and alarm["component"] == "database"
        body = load(http)
        assert body["restrictions"]["dial_factor"] == 0.25 and body["restrictions"]["imports"] == "refused"
        assert body["levels"]["database"]["level"] == "critical"
        wait_for(lambda: all(ray.get(names.actor(m).status.remote(), timeout=10)["slow_factor"] == 0.25
                             for m in managers), "the managers slowed")
        r = http.post("/api/v1/lists/1/imports", files={"file": ("c.csv", b"external_id\n1\n", "text/csv")})
        assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
        assert "database.connections" in http.get("/metrics").text
    alarm_seen(http, conn, "database.connections", "cleared", alarm["id"])
    wait_for(lambda: all(ray.get(names.actor(m).status.remote(), timeout=10)["slow_factor"] == 1.0
                         for m in managers), "the managers at full pace again")
    assert load(http)["restrictions"]["imports"] == "allowed"
    campaigns.command(job_id, "stop")


def test_blocked_sessions_and_long_queries(pom, http, conn, quiet):
    quiet(**{"database.blocked": {"raise_at": 2, "clear_below": 1, "samples": 1},
             "database.long_queries": {"raise_at": 1, "clear_below": 1, "samples": 1}})
    url = pom.settings.database_url
    holder = connect(url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(4242)")
    waiters = [connect(url, autocommit=True) for _ in range(2)]
    threads = [threading.Thread(target=lambda c=c: c.execute("SELECT pg_advisory_lock(4242); "
                                                              "SELECT pg_advisory_unlock(4242)"))
               for c in waiters]
    try:
        for t in threads:
            t.start()
        blocked = alarm_seen(http, conn, "database.blocked", "active")
        # the waiters are also queries running past long_query_s (1 s)
        first = alarm_seen(http, conn, "database.long_queries", "active")
        assert load(http)["database"]["database.blocked"] >= 2
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        for t in threads:
            t.join(10)
        for c in [holder, *waiters]:
            c.close()
    alarm_seen(http, conn, "database.blocked", "cleared", blocked["id"])
    alarm_seen(http, conn, "database.long_queries", "cleared", first["id"])
    # a long query on its own
    sleeper = connect(url, autocommit=True)
    thread = threading.Thread(target=lambda: sleeper.execute("SELECT pg_sleep(2.5)"))
    thread.start()
    try:
        second = alarm_seen(http, conn, "database.long_queries", "active")
        assert "database.blocked" not in load(http)["levels"]["database"]["alarms"]
    finally:
        thread.join(10)
        sleeper.close()
    alarm_seen(http, conn, "database.long_queries", "cleared", second["id"])


def test_server_memory_queues_imports_and_cpu_alarms(pom, http, conn, quiet):
    servers = monitors()
    # real readings over thresholds set low: every server's memory alarm, imports held
    quiet(**{"server.memory": {"raise_at": 0.1, "clear_below": 0.1, "samples": 1}})
    memory = {server: alarm_seen(http, conn, f"server.memory@{server}", "active") for server in servers}
    assert load(http)["restrictions"]["imports"] == "queued"
    list_id = http.post("/api/v1/lists", json={"name": f"load-{time.time_ns()}"}).json()["id"]
    r = http.post(f"/api/v1/lists/{list_id}/imports",
                  files={"file": ("c.csv", b"external_id,phone1\n1,+12125550101\n2,+12125550102\n", "text/csv")})
    assert r.status_code == 202 and r.json()["held"] == "load", r.text
    import_id = r.json()["id"]
    time.sleep(2.0)                                   # the importer looks every second: it waits
    assert http.get(f"/api/v1/imports/{import_id}").json()["state"] == "queued"
    quiet(**{"server.cpu": {"raise_at": 0, "clear_below": 0, "samples": 1}})    # memory back to quiet
    cpu = {}
    for server in servers:
        alarm_seen(http, conn, f"server.memory@{server}", "cleared", memory[server]["id"])
        cpu[server] = alarm_seen(http, conn, f"server.cpu@{server}", "active")
    assert load(http)["levels"]["server"]["level"] == "minor"                 # the CPU default severity
    assert load(http)["restrictions"]["imports"] == "allowed"       # CPU imposes nothing by default
    wait_for(lambda: http.get(f"/api/v1/imports/{import_id}").json()["state"] == "done", "the import done")
    quiet()
    for server in servers:
        alarm_seen(http, conn, f"server.cpu@{server}", "cleared", cpu[server]["id"])


def test_pom_load_queues_imports(pom, http, conn, quiet):
    """POM's own figures: the active jobs over a threshold of 0 (any reading crosses it), set to
    queue new imports, until the threshold is lifted."""
    quiet(**{"pom.jobs": {"raise_at": 0, "clear_below": 0, "samples": 1, "imports": "queued"}})
    alarm = alarm_seen(http, conn, "pom.jobs", "active")
    assert load(http)["restrictions"] == {"dial_factor": 1.0, "imports": "queued", "reports": "allowed",
                                          "purges": "allowed",
                                          "because": {"imports_queued": ["pom.jobs"]}}
    quiet()
    alarm_seen(http, conn, "pom.jobs", "cleared", alarm["id"])


def test_database_saturated_limits_reports_and_defers_purges(pom, http, conn, quiet):
    """Idle connections over `database.connections`: report queries limited (a range over an
    hour answered 503 with Retry-After, the default range an hour), a purge asked for deferred
    and left alone while the alarm holds — and carried out once the connections close."""
    wait_for(lambda: purgestore.pending_run(conn) is None, "no purge pending")
    now = wait_for(lambda: load(http)["database"].get("database.connections_count"), "a database reading")
    per_conn = 100.0 / load(http)["database"]["database.max_connections"]
    quiet(**{"database.connections": {"raise_at": (now + 9) * per_conn, "clear_below": (now + 9) * per_conn,
                                      "samples": 1}})
    with ExitStack() as stack:
        for _ in range(14):
            stack.enter_context(connect(pom.settings.database_url, autocommit=True))
        alarm = alarm_seen(http, conn, "database.connections", "active")
        restrictions = load(http)["restrictions"]
        assert (restrictions["reports"], restrictions["purges"]) == ("limited", "deferred")
        assert restrictions["because"]["reports_limited"] == restrictions["because"]["purges_deferred"] \
            == ["database.connections"]
        long = http.get("/api/v1/reports/attempts", params={"since": "2026-11-25T00:00:00Z",
                                                            "until": "2026-11-25T02:00:00Z"})
        assert long.status_code == 503 and long.json()["error"] == "unavailable", long.text
        assert int(long.headers["Retry-After"]) >= 1 and long.json()["max_range_s"] == 3600
        short = http.get("/api/v1/reports/abandons")
        assert short.status_code == 200 and short.json()["limited"], short.text
        span = datetime.fromisoformat(short.json()["until"]) - datetime.fromisoformat(short.json()["since"])
        assert span == timedelta(hours=1)
        r = http.post("/api/v1/purges")
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        wait_for(lambda: http.get(f"/api/v1/purges/{run_id}").json()["state"] == "deferred", "the purge deferred")
        time.sleep(3.0)                                   # the director looks every 2 s: it still waits
        run = http.get(f"/api/v1/purges/{run_id}").json()
        assert run["state"] == "deferred" and run["started_at"] is None and "database.connections" in run["message"]
    alarm_seen(http, conn, "database.connections", "cleared", alarm["id"])
    assert load(http)["restrictions"]["reports"] == "allowed"
    assert http.get("/api/v1/reports/attempts", params={"since": "2026-11-25T00:00:00Z",
                                                        "until": "2026-11-25T02:00:00Z"}).status_code == 200
    wait_for(lambda: http.get(f"/api/v1/purges/{run_id}").json()["state"] == "done", "the purge done once lifted")
