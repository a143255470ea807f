"""Two notification jobs of different priorities share a small pool of outbound ports, run by
the real director, managers (two per job), Agent Manager and voice simulator: the ledger never
shows a job with more calls at once than its grant, nor the two together more than the pool,
and the allocation with each manager's cap and the calls in flight is readable through the API."""
from __future__ import annotations

import time

import ray

from pom_actors.names import AGENT_MANAGER, actor

from .conftest import api_client, phone_contacts
from .test_pacing_live import most_at_once

POOL = 6
CONTACTS = 120


def notify(name: str) -> dict:
    # ring 120 business s when nobody answers (200 real ms): calls long enough to overlap
    return {"name": name, "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "hello",
                                  "ring_timeout": 120, "results": {"default": "done"}}}}


def test_notification_jobs_share_the_outbound_ports_by_priority(pom, conn, campaigns, admin_token):
    handle = actor(AGENT_MANAGER)
    before = ray.get(handle.licenses.remote())["pools"]
    tag = time.monotonic_ns()
    high = campaigns.make(notify(f"ports-high-{tag}"), phone_contacts(CONTACTS), priority=10)
    low = campaigns.make(notify(f"ports-low-{tag}"), phone_contacts(CONTACTS), priority=5)
    ray.get(handle.set_pools.remote({**{p: v["size"] for p, v in before.items()}, "ports": 0}))
    try:
        jobs = {campaigns.start(high): "high", campaigns.start(low): "low"}
        with api_client(pom.settings, admin_token) as http:
            deadline = time.monotonic() + 30                # no port yet: no call; then both at once
            while time.monotonic() < deadline:
                told = {j["job_id"] for j in http.get("/api/v1/licenses").json()["jobs"]}
                if set(jobs) <= told:
                    break
                time.sleep(0.1)
            assert not conn.execute("SELECT count(*) FROM attempts WHERE job_id = ANY(%s)",
                                    (list(jobs),)).fetchone()[0]
            ray.get(handle.set_pools.remote({**{p: v["size"] for p, v in before.items()}, "ports": POOL}))
            shared: set[tuple] = set()           # (high's grant, low's) while both run
            caps, in_use = [], []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and any(campaigns.items(j).get(s) for j in jobs
                                                      for s in ("ready", "in_flight", "scheduled")):
                lic = http.get("/api/v1/licenses")
                assert lic.status_code == 200, lic.text
                mine = {jobs[j["job_id"]]: j for j in lic.json()["jobs"] if j["job_id"] in jobs}
                if len(mine) == 2:
                    shared.add((mine["high"]["granted"], mine["low"]["granted"]))
                caps += [(j["granted"], j["caps"]) for j in mine.values()]
                in_use.append(lic.json()["pools"]["ports"]["in_use"])
                time.sleep(0.1)
        for j in jobs:
            campaigns.wait(j, timeout=30)
        assert shared == {(4, 2)}, shared              # priority 10 and 5 over 6 ports
        calls = {name: conn.execute("SELECT created_at, completed_at FROM attempts WHERE job_id = %s "
                                    "AND verdict = 'allowed'", (j,)).fetchall() for j, name in jobs.items()}
        assert all(len(c) == CONTACTS for c in calls.values())
        # while both run: until the last call of the first to end (the other's grant grows then)
        until = min(max(e for _, e in c) for c in calls.values())
        both = {name: [(s, min(e, until)) for s, e in c if s < until] for name, c in calls.items()}
        most = {name: most_at_once(c) for name, c in both.items()}
        assert most["high"] <= 4 and most["low"] <= 2, most
        assert most["high"] >= 3 and most["low"] == 2, most         # and each used its share
        assert most_at_once([i for c in calls.values() for i in c]) <= POOL
        assert all(sum(c.values()) <= g for g, c in caps if c), caps        # the managers' caps: within the grant
        assert max(in_use) <= POOL and max(in_use) >= 2
        print(f"ports: most calls at once while both ran {most}, pool in use at most {max(in_use)}")
    finally:
        ray.get(handle.set_pools.remote({p: v["size"] for p, v in before.items()}))
