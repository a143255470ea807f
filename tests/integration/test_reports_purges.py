"""Reports and purges on the real database: the reports' figures against a ledger built by a
real small job and against inserted rows whose answer is known; a purge asked for through the
API, carried out by the director in batches, that removes only what retention allows — never
an attempt of a running job, an unpublished outbox row, an agent's latest event."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from psycopg.types.json import Jsonb

from pom_actors.core.lifecycle import TERMINAL, JobState
from pom_actors.core.reports import ORIGIN
from pom_actors.core.tokens import Role
from pom_actors.store import purges as purgestore

from api.cli import main
from api.client import PomClient, PomError

from .conftest import api_client, phone_contacts, served_gateway

pytestmark = pytest.mark.integration
VOICE = {
    "name": "report-voice", "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "caller_id": "+12125550100",
                          "pacing": {"max_concurrent": 200, "attempts_per_second": 200},
                          "results": {"busy": {"action": "retry", "after": "30m", "max": 1}, "default": "done"}}},
}
SLOW = {**VOICE, "name": "purge-slow", "handlers": {"call": {**VOICE["handlers"]["call"],
                                                              "pacing": {"attempts_per_second": 1, "max_concurrent": 1}}}}
LONG_AGO = datetime(2020, 3, 1, 9, 0, tzinfo=timezone.utc)      # business time, far behind the test clock
FAKE_ITEMS = 10**12                                             # work item ids no real item has


@pytest.fixture(scope="module")
def http(pom, role_tokens):
    with api_client(pom.settings, role_tokens[Role.SUPERVISOR]) as client:
        yield client


@pytest.fixture(scope="module")
def admin(pom, admin_token):
    with api_client(pom.settings, admin_token) as client:
        yield client


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def floor(at: datetime, seconds: int) -> datetime:
    return at - timedelta(seconds=(at - ORIGIN).total_seconds() % seconds)


def insert_attempts(conn, job_id: int, campaign_id: int, rows: list[tuple[datetime, str]], start: int = 0) -> None:
    with conn.cursor() as cur, cur.copy(
            "COPY attempts (work_item_id, attempt_no, job_id, campaign_id, contact_id, shard, epoch, handler, "
            "channel, verdict, rule, code, created_at, completed_at) FROM STDIN") as copy:
        for i, (at, code) in enumerate(rows, start):
            copy.write_row((FAKE_ITEMS + job_id * 10**6 + i, 1, job_id, campaign_id, 1, 0, 1, "call", "voice",
                            "allowed", "none", code, at, at))


# -- reports ------------------------------------------------------------------------------------------
def test_attempts_by_code_per_hour_match_the_ledger_of_a_real_job(campaigns, conn, http):
    job_id = campaigns.start(campaigns.make(VOICE, phone_contacts(300)))
    assert campaigns.wait(job_id, timeout=120)["state"] == "completed"
    ledger = conn.execute("SELECT coalesce(code, verdict), created_at FROM attempts WHERE job_id = %s",
                          (job_id,)).fetchall()
    first, last = min(at for _, at in ledger), max(at for _, at in ledger)
    params = {"job": job_id, "since": first.isoformat(), "until": (last + timedelta(seconds=1)).isoformat()}
    r = http.get("/api/v1/reports/attempts", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["truncated"] and not body["limited"] and body["bucket_s"] == 3600
    got = Counter({(row["code"], datetime.fromisoformat(row["at"])): row["attempts"] for row in body["rows"]})
    assert {row["job_id"] for row in body["rows"]} == {job_id}
    assert got == Counter((code, floor(at, 3600)) for code, at in ledger)
    assert sum(got.values()) == len(ledger) >= 300
    # a smaller page says so; a range over its bound, a bucket out of bounds: 422 naming the field
    assert http.get("/api/v1/reports/attempts", params={**params, "limit": 1}).json()["truncated"]
    bad = http.get("/api/v1/reports/attempts", params={**params, "since": params["until"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "query.since"
    bad = http.get("/api/v1/reports/attempts", params={"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"})
    assert bad.status_code == 422 and "31 days" in bad.json()["errors"][0]["message"]
    assert http.get("/api/v1/reports/attempts", params={**params, "bucket_s": 5}).status_code == 422


def test_abandon_rate_per_job_and_window_from_inserted_rows(conn, http):
    job_id, campaign_id = 2_000_000_001, 1                      # the ledger has no foreign keys
    t0 = LONG_AGO
    insert_attempts(conn, job_id, campaign_id,
                    [(t0 + timedelta(minutes=1), "answer_human")] * 3 + [(t0 + timedelta(minutes=2), "abandoned"),
                     (t0 + timedelta(minutes=3), "no_answer"), (t0 + timedelta(minutes=4), "busy"),
                     (t0 + timedelta(minutes=20), "abandoned")])
    try:
        r = http.get("/api/v1/reports/abandons", params={"job": job_id, "since": t0.isoformat(),
                                                         "until": (t0 + timedelta(hours=1)).isoformat()})
        assert r.status_code == 200, r.text
        rows = [{k: row[k] for k in ("at", "attempts", "answered", "abandoned", "rate")} for row in r.json()["rows"]]
        assert rows == [
            {"at": None, "attempts": 7, "answered": 3, "abandoned": 2, "rate": 0.4},
            {"at": "2020-03-01T09:00:00Z", "attempts": 6, "answered": 3, "abandoned": 1, "rate": 0.25},
            {"at": "2020-03-01T09:15:00Z", "attempts": 1, "answered": 0, "abandoned": 1, "rate": 1.0},
        ]
    finally:
        conn.execute("DELETE FROM attempts WHERE job_id = %s", (job_id,))


def test_agent_time_by_state_from_inserted_events(conn, http):
    login = f"report-agent-{time.time_ns()}"
    agent = conn.execute("INSERT INTO agents (login, name) VALUES (%s, 'r') RETURNING id", (login,)).fetchone()[0]
    since = LONG_AGO
    steps = [(-60, "logged_out", "ready"), (10, "ready", "on_call"), (25, "on_call", "wrap_up"),
             (30, "wrap_up", "ready"), (50, "ready", "logged_out"), (70, "logged_out", "ready"),
             (75, "ready", "logged_out")]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO agent_events (agent_id, at, from_state, to_state, event) VALUES (%s, %s, %s, %s, 'x')",
                        [(agent, since + timedelta(minutes=m), a, b) for m, a, b in steps])
    r = http.get("/api/v1/reports/agent-time", params={"agent": agent, "since": since.isoformat(),
                                                       "until": (since + timedelta(hours=1)).isoformat()})
    assert r.status_code == 200, r.text
    got = {row["state"]: (row["seconds"], row["entered"]) for row in r.json()["rows"]}
    # ready from the start (entered before it) to :10 and :30 to :50; the :70 spell is outside
    assert got == {"ready": (1800.0, 1), "on_call": (900.0, 1), "wrap_up": (300.0, 1)}
    assert {row["login"] for row in r.json()["rows"]} == {login}


# -- purges ------------------------------------------------------------------------------------------
def no_pending(conn) -> bool:
    return purgestore.pending_run(conn) is None


def test_a_purge_asked_for_removes_only_what_retention_allows(pom, campaigns, conn, admin, http):
    wait_for(lambda: no_pending(conn), "the scheduled purge of the session's start done")
    # an ended job: its real attempts (recent) stay, its old ones (inserted) go
    ended = campaigns.start(campaigns.make(VOICE, phone_contacts(50)))
    assert JobState(campaigns.wait(ended)["state"]) in TERMINAL
    # a running job (1 dial/s over 400 contacts): none of its attempts go, however old
    running = campaigns.start(campaigns.make(SLOW, phone_contacts(400)))
    cid = {j: conn.execute("SELECT campaign_id FROM jobs WHERE id = %s", (j,)).fetchone()[0] for j in (ended, running)}
    real = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s", (ended,)).fetchone()[0]
    insert_attempts(conn, ended, cid[ended], [(LONG_AGO + timedelta(seconds=i), "busy") for i in range(130)])
    insert_attempts(conn, running, cid[running], [(LONG_AGO + timedelta(seconds=i), "busy") for i in range(40)])
    # outbox: the session's oldest rows, published, aged by 60 days (rows are appended in time
    # order: the walk stops at the first recent one); agent events: old ones but the latest
    aged = [r[0] for r in conn.execute("SELECT id FROM event_outbox ORDER BY id LIMIT 75")]
    wait_for(lambda: conn.execute("SELECT bool_and(published_at IS NOT NULL) FROM event_outbox WHERE id = ANY(%s)",
                                  (aged,)).fetchone()[0], "the oldest outbox rows published")
    conn.execute("UPDATE event_outbox SET created_at = created_at - interval '60 days' WHERE id = ANY(%s)", (aged,))
    login = f"purge-agent-{time.time_ns()}"
    agent = conn.execute("INSERT INTO agents (login, name) VALUES (%s, 'p') RETURNING id", (login,)).fetchone()[0]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO agent_events (agent_id, at, from_state, to_state, event) "
                        "VALUES (%s, %s, 'ready', 'not_ready', 'x')",
                        [(agent, LONG_AGO + timedelta(minutes=i)) for i in range(5)])
        # the walk takes the table in time order, as the Agent Manager appends it: the session's
        # earlier events (other tests', on their own clocks) are made older still
        cur.execute("UPDATE agent_events SET at = %s WHERE id < (SELECT min(id) FROM agent_events "
                    "WHERE agent_id = %s)", (LONG_AGO - timedelta(days=1), agent))
    old_import = conn.execute(
        "INSERT INTO import_jobs (list_id, state, created_at, finished_at) SELECT id, 'done', "
        "now() - interval '61 days', now() - interval '60 days' FROM contact_lists ORDER BY id LIMIT 1 "
        "RETURNING id").fetchone()[0]
    conn.execute("INSERT INTO import_rejects (import_id, line, reason) SELECT %s, g, 'bad' "
                 "FROM generate_series(1, 120) g", (old_import,))
    conn.execute("INSERT INTO import_chunks (import_id, chunk) VALUES (%s, 0), (%s, 1)", (old_import, old_import))
    keep = {"outbox": 30, "imports": 30, "agent_events": 1000, "attempts": 1000}   # business: 2023 and before
    assert admin.put("/api/v1/purges/config", json={"batch": 50, "keep_days": keep}).status_code == 200
    assert http.put("/api/v1/purges/config", json={}).status_code == 403               # supervisors read only
    try:
        r = admin.post("/api/v1/purges")
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        assert r.json()["trigger"] == "manual" and r.json()["requested_by"]
        assert admin.post("/api/v1/purges").status_code == 409                          # one at a time
        run = wait_for(lambda: (b := http.get(f"/api/v1/purges/{run_id}").json())["state"] in ("done", "failed")
                       and b, "the purge run done")
        assert run["state"] == "done", run
        assert run["counts"]["attempts"] == 130 and run["counts"]["agent_events"] >= 4
        assert run["counts"]["outbox"] == len(aged) > 0 and run["counts"]["imports"] == 120 + 2 + 1
        assert run["batches"] >= 3 + 3 + 2 + 2                    # 50 rows a statement at most
        count = lambda sql, *a: conn.execute(sql, a).fetchone()[0]   # noqa: E731
        assert count("SELECT count(*) FROM attempts WHERE job_id = %s", ended) == real
        assert count("SELECT count(*) FROM attempts WHERE job_id = %s AND created_at < '2021-01-01'", running) == 40
        assert jobstate(conn, running) not in TERMINAL
        assert count("SELECT count(*) FROM agent_events WHERE agent_id = %s", agent) == 1
        assert count("SELECT count(*) FROM event_outbox WHERE id = ANY(%s)", aged) == 0
        assert count("SELECT count(*) FROM event_outbox WHERE id > %s", aged[-1]) > 0         # the recent stay
        assert count("SELECT count(*) FROM import_jobs WHERE id = %s", old_import) == 0
        assert http.get("/api/v1/purges").json()["runs"][0]["id"] == run_id
    finally:
        conn.execute("DELETE FROM retention_config")
        campaigns.command(running, "stop")
        conn.execute("DELETE FROM attempts WHERE work_item_id >= %s", (FAKE_ITEMS,))


def jobstate(conn, job_id: int) -> JobState:
    return JobState(conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()[0])


def test_the_id_walk_never_deletes_an_unpublished_outbox_row(conn):
    """Inside one transaction (the relay cannot see the rows, so cannot publish them): an old
    unpublished row among old published ones survives the batches."""
    with conn.transaction(force_rollback=True):
        ids = [conn.execute("INSERT INTO event_outbox (topic, key, payload, created_at, published_at) VALUES "
                            "('test.walk', '', %s, now() - interval '60 days', "
                            "CASE WHEN %s THEN NULL ELSE now() END) RETURNING id",
                            (Jsonb([]), i == 2)).fetchone()[0] for i in range(5)]
        cutoff = conn.execute("SELECT now() - interval '30 days'").fetchone()[0]
        after, deleted = ids[0] - 1, []
        while True:
            n, top = purgestore.delete_ids(conn, "outbox", cutoff, after, ids[-1] + 1, 2)
            deleted.append(n)
            if n < 2:
                break
            after = top
        assert deleted == [2, 2, 0]
        left = [r[0] for r in conn.execute("SELECT id FROM event_outbox WHERE topic = 'test.walk'")]
        assert left == [ids[2]]


def test_the_client_and_the_cli_against_a_running_gateway(pom, role_tokens, conn, capsys, tmp_path):
    """Every report and purge call of PomClient and `pom`, over HTTP; a supervisor reads but may
    not purge; bad options exit 2 before any request."""
    job_id, t0 = 2_000_000_002, LONG_AGO
    insert_attempts(conn, job_id, 1, [(t0 + timedelta(minutes=m), "abandoned" if m == 5 else "answer_human")
                                      for m in range(10)])
    span = {"since": t0.isoformat(), "until": (t0 + timedelta(hours=1)).isoformat()}
    try:
        with served_gateway(pom.settings) as address:
            url = f"http://{address}"
            sup = PomClient(url, token=role_tokens[Role.SUPERVISOR])
            admin = PomClient(url, token=role_tokens[Role.ADMIN])
            assert sum(r["attempts"] for r in sup.report_attempts(job=job_id, **span)["rows"]) == 10
            assert sup.report_abandons(job=job_id, window_s=3600, **span)["rows"][0]["rate"] == 0.1
            assert sup.report_agent_time(**span)["limited"] is False
            try:
                sup.purge_now()
                raise AssertionError("a supervisor purged")
            except PomError as exc:
                assert exc.status == 403
            assert admin.set_retention({"every_s": 7200})["every_s"] == 7200
            assert sup.retention()["keep_days"]["attempts"] == 400
            wait_for(lambda: no_pending(conn), "no purge pending")
            run = admin.purge_now()
            assert sup.purge(run["id"])["trigger"] == "manual"
            assert sup.purges(limit=1)["runs"][0]["id"] == run["id"]
            wait_for(lambda: no_pending(conn), "the purge done")
            cli = ["--url", url, "--token", role_tokens[Role.SUPERVISOR]]
            assert main([*cli, "reports", "attempts", "--job", str(job_id), "--since", span["since"],
                         "--until", span["until"], "--json"]) == 0
            out = json.loads(capsys.readouterr().out)
            assert {r["code"]: r["attempts"] for r in out["rows"]} == {"answer_human": 9, "abandoned": 1}
            assert main([*cli, "reports", "abandons", "--job", str(job_id), "--since", span["since"],
                         "--until", span["until"], "--window", "3600"]) == 0
            table = capsys.readouterr().out
            assert "abandons" in table and "0.1" in table
            assert main([*cli, "purges", "list", "--limit", "2"]) == 0 and "manual" in capsys.readouterr().out
            assert main([*cli, "purges", "run"]) == 1 and "HTTP 403" in capsys.readouterr().err
            doc = tmp_path / "retention.json"
            doc.write_text('{"keep_days": {"attempts": 0}}')
            admin_cli = ["--url", url, "--token", role_tokens[Role.ADMIN]]
            assert main([*admin_cli, "purges", "set-config", str(doc)]) == 1
            assert "keep_days" in capsys.readouterr().err
            assert main([*cli, "reports", "attempts", "--since", "2026-11-02", "--until", "2026-11-01"]) == 1
            assert "query.since" in capsys.readouterr().err
    finally:
        conn.execute("DELETE FROM attempts WHERE job_id = %s", (job_id,))
        conn.execute("DELETE FROM retention_config")
