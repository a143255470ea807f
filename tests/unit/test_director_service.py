"""The director's tick without Ray or a database: leases granted, the shards of a silent
manager moved, a job finished and retired, a schedule starting a job — and a whole job run by
the director, its managers, a gateway and the rule service, in memory."""
import asyncio
from datetime import timedelta

from pom_actors.config import Settings
from pom_actors.names import manager_name, new_holder
from pom_actors.services.director import DirectorService
from pom_actors.services.manager import ManagerService
from tests.unit.fakes import FakeDirectorStore, FakeFleet, FakeWorkStore
from tests.unit.test_manager_service import SHARDS, T0, World

SETTINGS = Settings(lease_ttl_s=6.0, shards_per_job=SHARDS, managers_per_job=2, tick_s=0.01)


class Cluster(World):
    """A World whose job the director drives, with managers made on demand by the fleet."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.db.jobs.clear(), self.db.items.clear(), self.db.leases.clear()
        self.fleet = FakeFleet(self.make_manager, servers=2)
        self.director = DirectorService(SETTINGS, open_store=lambda: FakeDirectorStore(self.db),
                                        fleet=self.fleet, clock=self.clock)

    def make_manager(self, job_id: int, index: int, count: int) -> ManagerService:
        name = manager_name(job_id, index)
        holder = new_holder(name)
        return ManagerService(SETTINGS, job_id=job_id, name=name, holder=holder, managers=count,
                              open_store=lambda: FakeWorkStore(self.db, job_id, holder),
                              rules=self.rules, gateways=self.gateways, clock=self.clock)

    def holders(self, job_id: int) -> dict[int, str]:
        return {s: lease["holder"] for (j, s), lease in self.db.leases.items() if j == job_id}

    def managers(self) -> list[ManagerService]:
        return list(self.fleet.managers_by_name.values())


def run(coro):
    return asyncio.run(coro)


def test_a_new_job_gets_its_managers_and_balanced_leases():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    assert c.db.jobs[job_id]["state"] == "running" and c.db.jobs[job_id]["managers"] == 2
    holders = c.holders(job_id)
    by_manager = {m.holder: [s for s, h in holders.items() if h == m.holder] for m in c.managers()}
    assert sorted(len(v) for v in by_manager.values()) == [2, 2]
    assert all(lease["epoch"] == 1 for lease in c.db.leases.values())
    assert c.fleet.ensured == 1


def test_the_shards_of_a_silent_manager_move_to_the_survivor_with_new_epochs():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    silent = manager_name(job_id, 1)
    lost = {s for s, h in c.holders(job_id).items() if h == c.fleet.managers_by_name[silent].holder}
    c.fleet.silent.add(silent)
    run(c.director.tick())
    survivor = c.fleet.managers_by_name[manager_name(job_id, 0)].holder
    assert set(c.holders(job_id).values()) == {survivor}
    assert {s: c.db.leases[job_id, s]["epoch"] for s in lost} == {s: 2 for s in lost}
    assert c.fleet.managers_by_name[manager_name(job_id, 0)].renewed == 0.0   # told to adopt now


def test_a_lapsed_lease_moves_even_when_its_holder_still_answers():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    c.db.wall += SETTINGS.lease_ttl_s + 1           # no manager renewed: every lease lapsed
    run(c.director.tick())
    assert all(lease["epoch"] == 2 for lease in c.db.leases.values())


def test_a_job_runs_to_completion_and_its_managers_are_retired():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    for _ in range(20):
        for m in c.managers():
            run(m.cycle())
        c.clock.advance(700)                        # retries fall due
        run(c.director.tick())
        if c.db.jobs[job_id]["state"] == "completed":
            break
    job = c.db.jobs[job_id]
    assert (job["state"], job["reason"]) == ("completed", "all contacts processed")
    assert c.fleet.retired == [job_id] and c.fleet.managers_by_name == {}
    assert {i["state"] for i in c.db.items.values()} == {"done"}
    ledger = c.ledger()
    assert len(ledger) == len(set(ledger))
    dialled = c.dialled()
    assert len(dialled) == len(set(dialled))
    assert sorted(dialled) == sorted(f"{a.work_item_id}.{a.attempt_no}" for a in c.db.attempts
                                     if a.verdict == "allowed")
    assert all(lease["holder"] is None for lease in c.db.leases.values())


def test_stop_drains_then_cancels_what_was_never_attempted():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())                              # dispatched; outcomes not collected yet
    assert run(c.director.command(job_id, "stop")) == "stopping"
    assert c.db.jobs[job_id]["state"] == "stopping"  # attempts still in flight
    for m in c.managers():
        run(m.cycle())
    run(c.director.tick())
    job = c.db.jobs[job_id]
    assert job["state"] == "stopped" and c.fleet.retired == [job_id]
    assert not c.db.job_items(job_id, "ready", "scheduled", "in_flight")


def test_a_due_schedule_starts_a_job_once():
    c = Cluster()
    c.db.campaigns.clear()
    c.db.add_campaign("nightly", schedule={"cron": "*/5 * * * *"}, created_at=T0 - timedelta(minutes=7))
    run(c.director.tick())
    jobs = list(c.db.jobs.values())
    assert [(j["campaign_id"], j["state"]) for j in jobs] == [(1, "running")]
    assert c.db.campaigns[1]["last_scheduled_at"] == T0          # the latest run due
    run(c.director.tick())
    assert len(c.db.jobs) == 1                      # the next run is not due yet
    c.director.draining = True
    c.clock.advance(600)
    run(c.director.tick())
    assert len(c.db.jobs) == 1                      # a draining director starts nothing


def test_a_schedule_starts_no_job_while_its_campaigns_last_one_is_live():
    c = Cluster()
    c.db.campaigns.clear()
    c.db.add_campaign("minutely", schedule={"cron": "* * * * *"}, created_at=T0 - timedelta(minutes=2))
    run(c.director.tick())
    assert len(c.db.jobs) == 1
    for _ in range(3):                              # due every minute; the first job runs on
        c.clock.advance(60)
        run(c.director.tick())
    assert len(c.db.jobs) == 1
    assert c.db.campaigns[1]["last_scheduled_at"] == c.clock.now().replace(second=0, microsecond=0)   # served
    job_id = next(iter(c.db.jobs))
    c.db.jobs[job_id]["state"] = "completed"
    c.clock.advance(60)
    run(c.director.tick())
    assert len(c.db.jobs) == 2                      # the next due time after it ended starts one


def test_a_failed_tick_reconnects_once_the_database_is_back():
    c = Cluster()
    first = c.director.store
    c.db.down = True
    try:
        run(c.director.tick())
    except Exception:
        c.director.recover()
    assert c.director.store is first                # still down: tries again on the next tick
    c.db.down = False
    c.director.recover()
    run(c.director.create_job(1))
    assert len(c.db.jobs) == 1


def test_the_agent_manager_is_told_the_running_jobs_with_their_agent_needs():
    from pom_actors.core.agents.attachment import JobSpec
    from pom_actors.core.agents.licenses import Demand
    from pom_actors.core.strategy import parse_strategy

    c = Cluster()
    c.db.strategies[2] = parse_strategy({"name": "agents", "initial": "call", "handlers": {"call": {
        "type": "call", "pacing": {"mode": "progressive"},
        "agents": {"skills": ["sales"], "min": 2, "max": 6, "wrap_up": 45}}}})
    agent_campaign = c.db.add_campaign("agent-based")
    c.db.campaigns[agent_campaign].update(strategy_id=2, priority=8)
    notify = run(c.director.create_job(1))          # the default campaign: agent-less
    agents = run(c.director.create_job(agent_campaign))
    specs, ports = c.fleet.agent_jobs[-1]
    assert specs == [JobSpec(agents, 8, 2, 6, frozenset({"sales"}), "progressive", 45.0, agent_campaign)]
    assert [d.job_id for d in ports] == [notify] and isinstance(ports[0], Demand) and ports[0].pool == "ports"
    run(c.director.command(agents, "stop"))
    assert c.fleet.agent_jobs[-1][0] == []          # a stopping job no longer takes agents


def test_a_claim_that_lands_after_the_drain_check_keeps_the_job_open_until_it_settles():
    """A manager's claim that began before the stop commits after the director counted
    nothing in flight: the job must not end with that attempt in flight."""
    c = Cluster()
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())
    run(c.director.command(job_id, "stop"))
    for m in c.managers():
        run(m.cycle())                              # everything settled: nothing in flight
    late = c.db.job_items(job_id, "ready", "scheduled")[0]     # a busy contact's retry, due later
    store = c.director.store
    in_flight = store.in_flight
    calls = []

    def racing_in_flight(job):                      # the drain check sees 0, then a claim lands
        calls.append(job)
        if len(calls) == 1:
            return 0
        late.update(state="in_flight", attempts=late["attempts"] + 1)
        return in_flight(job)
    store.in_flight = racing_in_flight
    run(c.director.tick())
    assert c.db.jobs[job_id]["state"] == "stopping" and c.fleet.retired == []
    late.update(state="done")                   # the manager settles it
    store.in_flight = in_flight
    run(c.director.tick())
    assert c.db.jobs[job_id]["state"] == "stopped"
    assert not c.db.job_items(job_id, "in_flight")
