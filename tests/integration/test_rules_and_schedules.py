"""Compliance rules on the running system, and jobs started by a campaign's schedule."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import ray

from pom_actors.store import catalog
from pom_actors.store.work import in_flight_attempts

from .conftest import phone_contacts

NOTIFY = {
    "name": "notify",
    "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hi {first_name}",
                          "results": {"default": "done"}}},
}


def test_dnc_entries_are_never_dialled_and_the_ledger_names_the_rule(campaigns, conn):
    contacts = phone_contacts(200)
    blocked = [c["phone1"] for c in contacts[:20]]
    campaign = campaigns.make(NOTIFY, contacts)
    with conn.transaction():
        catalog.add_dnc(conn, addresses=blocked)
    job_id = campaigns.start(campaign)
    assert campaigns.wait(job_id)["state"] == "completed"
    rows = conn.execute("SELECT address, verdict, rule, code FROM attempts WHERE job_id = %s",
                        (job_id,)).fetchall()
    restricted = {a: (v, r, c) for a, v, r, c in rows if a in blocked}
    assert len(restricted) == 20
    assert set(restricted.values()) == {("restricted", "dnc_address", "dnc_restricted")}
    assert all(v == "allowed" for a, v, _, _ in rows if a not in blocked)


def test_contact_window_restricts_in_the_contacts_own_zone(campaigns, conn):
    # New York numbers; a window that is closed in New York whatever business time it is
    # except one hour a day is checked against the recorded attempt times.
    strategy = {**NOTIFY, "handlers": {"call": {**NOTIFY["handlers"]["call"],
                                                "window": {"start": "03:00", "end": "04:00"}}}}
    job_id = campaigns.start(campaigns.make(strategy, phone_contacts(50)))
    assert campaigns.wait(job_id)["state"] == "completed"
    rows = conn.execute("SELECT verdict, rule, code, (created_at AT TIME ZONE 'America/New_York')::time "
                        "FROM attempts WHERE job_id = %s", (job_id,)).fetchall()
    for verdict, rule, code, local in rows:
        inside = local.hour == 3
        assert (verdict == "allowed") == inside, (verdict, rule, local)
        if not inside:
            assert (rule, code) == ("window", "window_restricted")


def test_a_schedule_starts_jobs_of_its_campaign(campaigns, conn):
    campaign = campaigns.make(NOTIFY, phone_contacts(30), schedule={"cron": "0 * * * *", "timezone": "UTC"})
    deadline = time.monotonic() + 60        # hourly in business time: every 6 s of real time
    while time.monotonic() < deadline:
        jobs = conn.execute("SELECT id, reason FROM jobs WHERE campaign_id = %s ORDER BY id",
                            (campaign,)).fetchall()
        if jobs:
            break
        time.sleep(0.2)
    conn.execute("UPDATE campaigns SET enabled = false WHERE id = %s", (campaign,))
    assert jobs, "the schedule started no job"
    assert jobs[0][1].startswith("schedule ")
    assert campaigns.wait(jobs[0][0])["state"] == "completed"


def test_attempts_in_flight_count_for_the_rule_engines_rebuild(campaigns, conn, pom):
    """A restarted rule engine counts the attempts still out (their intent is on the work
    item, not yet in the ledger), at the address the item's progress points to."""
    two_numbers = {**NOTIFY, "handlers": {"call": {**NOTIFY["handlers"]["call"],
                                                    "addresses": ["phone1", "phone2"]}}}
    contacts = phone_contacts(3)
    for c in contacts:
        c["phone2"] = c["phone1"].replace("+1212", "+1718")
    campaign = campaigns.make(two_numbers, contacts)
    job_id = ray.get(pom.director.create_job.remote(campaign, start=False))
    sent = datetime(2026, 11, 25, 15, 30, tzinfo=timezone.utc)
    ids = [r[0] for r in conn.execute("SELECT id FROM work_items WHERE job_id = %s ORDER BY id", (job_id,))]
    try:
        with conn.transaction():
            conn.execute("UPDATE work_items SET state = 'in_flight', attempts = 1, in_flight_epoch = 1, "
                         "in_flight_gateway = 'gw', in_flight_at = %s, address_index = (id = %s)::int "
                         "WHERE id = ANY(%s)", (sent, ids[1], ids[:2]))
        found = set(in_flight_attempts(conn))
        assert {(contacts[0]["phone1"], sent), (contacts[1]["phone2"], sent)} <= found
        assert not {a for a, _ in found} & {contacts[2]["phone1"], contacts[2]["phone2"],
                                            contacts[0]["phone2"], contacts[1]["phone1"]}
    finally:
        with conn.transaction():
            conn.execute("UPDATE work_items SET state = 'done' WHERE job_id = %s", (job_id,))
