"""Several lists per campaign and the dialling order, end to end: a job over two lists dials the
higher-priority list first (each list in its sort order), the claims follow the job's dialling
order among priority contacts, retries and regular contacts, and a change of that order on a
job that has not ended changes what the next claims take."""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta

from psycopg.rows import dict_row

from pom_actors.core import dialling as D
from pom_actors.core.clock import clock_from_spec
from pom_actors.store import catalog, jobs as jobstore
from pom_actors.store.work import WorkStore

from .conftest import phone_contacts

ONCE = {
    "name": "dialling",
    "initial": "call",
    "handlers": {"call": {
        "type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
        "results": {"default": "done"}}},
}


def _lists(conn, n: int) -> tuple[int, int, dict[int, int]]:
    """Two fresh lists of `n` contacts each (the low one's with a `balance` attribute);
    (low list id, high list id, balance by contact id)."""
    suffix = time.monotonic_ns()
    low = catalog.create_list(conn, f"dial-low-{suffix}", attributes=["balance"])
    high = catalog.create_list(conn, f"dial-high-{suffix}")
    rows = phone_contacts(n)
    for i, row in enumerate(rows):
        row["attributes"] = {"balance": (i * 37) % 101}
    catalog.add_contacts(conn, low, rows)
    catalog.add_contacts(conn, high, phone_contacts(n))
    balance = {cid: int(b) for cid, b in conn.execute(
        "SELECT id, attributes ->> 'balance' FROM contacts WHERE list_id = %s", (low,))}
    return low, high, balance


def _campaign(conn, name: str, lists: list[dict]) -> int:
    with conn.transaction():
        sid, _ = catalog.save_strategy(conn, {**ONCE, "name": name})
        return catalog.create_campaign(conn, name, sid, lists=lists)


def test_a_job_over_two_lists_dials_the_higher_priority_list_first(campaigns, conn):
    low, high, balance = _lists(conn, 60)
    cid = _campaign(conn, f"two-lists-{time.monotonic_ns()}", [
        {"list_id": low, "priority": 2, "sort": [{"field": "attr.balance", "type": "number", "order": "desc"}]},
        {"list_id": high, "priority": 9}])
    job_id = campaigns.start(cid)
    assert [e["list_id"] for e in jobstore.job(conn, job_id)["lists"]] == [high, low]
    assert campaigns.wait(job_id)["state"] == "completed"
    rows = conn.execute("SELECT a.shard, a.created_at, c.list_id, c.id FROM attempts a "
                        "JOIN contacts c ON c.id = a.contact_id WHERE a.job_id = %s", (job_id,)).fetchall()
    assert len(rows) == 120
    by_shard: dict[int, list[tuple]] = defaultdict(list)
    for shard, at, list_id, contact in rows:
        by_shard[shard].append((at, list_id, contact))
    for shard, attempts in by_shard.items():
        highs = [at for at, list_id, _ in attempts if list_id == high]
        lows = sorted((at, -balance[c]) for at, list_id, c in attempts if list_id == low)
        # one manager holds a shard: it claimed every contact of the high list before any of the low
        assert max(highs) <= min(at for at, _ in lows), shard
        # and the low list's contacts by balance, highest first (a claim's batch shares one time)
        assert all(b1 <= b2 for (t1, b1), (t2, b2) in zip(lows, lows[1:]) if t1 < t2), shard


def _claims(conn, settings, job_id: int) -> WorkStore:
    """A store holding every shard of the job, as a manager would (the job is never started, so
    no manager of the system claims it)."""
    conn.execute("UPDATE shard_leases SET holder = 'dialling-test', epoch = epoch + 1, "
                 "expires_at = now() + interval '1 hour' WHERE job_id = %s", (job_id,))
    return WorkStore.open(settings.database_url, job_id, "dialling-test")


def _claim(store: WorkStore, n: int, now) -> set[int]:
    store.job_state()                          # what a manager reads at each lease renewal
    with store.fenced(store.renew(3600)) as valid:
        return {r["contact_id"] for r in store.claim(valid, "call", "gw-test", now, n)}


def _expected(conn, job_id: int, order, now) -> list[int]:
    """The due items of the job in the order core.dialling puts them."""
    items = conn.cursor(row_factory=dict_row).execute(
        "SELECT id, contact_id, state, priority, rank, next_at FROM work_items WHERE job_id = %s",
        (job_id,)).fetchall()
    return [i["contact_id"] for i in D.claim_order(items, order, now)]


