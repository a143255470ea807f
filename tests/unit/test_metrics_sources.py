"""What the actors keep for `/metrics`: the fixed-bucket histogram, a manager's pacing figures,
live answers, abandons and dispatch latency in its `status()`, and the Agent Manager's
`metrics()` (agents by state and job, licenses, reserve-to-connect latency)."""
from __future__ import annotations

import pytest

from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.licenses import LicensePools
from pom_actors.core.histogram import Histogram

from .test_agent_manager_service import Floor
from .test_manager_service import CONTACTS, World, run


def test_the_histogram_keeps_cumulative_counts_per_bound():
    h = Histogram((0.1, 1.0))
    h.observe(0.05)
    h.observe(0.1, 2)                  # on a bound: that bucket (le is inclusive)
    h.observe(3.0)
    h.observe(9.0, 0)                  # nothing
    assert h.as_dict() == {"le": [0.1, 1.0], "buckets": [3, 3], "sum": 3.25, "count": 4}
    with pytest.raises(ValueError):
        Histogram((1.0, 0.5))


def test_a_manager_reports_its_pacing_answers_and_dispatch_latency():
    world = World()
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())                   # claim and dispatch
    st = svc.status()
    call = st["pacing"]["call"]
    assert call["mode"] == "time_based" and call["rate"] is None and call["max_concurrent"] is None
    assert call["granted"] >= len(CONTACTS) - 1
    h = st["dispatch_latency"]
    assert h["count"] == st["dispatched"] == len(CONTACTS) - 1        # one per accepted order
    assert h["buckets"][-1] <= h["count"] and h["sum"] > 0
    run(svc.cycle())                   # the instant outcomes settle
    st = svc.status()
    humans = sum(1 for a in world.db.attempts if a.code == "answer_human")
    assert st.get("live_answers", 0) == humans and st.get("abandons", 0) == 0


def test_the_agent_manager_counts_agents_licenses_and_the_reserve_to_connect_latency():
    f = Floor(4, pools=LicensePools(predictive=3))
    f.svc.set_jobs([JobSpec(1, max_agents=2), JobSpec(2, mode="preview")])
    f.staff(*f.ids[:3])
    f.svc.tick()
    f.svc.reserve(1, "c1")
    f.svc.connect("c1")
    f.svc.reserve(1, "c2")
    f.svc.release("c2")
    m = f.svc.metrics()
    by = {(r["state"], r["job_id"]): r["count"] for r in m["agents"]}
    assert sum(by.values()) == 3 and by.get(("on_call", 1)) == 1
    assert m["pools"]["predictive"] == {"size": 3, "in_use": len(f.svc.members.get(1, ()))}
    assert m["pools"]["ports"]["in_use"] == 0 and m["pools"]["preview"]["size"] is None   # no notification job
    assert {g["job_id"]: g["granted"] for g in m["grants"]}[1] == 2
    assert m["reserved"] >= 2
    h = m["connect_latency"]
    assert h["count"] == 1 and h["buckets"][-1] == 1                # one connect (the release: none)
