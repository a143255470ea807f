"""The gateway's resources not covered elsewhere, round trip through the Python client and the
CLI against a served gateway: completion codes (a campaign's custom codes made, changed,
disabled and deleted; the system's read-only), agent scripts (named by a strategy, refused while named),
and the run-time changes of a running job (priority, pacing reaching its managers, filter
template) — and what the audit log keeps of them."""
from __future__ import annotations

import json
import time

import pytest

from api.cli import main
from api.client import Conflict, Forbidden, Invalid, NotFound, PomClient
from pom_actors.core.codes import SYSTEM_CODES
from pom_actors.core.pacing.live import manager_share
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
    # disabled: still listed (with `enabled`), filtered by it; a system code cannot be disabled
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "codes", "disable", str(made["id"]),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["enabled"] is False
    assert [c["name"] for c in admin.completion_codes(campaign_id, enabled=False)] == ["callback_later"]
    assert [c["name"] for c in admin.completion_codes(campaign_id, enabled=True)] == ["paid"]
    with pytest.raises(Conflict):
        admin.update_completion_code(system_id, enabled=False)
    assert admin.update_completion_code(made["id"], enabled=True)["enabled"] is True
    assert main(["--url", gateway, "--token", role_tokens[Role.SUPERVISOR], "codes", "delete", str(made["id"])]) == 1
    assert "HTTP 403" in capsys.readouterr().err
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "codes", "delete", str(made["id"])]) == 0
    with pytest.raises(NotFound):
        admin.completion_code(made["id"])
    audited = [e["method"] for e in admin.audit(path=f"/api/v1/completion-codes/{made['id']}")["entries"]]
    assert audited.count("PATCH") == 4 and audited.count("DELETE") == 1


AGENT_STRATEGY = {
    "name": "scripted", "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "pacing": {"mode": "progressive"},
                          "script": {"name": "PLACEHOLDER"}, "results": {"default": "done"}}},
}


def test_agent_scripts_round_trip_and_a_strategy_names_one(campaigns, gateway, role_tokens, tmp_path, capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    name = f"welcome-{time.monotonic_ns()}"
    strategy = {**AGENT_STRATEGY, "name": name, "handlers": {"call": {
        **AGENT_STRATEGY["handlers"]["call"], "script": {"name": name}}}}
    with pytest.raises(Invalid) as refused:                       # no such script yet
        admin.create_strategy(strategy)
    assert refused.value.errors[0]["path"] == "handlers.call.script.name"
    made = admin.create_agent_script(name, "Hello {first_name}, about {segment}")
    assert (made["kind"], made["enabled"], made["body"]) == ("text", True, "Hello {first_name}, about {segment}")
    assert admin.create_strategy(strategy)["name"] == name
    with pytest.raises(Conflict):
        admin.create_agent_script(name, "again")
    with pytest.raises(Invalid) as refused:
        admin.update_agent_script(made["id"], kind="url", body="http://169.254.169.254/latest/meta-data")
    assert refused.value.errors[0]["path"] == "body"
    assert admin.update_agent_script(made["id"], enabled=False)["enabled"] is False
    assert made["id"] in [s["id"] for s in admin.agent_scripts(enabled=False)]
    campaigns.make(strategy, phone_contacts(1))                   # a campaign's strategy now names it
    with pytest.raises(Conflict):
        admin.delete_agent_script(made["id"])
    with pytest.raises(Conflict):
        admin.update_agent_script(made["id"], name=name + "-2")

    # the CLI: a URL script from a file, shown as JSON, deleted
    url = tmp_path / "crm.txt"
    url.write_text("https://crm.example.com/contacts/{external_id}\n")
    token = ["--url", gateway, "--token", role_tokens[Role.INTEGRATION]]
    assert main([*token, "scripts", "create", name + "-crm", str(url), "--kind", "url", "--json"]) == 0
    crm = json.loads(capsys.readouterr().out)
    assert (crm["kind"], crm["body"]) == ("url", "https://crm.example.com/contacts/{external_id}")
    assert main([*token, "scripts", "delete", str(crm["id"])]) == 0
    with pytest.raises(NotFound):
        admin.agent_script(crm["id"])


SLOW = {
    "name": "slow", "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                          "pacing": {"max_concurrent": 2, "attempts_per_second": 0.0001},
                          "results": {"default": "done"}}},
}


