"""Contact lists and contacts round trip through the Python client and the CLI against a served
gateway: a list renamed, its contacts read page by page, deleted with its contacts only once
nothing uses it (in batches); a contact deleted is never dialled, one in flight is kept."""
from __future__ import annotations

import json
import time

import pytest

from api.cli import main
from api.client import Conflict, Forbidden, NotFound, PomClient
from pom_actors.core.tokens import Role
from pom_actors.store import lists as store

from .conftest import phone_contacts, served_gateway

pytestmark = pytest.mark.integration
STRATEGY = {"name": "lists", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "results": {"default": "done"}}}}


@pytest.fixture(scope="module")
def gateway(pom):
    with served_gateway(pom.settings) as address:
        yield f"http://{address}"


def test_a_list_renamed_read_by_pages_and_deleted_once_nothing_uses_it(campaigns, conn, gateway, role_tokens,
                                                                         capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    supervisor = PomClient(gateway, token=role_tokens[Role.SUPERVISOR])
    cli = ["--url", gateway, "--token", role_tokens[Role.ADMIN]]
    name = f"lists-{time.monotonic_ns()}"
    made = admin.create_list(name, "first", ["segment"])
    admin.add_contacts(made["id"], phone_contacts(5))

    changed = admin.update_list(made["id"], name=name + "-b", description="second")
    assert (changed["name"], changed["description"], changed["contacts"]) == (name + "-b", "second", 5)
    with pytest.raises(Forbidden):
        supervisor.update_list(made["id"], name="x")
    other = admin.create_list(name + "-other")
    with pytest.raises(Conflict):
        admin.update_list(other["id"], name=name + "-b")                     # another list's name

    first = supervisor.list_contacts(made["id"], limit=2)
    rest = supervisor.list_contacts(made["id"], after=first[-1]["id"], limit=10)
    every = list(supervisor.pages(f"/api/v1/lists/{made['id']}/contacts", limit=2))
    assert [c["id"] for c in every] == [c["id"] for c in first + rest] and len(every) == 5
    assert main([*cli, "lists", "contacts", str(made["id"]), "--limit", "2", "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == [c["id"] for c in first]
    with pytest.raises(NotFound):
        supervisor.list_contacts(2**31 - 1)

    # what uses a list keeps it: a campaign (named), an import not finished (named)
    campaign_id = campaigns.make(STRATEGY, phone_contacts(1))
    used = admin.campaign(campaign_id)
    with pytest.raises(Conflict) as refused:
        admin.delete_list(used["list_id"])
    assert used["name"] in refused.value.detail
    import_id = conn.execute("INSERT INTO import_jobs (list_id, kind, state) VALUES (%s, 'contacts', 'paused') "
                             "RETURNING id", (made["id"],)).fetchone()[0]
    conn.commit()
    assert main([*cli, "lists", "delete", str(made["id"])]) == 1
    assert f"import(s) not finished {import_id}" in capsys.readouterr().err
    assert admin.contact_list(made["id"])["contacts"] == 5                     # nothing deleted
    conn.execute("UPDATE import_jobs SET state = 'done' WHERE id = %s", (import_id,))
    conn.commit()

    assert main([*cli, "lists", "delete", str(made["id"])]) == 0
    with pytest.raises(NotFound):
        admin.contact_list(made["id"])
    assert conn.execute("SELECT count(*) FROM contacts WHERE list_id = %s", (made["id"],)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM import_jobs WHERE id = %s", (import_id,)).fetchone()[0] == 0
    audited = [e["method"] for e in admin.audit(path=f"/api/v1/lists/{made['id']}")["entries"]]
    assert audited.count("PATCH") == 1 and audited.count("DELETE") == 1     # refusals are not changes

    # a batch at a time: every contact goes, whatever the batch size
    admin.add_contacts(other["id"], phone_contacts(7))
    assert store.delete(conn, other["id"], batch=3) == 7
    assert conn.execute("SELECT count(*) FROM contact_lists WHERE id = %s", (other["id"],)).fetchone()[0] == 0


def test_a_contact_deleted_is_never_dialled_and_one_in_flight_is_kept(campaigns, conn, gateway, role_tokens,
                                                                       capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    cli = ["--url", gateway, "--token", role_tokens[Role.ADMIN]]
    campaign_id = campaigns.make(STRATEGY, phone_contacts(3))
    job = admin.create_job(campaign_id, start=False)
    items = dict(conn.execute("SELECT contact_id, id FROM work_items WHERE job_id = %s", (job["id"],)).fetchall())
    flying, gone, kept = sorted(items)
    conn.execute("UPDATE work_items SET state = 'in_flight', attempts = 1 WHERE id = %s", (items[flying],))
    conn.commit()
    try:
        with pytest.raises(Conflict) as refused:
            admin.delete_contact(flying)
        assert f"{items[flying]}.1" in refused.value.detail
        assert admin.contact(flying)["id"] == flying

        assert main([*cli, "contacts", "show", str(gone), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["id"] == gone
        assert main([*cli, "contacts", "delete", str(gone)]) == 0
        with pytest.raises(NotFound):
            admin.contact(gone)
        assert main([*cli, "contacts", "delete", str(gone)]) == 1
        assert "does not exist" in capsys.readouterr().err
        states = dict(conn.execute("SELECT contact_id, state FROM work_items WHERE job_id = %s",
                                   (job["id"],)).fetchall())
        assert states == {flying: "in_flight", gone: "done", kept: "ready"}
        audited = [e["method"] for e in admin.audit(path=f"/api/v1/contacts/{gone}")["entries"]]
        assert audited == ["DELETE"]
    finally:
        conn.execute("UPDATE work_items SET state = 'ready', attempts = 0 WHERE id = %s", (items[flying],))
        conn.commit()
        admin.stop(job["id"])
