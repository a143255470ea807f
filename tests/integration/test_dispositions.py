"""Agents' dispositions reach the ledger: simulated agents over real WebSockets dispose every
call of a progressive job with one of the campaign's custom codes (`sale`, `no_sale`,
`wrong_person`), three in four with a call-back; each disposed attempt carries the agent's code
(the gateway's kept in its details) and a report by code counts each code; each call-back is
one more attempt of the same contact in the same job, dialled at or after its time and never
before. One agent, driven by hand, keeps its call in wrap-up until the job has completed (its
Campaign Managers gone): its disposition with a code the campaign does not have is refused
with the field at fault and the connection survives; the right one is still written to the
ledger (by the Agent Manager), its call-back refused because the job has ended."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from pom_actors.sim_agents import SimConfig
from pom_actors.store import reports

from .agent_floor import work_job
from .conftest import SCALE, phone_contacts

pytestmark = pytest.mark.timeout(150)
AGENTS = 3
CONTACTS = 100                                      # about 60 calls put through to an agent
CODES = ("sale", "no_sale", "wrong_person")
CALLBACK_S = 900.0                                  # business seconds: 1.5 real s at the session's scale


def by_hand(login: str, skill: str, token: str):
    """A desktop driven by hand: it takes one call and keeps it in wrap-up until the job has
    completed, then disposes it with a code the campaign lacks (refused), pings (the connection
    lives), and disposes it right, asking for a call-back."""
    async def desk(address: str, started: asyncio.Future) -> dict:
        import websockets

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"http://{address}/api/v1", headers=headers, timeout=30) as http:
            r = await http.post("/agents", json={"login": login, "name": login, "skills": [skill]})
            assert r.status_code == 201, r.text
            async with websockets.connect(f"ws://{address}/api/v1/agents/ws?token={token}") as ws:
                async def frame(**match) -> dict:
                    while True:
                        f = json.loads(await ws.recv())
                        if all(f.get(k) == v for k, v in match.items()):
                            return f

                await ws.send(json.dumps({"type": "login", "agent": login}))
                await ws.send(json.dumps({"type": "ready"}))
                hangup = await asyncio.wait_for(frame(type="state", event="hangup"), 60)
                job = await started
                while (await http.get(f"/jobs/{job}")).json()["state"] != "completed":
                    await asyncio.sleep(0.1)
                await ws.send(json.dumps({"type": "dispose", "code": "refund", "id": "bad"}))
                refused = await asyncio.wait_for(frame(type="error", id="bad"), 10)
                await ws.send(json.dumps({"type": "ping", "id": "alive"}))
                await asyncio.wait_for(frame(type="pong", id="alive"), 10)
                callback_at = datetime.fromisoformat(hangup["at"]) + timedelta(days=1)
                await ws.send(json.dumps({"type": "dispose", "code": "no_sale", "callback_at": callback_at.isoformat()}))
                done = await asyncio.wait_for(frame(type="state", event="dispose"), 10)
                return {"call_id": hangup["call_id"], "refused": refused, "disposed": done}
    return desk


def test_dispositions_set_the_attempts_codes_and_call_backs_dial_the_contact_again(pom, campaigns, conn,
                                                                                 admin_token):
    tag = time.monotonic_ns() % 10**9
    skill = f"dispose-{tag}"
    logins = [f"dispose-{tag}-{i}" for i in range(AGENTS)]
    late = f"dispose-{tag}-late"
    strategy = {"name": f"dispose-{tag}", "initial": "call",
                "custom_codes": [{"name": "sale", "final": True, "human_contact": True}, "no_sale", "wrong_person"],
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                                      "agents": {"skills": [skill], "wrap_up": None},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    figures = work_job(pom, campaigns, conn, admin_token, campaign, logins, skill,
                       SimConfig(wrap_mean_s=5.0, codes=CODES, callback_share=0.75, callback_s=CALLBACK_S,
                                 time_scale=SCALE), desk=by_hand(late, skill, admin_token))
    job = figures["job"]
    assert campaigns.wait(job, timeout=5)["state"] == "completed"
    assert figures["errors"] == 0
    hand = figures["desk"]
    assert (hand["refused"]["code"], hand["refused"]["field"]) == ("rejected", "code")     # and it lived on
    assert hand["disposed"]["state"] == "ready" and hand["disposed"]["reason"] == "no_sale"

    # every disposition the agents made (agent_events) is its attempt's code, those made after
    # the job ended too (the Agent Manager writes them: no manager is left to)
    def chosen() -> dict[str, str]:
        return dict(conn.execute(
            "SELECT e.call_id, e.reason FROM agent_events e JOIN agents a ON a.id = e.agent_id "
            "WHERE a.login = ANY(%s) AND e.event = 'dispose' ORDER BY e.id", ([*logins, late],)).fetchall())

    def ledger() -> list[tuple]:
        return conn.execute("SELECT work_item_id, attempt_no, code, details, created_at FROM attempts "
                            "WHERE job_id = %s AND verdict = 'allowed' ORDER BY work_item_id, attempt_no",
                            (job,)).fetchall()
    deadline = time.monotonic() + 10
    while True:
        made, rows = chosen(), ledger()
        written = {f"{r[0]}.{r[1]}": r[2] for r in rows if f"{r[0]}.{r[1]}" in made}
        if len(made) == figures["disposed"] + 1 and written == made:
            break
        assert time.monotonic() < deadline, f"dispositions missing from the ledger: {set(made.items()) - set(written.items())}"
        time.sleep(0.2)
    assert set(made.values()) <= set(CODES)
    disposed = [r for r in rows if r[2] in CODES]
    for _, _, _, details, _ in disposed:
        assert details["code_set"]["from"] == "answer_human"
    codes = Counter(r[2] for r in disposed)
    floor_codes = Counter(made[c] for c in made if c != hand["call_id"])
    assert len(floor_codes) >= 2, floor_codes             # several codes, as the agents chose them
    item, number = map(int, hand["call_id"].split("."))
    last = next(r for r in rows if (r[0], r[1]) == (item, number))
    assert last[2] == "no_sale" and not last[3]["callback"]["scheduled"] and "ended" in last[3]["callback"]["why"]

    # A call-back's attempt is made like any other: the rules may restrict it (the nuisance
    # rule's limit of calls to one contact), so every attempt counts here, whatever its verdict.
    every = conn.execute("SELECT work_item_id, attempt_no, code, details, created_at FROM attempts "
                         "WHERE job_id = %s ORDER BY work_item_id, attempt_no", (job,)).fetchall()
    by_item: dict[int, list] = {}
    for r in every:
        by_item.setdefault(r[0], []).append(r)
    callbacks = [(r, by_item[r[0]]) for r in rows if "callback" in r[3]]
    for (item, number, _, details, _), attempts in callbacks:
        asked = datetime.fromisoformat(details["callback"]["at"])
        later = [a for a in attempts if a[1] > number]
        if not details["callback"]["scheduled"]:            # asked once the job had ended: said so
            assert "ended" in details["callback"]["why"] and not later, details
            continue
        assert later and later[0][1] == number + 1         # called again once, in the same job
        assert later[0][4] >= asked                        # at or after its time, not before
    called_back = sum(1 for r, _ in callbacks if r[3]["callback"]["scheduled"])
    assert called_back
    assert len(every) == CONTACTS + called_back            # no other extra dial of any contact
    t0 = datetime.now(timezone.utc) - timedelta(days=400)
    counted = Counter()
    for r in reports.attempts_by_code(conn, t0, t0 + timedelta(days=800), job_id=job):
        counted[r["code"]] += r["attempts"]
    assert {c: counted[c] for c in CODES} == dict(codes)   # reports by code count the agents' codes
    print("dispositions", json.dumps({"attempts": len(rows), **codes, "callbacks": called_back,
                                      "asked": len(callbacks)}))
