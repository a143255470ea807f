"""DNC lists end to end: the routes (normalised addresses, bounded batches, bad input, roles),
DNC import jobs (append and replace, with their counts and rejects), lists attached to
campaigns, and a number added to a campaign's DNC list while its job runs: that contact's next
attempt is refused, with the list's name in the ledger."""
from __future__ import annotations

import time

import pytest

from pom_actors.core.tokens import Role
from pom_actors.store import catalog

from .conftest import api_client, phone_contacts, scratch_database
from .test_filters_jobs import RETRY, _make
from .test_imports import wait_done

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(pom, admin_token):
    with api_client(pom.settings, admin_token) as client:
        yield client


def new_dnc_list(api, **fields) -> int:
    r = api.post("/api/v1/dnc-lists", json={"name": f"dnc-{time.time_ns()}", **fields})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def dnc_upload(api, list_id: int, text: str, **options):
    return api.post(f"/api/v1/dnc-lists/{list_id}/imports",
                    files={"file": ("dnc.csv", text.encode(), "text/csv")}, data=options)


def test_entries_are_normalised_looked_up_paged_and_removed(api):
    list_id = new_dnc_list(api, description="opt-outs")
    r = api.post(f"/api/v1/dnc-lists/{list_id}/entries",
                 json={"addresses": ["(212) 555-0199", "+1 212 555 0199", "Ann@Example.com"], "region": "US"})
    assert r.status_code == 200, r.text
    assert r.json()["addresses"] == ["+12125550199", "+12125550199", "ann@example.com"]
    assert (r.json()["added"], r.json()["already"]) == (2, 0)
    again = api.post(f"/api/v1/dnc-lists/{list_id}/entries", json={"addresses": ["+12125550199"]}).json()
    assert (again["added"], again["already"]) == (0, 1)
    # a bad address: 422 naming each one, nothing added
    bad = api.post(f"/api/v1/dnc-lists/{list_id}/entries",
                   json={"addresses": ["+12125550198", "+1212", "no-mail@"], "region": "US"})
    assert bad.status_code == 422
    assert [e["path"] for e in bad.json()["errors"]] == ["addresses.1", "addresses.2"]
    assert api.get(f"/api/v1/dnc-lists/{list_id}").json()["entries"] == 2
    too_many = api.post(f"/api/v1/dnc-lists/{list_id}/entries", json={"addresses": ["+12125550100"] * 10_001})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["path"] == "addresses"
    looked = api.post("/api/v1/dnc-lists/lookup", json={"addresses": ["212-555-0199", "+12125550100"],
                                                        "region": "US"}).json()["results"]
    assert [(x["address"], x["blocked"]) for x in looked] == [("+12125550199", True), ("+12125550100", False)]
    assert looked[0]["lists"][0]["id"] == list_id
    page = api.get(f"/api/v1/dnc-lists/{list_id}/entries", params={"limit": 1}).json()
    rest = api.get(f"/api/v1/dnc-lists/{list_id}/entries", params={"after": page["next"]}).json()
    assert [e["address"] for e in page["entries"] + rest["entries"]] == ["+12125550199", "ann@example.com"]
    assert rest["next"] is None
    removed = api.post(f"/api/v1/dnc-lists/{list_id}/entries/remove", json={"addresses": ["ANN@example.com"]})
    assert removed.json()["removed"] == 1
    assert api.get(f"/api/v1/dnc-lists/{list_id}").json()["entries"] == 1
    assert api.delete(f"/api/v1/dnc-lists/{list_id}").status_code == 204
    assert api.get(f"/api/v1/dnc-lists/{list_id}").status_code == 404
    system = api.delete("/api/v1/dnc-lists/1")
    assert system.status_code == 422 and system.json()["errors"][0]["path"] == "path.list_id"


def test_a_supervisor_adds_entries_but_does_not_remove_or_define(pom, api, role_tokens):
    list_id = new_dnc_list(api)
    with api_client(pom.settings, role_tokens[Role.SUPERVISOR]) as supervisor:
        assert supervisor.post(f"/api/v1/dnc-lists/{list_id}/entries",
                               json={"addresses": ["+12125550197"]}).json()["added"] == 1
        assert supervisor.post(f"/api/v1/dnc-lists/{list_id}/entries/remove",
                               json={"addresses": ["+12125550197"]}).status_code == 403
        assert supervisor.post("/api/v1/dnc-lists", json={"name": "x"}).status_code == 403


