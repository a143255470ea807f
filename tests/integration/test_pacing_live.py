"""A progressive job worked by agents logged in to the Agent Manager, run by the real director,
managers (two per job here, sharing the agents), rule engine and voice simulator: it dials by
its ready agents — the ledger never shows more calls at once than ready agents x ratio — and
completes; its outcomes land in the campaign's persisted rule window, and its pacing is
readable through the API."""
from __future__ import annotations

import time

import ray

from pom_actors.core.lifecycle import TERMINAL, JobState
from pom_actors.names import AGENT_MANAGER, actor
from pom_actors.store import jobs as jobstore

from .conftest import api_client, phone_contacts

AGENTS = 3
CONTACTS = 30


def most_at_once(intervals: list[tuple]) -> int:
    """The most intervals [start, end) open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    open_, most = 0, 0
    for _, step in edges:
        open_ += step
        most = max(most, open_)
    return most


def test_a_progressive_job_dials_by_its_ready_agents_and_completes(pom, conn, campaigns, admin_token):
    handle = actor(AGENT_MANAGER)
    tag = time.monotonic_ns()
    skill = f"pacing-{tag}"                 # a skill of its own: no other test's agent joins this job
    strategy = {"name": f"progressive-{tag}", "initial": "call",
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                                      "agents": {"skills": [skill]}, "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    agents = [ray.get(handle.add_agent.remote(f"pacing-{tag}-{i}", f"Agent {i}", [skill])) for i in range(AGENTS)]
    for a in agents:
        ray.get(handle.command.remote(a, "login"))
        ray.get(handle.command.remote(a, "ready"))
    try:
        job = campaigns.start(campaign)
        seen: list[dict] = []
        with api_client(pom.settings, admin_token) as http:
            deadline = time.monotonic() + 90
            while JobState(jobstore.job(conn, job)["state"]) not in TERMINAL and time.monotonic() < deadline:
                r = http.get(f"/api/v1/jobs/{job}/pacing")
                assert r.status_code == 200, r.text
                if r.json()["handlers"]:
                    seen.append(r.json()["handlers"]["call"])
                time.sleep(0.1)
        final = campaigns.wait(job, timeout=5)
        assert final["state"] == "completed", final
        calls = conn.execute("SELECT created_at, completed_at FROM attempts WHERE job_id = %s AND verdict = 'allowed'",
                             (job,)).fetchall()
        assert len(calls) == CONTACTS
        assert most_at_once(calls) <= AGENTS                      # ratio 1: never more lines than ready agents
        assert most_at_once(calls) >= 2                           # and it does dial ahead of one agent
        window = conn.execute("SELECT sum(dials), sum(live) FROM pacing_counters WHERE campaign_id = %s",
                              (campaign,)).fetchone()
        live = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code IN ('answer_human', 'abandoned')",
                            (job,)).fetchone()[0]                 # an abandoned call was answered too
        assert window == (CONTACTS, live)                         # every call in the persisted window, once
        assert seen and all(f["applied"] == "progressive" for f in seen)
        busy = [f for f in seen if f["agents"]]
        assert busy and max(f["agents"] for f in busy) == AGENTS   # both managers' shares: all 3 agents
        assert all(f["in_flight"] <= AGENTS for f in seen)
    finally:
        for a in agents:
            ray.get(handle.command.remote(a, "force_logoff"))
