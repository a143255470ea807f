"""Agents' dispositions reach the ledger: simulated agents over real WebSockets dispose every
call of a progressive job with a custom code, some with a call-back; each disposed attempt
carries the agent's code (the gateway's kept in its details) and a report by code counts it,
and each call-back is one more attempt of the same contact in the same job, dialled at or after
its time and never before."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.sim_agents import SimConfig
from pom_actors.store import reports

from .agent_floor import work_job
from .conftest import SCALE, phone_contacts

pytestmark = pytest.mark.timeout(150)
AGENTS = 3
CONTACTS = 40
CALLBACK_S = 900.0                                  # business seconds: 1.5 real s at the session's scale


def test_dispositions_set_the_attempts_codes_and_call_backs_dial_the_contact_again(pom, campaigns, conn,
                                                                                 admin_token):
    tag = time.monotonic_ns() % 10**9
    skill = f"dispose-{tag}"
    logins = [f"dispose-{tag}-{i}" for i in range(AGENTS)]
    strategy = {"name": f"dispose-{tag}", "initial": "call",
                "custom_codes": [{"name": "sale", "final": True, "human_contact": True}],
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                                      "agents": {"skills": [skill], "wrap_up": "30s"},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    figures = work_job(pom, campaigns, conn, admin_token, campaign, logins, skill,
                       SimConfig(wrap_mean_s=5.0, codes=("sale",), callback_share=1.0, callback_s=CALLBACK_S,
                                 time_scale=SCALE))
    job = figures["job"]
    assert campaigns.wait(job, timeout=5)["state"] == "completed"
    assert figures["errors"] == 0
    rows = conn.execute("SELECT work_item_id, attempt_no, code, details, created_at FROM attempts "
                        "WHERE job_id = %s AND verdict = 'allowed' ORDER BY work_item_id, attempt_no",
                        (job,)).fetchall()
    disposed = [r for r in rows if r[2] == "sale"]
    # every disposition is its attempt's code, but for the last call of an agent disposed after
    # the job's managers stopped (the job ends when its last outcome settles)
    assert figures["disposed"] - AGENTS <= len(disposed) <= figures["disposed"] and disposed
    for _, _, _, details, _ in disposed:
        assert details["code_set"]["from"] == "answer_human"
    by_item: dict[int, list] = {}
    for r in rows:
        by_item.setdefault(r[0], []).append(r)
    callbacks = [(r, by_item[r[0]]) for r in rows if "callback" in r[3]]
    assert callbacks                                       # some asked for a call-back
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
    assert len(rows) == CONTACTS + called_back             # no other extra dial of any contact
    t0 = datetime.now(timezone.utc) - timedelta(days=400)
    counted = sum(r["attempts"] for r in reports.attempts_by_code(conn, t0, t0 + timedelta(days=800), job_id=job)
                  if r["code"] == "sale")
    assert counted == len(disposed)                        # reports by code count the agents' codes
    print("dispositions", json.dumps({"attempts": len(rows), "sale": len(disposed), "callbacks": called_back}))
