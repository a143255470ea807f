"""The Python client (sync and async) and the CLI against a running gateway (uvicorn on
loopback): a round trip for every resource, typed errors with their problem documents, a job
started and followed to its end, an upload with progress; `pom` tables, `--json` parsed, and
one line with a non-zero exit for every refusal."""
from __future__ import annotations

import asyncio
import inspect
import json
import time
from typing import Any

import pytest

from api import cli
from api import client as pom_client
from api.client import AsyncPomClient, PomClient

from .conftest import phone_contacts, served_gateway
from .ports import free_port

pytestmark = pytest.mark.integration

STRATEGY = {"name": "client-cli", "initial": "call", "handlers": {"call": {
    "type": "call", "message": "Hi {first_name}", "pacing": {"max_concurrent": 5}, "results": {"default": "done"}}}}


@pytest.fixture(scope="module")
def url(pom) -> str:
    with served_gateway(pom.settings) as address:
        yield f"http://{address}"


async def done(value: Any) -> Any:
    """The answer of a client call: awaited when the client is the async one."""
    return await value if inspect.isawaitable(value) else value


async def every(pages) -> list[dict]:
    if hasattr(pages, "__aiter__"):
        return [item async for item in pages]
    return list(pages)


async def round_trips(pom, tag: str, tmp_path, url: str, attempt_of) -> None:
    """Every resource through `pom` (PomClient or AsyncPomClient: the same scenario for both)."""
    assert (await done(pom.health()))["status"] in ("up", "degraded")
    assert "pom_" in await done(pom.metrics())

    # lists, strategies, campaigns
    lst = await done(pom.create_list(f"cc-{tag}", "client round trip", ["segment"]))
    assert [found["id"] for found in await done(pom.lists(name=f"cc-{tag}"))] == [lst["id"]]
    assert (await done(pom.add_contacts(lst["id"], phone_contacts(6))))["imported"] == 6
    preview = await done(pom.preview_list(lst["id"], "attr.segment = 'gold'", 2))
    assert preview["count"] == 6 and len(preview["sample"]) == 2
    strategy = await done(pom.create_strategy({**STRATEGY, "name": f"cc-{tag}"}, list_id=lst["id"]))
    campaign = await done(pom.create_campaign(f"cc-{tag}", strategy["id"], lst["id"], priority=3))
    assert (await done(pom.campaign(campaign["id"])))["name"] == f"cc-{tag}"
    assert campaign["id"] in [c["id"] for c in await done(pom.campaigns())]
    assert (await done(pom.update_campaign(campaign["id"], description="changed")))["description"] == "changed"
    with pytest.raises(pom_client.Invalid) as bad:
        await done(pom.update_campaign(campaign["id"], priority=99))
    assert bad.value.status == 422 and bad.value.errors[0]["path"].endswith("priority")

    # a job started and followed to its end, with progress
    readings: list[dict] = []
    job = await done(pom.start_job(campaign["id"], idempotency_key=f"cc-{tag}"))
    assert (await done(pom.start_job(campaign["id"], idempotency_key=f"cc-{tag}")))["id"] == job["id"]
    ended = await done(pom.wait_until_done(job, progress=readings.append, timeout=120, interval=0.2))
    assert ended["state"] == "completed" and ended["work_items"] == {"done": 6}
    assert readings[-1] == ended and sum(ended["attempts_by_code"].values()) >= 6
    assert job["id"] in [j["id"] for j in await every(pom.pages("/api/v1/jobs", {"campaign_id": campaign["id"]}, 1))]
    assert [j["id"] for j in await done(pom.jobs(campaign_id=campaign["id"]))] == [job["id"]]
    assert (await done(pom.job_pacing(job["id"])))["job_id"] == job["id"]
    with pytest.raises(pom_client.Conflict) as ended_job:
        await done(pom.pause(job["id"]))
    assert ended_job.value.error == "illegal_transition"

    # a queued job: its filter, then start, pause, resume, stop
    queued = await done(pom.create_job(campaign["id"], start=False))
    assert (await done(pom.set_priority(queued["id"], 7)))["priority"] == 7
    assert (await done(pom.set_job_filter(queued["id"], "attr.segment = 'gold'")))["expression"]
    assert (await done(pom.job_filter(queued["id"])))["expression"] == "attr.segment = 'gold'"
    assert (await done(pom.start(queued["id"])))["state"] in ("running", "completed")
    for command in (pom.pause, pom.resume, pom.stop):
        try:
            await done(command(queued["id"]))
        except pom_client.Conflict:          # 6 contacts at 600x: it may have ended meanwhile
            pass
    assert (await done(pom.wait_until_done(queued["id"], timeout=60, interval=0.2)))["state"] in ("stopped", "completed")

    # web services on an attempt of the job and its contact
    attempt_id, contact_id = attempt_of(job["id"])
    attempt = await done(pom.attempt(attempt_id))
    assert attempt["contact_id"] == contact_id and attempt["state"] == "settled"
    assert (await done(pom.attempt_contact(attempt_id)))["id"] == contact_id
    assert (await done(pom.update_contact_attributes(contact_id, {"paid": True})))["attributes"]["paid"] is True
    assert (await done(pom.update_attempt_contact_attributes(attempt_id, {"paid": None})))["attributes"] == \
        {"segment": "gold"}
    assert (await done(pom.contact(contact_id)))["attributes"] == {"segment": "gold"}
    assert await done(pom.current_attempt(contact_id)) is None
    assert (await done(pom.set_attempt_code(attempt_id, "busy")))["code"] == "busy"
    for report in (pom.report_attempts(job=job["id"], bucket_s=900), pom.report_abandons(job=job["id"]),
                   pom.report_agent_time(limit=10)):
        assert {"since", "until", "rows"} <= set(await done(report))      # contents: test_reports_purges.py

    # rules and filter templates
    rule = await done(pom.create_rule("max_attempts_contact", {"max": 3}, campaign_id=campaign["id"]))
    assert await done(pom.rules(campaign_id=campaign["id"])) == [rule]
    assert (await done(pom.replace_rule(rule["id"], "max_attempts_contact", {"max": 2})))["params"] == {"max": 2}
    assert (await done(pom.rule(rule["id"])))["params"] == {"max": 2}
    assert await done(pom.delete_rule(rule["id"])) is None
    template = await done(pom.create_filter(f"cc-{tag}", "attr.segment = 'gold'"))
    assert (await done(pom.update_filter(template["id"], description="gold")))["description"] == "gold"
    assert template["id"] in [f["id"] for f in await done(pom.filters())]
    assert (await done(pom.filter(template["id"])))["name"] == f"cc-{tag}"
    assert [f["id"] for f in await done(pom.filters(name=f"cc-{tag}"))] == [template["id"]]
    await done(pom.delete_filter(template["id"]))

    # DNC lists
    dnc = await done(pom.create_dnc_list(f"cc-{tag}"))
    assert (await done(pom.add_dnc(dnc["id"], ["+12125550199"])))["added"] == 1
    assert [e["address"] for e in (await done(pom.dnc_entries(dnc["id"])))["entries"]] == ["+12125550199"]
    assert (await done(pom.attach_dnc(campaign["id"], dnc["id"])))["attached"] is True
    assert dnc["id"] in [d["id"] for d in await done(pom.campaign_dnc_lists(campaign["id"]))]
    looked = await done(pom.lookup_dnc(["+12125550199"], campaign["id"]))
    assert looked["results"][0]["blocked"] is True
    await done(pom.detach_dnc(campaign["id"], dnc["id"]))
    assert (await done(pom.remove_dnc(dnc["id"], ["+12125550199"])))["removed"] == 1
    assert dnc["id"] in [d["id"] for d in await done(pom.dnc_lists())]
    assert [d["id"] for d in await done(pom.dnc_lists(name=f"cc-{tag}"))] == [dnc["id"]]
    await done(pom.delete_dnc_list(dnc["id"]))

    # a file import with upload progress, its state and rejects
    csv = tmp_path / f"{tag}.csv"
    csv.write_text("external_id,first_name,phone1\n" + "".join(f"e{i},N{i},+1646{3_000_000 + i:07d}\n"
                                                              for i in range(2000)) + "e-bad,X,12\n")
    sent: list[tuple[int, int]] = []
    started = await done(pom.start_import(lst["id"], str(csv), progress=lambda s, t: sent.append((s, t))))
    assert [i["id"] for i in await done(pom.imports(list_id=lst["id"]))] == [started["id"]]
    assert sent[-1] == (csv.stat().st_size, csv.stat().st_size)
    deadline = time.monotonic() + 60
    while (status := await done(pom.import_status(started["id"])))["state"] not in ("done", "failed", "stopped"):
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert status["state"] == "done" and status["rows_loaded"] == 2000 and status["rows_rejected"] == 1
    assert (await done(pom.import_rejects(started["id"])))["rejects"][0]["field"] == "phone1"
    assert (await done(pom.import_rejects(started["id"], csv=True))).startswith("line,")

    # zones
    zone = f"cc-{tag}"
    assert (await done(pom.create_zone(zone, "default")))["name"] == zone
    assert (await done(pom.set_zone_state(zone, "maintenance", "round trip")))["state"] == "maintenance"
    assert (await done(pom.set_zone_failover(zone, None)))["failover_zone"] is None
    assert zone in [z["name"] for z in (await done(pom.zones()))["zones"]]
    assert (await done(pom.zone(zone)))["state"] == "maintenance"
    await done(pom.delete_zone(zone))

    # agents, licenses, load, alarms, purges, audit
    agent = await done(pom.create_agent(f"cc-{tag}", "Client", ["sales"]))
    assert (await done(pom.agent(f"cc-{tag}")))["id"] == agent["id"]
    assert agent["id"] in [a["id"] for a in await done(pom.agents())]
    assert agent["id"] in [a["id"] for a in await done(pom.agents(state="logged_out", skill="sales"))]
    assert isinstance(await done(pom.licenses()), dict)
    assert "levels" in await done(pom.load())
    config = await done(pom.load_config())
    assert await done(pom.set_load_config(config)) == config
    assert isinstance(await done(pom.alarms("all", 5)), list)
    assert "runs" in await done(pom.purges(limit=5))
    assert await done(pom.set_retention(await done(pom.retention()))) == await done(pom.retention())
    assert (await done(pom.audit(path="/api/v1/zones", limit=1000)))["entries"]

    # tokens, and the typed errors of the other roles and of none
    made = await done(pom.create_token(f"cc-{tag}", "supervisor"))
    assert made["token"].startswith("pom_") and made["id"] in [t["id"] for t in await done(pom.tokens())]
    supervisor = type(pom)(url, token=made["token"])
    assert (await done(supervisor.campaign(campaign["id"])))["id"] == campaign["id"]
    with pytest.raises(pom_client.Forbidden) as forbidden:
        await done(supervisor.create_token("nope", "admin"))
    assert forbidden.value.status == 403 and forbidden.value.detail
    await done(pom.revoke_token(made["id"]))
    with pytest.raises(pom_client.Unauthorized):
        await done(supervisor.campaign(campaign["id"]))
    with pytest.raises(pom_client.NotFound) as missing:
        await done(pom.job(2**31 - 1))
    assert missing.value.error == "not_found"
    for other in (supervisor,):
        await done(other.aclose() if isinstance(other, AsyncPomClient) else other.close())

    # the campaign disabled, then deleted with its ended jobs
    assert (await done(pom.update_campaign(campaign["id"], enabled=False)))["enabled"] is False
    await done(pom.delete_campaign(campaign["id"]))
    with pytest.raises(pom_client.NotFound):
        await done(pom.campaign(campaign["id"]))


