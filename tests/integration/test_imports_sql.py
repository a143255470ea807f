"""Imports from a SQL query on another database (a second database on the session's server,
reached through its socket directory, which the outbound policy judges as loopback: allowed
by the session's POM_OUTBOUND_ALLOW): through the API with every row check, refused sources,
an import resumed after its importer died, and an import schedule run by the director once
per due time."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import ray

from pom_actors import names
from pom_actors.core.clock import ManualClock
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.importer import start_importer
from pom_actors.services.import_schedules import ImportScheduleDuty
from pom_actors.services.importer import ImporterService, load_chunk_with
from pom_actors.store import catalog
from pom_actors.store.database import connect
from pom_actors.store.import_schedules import ImportScheduleStore
from pom_actors.store.imports import ImportStore, create_import

from .conftest import scratch_database
from .test_imports import new_list, wait_done

pytestmark = pytest.mark.integration
ROWS = 12_000
QUERY = "SELECT id, given AS first_name, phone, mail AS email, tier FROM people WHERE mail LIKE 'p%' ORDER BY n"


@pytest.fixture(scope="module")
def source(pom):
    """The source database: ROWS people (every 1000th with a bad number, ids 5 and 6 sharing
    external id 'dup'), and the `postgres` document that reaches it."""
    with scratch_database(pom.settings, "pom_import_source") as url:
        with connect(url, autocommit=True) as c:
            c.execute("CREATE TABLE people (id text, n int, given text, phone text, mail text, tier text)")
            c.execute("INSERT INTO people SELECT CASE WHEN n IN (5, 6) THEN 'dup' ELSE 'p' || n END, n, "
                      "'Given' || n, CASE WHEN n %% 1000 = 0 THEN 'not a number' "
                      "ELSE '+16462' || lpad(n::text, 6, '0') END, 'p' || n || '@example.com', "
                      "CASE WHEN n %% 2 = 0 THEN 'gold' END FROM generate_series(1, %s) n", (ROWS,))
            c.execute("CREATE SEQUENCE tickets")
        parts = urlsplit(url)
        yield {"host": parse_qs(parts.query)["host"][0], "dbname": parts.path.lstrip("/"),
               "user": parts.username, "query": QUERY, "fetch_rows": 1000}


def test_a_sql_import_checks_every_row_like_a_file(http, conn, source):
    catalog.add_dnc(conn, ["+16462000007"])
    list_id = new_list(http)
    r = http.post(f"/api/v1/lists/{list_id}/imports", json={"source": {"postgres": source}, "region": "US"})
    assert r.status_code == 202, r.text
    body = wait_done(http, r.json()["id"], timeout=120)
    bad = ROWS // 1000
    assert body["state"] == "done", body
    assert (body["rows_read"], body["rows_rejected"], body["duplicates"]) == (ROWS, bad, 1)
    assert body["rows_loaded"] == ROWS - bad - 1 and body["chunks"] == body["chunks_done"] == ROWS // 1000
    assert body["source"].startswith("postgres:/") and body["query"]["query"] == source["query"]
    flagged = [r[0] for r in conn.execute("SELECT external_id FROM contacts WHERE list_id = %s AND dnc",
                                          (list_id,))]
    assert "p7" in flagged and body["dnc_flagged"] == len(flagged)    # other tests' entries may match too
    rows = conn.execute("SELECT external_id, first_name, phone1, email, attributes FROM contacts "
                        "WHERE list_id = %s AND external_id IN ('p2', 'p3', 'dup') ORDER BY 1", (list_id,)).fetchall()
    assert rows == [("dup", "Given6", "+16462000006", "p6@example.com", {"tier": "gold"}),   # update: last wins
                    ("p2", "Given2", "+16462000002", "p2@example.com", {"tier": "gold"}),
                    ("p3", "Given3", "+16462000003", "p3@example.com", {})]
    rejects = http.get(f"/api/v1/imports/{body['id']}/rejects").json()["rejects"]
    assert [(r["line"], r["field"]) for r in rejects] == [(n, "phone1") for n in range(1000, ROWS + 1, 1000)]


def test_refused_sources_are_422_at_the_field_and_never_echo_a_password(http, source):
    list_id = new_list(http)
    cases = [({**source, "query": "DELETE FROM people"}, "source.postgres.query", "only a SELECT"),
             ({**source, "query": "SELECT 1; DROP TABLE people"}, "source.postgres.query", "one statement"),
             ({"dsn": "postgresql://u:hunter2@127.0.0.1/db", "query": "SELECT 1"}, "source.postgres.dsn",
              "password"),
             ({**source, "host": "10.1.2.3"}, "source.postgres.host", "private address"),
             ({**source, "password": "hunter2"}, "source.postgres.password", "Extra inputs")]
    for postgres, path, why in cases:
        r = http.post(f"/api/v1/lists/{list_id}/imports", json={"source": {"postgres": postgres}})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["path"] == path and why in r.text and "hunter2" not in r.text
    r = http.post(f"/api/v1/lists/{list_id}/imports", json={"source": {"postgres": source}, "path": "/x"})
    assert r.status_code == 422 and "either path" in r.text


def test_the_query_runs_read_only(http, source):
    """A SELECT that writes (here: a sequence moved) fails the import: the transaction is READ ONLY."""
    list_id = new_list(http)
    query = "SELECT n::text AS id, '+16462000100' AS phone, nextval('tickets') AS t FROM generate_series(1, 2) n"
    r = http.post(f"/api/v1/lists/{list_id}/imports", json={"source": {"postgres": {**source, "query": query}}})
    assert r.status_code == 202, r.text
    body = wait_done(http, r.json()["id"])
    assert body["state"] == "failed" and "read-only transaction" in body["message"], body


def test_a_sql_import_resumes_after_a_crash_without_duplicates(pom, conn, source):
    """Two chunks land, then the importer 'dies'; a new one re-runs the query, skips them and
    loads the rest. (The runtime's importer is stopped meanwhile and started again after.)"""
    ray.kill(names.actor(names.IMPORTER), no_restart=True)
    time.sleep(0.5)
    try:
        list_id = catalog.create_list(conn, f"sql-crash-{time.time_ns()}")
        import_id = create_import(conn, list_id, "test", None, {"region": "US"}, query=source)
        url = pom.settings.database_url
        worker = connect(url, autocommit=True)
        calls = []

        def submit(spec, rows):
            calls.append(spec.chunk)
            if len(calls) > 2:
                raise RuntimeError("the importer's node died")
            return load_chunk_with(worker, spec, rows)

        def service(submit_chunk):
            return ImporterService(lambda: ImportStore.open(url), submit_chunk, lambda p: (p, []), parallel=1,
                                   policy=OutboundPolicy(["127.0.0.1"]))

        with pytest.raises(RuntimeError):
            service(submit).run(import_id)
        state = conn.execute("SELECT state, rows_read FROM import_jobs WHERE id = %s", (import_id,)).fetchone()
        assert state == ("running", 2000)
        again = []
        assert service(lambda spec, rows: again.append(spec.chunk) or load_chunk_with(worker, spec, rows)
                       ).run(import_id) == "done"
        assert again == list(range(2, ROWS // 1000))
        row = conn.execute("SELECT rows_read, rows_loaded, rows_rejected, duplicates, chunks FROM import_jobs "
                           "WHERE id = %s", (import_id,)).fetchone()
        bad = ROWS // 1000
        assert row == (ROWS, ROWS - bad - 1, bad, 1, ROWS // 1000)
        assert conn.execute("SELECT count(*), count(DISTINCT external_id) FROM contacts WHERE list_id = %s",
                            (list_id,)).fetchone() == (ROWS - bad - 1, ROWS - bad - 1)
    finally:
        start_importer(pom.settings)


def test_a_schedule_runs_its_import_once_per_due_time(pom, http, conn, source):
    list_id = new_list(http)
    body = {"name": f"nightly-{time.time_ns()}", "list_id": list_id,
            "schedule": {"cron": "0 3 1 1 *", "timezone": "UTC"}, "source": {"postgres": source},
            "options": {"region": "US"}}
    bad = [({"schedule": {"cron": "*/99999999 * * * *"}}, "schedule.cron"),
           ({"source": {"postgres": {**source, "query": "UPDATE people SET n = 0"}}}, "source.postgres.query"),
           ({"options": {"policy": "merge"}}, "options.policy")]
    for change, path in bad:
        r = http.post("/api/v1/import-schedules", json={**body, **change})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text
    assert http.post("/api/v1/import-schedules", json={**body, "list_id": 99_999_999}).status_code == 404
    r = http.post("/api/v1/import-schedules", json=body)
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    assert http.post("/api/v1/import-schedules", json=body).status_code == 409
    # the session's director serves it on its tick: created after the business clock's now, it
    # counts from that now (nothing due before 1 January)
    deadline = time.monotonic() + 30
    while http.get(f"/api/v1/import-schedules/{schedule_id}").json()["last_run_at"] is None:
        assert time.monotonic() < deadline, "the director never looked at the schedule"
        time.sleep(0.2)
    # 1 January 03:00:30: one import, whatever the ticks or directors that see it
    due = datetime(2031, 1, 1, 3, 0, 30, tzinfo=timezone.utc)

    def director():
        return ImportScheduleDuty(open_store=lambda: ImportScheduleStore.open(pom.settings.database_url),
                                  clock=ManualClock(due))
    first = director()
    started = first.tick()
    assert len(started) == 1
    assert first.tick() == [] and director().tick() == []                     # again; a restarted one
    assert conn.execute("SELECT count(*) FROM import_jobs WHERE schedule_id = %s",
                        (schedule_id,)).fetchone()[0] == 1
    done = wait_done(http, started[0], timeout=120)
    assert done["state"] == "done" and done["schedule_id"] == schedule_id and done["rows_read"] == ROWS
    got = http.get(f"/api/v1/import-schedules/{schedule_id}").json()
    assert got["last_import_id"] == started[0] and got["last_run_at"].startswith("2031-01-01T03:00:00")
    r = http.patch(f"/api/v1/import-schedules/{schedule_id}", json={"schedule": {"cron": "0 4 * * *"}})
    assert r.status_code == 200 and r.json()["schedule"]["cron"] == "0 4 * * *"
    assert any(s["id"] == schedule_id for s in http.get("/api/v1/import-schedules").json())
    assert http.delete(f"/api/v1/import-schedules/{schedule_id}").status_code == 204
    assert http.get(f"/api/v1/import-schedules/{schedule_id}").status_code == 404
    assert conn.execute("SELECT schedule_id FROM import_jobs WHERE id = %s", (started[0],)).fetchone() == (None,)
