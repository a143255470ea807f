"""Filter templates end to end: a campaign's template shapes what its job dials, a filter
changed on a running job takes effect at the next claims, and the gateway's filter routes."""
from __future__ import annotations

import time

import pytest

from pom_actors.core import filters as F
from pom_actors.core.clock import clock_from_spec
from pom_actors.store import catalog, filters as fstore

from .conftest import gateway_orders, phone_contacts

ONCE = {
    "name": "filtered",
    "initial": "call",
    "handlers": {"call": {
        "type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
        "pacing": {"max_concurrent": 200, "attempts_per_second": 200},
        "results": {"default": "done"}}},
}

# every first attempt is retried one business hour later (6 s of real time at x600: time enough
# for a test to change the running job once the first attempts have settled)
RETRY = {
    "name": "filtered-retry",
    "initial": "call",
    "handlers": {"call": {
        "type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
        "pacing": {"max_concurrent": 200, "attempts_per_second": 200},
        "results": {"default": {"action": "retry", "after": "1h", "max": 1}}}},
}


def _mixed(n: int) -> list[dict]:
    rows = phone_contacts(n)
    for i, row in enumerate(rows):
        row["attributes"] = {"segment": "gold" if i % 2 == 0 else "silver"}
    return rows


def _make(campaigns, conn, strategy: dict, contacts: list[dict], expression: str | None) -> int:
    """A campaign as Campaigns.make does, with a filter template when `expression` is given."""
    campaigns.n += 1
    name = f"{strategy['name']}-{campaigns.n}-{time.monotonic_ns()}"
    with conn.transaction():
        list_id = catalog.create_list(conn, name, attributes=["segment"])
        catalog.add_contacts(conn, list_id, contacts)
        sid, _ = catalog.save_strategy(conn, {**strategy, "name": name})
        filter_id = fstore.create_template(conn, name, expression)["id"] if expression else None
        return catalog.create_campaign(conn, name, sid, list_id, filter_id=filter_id)


def _attempts_by_segment(conn, job_id: int) -> dict[str, list[int]]:
    """Attempts per contact of the job, by the contact's segment."""
    rows = conn.execute(
        "SELECT c.attributes ->> 'segment', w.attempts FROM work_items w JOIN contacts c ON c.id = w.contact_id "
        "WHERE w.job_id = %s", (job_id,)).fetchall()
    out: dict[str, list[int]] = {}
    for segment, attempts in rows:
        out.setdefault(segment, []).append(attempts)
    return out


def test_a_campaign_template_chooses_what_its_job_dials(campaigns, conn):
    job_id = campaigns.start(_make(campaigns, conn, ONCE, _mixed(60), "attr.segment = 'gold'"))
    assert conn.execute("SELECT filter FROM jobs WHERE id = %s", (job_id,)).fetchone()[0] == "attr.segment = 'gold'"
    job = campaigns.wait(job_id, timeout=120)
    assert job["state"] == "completed", job
    items = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT w.id, c.attributes ->> 'segment', w.state, w.last_code FROM work_items w "
        "JOIN contacts c ON c.id = w.contact_id WHERE w.job_id = %s", (job_id,))}
    ours = [a for a in gateway_orders() if int(a.split(".")[0]) in items]
    dialled = {int(a.split(".")[0]) for a in ours}
    gold = {i for i, (seg, _, _) in items.items() if seg == "gold"}
    assert dialled == gold                            # every gold contact, and only those
    assert len(ours) == len(set(ours)) == 30
    # the contacts the filter excluded were never attempted: cancelled when the job ended
    assert {(st, code) for i, (seg, st, code) in items.items() if seg == "silver"} == {("done", "cancelled")}
    silver_attempts = conn.execute(
        "SELECT count(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id "
        "WHERE a.job_id = %s AND c.attributes ->> 'segment' = 'silver'", (job_id,)).fetchone()[0]
    assert silver_attempts == 0


def test_a_filter_changed_on_a_running_job_shapes_the_next_claims(campaigns, conn):
    job_id = campaigns.start(_make(campaigns, conn, RETRY, _mixed(40), None))
    campaigns.settled(job_id)      # every first attempt settled; the retries are due one business hour later
    assert fstore.set_job_filter(conn, job_id, "attr.segment = 'gold'") == "attr.segment = 'gold'"
    job = campaigns.wait(job_id, timeout=120)
    assert job["state"] == "completed", job
    by_segment = _attempts_by_segment(conn, job_id)
    assert by_segment["silver"] and all(n == 1 for n in by_segment["silver"])    # no retry after the change
    assert any(n >= 2 for n in by_segment["gold"])                               # the gold ones were retried
    # the excluded retries did not hold the job open; they ended cancelled
    cancelled = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND last_code = 'cancelled'",
                             (job_id,)).fetchone()[0]
    assert cancelled >= 1


def test_an_ended_job_keeps_its_filter(campaigns, conn):
    job_id = campaigns.start(_make(campaigns, conn, ONCE, _mixed(4), None))
    campaigns.wait(job_id, timeout=60)
    with pytest.raises(fstore.FilterConflict):
        fstore.set_job_filter(conn, job_id, "true")


