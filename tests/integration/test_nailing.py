"""Nailing end to end: the Agent Manager, the director, two Campaign Managers, the media
gateway's agent legs and simulated agents over real WebSockets.

Three agents log in; a progressive job starts and they are nailed at attach (one session each,
`nail` in agent_events); every call of the job a person answered and an agent took is bridged
onto its agent's nailed session (the ledger names the session); the job ends, and a second job
started within the grace (the session's `nail_grace_s`, conftest.py: 6000 business seconds,
10 real seconds at 600x) gets the same sessions back (`reuse`) and its calls are bridged onto
them too; the Agent Manager is killed while they are in their grace and re-attaches them from
PostgreSQL (the same ids, no new leg at the gateways); when the grace passes, the sessions are
released (`unnail`) while the agents are still logged in.
"""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import ray

from pom_actors import names
from pom_actors.sim_agents import SimConfig, SimFloor

from .conftest import SCALE, phone_contacts, served_gateway

pytestmark = pytest.mark.timeout(150)
CONTACTS = 60                                      # ~27 answered: a few connected whatever the agents do


def test_agents_are_nailed_at_attach_calls_bridge_on_the_legs_and_the_next_job_reuses_them(
        pom, campaigns, conn, admin_token):
    tag = time.monotonic_ns() % 10**9
    skill = f"nail-{tag}"
    logins = [f"nail-{tag}-{i}" for i in range(3)]
    strategy = {"name": f"nail-{tag}", "initial": "call",
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 1.5}},
                                      "agents": {"skills": [skill], "wrap_up": "5m"},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    am = names.actor(names.AGENT_MANAGER)
    grace_real_s = pom.settings.nail_grace_s / SCALE

    def sessions() -> dict[str, dict]:
        return {k: v for k, v in ray.get(am.sessions.remote()).items() if k in logins}

    def bridged(job: int) -> dict[str, str]:
        """Each connected call of `job`: call -> the session the gateway bridged it onto."""
        rows = conn.execute("SELECT work_item_id || '.' || attempt_no, details FROM attempts "
                            "WHERE job_id = %s AND code = 'answer_human'", (job,)).fetchall()
        return {call: d["session_id"] for call, d in rows}

    def opened() -> int:
        """Agent legs the gateways opened since they started."""
        return sum(ray.get(g.stats.remote())["agent_legs"]["opened"] for g in names.gateways().values())

    def run_job() -> tuple[int, dict[str, dict]]:
        job = campaigns.start(campaign)
        deadline = time.monotonic() + 20
        held = sessions()
        while not (len(held) == 3 and {s["job_id"] for s in held.values()} == {job}) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            held = sessions()
        assert campaigns.wait(job, timeout=60)["state"] == "completed"
        return job, held

    with served_gateway(pom.settings) as address:
        http = httpx.Client(base_url=f"http://{address}", timeout=30,
                            headers={"Authorization": f"Bearer {admin_token}"})
        for login in logins:
            assert http.post("/api/v1/agents", json={"login": login, "skills": [skill]}).status_code == 201

        async def scenario() -> dict:
            floor = SimFloor(f"ws://{address}/api/v1/agents/ws", logins,
                             SimConfig(wrap_mean_s=5.0, time_scale=SCALE), token=admin_token)
            await floor.start()
            try:
                deadline = time.monotonic() + 20
                while {a.state for a in floor.agents} != {"ready"} and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                out = {"before": await asyncio.to_thread(sessions)}      # logged in, no job: nothing nailed
                out["first_job"], out["first"] = await asyncio.to_thread(run_job)
                ended_at = time.monotonic()
                out["second_job"], out["second"] = await asyncio.to_thread(run_job)
                out["reused_in"] = time.monotonic() - ended_at
                # the Agent Manager killed while the sessions are in their grace: rebuilt from
                # PostgreSQL, it re-attaches them, and the gateways keep the same legs
                out["legs_before"] = await asyncio.to_thread(opened)
                await asyncio.to_thread(ray.kill, am, no_restart=False)
                out["restarted"] = await asyncio.to_thread(sessions)   # answered by the new incarnation
                await asyncio.sleep(1.0)                                 # its ticks gave the gateways the list
                out["legs_after"] = await asyncio.to_thread(opened)
                deadline = time.monotonic() + grace_real_s + 10        # the agents stay logged in
                while await asyncio.to_thread(sessions) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                out["after"] = await asyncio.to_thread(sessions)
                out["states"] = {a["login"]: a["state"] for a in await asyncio.to_thread(
                    lambda: [http.get(f"/api/v1/agents/{login}").json() for login in logins])}
                return out
            finally:
                await floor.close()

        run = asyncio.run(scenario())

    assert run["before"] == {}
    first, second = run["first"], run["second"]
    # nailed at attach: one session per agent, serving the first job
    assert set(first) == set(logins) and len({s["session_id"] for s in first.values()}) == 3
    assert {s["job_id"] for s in first.values()} == {run["first_job"]}
    ids = {login: s["session_id"] for login, s in first.items()}
    # its calls were bridged onto those sessions: no agent leg per call
    calls = bridged(run["first_job"])
    assert calls and set(calls.values()) <= set(ids.values())
    # the second job, started within the grace, got the very same sessions back (`reuse`, below:
    # after the grace it would have been `unnail` then a new `nail`)
    assert {login: s["session_id"] for login, s in second.items()} == ids
    assert {s["job_id"] for s in second.values()} == {run["second_job"]}
    again = bridged(run["second_job"])
    assert again and set(again.values()) <= set(ids.values())
    # after the Agent Manager's restart: the same sessions, detached, and no new leg at a gateway
    assert {login: s["session_id"] for login, s in run["restarted"].items()} == ids
    assert run["legs_after"] == run["legs_before"]
    # after the second job and its grace: released, while the agents were still logged in
    assert run["after"] == {} and "logged_out" not in run["states"].values(), run["states"]

    events = conn.execute("SELECT a.login, e.event, e.reason FROM agent_events e JOIN agents a ON a.id = e.agent_id "
                          "WHERE a.login = ANY(%s) AND e.event IN ('nail', 'reuse', 'unnail') ORDER BY e.id",
                          (logins,)).fetchall()
    for login in logins:
        mine = [(event, sid) for who, event, sid in events if who == login]
        assert mine == [("nail", ids[login]), ("reuse", ids[login]), ("unnail", ids[login])], mine
    print("nailing", json.dumps({"calls_first": len(calls), "calls_second": len(again),
                                 "reused_after_s": round(run["reused_in"], 2), "grace_real_s": grace_real_s}))
