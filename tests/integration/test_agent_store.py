"""The Agent Manager's store on the real database: transitions land in `agent_events` (one
COPY per flush) with the agents' rows, and a new service rebuilds the same states and
attachments from them."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from pom_actors.config import Settings
from pom_actors.core.agents.attachment import JobSpec
from pom_actors.services.agent_manager import AgentManagerService
from pom_actors.store import jobs as jobstore
from pom_actors.store.agents import AgentStore

from .conftest import phone_contacts

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
STRATEGY = {"name": "agents", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hi",
                                  "results": {"default": "done"}}}}


class StepClock:
    def __init__(self):
        self.t = T0

    def now(self):
        return self.t

    def real_seconds(self, s):
        return s


def service(pom, clock) -> AgentManagerService:
    return AgentManagerService(Settings(), open_store=lambda: AgentStore.open(pom.settings.database_url), clock=clock)


def test_transitions_are_written_and_rebuilt(pom, conn, campaigns):
    campaign = campaigns.make(STRATEGY, phone_contacts(1))
    job_a = jobstore.create_job(conn, campaign, 1, 1, T0)
    job_b = jobstore.create_job(conn, campaign, 1, 1, T0)
    clock = StepClock()
    svc = service(pom, clock)
    tag = time.monotonic_ns()
    ids = [svc.add_agent(f"agent-{tag}-{i}", f"Agent {i}", ["sales"]) for i in range(4)]
    svc.set_jobs([JobSpec(job_a, wrap_limit_s=30), JobSpec(job_b)])
    for i in ids:
        svc.login(i)
        svc.set_ready(i)
    svc.tick()
    first = svc.reserve(job_a, f"call-{tag}")
    svc.connect(f"call-{tag}")
    clock.t += timedelta(seconds=40)
    svc.hangup(f"call-{tag}")
    svc.force_logoff(ids[3] if first != ids[3] else ids[2])
    other = next(i for i in ids if i != first and svc.view(i)["state"] == "ready")
    svc.not_ready(other, "training")
    assert svc.tick()["written"] == 7        # reserve, connect, hangup, logoff+detach+unnail (its session), not_ready

    rows = AgentStore(conn).events(first)
    assert [(r["from_state"], r["to_state"], r["event"]) for r in reversed(rows)] == [
        ("logged_out", "not_ready", "login"), ("not_ready", "ready", "ready"), ("ready", "ready", "attach"),
        ("ready", "ready", "nail"), ("ready", "reserved", "reserve"), ("reserved", "on_call", "connect"), ("on_call", "wrap_up", "hangup")]
    assert rows[0]["call_id"] == f"call-{tag}" and rows[0]["job_id"] == job_a
    assert rows[0]["wrap_until"] == T0 + timedelta(seconds=70) and rows[0]["at"] == T0 + timedelta(seconds=40)
    db = dict(conn.execute("SELECT id, state FROM agents WHERE id = ANY(%s)", (ids,)).fetchall())
    assert db == {i: svc.view(i)["state"] for i in ids}
    published = [e for (payload,) in conn.execute(
        "SELECT payload FROM event_outbox WHERE topic = 'pom.agents' AND key = %s ORDER BY id",
        (f"agent-{first}",)) for e in payload]                 # the same changes, in order, for Kafka
    assert [(e["previous"], e["state"], e["event"], e["call_id"]) for e in published] == [
        (r["from_state"], r["to_state"], r["event"], r["call_id"]) for r in reversed(rows)]

    before = {i: svc.view(i) for i in ids}
    again = service(pom, clock)
    again.rebuild()
    assert {i: again.view(i) for i in ids} == before
    assert again.calls[f"call-{tag}"] == first
    clock.t += timedelta(seconds=31)
    assert again.tick()["wrap_timeouts"] == 1               # the wrap-up limit survived the restart
    assert again.view(first)["state"] == "ready"


def test_the_actor_runs_commands_and_writes_them(pom, conn, campaigns):
    """Through the actor the runtime started, on an agent-based job the director tells it of
    (running, its contacts waiting for a window that is closed); a skill of its own keeps other
    tests' agents and jobs out of it."""
    import ray

    from pom_actors.names import AGENT_MANAGER, actor

    handle = actor(AGENT_MANAGER)
    assert handle is not None and ray.get(handle.ping.remote()) == AGENT_MANAGER
    skill = f"store-{time.monotonic_ns()}"
    job = campaigns.start(campaigns.make(agent_strategy(skill), phone_contacts(1)))
    agent = ray.get(handle.add_agent.remote(f"actor-{time.monotonic_ns()}", "A", [skill]))
    try:
        ray.get(handle.command.remote(agent, "login"))
        assert ray.get(handle.command.remote(agent, "ready"))["state"] == "ready"
        deadline = time.monotonic() + 20
        while ray.get(handle.agent.remote(agent))["job_id"] != job and time.monotonic() < deadline:
            time.sleep(0.1)                                  # attached at a tick after the director's
        assert ray.get(handle.reserve.remote(job, ["c-1"])) == {"c-1": agent}
        assert job in {j["job_id"] for j in ray.get(handle.licenses.remote())["jobs"]}
        while len(AgentStore(conn).events(agent)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)                                  # flushed at the next tick
        # a logged-in agent is attached at the next tick, ready or not: that tick may come
        # between the two commands; nailed at attach (core/agents/nailing.py)
        assert [r["event"] for r in reversed(AgentStore(conn).events(agent))][:5] in (
            ["login", "ready", "attach", "nail", "reserve"], ["login", "attach", "nail", "ready", "reserve"])
    finally:
        ray.get(handle.command.remote(agent, "force_logoff"))
        campaigns.command(job, "stop")


def agent_strategy(skill: str) -> dict:
    return {"name": f"agents-{skill}", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                  "window": {"days": ["sun"], "start": "09:00", "end": "10:00"},
                                  "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                                  "agents": {"skills": [skill], "max": 3},
                                  "results": {"window_restricted": "wait_window", "default": "done"}}}}