def test_the_dialling_order_changed_on_a_job_changes_the_next_claims(pom, http, conn):
    low, high, _ = _lists(conn, 30)
    cid = _campaign(conn, f"order-{time.monotonic_ns()}", [{"list_id": low, "priority": 4},
                                                            {"list_id": high, "priority": 6}])
    now = clock_from_spec(pom.settings.clock).now()
    with conn.transaction():
        job_id = jobstore.create_job(conn, cid, 4, 1, now - timedelta(minutes=5))
    contacts = [r[0] for r in conn.execute("SELECT contact_id FROM work_items WHERE job_id = %s ORDER BY rank",
                                           (job_id,))]
    # eight retries due (attempted once, due again at different times), five priority contacts
    retries = contacts[10:18]
    for k, contact in enumerate(retries):
        conn.execute("UPDATE work_items SET state = 'scheduled', attempts = 1, next_at = %s "
                     "WHERE job_id = %s AND contact_id = %s", (now - timedelta(minutes=k + 1), job_id, contact))
    late = contacts[40:45]
    r = http.post(f"/api/v1/jobs/{job_id}/priority-contacts", json={"contact_ids": late + retries[:1] + [2**40]})
    assert r.status_code == 200, r.text
    assert r.json()["raised"] == 5 and r.json()["added"] == 0
    assert [s["contact_id"] for s in r.json()["skipped"]] == [retries[0], 2**40]

    store = _claims(conn, pom.settings, job_id)
    try:
        expected = _expected(conn, job_id, D.DEFAULT_ORDER, now)
        first = _claim(store, 10, now)
        assert first == set(expected[:10])
        assert first == set(late) | set(list(reversed(retries))[:5])        # the retries longest waiting

        r = http.patch(f"/api/v1/jobs/{job_id}", json={"dialling_order": ["regular", "retries", "priority"]})
        assert r.status_code == 200 and r.json()["dialling_order"] == ["regular", "retries", "priority"], r.text
        expected = _expected(conn, job_id, ("regular", "retries", "priority"), now)
        second = _claim(store, 12, now)
        assert second == set(expected[:12])
        assert second == set([c for c in contacts if c not in late + retries][:12])    # high list first

        r = http.patch(f"/api/v1/jobs/{job_id}", json={"dialling_order": ["retries", "priority", "regular"]})
        assert r.status_code == 200, r.text
        expected = _expected(conn, job_id, ("retries", "priority", "regular"), now)
        third = _claim(store, 5, now)
        assert third == set(expected[:5]) and set(retries[:3]) < third
    finally:
        store.conn.close()


def test_campaign_lists_and_dialling_order_through_the_gateway(pom, http, conn):
    low, high, _ = _lists(conn, 3)
    sid, _ = catalog.save_strategy(conn, {**ONCE, "name": f"lists-api-{time.monotonic_ns()}"})
    body = {"name": f"lists-api-{time.monotonic_ns()}", "strategy_id": sid,
            "lists": [{"list_id": low, "priority": 3, "sort": [{"field": "attr.balance", "type": "number"}]},
                      {"list_id": high, "priority": 7}]}
    r = http.post("/api/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    camp = r.json()
    assert camp["list_id"] == high
    assert camp["lists"] == [{"list_id": high, "priority": 7, "sort": []},
                             {"list_id": low, "priority": 3,
                              "sort": [{"field": "attr.balance", "type": "number", "order": "asc"}]}]
    assert http.get(f"/api/v1/campaigns/{camp['id']}").json()["lists"] == camp["lists"]

    def fault(r, status=422):
        assert r.status_code == status, r.text
        return [e["path"] for e in r.json().get("errors", [])]

    assert fault(http.post("/api/v1/campaigns", json={**body, "name": "x", "list_id": low})) == ["lists"]
    assert fault(http.post("/api/v1/campaigns", json={"name": "y", "strategy_id": sid})) == ["lists"]
    bad_sort = {**body, "name": "z", "lists": [{"list_id": high, "sort": [{"field": "attr.balance"}]}]}
    assert fault(http.post("/api/v1/campaigns", json=bad_sort)) == ["lists.0.sort.0.field"]
    assert fault(http.post("/api/v1/campaigns", json={**body, "name": "z", "lists": [{"list_id": 2**31 - 1}]}), 404) == []
    assert fault(http.patch(f"/api/v1/campaigns/{camp['id']}",
                            json={"lists": [{"list_id": low}, {"list_id": low}]})) == ["lists.1.list_id"]
    r = http.patch(f"/api/v1/campaigns/{camp['id']}", json={"lists": [{"list_id": low, "priority": 10}]})
    assert r.status_code == 200 and r.json()["list_id"] == low, r.text
    assert r.json()["lists"] == [{"list_id": low, "priority": 10, "sort": []}]

    r = http.post("/api/v1/jobs", json={"campaign": camp["id"], "start": False})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["dialling_order"] == list(D.DEFAULT_ORDER) and job["total"] == 3
    assert fault(http.patch(f"/api/v1/jobs/{job['id']}", json={"dialling_order": ["retries", "regular"]})) \
        == ["dialling_order"]
    assert fault(http.patch(f"/api/v1/jobs/{job['id']}", json={"dialling_order": ["retries", "regular", "vip"]})) \
        == ["dialling_order.2"]
    others = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE list_id = %s", (high,))]
    r = http.post(f"/api/v1/jobs/{job['id']}/priority-contacts", json={"contact_ids": others[:1]})
    assert r.json()["skipped"][0]["reason"].startswith(f"of list {high}")
    # a contact added to the job's list after the job was created joins it as a priority contact
    catalog.add_contacts(conn, low, phone_contacts(1))
    new = conn.execute("SELECT max(id) FROM contacts WHERE list_id = %s", (low,)).fetchone()[0]
    r = http.post(f"/api/v1/jobs/{job['id']}/priority-contacts", json={"contact_ids": [new]})
    assert r.json()["added"] == 1, r.text
    assert fault(http.post(f"/api/v1/jobs/{job['id']}/priority-contacts", json={"contact_ids": []})) == ["contact_ids"]
    assert http.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 200
    deadline = time.monotonic() + 30
    while jobstore.job(conn, job["id"])["state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fault(http.patch(f"/api/v1/jobs/{job['id']}", json={"dialling_order": list(D.KINDS)}), 409) == []
    assert fault(http.post(f"/api/v1/jobs/{job['id']}/priority-contacts", json={"contact_ids": [new]}), 409) == []