def test_lists_attach_to_campaigns_and_the_lookup_follows(api, campaigns):
    campaign = campaigns.make(RETRY, phone_contacts(1))
    mine, other, everywhere = new_dnc_list(api), new_dnc_list(api), new_dnc_list(api, all_campaigns=True)
    for list_id, number in ((mine, "+12125550181"), (other, "+12125550182"), (everywhere, "+12125550183")):
        api.post(f"/api/v1/dnc-lists/{list_id}/entries", json={"addresses": [number]})
    assert api.put(f"/api/v1/campaigns/{campaign}/dnc-lists/{mine}").json()["changed"] is True
    assert api.put(f"/api/v1/campaigns/{campaign}/dnc-lists/{mine}").json()["changed"] is False
    applying = {row["id"]: row["attached"] for row in api.get(f"/api/v1/campaigns/{campaign}/dnc-lists").json()}
    assert applying[mine] is True and applying[everywhere] is False and other not in applying and 1 in applying
    looked = api.post("/api/v1/dnc-lists/lookup", json={
        "addresses": ["+12125550181", "+12125550182", "+12125550183"], "campaign_id": campaign}).json()
    assert [x["blocked"] for x in looked["results"]] == [True, False, True]
    assert api.delete(f"/api/v1/campaigns/{campaign}/dnc-lists/{mine}").status_code == 204
    assert api.delete(f"/api/v1/campaigns/{campaign}/dnc-lists/{mine}").status_code == 404
    assert api.put(f"/api/v1/campaigns/{campaign}/dnc-lists/999999").status_code == 404


def test_dnc_imports_append_then_replace_with_counts_and_rejects(api, conn):
    list_id = new_dnc_list(api)
    text = ("Phone,E-mail,added on\n"
            "(212) 555-0171,,2026-01-01\n"
            "+12125550172,opt@example.com,2026-01-02\n"
            "+1212,,2026-01-03\n"
            ",,2026-01-04\n"
            "+12125550171,,again\n")
    r = dnc_upload(api, list_id, text, region="US")
    assert r.status_code == 202, r.text
    body = wait_done(api, r.json()["id"])
    assert (body["state"], body["kind"], body["dnc_list_id"]) == ("done", "dnc", list_id)
    assert (body["rows_read"], body["rows_loaded"], body["rows_rejected"], body["duplicates"]) == (5, 3, 2, 1)
    rejects = api.get(f"/api/v1/imports/{body['id']}/rejects").json()["rejects"]
    assert [(x["line"], x["field"]) for x in rejects] == [(4, "phone"), (5, "")]
    # an entry added by hand while nothing imports, then a replace: what the file lacks goes
    manual = api.post(f"/api/v1/dnc-lists/{list_id}/entries", json={"addresses": ["+12125550179"]}).json()
    assert manual["added"] == 1
    r = dnc_upload(api, list_id, "number\n+12125550172\n+12125550173\n", mode="replace")
    body = wait_done(api, r.json()["id"])
    assert body["state"] == "done" and "3 entries not in the file removed" in body["message"], body
    held = {a for (a,) in conn.execute("SELECT address FROM dnc_entries WHERE list_id = %s", (list_id,))}
    assert held == {"+12125550172", "+12125550173"}
    # a file without any address column is refused at once; a file of bad rows fails and replaces nothing
    assert dnc_upload(api, list_id, "name,note\nx,y\n").status_code == 422
    r = dnc_upload(api, list_id, "phone\n+1212\n", mode="replace")
    assert wait_done(api, r.json()["id"])["state"] == "failed"
    assert conn.execute("SELECT count(*) FROM dnc_entries WHERE list_id = %s", (list_id,)).fetchone()[0] == 2
    assert dnc_upload(api, 999999, "phone\n+12125550172\n").status_code == 404


def test_a_number_added_to_the_campaigns_list_mid_job_is_refused_at_its_next_attempt(api, campaigns, conn):
    """A first attempt is retried one business hour later (6 s real): once the first
    attempts have settled, half the numbers with a retry to come go on a DNC list attached to
    the campaign and the other half on a list that is not; only the first half's retries are
    refused, by the `dnc_address` rule naming the list, and the job completes."""
    campaign = _make(campaigns, conn, RETRY, phone_contacts(30), None)
    attached, unattached = new_dnc_list(api), new_dnc_list(api)
    api.put(f"/api/v1/campaigns/{campaign}/dnc-lists/{attached}").raise_for_status()
    job_id = campaigns.start(campaign)
    campaigns.settled(job_id)
    assert conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()[0] == "running"
    due = dict(conn.execute("SELECT c.phone1, w.attempts FROM work_items w JOIN contacts c ON c.id = w.contact_id "
                            "WHERE w.job_id = %s AND w.state = 'scheduled' ORDER BY c.phone1", (job_id,)).fetchall())
    assert len(due) >= 4, due               # retries to come (a final outcome ends a contact at once)
    blocked, free = list(due)[::2], list(due)[1::2]
    name = api.get(f"/api/v1/dnc-lists/{attached}").json()["name"]
    assert api.post(f"/api/v1/dnc-lists/{attached}/entries", json={"addresses": blocked}).json()["added"] == len(blocked)
    assert api.post(f"/api/v1/dnc-lists/{unattached}/entries", json={"addresses": free}).json()["added"] == len(free)
    job = campaigns.wait(job_id, timeout=120)
    assert job["state"] == "completed", job
    rows = conn.execute("SELECT address, attempt_no, verdict, rule, code, reason FROM attempts WHERE job_id = %s "
                        "ORDER BY address, attempt_no", (job_id,)).fetchall()
    after: dict[str, list[tuple]] = {}          # each address's attempts after the DNC additions
    for address, no, verdict, rule, code, reason in rows:
        if address in due and no > due[address]:
            after.setdefault(address, []).append((verdict, rule, code, reason))
    for address in blocked:
        assert after[address] == [("restricted", "dnc_address", "dnc_restricted", f"address on DNC list {name}")]
    for address in free:
        assert after[address][0][:2] == ("allowed", "allowed"), after[address]
        assert all(rule != "dnc_address" for _, rule, _, _ in after[address])


