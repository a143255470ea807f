"""Agent groups over the real API (issue 8): a job whose strategy names a group gets only that
group's agents; an agent taken out of the group (PATCH, through the CLI and the client) leaves
the job — after its call if it is on one; DELETE refuses an agent logged in and, once it is
logged out, removes it: its login is refused on the WebSocket, its agent token stops working,
its history stays in PostgreSQL, and its login can be created again."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import ray

from api import cli
from api import client as pom_client
from api.client import PomClient
from pom_actors import names
from pom_actors.core.agents.desk import screen_pop
from pom_actors.core.strategy import parse_strategy

from .conftest import phone_contacts, served_gateway
from .test_agent_ws import Desk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def strategy(group: str) -> dict:
    return {"name": f"groups-{group}", "initial": "call", "custom_codes": ["sale"],
            "handlers": {"call": {
                "type": "call", "addresses": ["phone1"],
                # closed on the test's Wednesday: every contact waits for Sunday, the job stays running
                "window": {"days": ["sun"], "start": "09:00", "end": "10:00"},
                "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                "agents": {"skills": ["sales"], "groups": [group], "wrap_up": "5m"},
                "results": {"window_restricted": "wait_window", "default": "done"}}}}


@pytest.fixture(scope="module")
def url(pom) -> str:
    with served_gateway(pom.settings) as address:
        yield f"http://{address}"


def pom_cli(capsys, url: str, token: str, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--url", url, "--token", token, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


async def frame(desk: Desk, test, timeout: float = 30) -> dict:
    """The next frame `test(frame)` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no frame accepted within {timeout} s")
        try:
            _, f = await asyncio.wait_for(desk.frames.get(), left)
        except asyncio.TimeoutError:
            continue
        if test(f):
            return f


