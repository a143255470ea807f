"""A preview job worked by simulated agents over real WebSockets: the director, two Campaign
Managers, the Agent Manager, the voice simulator and the gateway's agent hub, served by uvicorn.

Every contact is handed to an agent first: its card is accepted (the call is dialled once and
put through to that agent), skipped (not dialled: the ledger has the agent's skip code) or left
to time out (the strategy settles it as `timeout`), exactly once — the ledger, the gateways'
orders and the agents' log (agent_events) agree card by card; the agents' dispositions time
their wrap-ups (`store.pacing.recent_wraps`, a new pacer's warm start). The session's clock
runs 600 times real time: the card's 1,800 business seconds are three real seconds, so that a
desktop's accept (sent as its card arrives) is not late on a machine that stalls.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from pom_actors.sim_agents import SimConfig
from pom_actors.store import pacing

from .agent_floor import work_job
from .conftest import CLOCK_START, SCALE, gateway_orders, phone_contacts

pytestmark = pytest.mark.timeout(180)
AGENTS = 3
CONTACTS = 30


def test_a_preview_job_accepts_skips_or_times_out_every_contact_once(pom, campaigns, conn, admin_token):
    tag = time.monotonic_ns() % 10**9
    skill = f"preview-{tag}"
    logins = [f"preview-{tag}-{i}" for i in range(AGENTS)]
    strategy = {"name": f"preview-{tag}", "initial": "call", "custom_codes": ["wrong_person"],
                "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                      "pacing": {"mode": "preview", "settings": {
                                          "timeout_s": 1800, "dial_on_timeout": False,
                                          "skip_codes": ["skipped", "wrong_person"]}},
                                      "agents": {"skills": [skill], "wrap_up": "30s"},
                                      "script": {"text": "Hello {first_name}"},
                                      "results": {"default": "done"}}}}
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    figures = work_job(pom, campaigns, conn, admin_token, campaign, logins, skill,
                       SimConfig(wrap_mean_s=5.0, time_scale=SCALE, accept_share=0.5, ignore_share=0.25),
                       timeout_s=120)
    cards = {c: act for a in figures["agents"] for c, act in a.stats.cards.items()}   # card -> what its agent did
    job = figures["job"]
    assert campaigns.wait(job, timeout=5)["state"] == "completed"
    rows = conn.execute("SELECT work_item_id || '.' || attempt_no, work_item_id, code, details FROM attempts "
                        "WHERE job_id = %s AND verdict = 'allowed'", (job,)).fetchall()
    returned = [r for r in rows if (r[3] or {}).get("not_sent")]       # cards withdrawn: due again
    final = {aid: (code, d) for aid, _, code, d in rows if not (d or {}).get("not_sent")}
    assert len(final) == CONTACTS == len({item for _, item, code, d in rows if not (d or {}).get("not_sent")})
    assert set(final) <= set(cards) and all(r[0] in cards for r in returned)
    events: dict[str, list[tuple[int, str, str | None]]] = {}
    for agent, call, event, reason in conn.execute(
            "SELECT e.agent_id, e.call_id, e.event, e.reason FROM agent_events e JOIN agents a ON a.id = e.agent_id "
            "WHERE a.login = ANY(%s) AND e.call_id IS NOT NULL ORDER BY e.id", (logins,)):
        events.setdefault(call, []).append((agent, event, reason))
    dialled = gateway_orders()
    accepted = {c for c, act in cards.items() if act == "accept" and c in final}
    assert sorted(c for c in dialled if c in cards) == sorted(accepted)     # each accepted card dialled once
    for card_id, (code, details) in final.items():
        log = events[card_id]
        assert log[0][1:] == ("reserve", "preview"), (card_id, log)
        ends = [(e, r) for _, e, r in log if e == "accept" or (e == "release" and r in ("skipped", "timeout", "cancelled"))]
        act = cards[card_id]
        if act == "accept":                            # dialled and, if a person answered, put through to that agent
            assert ends == [("accept", "agent")] and code not in ("skipped", "timeout")
            if code == "answer_human":
                assert details["agent_id"] == log[0][0] and card_id in figures["pops"]
        elif act == "skip":
            assert ends == [("release", "skipped")] and code in ("skipped", "wrong_person")
            assert details["card"] == "skip" and details["card_agent"] == log[0][0]
        else:
            assert ends == [("release", "timeout")] and (code, details["card"]) == ("timeout", "timeout")
    assert {cards[c] for c in final} == {"accept", "skip", "ignore"}        # all three fates were met
    assert figures["errors"] == 0
    # the agents' dispositions time their wrap-ups: what a new pacer of the campaign starts from
    wraps, hangup = [], {}
    for agent, event, at in conn.execute(
            "SELECT e.agent_id, e.event, e.at FROM agent_events e JOIN agents a ON a.id = e.agent_id "
            "WHERE a.login = ANY(%s) AND e.event IN ('hangup', 'dispose', 'wrap_timeout') ORDER BY e.id", (logins,)):
        start = hangup.pop(agent, None)
        if event == "hangup":
            hangup[agent] = at
        elif event == "dispose" and start is not None:
            wraps.append((at - start).total_seconds())
    wrap_s, wrapped = pacing.recent_wraps(conn, campaign, CLOCK_START - timedelta(days=1))
    assert wrapped == len(wraps) == figures["disposed"] > 0 and abs(wrap_s - sum(wraps)) < 1e-3
    print("preview", json.dumps({"contacts": CONTACTS, "accepted": len(accepted), "returned": len(returned),
                                 "skipped": sum(cards[c] == "skip" for c in final),
                                 "timed_out": sum(cards[c] == "ignore" for c in final)}))