@pytest.fixture
def attempt_of(conn):
    """`(attempt id, contact id)` of a settled attempt of a job, from the ledger."""
    def find(job_id: int) -> tuple[str, int]:
        item, number, contact_id = conn.execute(
            "SELECT work_item_id, attempt_no, contact_id FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
            "ORDER BY work_item_id LIMIT 1", (job_id,)).fetchone()
        return f"{item}.{number}", contact_id
    return find


def test_every_resource_through_the_sync_client(url, admin_token, tmp_path, attempt_of):
    with PomClient(url, token=admin_token) as pom:
        asyncio.run(round_trips(pom, "sync", tmp_path, url, attempt_of))


def test_every_resource_through_the_async_client(url, admin_token, tmp_path, attempt_of):
    async def go():
        async with AsyncPomClient(url, token=admin_token) as pom:
            await round_trips(pom, "async", tmp_path, url, attempt_of)
    asyncio.run(go())


def pom_cli(capsys, url: str, token: str, *argv: str) -> tuple[int, str, str]:
    """`pom --url URL --token TOKEN ARGV...`: its exit code, stdout and stderr."""
    code = cli.main(["--url", url, "--token", token, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_against_a_running_gateway(url, admin_token, capsys, tmp_path):
    with PomClient(url, token=admin_token) as pom:
        lst = pom.create_list("cc-cli", attributes=["segment"])
        pom.add_contacts(lst["id"], phone_contacts(5))

    def run(*argv: str, token: str = admin_token) -> tuple[int, str, str]:
        return pom_cli(capsys, url, token, *argv)

    document = tmp_path / "cc-cli.json"              # set up from the terminal: strategy, campaign
    document.write_text(json.dumps({**STRATEGY, "name": "cc-cli"}))
    code, out, _ = run("--json", "strategies", "create", str(document), "--list", str(lst["id"]))
    strategy = json.loads(out)
    assert code == 0 and strategy["name"] == "cc-cli"
    code, out, _ = run("--json", "campaigns", "create", "cc-cli", "--strategy", str(strategy["id"]),
                       "--list", str(lst["id"]), "--priority", "4")
    campaign = json.loads(out)
    assert code == 0 and campaign["priority"] == 4
    code, _, err = run("campaigns", "create", "cc-cli", "--strategy", str(strategy["id"]), "--list", str(lst["id"]))
    assert code == 1 and err.startswith("pom: HTTP 409: ") and err.count("\n") == 1

    code, out, _ = run("--json", "jobs", "create", "cc-cli")
    job = json.loads(out)
    assert code == 0 and job["campaign_id"] == campaign["id"] and job["state"] == "running"
    code, out, _ = run("jobs", "watch", str(job["id"]), "--interval", "0.2", "--timeout", "120", "--json")
    readings = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and readings[-1]["state"] == "completed" and readings[-1]["work_items"] == {"done": 5}
    code, out, _ = run("jobs", "show", str(job["id"]))
    assert code == 0 and "completed" in out and "done=5" in out
    code, out, _ = run("jobs", "list", "--json")
    assert code == 0 and job["id"] in [j["id"] for j in json.loads(out)]
    code, out, _ = run("--json", "jobs", "pacing", str(job["id"]))
    assert code == 0 and json.loads(out)["state"] == "completed"

    code, out, _ = run("--json", "jobs", "create", str(campaign["id"]), "--queued")
    queued = json.loads(out)
    code, out, _ = run("jobs", "set", str(queued["id"]), "--priority", "8", "--json")
    assert code == 0 and json.loads(out)["priority"] == 8
    assert run("--json", "jobs", "stop", str(queued["id"]))[0] == 0
    code, _, err = run("jobs", "watch", str(queued["id"]), "--interval", "0.2", "--timeout", "60")
    assert code == 1 and err.startswith(f"pom: job {queued['id']} stopped") and err.count("\n") == 1
    code, _, err = run("jobs", "pause", str(queued["id"]))
    assert code == 1 and err.startswith("pom: HTTP 409: ") and err.count("\n") == 1

    code, out, _ = run("--json", "campaigns", "list", "--enabled")
    assert code == 0 and campaign["id"] in [c["id"] for c in json.loads(out)]
    code, _, err = run("campaigns", "update", str(campaign["id"]), "--priority", "99")
    assert code == 1 and err.startswith("pom: HTTP 422: ") and "priority" in err and err.count("\n") == 1
    code, out, _ = run("--json", "rules", "create", "max_attempts_contact", "--params", '{"max": 3}',
                       "--campaign", str(campaign["id"]))
    rule = json.loads(out)
    code, out, _ = run("--json", "rules", "list", "--campaign", str(campaign["id"]))
    assert code == 0 and json.loads(out) == [rule]
    assert run("rules", "delete", str(rule["id"]))[0] == 0

    code, out, _ = run("--json", "dnc", "create", "cc-cli")
    dnc = json.loads(out)
    code, out, _ = run("--json", "dnc", "add", str(dnc["id"]), "+12125550188")
    assert code == 0 and json.loads(out)["added"] == 1
    code, out, _ = run("dnc", "entries", str(dnc["id"]))
    assert code == 0 and "+12125550188" in out
    assert run("dnc", "delete", str(dnc["id"]))[0] == 0

    code, out, _ = run("--json", "lists", "create", "cc-cli-2", "--attribute", "segment")
    assert code == 0 and json.loads(out)["name"] == "cc-cli-2"
    csv = tmp_path / "cli.csv"
    csv.write_text("external_id,first_name,phone1\na,A,+16463100001\nb,B,12\n")
    into = json.loads(out)["id"]
    code, out, _ = run("lists", "import", str(csv), "--list", str(into), "--poll", "0.1", "--idempotency-key", "cc-cli")
    assert code == 0 and "1 loaded, 1 rejected" in out
    code, out, _ = run("--json", "imports", "list", "--list", str(into), "--state", "done")
    imported = json.loads(out)
    assert code == 0 and [(i["list_id"], i["rows_loaded"]) for i in imported] == [(into, 1)]
    code, out, _ = run("lists", "import", str(csv), "--list", str(into), "--poll", "0.1", "--idempotency-key", "cc-cli")
    assert code == 0 and len(json.loads(run("--json", "imports", "list", "--list", str(into))[1])) == 1

    code, out, _ = run("--json", "agents", "create", "cc-cli", "--skill", "sales")
    assert code == 0 and json.loads(out)["skills"] == ["sales"]
    code, out, _ = run("--json", "agents", "list", "--state", "logged_out")
    assert code == 0 and "cc-cli" in [a["login"] for a in json.loads(out)]
    code, _, err = run("agents", "force-logoff", "cc-cli-nobody")
    assert code == 1 and err.startswith("pom: HTTP 404: ") and err.count("\n") == 1
    assert run("--json", "agents", "licenses")[0] == 0

    code, out, _ = run("--json", "tokens", "create", "--name", "cc-cli", "--role", "supervisor")
    token = json.loads(out)
    code, out, _ = run("tokens", "list")
    assert code == 0 and "cc-cli" in out
    code, _, err = run("tokens", "list", token=token["token"])
    assert code == 1 and err.startswith("pom: HTTP 403: ") and err.count("\n") == 1
    assert run("tokens", "revoke", str(token["id"]))[0] == 0
    code, _, err = run("jobs", "list", token=token["token"])
    assert code == 1 and err.startswith("pom: HTTP 401: ") and err.count("\n") == 1

    code, out, _ = run("--json", "zones", "create", "cc-cli", "--failover", "default")
    assert code == 0 and json.loads(out)["name"] == "cc-cli"
    assert run("zones", "delete", "cc-cli")[0] == 0
    for argv in (("health",), ("alarms", "--state", "all"), ("audit", "--limit", "5"), ("reports", "attempts"),
                 ("purges", "list")):
        code, out, _ = run("--json", *argv)
        assert code == 0 and json.loads(out) is not None, argv
    code, _, err = run("jobs", "show", str(2**31 - 1))
    assert code == 1 and err.startswith("pom: HTTP 404: ") and err.count("\n") == 1
    code, _, err = pom_cli(capsys, f"http://127.0.0.1:{free_port()}", admin_token, "jobs", "list")
    assert code == 1 and err.startswith("pom: cannot reach the gateway at http://127.0.0.1:") and err.count("\n") == 1
