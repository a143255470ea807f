"""The gateway's definitions not covered elsewhere, round trip through the Python client and
the CLI against a served gateway: completion codes (a campaign's custom codes made, changed and
deleted; the system's read-only), and what the audit log keeps of them."""
from __future__ import annotations

import json

import pytest

from api.cli import main
from api.client import Conflict, Invalid, NotFound, PomClient
from pom_actors.core.codes import SYSTEM_CODES
from pom_actors.core.tokens import Role

from .conftest import phone_contacts, served_gateway

pytestmark = pytest.mark.integration
STRATEGY = {
    "name": "codes", "initial": "call", "custom_codes": ["paid"],
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "results": {"paid": "done", "default": "done"}}},
}


@pytest.fixture(scope="module")
def gateway(pom):
    with served_gateway(pom.settings) as address:
        yield f"http://{address}"


def test_completion_codes_round_trip_through_client_and_cli(campaigns, conn, gateway, role_tokens, capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    supervisor = PomClient(gateway, token=role_tokens[Role.SUPERVISOR])
    campaign_id = campaigns.make(STRATEGY, phone_contacts(2))

    declared = admin.completion_codes(campaign_id)
    assert [(c["name"], c["system"]) for c in declared] == [("paid", False)]
    system = admin.completion_codes(system=True)
    assert {c["name"] for c in system} == set(SYSTEM_CODES) and all(c["system"] for c in system)

    made = admin.create_completion_code(campaign_id, "callback_later", human_contact=True)
    assert {k: made[k] for k in ("campaign_id", "name", "human_contact", "final", "system")} == {
        "campaign_id": campaign_id, "name": "callback_later", "human_contact": True, "final": False, "system": False}
    assert supervisor.completion_code(made["id"]) == made
    with pytest.raises(Conflict):
        admin.create_completion_code(campaign_id, "callback_later")          # the campaign has it
    with pytest.raises(NotFound):
        admin.create_completion_code(2**31 - 1, "callback_later")
    with pytest.raises(Invalid) as refused:
        admin.create_completion_code(campaign_id, "no_answer")
    assert refused.value.errors[0]["path"] == "name"
    assert admin.update_completion_code(made["id"], final=True)["final"] is True
    system_id = system[0]["id"]
    with pytest.raises(Conflict):
        admin.update_completion_code(system_id, final=True)
    with pytest.raises(Conflict):
        admin.delete_completion_code(declared[0]["id"])                     # its strategy declares it
    assert conn.execute("SELECT final FROM completion_codes WHERE id = %s", (system_id,)).fetchone()[0] \
        == SYSTEM_CODES[system[0]["name"]].final

    # the CLI: a table, and the gateway's JSON with --json
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "codes", "update", str(made["id"]),
                 "final=false", "counts_as_abandon", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["final"], out["counts_as_abandon"]) == (False, True)
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "codes", "list",
                 "--campaign", str(campaign_id), "--json"]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)] == ["paid", "callback_later"]
    assert main(["--url", gateway, "--token", role_tokens[Role.SUPERVISOR], "codes", "delete", str(made["id"])]) == 1
    assert "forbidden" in capsys.readouterr().err
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "codes", "delete", str(made["id"])]) == 0
    with pytest.raises(NotFound):
        admin.completion_code(made["id"])
    audited = [e["method"] for e in admin.audit(path=f"/api/v1/completion-codes/{made['id']}")["entries"]]
    assert audited.count("PATCH") == 2 and audited.count("DELETE") == 1