# -- the gateway's routes ------------------------------------------------------------------------
def test_filter_routes(http, pom, conn):
    suffix = time.monotonic_ns()
    lst = http.post("/api/v1/lists", json={"name": f"flt-{suffix}", "attributes": ["segment", "score"]}).json()
    rows = _mixed(30)
    for i, row in enumerate(rows):
        row["attributes"]["score"] = i
    assert http.post(f"/api/v1/lists/{lst['id']}/contacts", json=rows).status_code == 200

    # create, bad expression with its position, get, list, update
    r = http.post("/api/v1/filters", json={"name": f"gold-{suffix}", "expression": "attr.segment = 'gold'"})
    assert r.status_code == 201, r.text
    flt = r.json()
    assert flt["expression"] == "attr.segment = 'gold'" and flt["description"] == ""
    r = http.post("/api/v1/filters", json={"name": f"bad-{suffix}", "expression": "attr.segment = 'gold' and and"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_filter"
    [err] = body["errors"]
    assert err["path"] == "expression" and err["position"] == 26 and err["line"] == 1 and err["column"] == 27
    assert err["message"]
    assert http.post("/api/v1/filters", json={"name": f"gold-{suffix}", "expression": "true"}).status_code == 409
    assert http.get(f"/api/v1/filters/{flt['id']}").json()["name"] == f"gold-{suffix}"
    assert flt["id"] in [f["id"] for f in http.get("/api/v1/filters").json()]
    assert http.get("/api/v1/filters/999999").status_code == 404
    r = http.put(f"/api/v1/filters/{flt['id']}", json={"expression": "attr.segment = 'gold' and attr.score >= 10"})
    assert r.status_code == 200 and r.json()["expression"].endswith(">= 10")
    r = http.put(f"/api/v1/filters/{flt['id']}", json={"expression": "first_name ="})
    assert r.status_code == 422 and r.json()["errors"][0]["position"] == 12

    # preview: the count the Python evaluator gives over the list, and a sample
    expression = "attr.score > 12 and attr.segment in ('gold') or area_code(phone1) = '999'"
    r = http.post(f"/api/v1/lists/{lst['id']}/preview", json={"expression": expression, "sample": 3})
    assert r.status_code == 200, r.text
    preview = r.json()
    now = clock_from_spec(pom.settings.clock).now()
    contacts = [dict(zip(fstore.SAMPLE_COLUMNS, row)) for row in conn.execute(
        f"SELECT {', '.join(fstore.SAMPLE_COLUMNS)} FROM contacts WHERE list_id = %s", (lst["id"],))]
    expected = sum(F.evaluate(F.parse(expression), c, now) for c in contacts)
    assert preview["count"] == expected == 8
    assert len(preview["sample"]) == 3 and all(s["attributes"]["segment"] == "gold" for s in preview["sample"])
    r = http.post(f"/api/v1/lists/{lst['id']}/preview", json={"expression": "attr.colour = 'red'"})
    assert r.status_code == 422 and r.json()["errors"][0]["position"] == 5       # not an attribute of the list
    assert http.post("/api/v1/lists/999999/preview", json={"expression": "true"}).status_code == 404

    # a campaign takes the template (checked against its list); the template cannot go while it is used
    good = {"name": f"flt-{suffix}", "initial": "call", "handlers": {"call": {
        "type": "call", "message": "Hi", "pacing": {"max_concurrent": 5}, "results": {"default": "done"}}}}
    strategy = http.post("/api/v1/strategies", params={"list_id": lst["id"]}, json=good).json()
    other = http.post("/api/v1/filters", json={"name": f"colour-{suffix}", "expression": "attr.colour = 'red'"}).json()
    r = http.post("/api/v1/campaigns", json={"name": f"flt-bad-{suffix}", "strategy_id": strategy["id"],
                                            "list_id": lst["id"], "filter_id": other["id"]})
    assert r.status_code == 422 and r.json()["error"] == "invalid_filter"
    r = http.post("/api/v1/campaigns", json={"name": f"flt-{suffix}", "strategy_id": strategy["id"],
                                            "list_id": lst["id"], "filter_id": flt["id"]})
    assert r.status_code == 201 and r.json()["filter_id"] == flt["id"]
    assert http.delete(f"/api/v1/filters/{flt['id']}").status_code == 409
    r = http.put(f"/api/v1/filters/{flt['id']}", json={"expression": "attr.colour = 'red'"})
    assert r.status_code == 422                       # no longer fits the list of a campaign using it
    assert http.delete(f"/api/v1/filters/{other['id']}").status_code == 204
    assert http.get(f"/api/v1/filters/{other['id']}").status_code == 404

    # a job carries the template's expression; its filter changes while it has not ended
    job = http.post("/api/v1/jobs", json={"campaign": f"flt-{suffix}", "start": False}).json()
    assert http.get(f"/api/v1/jobs/{job['id']}/filter").json()["expression"].endswith(">= 10")
    r = http.put(f"/api/v1/jobs/{job['id']}/filter", json={"expression": "attr.score < 3"})
    assert r.status_code == 200 and r.json()["expression"] == "attr.score < 3"
    r = http.put(f"/api/v1/jobs/{job['id']}/filter", json={"expression": "attr.score <"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_filter"
    r = http.put(f"/api/v1/jobs/{job['id']}/filter", json={"expression": None})
    assert r.status_code == 200 and r.json()["expression"] is None
    assert http.put("/api/v1/jobs/999999/filter", json={"expression": "true"}).status_code == 404
