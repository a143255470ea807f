"""The `make run` demo's agent-based job: its predictive strategy (examples/agents-predictive.yaml)
worked by the demo's simulated agents, created and logged in over a served gateway as `pom run`
does (demo.create_agents, demo.work), and the summary's occupancy and abandon rate
(console.agent_figures) checked against the ledger and the agents' transitions read here."""
from __future__ import annotations

import threading
import time

import yaml

from api.console import agent_figures, summary
from pom_actors import demo

from .conftest import SCALE, phone_contacts, served_gateway

CONTACTS = 60


def test_demo_agent_job_summary_shows_occupancy_and_abandon_rate_from_the_ledger(pom, campaigns, conn,
                                                                                 admin_token):
    strategy = yaml.safe_load(demo.strategy_text("agents-predictive"))
    campaign = campaigns.make(strategy, phone_contacts(CONTACTS))
    stop = threading.Event()
    with served_gateway(pom.settings) as address:
        demo.create_agents(f"http://{address}", admin_token)
        floor = demo.work(f"http://{address}", admin_token, SCALE, stop)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and conn.execute(
                    "SELECT count(*) FROM agents WHERE login = ANY(%s) AND state = 'ready'",
                    (demo.logins(),)).fetchone()[0] < demo.AGENTS:
                time.sleep(0.1)
            job = campaigns.start(campaign)
            assert campaigns.wait(job, timeout=120)["state"] == "completed"
            time.sleep(1.0)                               # the last wrap-ups disposed, the last flush
        finally:
            stop.set()
            floor.join(timeout=10)
    figures = agent_figures(conn, job)
    codes = dict(conn.execute("SELECT code, count(*) FROM attempts WHERE job_id = %s GROUP BY code",
                              (job,)).fetchall())
    live = codes.get("answer_human", 0) + codes.get("abandoned", 0)
    assert codes.get("answer_human", 0) > 0
    assert abs(figures["abandon rate"] - codes.get("abandoned", 0) / live) < 1e-6
    busy = logged_in = 0.0                             # each event lasts until the agent's next one
    rows = conn.execute("SELECT e.agent_id, e.at, e.to_state, e.job_id FROM agent_events e JOIN agents a "
                        "ON a.id = e.agent_id WHERE a.login = ANY(%s) ORDER BY e.agent_id, e.id",
                        (demo.logins(),)).fetchall()
    for (agent, at, state, job_id), (nxt, stop_at, _, _) in zip(rows, rows[1:]):
        if agent == nxt and job_id == job:
            seconds = (stop_at - at).total_seconds()
            busy += seconds if state in ("on_call", "wrap_up") else 0.0    # wrap-up: until the disposition
            logged_in += seconds if state != "logged_out" else 0.0
    assert busy > 0 and abs(figures["occupancy"] - busy / logged_in) < 1e-4
    rendered = {row[0]: row[1] for row in zip(*(c._cells for c in summary(conn, {"id": job, "campaign": "demo",
                                                                              "state": "completed", "reason": ""}).columns))}
    assert rendered["occupancy"] == f"{figures['occupancy']:.1%}"
    print("demo agents", figures, codes)