def _manager_figures(client: PomClient, job_id: int) -> list[dict]:
    return [m["handlers"]["call"] for m in client.job_pacing(job_id)["managers"] if m["state"] == "up"]


def _caps(client: PomClient, job_id: int) -> list[int]:
    return [f["max_concurrent"] for f in _manager_figures(client, job_id)]


def _shares(max_concurrent: int, managers: int) -> list[int]:
    """Each manager's share of the job's cap (core/pacing: split among its managers)."""
    return [manager_share(SLOW["handlers"]["call"]["pacing"]["attempts_per_second"], max_concurrent, managers)[
        "max_concurrent"]] * managers


def test_run_time_changes_of_a_running_job_reach_it(campaigns, conn, gateway, role_tokens, capsys):
    supervisor = PomClient(gateway, token=role_tokens[Role.SUPERVISOR])
    campaign_id = campaigns.make(SLOW, phone_contacts(40))
    job_id = campaigns.start(campaign_id)
    deadline = time.monotonic() + 60
    while not _manager_figures(supervisor, job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _caps(supervisor, job_id) == _shares(2, len(_manager_figures(supervisor, job_id)))

    job = supervisor.update_job(job_id, pacing={"call": {"max_concurrent": 7}})
    assert job["pacing"]["call"]["max_concurrent"] == 7
    while _caps(supervisor, job_id) != _shares(7, len(_manager_figures(supervisor, job_id))):
        assert time.monotonic() < deadline + 30, _manager_figures(supervisor, job_id)
        time.sleep(0.2)
    with pytest.raises(Invalid) as refused:
        supervisor.update_job(job_id, pacing={"call": {"mode": "predictive"}})
    assert refused.value.errors[0]["path"] == "pacing.call.mode"

    assert supervisor.set_priority(job_id, 9)["priority"] == 9
    template = PomClient(gateway, token=role_tokens[Role.ADMIN]).create_filter(
        f"gold-{time.monotonic_ns()}", "attr.segment = 'gold'")
    assert main(["--url", gateway, "--token", role_tokens[Role.SUPERVISOR], "jobs", "set", str(job_id),
                 "--priority", "campaign", "--filter", str(template["id"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["priority"] is None
    assert conn.execute("SELECT filter FROM jobs WHERE id = %s", (job_id,)).fetchone()[0] == "attr.segment = 'gold'"

    supervisor.stop(job_id)
    campaigns.wait(job_id)
    with pytest.raises(Conflict):
        supervisor.set_priority(job_id, 3)
    audited = [e["method"] for e in supervisor.audit(path=f"/api/v1/jobs/{job_id}")["entries"]]
    assert audited.count("PATCH") == 3 and audited.count("POST") == 1      # refusals are not changes


def test_strategy_versions_listed_read_and_deleted_unless_a_campaign_uses_one(gateway, role_tokens, capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    supervisor = PomClient(gateway, token=role_tokens[Role.SUPERVISOR])
    name = f"versions-{time.monotonic_ns()}"
    first, second = (admin.create_strategy({**STRATEGY, "name": name}) for _ in range(2))
    assert (first["version"], second["version"]) == (1, 2)
    versions = supervisor.strategies(name)
    assert [(v["id"], v["version"], v["latest"]) for v in versions] == [(first["id"], 1, 2), (second["id"], 2, 2)]
    shown = supervisor.strategy(first["id"])
    assert shown["document"]["handlers"]["call"]["addresses"] == ["phone1"] and shown["version"] == 1
    list_id = admin.create_list(name)["id"]
    admin.create_campaign(name, first["id"], list_id)
    with pytest.raises(Conflict) as refused:
        admin.delete_strategy(first["id"])
    assert name in str(refused.value)
    with pytest.raises(Forbidden):
        supervisor.delete_strategy(second["id"])
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "strategies", "delete", str(second["id"])]) == 0
    with pytest.raises(NotFound):
        admin.strategy(second["id"])
    assert main(["--url", gateway, "--token", role_tokens[Role.ADMIN], "strategies", "list", "--name", name,
                 "--json"]) == 0
    assert [v["id"] for v in json.loads(capsys.readouterr().out)] == [first["id"]]


def test_a_campaign_moves_to_another_strategy_version_and_gets_its_codes(campaigns, conn, gateway, role_tokens):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    campaign_id = campaigns.make(STRATEGY, phone_contacts(1))
    name = f"moved-{time.monotonic_ns()}"
    newer = admin.create_strategy({**STRATEGY, "name": name, "custom_codes": ["paid", "promised"],
                                   "handlers": {"call": {**STRATEGY["handlers"]["call"], "results": {
                                       "paid": "done", "promised": "done", "default": "done"}}}})
    assert admin.update_campaign(campaign_id, strategy_id=newer["id"])["strategy_id"] == newer["id"]
    assert sorted(c["name"] for c in admin.completion_codes(campaign_id)) == ["paid", "promised"]
    with pytest.raises(NotFound):
        admin.update_campaign(campaign_id, strategy_id=2**31 - 1)
    with pytest.raises(Conflict):
        admin.delete_strategy(newer["id"])


def test_lists_read_with_their_contact_count(gateway, role_tokens):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    supervisor = PomClient(gateway, token=role_tokens[Role.SUPERVISOR])
    made = admin.create_list(f"read-{time.monotonic_ns()}", "for reading", ["segment"])
    admin.add_contacts(made["id"], phone_contacts(3))
    one = supervisor.contact_list(made["id"])
    assert (one["description"], one["attributes"], one["contacts"]) == ("for reading", ["segment"], 3)
    assert made["id"] in [row["id"] for row in supervisor.lists()]
    with pytest.raises(NotFound):
        supervisor.contact_list(2**31 - 1)


def test_alarms_come_in_pages_newest_first_and_tokens_filtered_by_role_and_revoked(conn, gateway, role_tokens,
                                                                                  capsys):
    admin = PomClient(gateway, token=role_tokens[Role.ADMIN])
    cli = ["--url", gateway, "--token", role_tokens[Role.ADMIN]]
    tag = f"test.paging@{time.time_ns()}"
    ours = [conn.execute("INSERT INTO alarms (source, severity, message, details, cleared_at) "
                         "VALUES (%s, 'warning', 'paged', '{}', now()) RETURNING id", (tag,)).fetchone()[0]
            for _ in range(5)]
    try:
        seen = list(admin.pages("/api/v1/alarms", {"state": "cleared"}, limit=2))
        ids = [a["id"] for a in seen]
        assert ids == sorted(set(ids), reverse=True)                      # newest first, none twice
        assert [a["id"] for a in seen if a["source"] == tag] == ours[::-1]
        assert {a["state"] for a in seen} == {"cleared"}
        page = admin.alarms("cleared", limit=2, before=ours[3])
        assert [a["id"] for a in page] == [ours[2], ours[1]]
        assert main([*cli, "alarms", "--state", "cleared", "--all", "--json"]) == 0
        assert [a["id"] for a in json.loads(capsys.readouterr().out) if a["source"] == tag] == ours[::-1]
    finally:
        conn.execute("DELETE FROM alarms WHERE source = %s", (tag,))

    made = admin.create_token(f"paging-{tag}", "integration")
    admin.revoke_token(made["id"])
    revoked = admin.tokens(revoked=True)
    assert made["id"] in [t["id"] for t in revoked] and all(t["revoked_at"] for t in revoked)
    in_force = admin.tokens(role="integration", revoked=False)
    assert made["id"] not in [t["id"] for t in in_force]
    assert in_force and all(t["role"] == "integration" and t["revoked_at"] is None for t in in_force)
    assert main([*cli, "tokens", "list", "--role", "integration", "--revoked", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert made["id"] in [t["id"] for t in listed] and {t["role"] for t in listed} == {"integration"}
