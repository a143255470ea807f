"""Answered calls of a progressive job bridged onto simulated agents over real WebSockets, or
abandoned: the director, two Campaign Managers, the Agent Manager, the voice simulator's agent
legs and the gateway's agent hub, served by uvicorn.

The job completes; every call a person answered is either connected to an agent — its ledger
row names the agent, whose transitions show that call reserved, connected and hung up, and
whose desktop got its screen pop — or abandoned (the message played, no agent connected),
and the campaign's persisted rule window counts both. The session's clock runs 600 times real
time, where the rule's 2 business seconds are 3.3 real milliseconds, less than one manager
cycle: the session's simulator lets an answered call wait 300 business seconds (0.5 real s,
conftest.py), and the test checks the bookkeeping of both fates, not the abandon rate. The
agents' wrap-ups, 600 business seconds on average (a real second, with no limit), keep them
busy longer than that wait: of the calls over-dialled at ratio 3, those answered while every
agent wraps up are abandoned, the others connected.
"""
from __future__ import annotations

import json
import time

import pytest
import ray

from pom_actors import names
from pom_actors.sim_agents import SimConfig

from .agent_floor import work_job
from .conftest import SCALE, phone_contacts

pytestmark = pytest.mark.timeout(150)
AGENTS = 3
CONTACTS = 40
WAIT_S = 300.0                                     # the session's voice_bridge_wait_s


def test_answered_calls_are_connected_to_agents_or_abandoned_and_the_ledger_agrees(pom, campaigns, conn,
                                                                                 admin_token):
    tag = time.monotonic_ns() % 10**9
    skill = f"bridge-{tag}"
    logins = [f"bridge-{tag}-{i}" for i in range(AGENTS)]
    strategy = {"name": f"bridge-{tag}", "initial": "call",
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 3.0}},
                                      "agents": {"skills": [skill], "wrap_up": None},
                                      "script": {"text": "Hello {first_name}"},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    figures = work_job(pom, campaigns, conn, admin_token, campaign, logins, skill,
                       SimConfig(wrap_mean_s=600.0, time_scale=SCALE))
    job = figures["job"]
    assert campaigns.wait(job, timeout=5)["state"] == "completed"
    rows = conn.execute("SELECT work_item_id || '.' || attempt_no, code, details FROM attempts "
                        "WHERE job_id = %s AND verdict = 'allowed'", (job,)).fetchall()
    assert len(rows) == CONTACTS
    connected = {call: d for call, code, d in rows if code == "answer_human"}
    abandoned = {call: d for call, code, d in rows if code == "abandoned"}
    events: dict[str, list[tuple[int, str]]] = {}
    for agent, call, event in conn.execute(
            "SELECT e.agent_id, e.call_id, e.event FROM agent_events e JOIN agents a ON a.id = e.agent_id "
            "WHERE a.login = ANY(%s) AND e.call_id IS NOT NULL ORDER BY e.id", (logins,)):
        events.setdefault(call, []).append((agent, event))
    for call, d in connected.items():             # connected: the agent the ledger names took it
        agent = d["agent_id"]
        assert [e for a, e in events[call] if a == agent][:3] == ["reserve", "connect", "hangup"], call
        assert call in figures["pops"] and d["wait_s"] <= WAIT_S
    for call, d in abandoned.items():              # abandoned: nobody was connected to it
        assert d["message"] == "played" and d["wait_s"] == WAIT_S
        assert "connect" not in [e for _, e in events.get(call, [])]
    connects = [call for call, evs in events.items() for _, e in evs if e == "connect"]
    assert sorted(connects) == sorted(connected)  # every connect in the agents' log is a connected call
    window = conn.execute("SELECT sum(live), sum(abandoned) FROM pacing_counters WHERE campaign_id = %s",
                          (campaign,)).fetchone()
    assert tuple(window) == (len(connected) + len(abandoned), len(abandoned))
    # the bridge works end to end, over Ray and WebSockets (if not: what the actors counted)
    assert connected, {"agent_manager": ray.get(names.actor(names.AGENT_MANAGER).status.remote()),
                       "gateways": [ray.get(g.stats.remote()) for g in names.gateways().values()],
                       "abandoned": list(abandoned.values())[:3], "states": figures["states"]}
    assert figures["errors"] == 0 and figures["disposed"] == len(connected), \
        ([e for a in figures["agents"] for e in a.stats.errors][:5], figures["disposed"], len(connected))
    print("bridging", json.dumps({"answered": len(connected) + len(abandoned), "connected": len(connected),
                                  "abandoned": len(abandoned), "states": figures["states"]}))
