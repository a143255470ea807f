"""File imports through the API: good and bad rows, rejects, DNC flags, dedupe, concurrent
imports and uploads into one list, pause/stop, and an import resumed after its importer died."""
from __future__ import annotations

import concurrent.futures
import csv
import io
import time

import pytest
import ray

from pom_actors import names
from pom_actors.importer import start_importer
from pom_actors.services.importer import ImporterService, load_chunk_with
from pom_actors.store import catalog
from pom_actors.store.database import connect
from pom_actors.store.imports import ImportStore

from .conftest import api_client

pytestmark = pytest.mark.integration
HEADER = "external_id,first_name,last_name,phone1,email,plan\n"


@pytest.fixture(scope="module")
def api(pom, tmp_path_factory, admin_token):
    inbox = tmp_path_factory.mktemp("inbox")
    settings = pom.settings.replace(import_dir=str(inbox), max_import_bytes=5_000_000)
    with api_client(settings, admin_token) as client:
        client.inbox = inbox
        yield client


def new_list(api, name=None) -> int:
    r = api.post("/api/v1/lists", json={"name": name or f"imp-{time.time_ns()}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_done(api, import_id, states=("done", "failed", "stopped"), timeout=90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/imports/{import_id}").json()
        if body["state"] in states:
            return body
        time.sleep(0.2)
    raise AssertionError(f"import {import_id} still {body}")


def upload(api, list_id, text: str | bytes, **options):
    data = text.encode() if isinstance(text, str) else text
    return api.post(f"/api/v1/lists/{list_id}/imports", files={"file": ("contacts.csv", data, "text/csv")},
                    data={k: v for k, v in options.items()})


def test_good_and_bad_rows_rejects_and_dnc(api, conn):
    catalog.add_dnc(conn, ["+12125550103"])
    list_id = new_list(api)
    text = (HEADER + "1,Ann,A,+12125550101,ann@example.com,gold\n"
            "2,Bob,B,(212) 555-0102,,=HYPERLINK(\"x\")\n"
            "3,Cy,C,+12125550103,,silver\n"
            "4,Dee,D,+1212,,x\n"
            "5,Eve\n"
            "6,Fay,F,+12125550106,bad-mail,x\n"
            "1,Ann,A2,+12125550101,ann@example.com,platinum\n")
    r = upload(api, list_id, text, region="US")
    assert r.status_code == 202, r.text
    body = wait_done(api, r.json()["id"])
    assert body["state"] == "done"
    assert (body["rows_read"], body["rows_loaded"], body["rows_rejected"], body["duplicates"],
            body["dnc_flagged"]) == (7, 3, 3, 1, 1)
    rows = conn.execute("SELECT external_id, last_name, phone1, phone1_type, dnc, timezones, attributes "
                        "FROM contacts WHERE list_id = %s ORDER BY external_id", (list_id,)).fetchall()
    assert rows[0][:2] == ("1", "A2") and rows[0][6] == {"plan": "platinum"}   # update policy: last wins
    assert rows[1][2:4] == ("+12125550102", "fixed_line_or_mobile") and rows[1][5] == ["America/New_York"]
    assert rows[2][4] is True and rows[1][4] is False
    rejects = api.get(f"/api/v1/imports/{body['id']}/rejects").json()["rejects"]
    assert [(r["line"], r["field"]) for r in rejects] == [(5, "phone1"), (6, ""), (7, "email")]
    csv_text = api.get(f"/api/v1/imports/{body['id']}/rejects", headers={"accept": "text/csv"}).text
    assert list(csv.reader(io.StringIO(csv_text)))[0] == ["line", "field", "reason", "row"]
    formula = api.get(f"/api/v1/imports/{body['id']}/rejects?format=csv").text
    assert "=" not in "".join(c[:1] for row in csv.reader(io.StringIO(formula)) for c in row)


def test_whole_file_faults_are_422(api):
    list_id = new_list(api)
    for text, message in [("", "empty"), (HEADER, "no rows"), ("id,phone,Phone\n1,2,3\n", "duplicate header"),
                          ("name,phone\nx,+12125550101\n", "external_id")]:
        r = upload(api, list_id, text)
        assert r.status_code == 422 and r.json()["error"] == "invalid_file", (text, r.text)
        assert message in r.json()["message"]
    assert api.post("/api/v1/lists/999999/imports", files={"file": ("a.csv", HEADER + "1,a,b,+12125550101,,\n")}
                    ).status_code == 404
    big = HEADER + "".join(f"{i},a,b,+1212555{i % 10000:04d},,x\n" for i in range(200_000))
    assert upload(api, list_id, big).status_code == 413
    r = api.post(f"/api/v1/lists/{list_id}/imports", json={"path": "/etc/passwd"})
    assert r.status_code == 422 and "import directory" in r.json()["message"]


def test_server_side_path_and_options(api):
    list_id = new_list(api)
    path = api.inbox / "semi.csv"
    path.write_bytes("id;Vorname;Telefon;Tarif\r\n1;Jörg;030 12345678;A\r\n2;Änne;0151 23456789;B\r\n"
                     .encode("utf-16"))
    r = api.post(f"/api/v1/lists/{list_id}/imports", json={
        "path": str(path), "region": "DE", "mapping": {"Vorname": "first_name", "Telefon": "phone1"}})
    assert r.status_code == 202, r.text
    body = wait_done(api, r.json()["id"])
    assert (body["state"], body["rows_loaded"]) == ("done", 2), body


def test_concurrent_imports_and_uploads_into_one_list_lose_nothing(api, conn):
    list_id = new_list(api)
    n = 3000
    files = [HEADER + "".join(f"{i},F{k},L,+1212555{i:04d},,p{k}\n" for i in range(n)) for k in range(3)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        started = list(pool.map(lambda t: upload(api, list_id, t, policy="update"), files))
        json_rows = [[{"external_id": str(i + k * 500), "phone1": f"+1212555{i:04d}"} for i in range(500)]
                     + [{"external_id": f"shared-{k}", "phone1": "+12125550000"}, {"external_id": "same",
                                                                                   "phone1": "+12125550001"}]
                     for k in range(6)]
        answers = list(pool.map(lambda rows: api.post(f"/api/v1/lists/{list_id}/contacts", json=rows), json_rows))
    assert all(r.status_code in (200, 422) for r in answers), [r.text for r in answers]
    for r in answers:                     # never a 409: a taken id is reported by line, the rest stored
        body = r.json()
        if r.status_code == 422:
            assert {e["message"] for e in body["errors"]} == {"already in this list"}
    for r in started:
        assert wait_done(api, r.json()["id"])["state"] == "done"
    count = conn.execute("SELECT count(*), count(DISTINCT external_id) FROM contacts WHERE list_id = %s",
                         (list_id,)).fetchone()
    assert count[0] == count[1] == n + 6 + 1


def test_pause_resume_stop(api):
    list_id = new_list(api)
    r = upload(api, list_id, HEADER + "1,a,b,+12125550101,,\n")
    import_id = r.json()["id"]
    p = api.post(f"/api/v1/imports/{import_id}/pause")
    if p.status_code == 200:
        assert p.json()["state"] == "paused"
        time.sleep(1.5)
        assert api.get(f"/api/v1/imports/{import_id}").json()["state"] == "paused"
        assert api.post(f"/api/v1/imports/{import_id}/resume").json()["state"] == "queued"
    assert wait_done(api, import_id)["state"] == "done"
    r = api.post(f"/api/v1/imports/{import_id}/stop")
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition"
    assert api.get("/api/v1/imports/99999999").status_code == 404


def test_resume_after_a_crash_duplicates_nothing(pom, conn, tmp_path):
    """The first two chunks land, then the importer 'dies'; a new one finishes the rest.
    (The runtime's importer is stopped meanwhile, so the two plain services are the only ones.)"""
    ray.kill(names.actor(names.IMPORTER), no_restart=True)
    time.sleep(0.5)
    list_id = catalog.create_list(conn, f"crash-{time.time_ns()}")
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "".join(f"{i},F,L,+1212555{i % 10000:04d},,x\n" for i in range(20_000)))
    from pom_actors.store.imports import create_import
    import_id = create_import(conn, list_id, "test", str(path), {"region": "US"})
    url = pom.settings.database_url
    worker = connect(url, autocommit=True)
    calls = []

    def submit(spec, data):
        calls.append(spec.chunk)
        if len(calls) > 2:
            raise RuntimeError("the importer's node died")
        return load_chunk_with(worker, spec)

    crashing = ImporterService(lambda: ImportStore.open(url), submit, lambda p: (p, []), parallel=1,
                               chunk_bytes=64 * 1024)
    with pytest.raises(RuntimeError):
        crashing.run(import_id)
    state = conn.execute("SELECT state, rows_loaded, chunks FROM import_jobs WHERE id = %s", (import_id,)).fetchone()
    assert state[0] == "running" and 0 < state[1] < 20_000 and state[2] > 3
    resumed = ImporterService(lambda: ImportStore.open(url), lambda spec, data: load_chunk_with(worker, spec),
                              lambda p: (p, []), parallel=1, chunk_bytes=64 * 1024)
    assert resumed.run(import_id) == "done"
    row = conn.execute("SELECT rows_read, rows_loaded, duplicates FROM import_jobs WHERE id = %s",
                       (import_id,)).fetchone()
    assert row == (20_000, 20_000, 0)
    assert conn.execute("SELECT count(*) FROM contacts WHERE list_id = %s", (list_id,)).fetchone()[0] == 20_000


def test_the_importer_actor_runs(pom, api):
    start_importer(pom.settings)
    handle = names.actor(names.IMPORTER)
    assert ray.get(handle.status.remote(), timeout=30)["state"] == "up"
    r = upload(api, new_list(api), HEADER + "1,a,b,+12125550101,,\n")
    assert wait_done(api, r.json()["id"])["state"] == "done"


def test_a_scheduled_file_import_reads_the_file_as_it_is_at_each_due_time(pom, api, conn):
    """A schedule may name a server-side file (docs/imports.md, "Scheduled imports"): it need not
    exist until it is due, it must lie under POM_IMPORT_DIR, and each due time imports it as it
    is then — a file missing at its time fails that import with the reason."""
    from datetime import datetime, timezone

    from pom_actors.core.clock import ManualClock
    from pom_actors.services.import_schedules import ImportScheduleDuty
    from pom_actors.store.import_schedules import ImportScheduleStore

    list_id = new_list(api)
    daily = api.inbox / f"daily-{time.time_ns()}.csv"
    body = {"name": f"daily-{time.time_ns()}", "list_id": list_id,
            "schedule": {"cron": "0 3 1 1 *", "timezone": "UTC"}, "source": {"path": str(daily)},
            "options": {"region": "US"}}
    for source, at in [({"path": "/etc/passwd"}, "source.path"), ({}, "source")]:
        r = api.post("/api/v1/import-schedules", json={**body, "source": source})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == at, r.text
    r = api.post("/api/v1/import-schedules", json=body)
    assert r.status_code == 201 and r.json()["source"] == {"path": str(daily.resolve())}, r.text
    schedule_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/import-schedules/{schedule_id}").json()["last_run_at"] is None:
        assert time.monotonic() < deadline, "the director never looked at the schedule"
        time.sleep(0.2)                       # the session's director: nothing due before 1 January

    def run_at(year: int) -> dict:
        duty = ImportScheduleDuty(open_store=lambda: ImportScheduleStore.open(pom.settings.database_url),
                                  clock=ManualClock(datetime(year, 1, 1, 3, 0, 30, tzinfo=timezone.utc)))
        started = duty.tick()
        assert len(started) == 1 and duty.tick() == []
        return wait_done(api, started[0])

    daily.write_text(HEADER + "s1,Ann,A,+12125550111,,gold\ns2,Bob,B,+12125550112,,\n")
    first = run_at(2031)
    assert (first["state"], first["rows_loaded"], first["schedule_id"]) == ("done", 2, schedule_id)
    daily.write_text(HEADER + "s3,Cy,C,+12125550113,,\n")           # the producer's next file
    second = run_at(2032)
    assert (second["state"], second["rows_loaded"]) == ("done", 1)
    daily.unlink()
    missing = run_at(2033)
    assert missing["state"] == "failed" and "No such file" in missing["message"], missing
    phones = {r[0] for r in conn.execute("SELECT phone1 FROM contacts WHERE list_id = %s", (list_id,))}
    assert phones == {"+12125550111", "+12125550112", "+12125550113"}
    assert api.delete(f"/api/v1/import-schedules/{schedule_id}").status_code == 204
