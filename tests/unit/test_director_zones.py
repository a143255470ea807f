"""The director's zone decisions without Ray or a database: a job placed in its zone (the
campaign's, or the one it was started in), moved to the failover zone when its zone is set
down or loses its servers — its managers drained first, then retired, the new zone's
managers taking every shard over with a new epoch — waiting when no zone is available, and
back home when its zone is; whole jobs run through a move with nothing lost or dialled twice."""
import pytest

from pom_actors.core.zones import Zone, ZoneError, ZoneState
from pom_actors.names import manager_name
from tests.unit.test_director_service import SETTINGS, Cluster, run

DOWN, MAINT = ZoneState.DOWN, ZoneState.MAINTENANCE


def zoned(**servers) -> Cluster:
    """A cluster with zones a (failover b) and b, `servers` live servers in each."""
    c = Cluster()
    c.db.zones.update(a=Zone("a", failover="b"), b=Zone("b"))
    c.fleet.servers_in.update(servers)
    c.db.campaigns[1]["zone"] = "a"
    return c


def zones_of(c: Cluster, job_id: int) -> set[str]:
    return {z for n, z in c.fleet.placed.items() if n.startswith(manager_name(job_id, 0)[:-1])}


def cycle(c: Cluster, ticks: int = 1) -> None:
    for m in c.managers():
        run(m.cycle())
    for _ in range(ticks):
        run(c.director.tick())


def moved(c: Cluster, job_id: int, zone: str) -> None:
    """Managers cycle and the director ticks until the job's managers are all in `zone`."""
    for _ in range(10):
        cycle(c)
        if zones_of(c, job_id) == {zone} and len(c.managers()) == c.db.jobs[job_id]["managers"]:
            return
    raise AssertionError(f"job {job_id} still in {zones_of(c, job_id)}")


def complete(c: Cluster, job_id: int) -> None:
    for _ in range(30):
        cycle(c)
        c.clock.advance(700)                        # retries fall due
        if c.db.jobs[job_id]["state"] == "completed":
            break
    assert c.db.jobs[job_id]["state"] == "completed"
    assert {i["state"] for i in c.db.items.values()} == {"done"}
    dialled = c.dialled()
    assert len(dialled) == len(set(dialled)), "a contact dialled twice"
    assert sorted(dialled) == sorted(f"{a.work_item_id}.{a.attempt_no}" for a in c.db.attempts
                                     if a.verdict == "allowed")


def test_a_job_runs_in_its_campaigns_zone_or_the_one_it_was_started_in():
    c = zoned(a=2, b=1)
    job_id = run(c.director.create_job(1))
    assert c.db.jobs[job_id]["zone"] == c.db.jobs[job_id]["placed_zone"] == "a"
    assert zones_of(c, job_id) == {"a"}
    other = run(c.director.create_job(1, zone="b"))
    assert c.db.jobs[other]["placed_zone"] == "b" and zones_of(c, other) == {"b"}
    with pytest.raises(ZoneError) as err:
        run(c.director.create_job(1, zone="nowhere"))
    assert err.value.field == "zone"


def test_a_campaign_without_a_zone_runs_in_the_default_zone():
    c = Cluster()
    job_id = run(c.director.create_job(1))
    assert c.db.jobs[job_id]["placed_zone"] == SETTINGS.default_zone
    assert "default" in c.db.zones                  # the director made sure it exists


