"""An agent's disposition survives an Agent Manager restart between its acknowledgment and its
Campaign Manager's take (issue 8: "after its own restart it rebuilds from PostgreSQL ... no call
is lost"), and reaches the ledger exactly once.

The store: a disposition written with its agent's flush (agent_dispositions) is read back, and
is applied only in the transaction that deletes it, so writing it a second time (a restarted
Agent Manager hands it out again) writes nothing. The actors: a desktop's disposition is
acknowledged (a `ping` sent after it is answered only once its `desk` call returned, i.e. once
it is written) while the job's Campaign Managers are frozen (SIGSTOP), so none can take it; the
Agent Manager is then killed and restarted by Ray; once the managers go on, the attempt carries
the agent's code and its call-back, and the kept row is gone."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import ray

from pom_actors import names
from pom_actors.core.agents.disposal import disposals
from pom_actors.store import dispositions as ledger
from pom_actors.store.agents import AgentStore

from .conftest import phone_contacts, served_gateway

pytestmark = pytest.mark.timeout(180)
NOTIFY = {"name": "kept", "initial": "call", "custom_codes": ["sale"],
          "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hi",
                                "results": {"default": "done"}}}}


def _until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"{what} not reached"
        time.sleep(0.1)
    return found


def test_a_kept_disposition_is_read_back_and_written_into_the_ledger_once(pom, campaigns, conn):
    job = campaigns.start(campaigns.make({**NOTIFY, "name": f"kept-{time.monotonic_ns()}"}, phone_contacts(3)))
    assert campaigns.wait(job)["state"] == "completed"
    item, number, code = conn.execute(
        "SELECT work_item_id, attempt_no, code FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
        "ORDER BY work_item_id LIMIT 1", (job,)).fetchone()
    call = f"{item}.{number}"
    at = datetime.now(timezone.utc)
    store = AgentStore(conn)
    agent = store.create_agent(f"kept-{time.monotonic_ns()}")
    disposition = {"agent_id": agent, "call_id": call, "job_id": job, "code": "sale", "callback_at": None,
                   "at": at, "talk_s": 12.5, "wrap_s": 3.0}
    store.write([], [], [disposition, {**disposition, "call_id": "card-1"}])   # a card's: not kept
    assert [d for d in store.dispositions() if d["job_id"] == job] == [disposition]
    mine = lambda rows: [d["call_id"] for d in rows if d["job_id"] == job]           # noqa: E731
    assert mine(store.dispositions(0, [])) == [call]                 # handed out again (reoffer) ...
    assert mine(store.dispositions(0, [call])) == mine(store.dispositions(3600, [])) == []   # unless known, or new

    def row():
        return conn.execute("SELECT code, details, xmin::text FROM attempts WHERE work_item_id = %s "
                            "AND attempt_no = %s", (item, number)).fetchone()
    first = ledger.dispose(conn, job, disposals([disposition], "completed", None))
    assert first["applied"] == [call] and not first["written"]
    written = row()
    assert written[0] == "sale" and written[1]["code_set"]["from"] == code
    assert conn.execute("SELECT count(*) FROM agent_dispositions WHERE call_id = %s", (call,)).fetchone()[0] == 0
    again = ledger.dispose(conn, job, disposals([disposition, {**disposition, "code": "answer_machine"}],
                                                "completed", None))
    assert again["written"] == [call] and not again["applied"]       # handed out twice: written once
    assert row() == written                                         # the row not even rewritten (xmin)


def test_a_call_back_is_decided_against_the_jobs_state_in_the_database(pom, campaigns, conn):
    """A manager's view of its job may be a moment old: a call-back it decided while the job ran
    is refused if the job has ended meanwhile (the job's row is read, locked, in the
    disposition's transaction), and its contact is not made due again."""
    job = campaigns.start(campaigns.make({**NOTIFY, "name": f"late-{time.monotonic_ns()}"}, phone_contacts(2)))
    assert campaigns.wait(job)["state"] == "completed"
    item, number = conn.execute("SELECT work_item_id, attempt_no FROM attempts WHERE job_id = %s AND "
                                "verdict = 'allowed' ORDER BY work_item_id LIMIT 1", (job,)).fetchone()
    store = AgentStore(conn)
    agent = store.create_agent(f"late-{time.monotonic_ns()}")
    at = datetime.now(timezone.utc)
    disposition = {"agent_id": agent, "call_id": f"{item}.{number}", "job_id": job, "code": "sale",
                   "callback_at": at + timedelta(hours=1), "at": at, "talk_s": 1.0, "wrap_s": 1.0}
    store.write([], [], [disposition])
    stale = disposals([disposition], "running", None)               # what a manager a moment behind decides
    assert stale[0].callback_refused is None
    done = ledger.dispose(conn, job, stale)
    assert done["applied"] == [f"{item}.{number}"] and done["called_back"] == []
    details = conn.execute("SELECT details FROM attempts WHERE work_item_id = %s AND attempt_no = %s",
                           (item, number)).fetchone()[0]
    assert details["callback"]["scheduled"] is False and "ended" in details["callback"]["why"]
    assert conn.execute("SELECT state FROM work_items WHERE id = %s", (item,)).fetchone()[0] == "done"


def _manager_pids(job: int) -> list[int]:
    pids = []
    for index in range(16):
        handle = names.actor(names.manager_name(job, index))
        if handle is None:
            break
        pids.append(ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=10))
    return pids