def test_a_job_naming_a_group_gets_only_its_agents(pom, campaigns, conn, url, admin_token, capsys):
    tag = time.monotonic_ns() % 10**9
    gold, silver = f"gold-{tag}", f"silver-{tag}"
    g0, g1, s0 = (f"grp-{tag}-{n}" for n in ("g0", "g1", "s0"))
    admin = httpx.Client(base_url=f"{url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {admin_token}"})
    client = PomClient(url, token=admin_token)
    made = {login: client.create_agent(login, login, ["sales"], groups)
            for login, groups in ((g0, [gold]), (g1, [gold, "x"]), (s0, [silver]))}
    assert made[g1]["groups"] == [gold, "x"] and made[s0]["groups"] == [silver]
    assert sorted(a["login"] for a in client.agents(group=gold)) == [g0, g1]
    code, out, _ = pom_cli(capsys, url, admin_token, "--json", "agents", "list", "--group", silver)
    assert code == 0 and [a["login"] for a in json.loads(out)] == [s0]

    campaign = campaigns.make(strategy(gold), phone_contacts(4))
    job = campaigns.start(campaign)
    am = names.actor(names.AGENT_MANAGER)
    deadline = time.monotonic() + 30                     # the director's tick tells the Agent Manager
    while job not in ray.get(am.jobs.remote()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.get(am.jobs.remote())[job]["groups"] == [gold]
    token = admin.post("/tokens", json={"name": f"desk {s0}", "role": "agent", "agent_id": made[s0]["id"]})
    assert token.status_code == 201, token.text
    agent = httpx.Client(base_url=f"{url}/api/v1", timeout=30,
                         headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert agent.get(f"/agents/{s0}").status_code == 200
    ws = url.replace("http://", "ws://") + f"/api/v1/agents/ws?token={admin_token}"

    async def scenario():
        async with Desk(ws) as d0, Desk(ws) as d1, Desk(ws) as ds:
            desks = {g0: d0, g1: d1, s0: ds}
            for login, desk in desks.items():
                await desk.send(type="login", agent=login)
                await desk.until(type="state", event="login")
                await desk.send(type="ready")
                await desk.until(event="ready")
            for login in (g0, g1):                       # the group's agents are attached
                assert (await desks[login].ever(event="attach"))["job_id"] == job
            await asyncio.sleep(5 * pom.settings.tick_s)   # rebalances: the other group's agent is not
            assert (await asyncio.to_thread(client.agent, s0))["job_id"] != job
            members = (await asyncio.to_thread(client.job_agents, job))["members"]
            assert sorted(m["login"] for m in members) == [g0, g1]

            # a gold agent on a call is taken out of the group: it stays for the call, then leaves
            call_id = f"grp-{tag}-c"
            busy_id = (await am.reserve.remote(job, [call_id]))[call_id]
            busy = (await am.agent.remote(busy_id))["login"]
            idle = g1 if busy == g0 else g0
            await desks[busy].until(event="reserve", call_id=call_id)
            pop = screen_pop(call_id, job, {"first_name": "Ann", "phone1": "+12125550100"},
                             parse_strategy(strategy(gold)), "call")
            await am.connect.remote(call_id, pop)
            await desks[busy].until(type="call", call_id=call_id)
            code, out, err = await asyncio.to_thread(pom_cli, capsys, url, admin_token, "--json", "agents",
                                                     "update", busy, "--group", silver)
            assert code == 0, err
            assert json.loads(out)["groups"] == [silver] and json.loads(out)["skills"] == ["sales"]
            deadline = time.monotonic() + 30
            while not (view := await asyncio.to_thread(client.agent, busy))["moving"] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert view["job_id"] == job and view["state"] == "on_call" and view["moving_to"] != job
            await am.hangup.remote(call_id)
            await desks[busy].until(event="hangup", call_id=call_id)
            await desks[busy].send(type="dispose", code="sale")
            left = await frame(desks[busy], lambda f: f.get("event") in ("detach", "move"))
            assert left["job_id"] != job and left["state"] == "ready"

            # an idle one leaves at the next rebalance
            changed = await asyncio.to_thread(lambda: client.update_agent(idle, groups=[]))
            assert changed["groups"] == [] and changed["name"] == idle
            left = await frame(desks[idle], lambda f: f.get("event") in ("detach", "move"))
            assert left["job_id"] != job
            assert (await asyncio.to_thread(client.job_agents, job))["members"] == []

            # DELETE: refused while logged in; once logged out, the login is refused
            with pytest.raises(pom_client.Conflict) as refused:
                await asyncio.to_thread(client.delete_agent, s0)
            assert "log it off" in str(refused.value)
            await ds.send(type="logout")
            await ds.until(event="logout")
            code, out, err = await asyncio.to_thread(pom_cli, capsys, url, admin_token, "agents", "delete", s0)
            assert code == 0 and err == ""
            await ds.send(type="login", agent=s0, id=7)
            err = await ds.until(type="error")
            assert (err["code"], err["field"], err["id"]) == ("unknown_agent", "agent", 7)

    asyncio.run(scenario())
    assert admin.get(f"/agents/{s0}").status_code == 404
    assert admin.patch(f"/agents/{s0}", json={"name": "x"}).status_code == 404
    assert agent.get(f"/agents/{s0}").status_code == 401            # its token is revoked
    assert s0 not in [a["login"] for a in client.agents(group=silver)]
    agent_id = made[s0]["id"]
    assert conn.execute("SELECT state FROM agents WHERE id = %s", (agent_id,)).fetchone()[0] == "deleted"
    events = [r[0] for r in conn.execute("SELECT event FROM agent_events WHERE agent_id = %s ORDER BY id",
                                         (agent_id,))]
    assert {"login", "ready", "logout"} <= set(events)                          # its history stays
    assert conn.execute("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = %s",
                        (token.json()["id"],)).fetchone()[0]
    again = client.create_agent(s0, s0, ["sales"], [silver])                  # created again: the same row
    assert again["id"] == agent_id and again["state"] == "logged_out"
    assert agent.get(f"/agents/{s0}").status_code == 401                      # the old token stays revoked
    campaigns.command(job, "stop")
    deadline = time.monotonic() + 30
    while job in ray.get(am.jobs.remote()) and time.monotonic() < deadline:
        time.sleep(0.2)
    client.close()