@pytest.mark.parametrize("state", [DOWN, MAINT])
def test_a_zone_set_down_drains_its_managers_then_moves_the_job_to_the_failover(state):
    c = zoned(a=2, b=1)
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())                              # dispatched: outcomes not collected yet
    assert c.db.job_items(job_id, "in_flight")
    old = {m.holder for m in c.managers()}
    epochs = {s: c.db.leases[job_id, s]["epoch"] for s in range(c.db.jobs[job_id]["shards"])}
    c.db.zones["a"] = Zone("a", state, "b")
    run(c.director.tick())
    assert all(m.draining for m in c.managers()), "told to stop claiming"
    assert c.db.jobs[job_id]["placed_zone"] == "a" and c.fleet.retired == []   # attempts still out
    cycle(c)                                        # they settle; then the old managers go
    assert c.fleet.retired_zones == [(job_id, "a")] and c.db.jobs[job_id]["placed_zone"] == "b"
    run(c.director.tick())                          # and the failover zone's take over
    assert zones_of(c, job_id) == {"b"} and not old & {m.holder for m in c.managers()}
    assert all(c.db.leases[job_id, s]["epoch"] > e for s, e in epochs.items())
    assert set(c.holders(job_id).values()) == {m.holder for m in c.managers()}
    complete(c, job_id)


def test_a_drain_that_takes_too_long_ends_in_the_takeover_and_nothing_is_dialled_twice():
    c = zoned(a=2, b=1)
    c.director.settings = SETTINGS.replace(zone_drain_s=0.0)
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())
    flying = len(c.db.job_items(job_id, "in_flight"))
    assert flying
    c.db.zones["a"] = Zone("a", DOWN, "b")
    run(c.director.tick())                          # no time to drain: retired with attempts out
    assert c.fleet.retired_zones == [(job_id, "a")] and len(c.db.job_items(job_id, "in_flight")) == flying
    run(c.director.tick())
    assert zones_of(c, job_id) == {"b"}
    complete(c, job_id)                             # the new holders reconcile with the gateway


def test_a_zone_whose_servers_are_gone_moves_its_jobs_at_once():
    c = zoned(a=1, b=1)
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())
    c.fleet.servers_in["a"] = 0                     # the server and its managers are gone
    c.fleet.silent.update(c.fleet.managers_by_name)
    run(c.director.tick())
    assert c.fleet.retired_zones == [(job_id, "a")] and c.db.jobs[job_id]["placed_zone"] == "b"
    c.fleet.silent.clear()
    run(c.director.tick())
    assert zones_of(c, job_id) == {"b"}
    complete(c, job_id)


def test_with_no_zone_available_the_job_waits_placed_nowhere_then_goes_on():
    c = zoned(a=1)
    c.db.zones["a"] = Zone("a")                     # no failover
    job_id = run(c.director.create_job(1))
    for m in c.managers():
        run(m.cycle())
    c.fleet.servers_in["a"] = 0
    c.fleet.silent.update(c.fleet.managers_by_name)
    cycle(c, ticks=3)
    job = c.db.jobs[job_id]
    assert (job["state"], job["placed_zone"]) == ("running", None) and c.fleet.managers_by_name == {}
    c.fleet.silent.clear()
    c.fleet.servers_in["a"] = 1                     # a server of the zone is back
    run(c.director.tick())
    assert c.db.jobs[job_id]["placed_zone"] == "a" and zones_of(c, job_id) == {"a"}
    complete(c, job_id)


def test_a_job_goes_back_to_its_zone_when_it_is_up_again():
    c = zoned(a=2, b=1)
    job_id = run(c.director.create_job(1))
    c.db.zones["a"] = Zone("a", MAINT, "b")
    moved(c, job_id, "b")
    c.db.zones["a"] = Zone("a", failover="b")
    moved(c, job_id, "a")
    assert c.db.jobs[job_id]["placed_zone"] == "a"
    assert c.fleet.retired_zones == [(job_id, "a"), (job_id, "b")]
    complete(c, job_id)


def test_a_stopping_job_waiting_for_a_zone_still_ends():
    c = zoned()
    job_id = run(c.director.create_job(1))
    assert c.db.jobs[job_id]["placed_zone"] is None and c.fleet.managers_by_name == {}
    run(c.director.command(job_id, "stop"))
    assert c.db.jobs[job_id]["state"] == "stopped"