def test_a_disposition_acknowledged_survives_an_agent_manager_kill_before_its_manager_takes_it(
        pom, campaigns, conn, admin_token):
    tag = time.monotonic_ns() % 10**9
    skill, login = f"kept-{tag}", f"kept-{tag}"
    strategy = {"name": f"kept-{tag}", "initial": "call", "custom_codes": ["sale", "no_sale"],
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                                      "agents": {"skills": [skill], "wrap_up": None},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(20))
    figures: dict = {}

    async def desk(address: str) -> None:
        import websockets

        headers = {"Authorization": f"Bearer {admin_token}"}
        async with httpx.AsyncClient(base_url=f"http://{address}/api/v1", headers=headers, timeout=30) as http:
            r = await http.post("/agents", json={"login": login, "name": login, "skills": [skill]})
            assert r.status_code == 201, r.text
        async with websockets.connect(f"ws://{address}/api/v1/agents/ws?token={admin_token}") as ws:
            async def frame(timeout: float = 60, **match) -> dict:
                async def find():
                    while True:
                        f = json.loads(await ws.recv())
                        if all(f.get(k) == v for k, v in match.items()):
                            return f
                return await asyncio.wait_for(find(), timeout)

            await ws.send(json.dumps({"type": "login", "agent": login}))
            await ws.send(json.dumps({"type": "ready"}))
            await frame(type="state", state="ready")
            figures["job"] = job = await asyncio.to_thread(campaigns.start, campaign)
            hangup = await frame(type="state", event="hangup")        # a call put through, ended: wrap-up
            figures["call"] = call = hangup["call_id"]
            item, number = map(int, call.split("."))
            settled = "SELECT 1 FROM attempts WHERE work_item_id = %s AND attempt_no = %s AND code IS NOT NULL"
            await asyncio.to_thread(_until, lambda: conn.execute(settled, (item, number)).fetchone(), 30,
                                    "the call's attempt settled")      # so its code is set at the first take
            pids = await asyncio.to_thread(_manager_pids, job)
            assert pids
            for pid in pids:                                          # no manager can take it now
                os.kill(pid, signal.SIGSTOP)
            try:
                figures["callback_at"] = callback_at = datetime.fromisoformat(hangup["at"]) + timedelta(days=1)
                await ws.send(json.dumps({"type": "dispose", "code": "no_sale", "callback_at": callback_at.isoformat()}))
                await ws.send(json.dumps({"type": "ping", "id": "ack"}))
                await frame(type="pong", id="ack")                    # answered after the dispose: acknowledged
                am = ray.get_actor(names.AGENT_MANAGER)
                ray.kill(am, no_restart=False)                        # Ray restarts it; it rebuilds
                again = await frame(type="state", event="resync")
                assert again["state"] == "ready"
                await ws.send(json.dumps({"type": "not_ready", "reason": "done"}))   # no other call
                await frame(type="state", event="not_ready")
            finally:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:                    # replaced meanwhile
                        pass

    with served_gateway(pom.settings) as address:
        asyncio.run(desk(address))
    job, call = figures["job"], figures["call"]
    item, number = map(int, call.split("."))

    def written():
        r = conn.execute("SELECT code, details FROM attempts WHERE work_item_id = %s AND attempt_no = %s",
                         (item, number)).fetchone()
        return r if r is not None and r[0] == "no_sale" else None
    code, details = _until(written, 60, "the agent's code in the ledger")
    assert details["code_set"]["from"] == "answer_human"
    assert details["callback"]["scheduled"] is True
    assert datetime.fromisoformat(details["callback"]["at"]) == figures["callback_at"]
    _until(lambda: conn.execute("SELECT count(*) FROM agent_dispositions WHERE call_id = %s",
                                (call,)).fetchone()[0] == 0, 30, "the kept disposition deleted")
    assert conn.execute("SELECT count(*) FROM agent_events WHERE call_id = %s AND event = 'dispose'",
                        (call,)).fetchone()[0] == 1              # one disposition, written once
    campaigns.command(job, "stop")