def test_catalog_entries_without_a_list_go_to_the_system_list(conn):
    with conn.transaction():
        assert catalog.add_dnc(conn, ["+12125550161", "+12125550161"]) == 1
    assert conn.execute("SELECT list_id FROM dnc_entries WHERE address = '+12125550161'").fetchone()[0] == 1


def test_the_cli_imports_files_with_progress_and_exits_by_their_outcome(pom, admin_token, api, tmp_path, capsys):
    """`pom lists import` and `pom dnc import` against a served gateway: exit 0 with the counts
    when done, 1 with one line when the import fails, 2 before any request for a bad option."""
    from api.cli import main

    from .conftest import served_gateway

    contact_list = api.post("/api/v1/lists", json={"name": f"cli-{time.time_ns()}"}).json()["id"]
    dnc_list = new_dnc_list(api)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id;Mobile;plan\n1;(212) 555-0141;gold\n2;+1212;x\n")
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("number\n+12125550142\n")
    with served_gateway(pom.settings) as address:
        base = ["--url", f"http://{address}", "--token", admin_token]
        assert main([*base, "lists", "import", str(contacts), "--list", str(contact_list), "--region", "US",
                     "--map", "Mobile=phone1", "--delimiter", ";", "--poll", "0.1"]) == 0
        out = capsys.readouterr().out
        assert "done: 2 read, 1 loaded, 1 rejected, 0 duplicates, 0 DNC flagged" in out
        import_id = int(out.split()[1])
        assert main([*base, "--json", "imports", "rejects", str(import_id)]) == 0
        assert '"field": "phone1"' in capsys.readouterr().out
        assert main([*base, "dnc", "import", str(numbers), "--list", str(dnc_list), "--mode", "replace"]) == 0
        assert "done: 1 read, 1 loaded, 0 rejected, 0 duplicates" in capsys.readouterr().out
        bad = tmp_path / "bad.csv"
        bad.write_text("number\n+1212\n")
        assert main([*base, "dnc", "import", str(bad), "--list", str(dnc_list)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith("failed: 1 read, 0 loaded, 1 rejected, 0 duplicates: "
                                                 "no valid row in the file")
        assert main([*base, "lists", "import", str(contacts), "--list", "999999"]) == 1
        assert capsys.readouterr().err.strip() == "pom: HTTP 404: contact list 999999 does not exist"
    assert main(["lists", "import", str(contacts), "--list", "1", "--map", "x"]) == 2


def test_migration_0009_puts_the_entries_there_were_on_the_system_list(pom):
    """A database at 0008 with DNC entries (one address twice, one contact): after the upgrade
    each is once on list 1, 'system', which applies to every campaign; new lists number from 2."""
    import psycopg
    from alembic import command

    from pom_actors.store.database import alembic_config, libpq_url

    with scratch_database(pom.settings, "pom_migration_0009") as scratch:
        command.upgrade(alembic_config(scratch), "0008")
        with psycopg.connect(libpq_url(scratch), autocommit=True) as c:
            c.execute("INSERT INTO dnc_entries (address, contact_id, source) VALUES ('+12125550101', NULL, 'a'), "
                      "('+12125550101', NULL, 'b'), (NULL, 7, 'c')")
        command.upgrade(alembic_config(scratch), "0009")
        with psycopg.connect(libpq_url(scratch), autocommit=True) as c:
            assert c.execute("SELECT list_id, address, contact_id, source FROM dnc_entries ORDER BY id").fetchall() \
                == [(1, "+12125550101", None, "a"), (1, None, 7, "c")]
            assert c.execute("SELECT id, name, all_campaigns FROM dnc_lists").fetchall() == [(1, "system", True)]
            assert c.execute("INSERT INTO dnc_lists (name) VALUES ('next') RETURNING id").fetchone()[0] == 2
        command.downgrade(alembic_config(scratch), "0008")
