"""Outbound ports without Ray or a database: a notification job's grant reaches its Campaign
Managers as caps on their calls in flight (core/agents/ports.py, the Agent Manager's `ports`),
the managers of one job never hold more than its grant nor the jobs more than the pool, a
grant lowered by a higher-priority job is followed (the ports freed go to the new job as they
free), and a manager with no answer from the Agent Manager keeps its cap (none: no call)."""
import asyncio

import pytest

from pom_actors.config import Settings
from pom_actors.core.agents.licenses import Demand, LicensePools
from pom_actors.core.agents.ports import ROTATE_S, PortShares, Report, fair_share
from pom_actors.core.clock import ManualClock
from pom_actors.core.strategy import parse_strategy
from pom_actors.media.gateway import Gateway, GatewayConfig
from pom_actors.names import manager_name, new_holder
from pom_actors.services.manager import ManagerService
from pom_actors.services.rule_engine import RuleService
from tests.unit.fakes import FakeDatabase, FakeRuleStore, FakeWorkStore, LocalGateways, LocalRules
from tests.unit.test_agent_manager_service import Floor
from tests.unit.test_manager_pacing import CONTACTS, LONG, T0      # 65 s calls from a Wednesday afternoon

NOTIFY = parse_strategy("""
name: notify
initial: call
handlers:
  call: {type: call, addresses: [phone1], message: hello, results: {default: done}}
""")


# -- the shares ---------------------------------------------------------------------------------
def test_fair_shares_sum_to_the_grant_and_the_remainder_rotates():
    for grant in range(0, 12):
        for managers in range(1, 5):
            for turn in range(managers):
                assert sum(fair_share(grant, i, managers, turn) for i in range(managers)) == grant
    assert [fair_share(1, i, 2, 0) for i in range(2)] == [1, 0]
    assert [fair_share(1, i, 2, 1) for i in range(2)] == [0, 1]


def wants(in_use=0, held=0, wanting=True) -> Report:
    return Report(in_use, held, wanting)


def test_managers_of_a_job_never_hold_more_than_its_grant():
    s = PortShares(started=0.0, settle_s=0.0)
    assert s.cap(1, 0, 2, 5, None, wants(), 1.0) == 3            # 5 over two: 3 + 2
    assert s.cap(1, 1, 2, 5, None, wants(), 1.0) == 2
    # the first asks again holding 3 calls; the other one, unaware, still holds its 2
    assert s.cap(1, 0, 2, 5, None, wants(3, 3), 1.0) == 3
    assert s.cap(1, 1, 2, 5, None, wants(0, 0), 1.0) == 2        # handed 2 before: 3 + 2 = 5


def test_a_manager_that_wants_no_more_lends_its_share():
    s = PortShares(started=0.0, settle_s=0.0)
    # its contacts ran out with 1 call up: held to it
    assert s.cap(1, 1, 2, 6, None, wants(1, 0, wanting=False), 1.0) == 1
    assert s.cap(1, 0, 2, 6, None, wants(), 1.0) == 5            # 3 + the 2 the other leaves
    # it wants again: it gets what the first does not hold (6 - 5) ...
    assert s.cap(1, 1, 2, 6, None, wants(1, 1), 1.0) == 1
    # ... until the first asks again and comes back to its share
    assert s.cap(1, 0, 2, 6, None, wants(5, 5), 1.0) == 3
    assert s.cap(1, 1, 2, 6, None, wants(1, 1), 1.0) == 1        # the first still has 5 up
    assert s.cap(1, 0, 2, 6, None, wants(3, 3), 1.0) == 3
    assert s.cap(1, 1, 2, 6, None, wants(1, 1), 1.0) == 3


def test_fewer_ports_than_managers_starve_no_manager_for_good():
    s = PortShares(started=0.0, settle_s=0.0)
    assert (s.cap(1, 0, 2, 1, None, wants(), 1.0), s.cap(1, 1, 2, 1, None, wants(), 1.0)) == (1, 0)
    t = ROTATE_S + 1.0                # the unit changes hands: the first still holds it
    assert (s.cap(1, 0, 2, 1, None, wants(1, 1), t), s.cap(1, 1, 2, 1, None, wants(), t)) == (0, 0)
    assert s.cap(1, 0, 2, 1, None, wants(1, 0), ROTATE_S + 1.5) == 0     # told: 0, its call still up
    assert s.cap(1, 1, 2, 1, None, wants(), ROTATE_S + 2.0) == 0
    assert s.cap(1, 0, 2, 1, None, wants(0, 0), ROTATE_S + 2.5) == 0     # its call ended
    assert s.cap(1, 1, 2, 1, None, wants(), ROTATE_S + 3.0) == 1


def test_the_pool_holds_while_a_lowered_job_finishes_its_calls():
    s = PortShares(started=0.0, settle_s=0.0)
    assert s.cap(1, 0, 1, 4, 4, wants(), 1.0) == 4                # alone: the whole pool
    # a higher-priority job starts: grants 1 and 3; job 1 still has 4 calls up
    assert s.cap(2, 0, 1, 3, 4, wants(), 2.0) == 0
    assert s.cap(1, 0, 1, 1, 4, wants(4, 4), 2.0) == 1
    assert s.cap(2, 0, 1, 3, 4, wants(), 3.0) == 0               # job 1's 4 calls still hold the pool
    assert s.cap(1, 0, 1, 1, 4, wants(2, 1), 4.0) == 1           # two of them ended
    assert s.cap(2, 0, 1, 3, 4, wants(), 5.0) == 2
    assert s.cap(1, 0, 1, 1, 4, wants(1, 1), 6.0) == 1
    assert s.cap(2, 0, 1, 3, 4, wants(2, 2), 7.0) == 3
    assert s.in_use() == 3
    s.keep([2])                                                  # job 1 ended
    assert s.cap(2, 0, 1, 4, 4, wants(3, 3), 8.0) == 4


def test_after_a_restart_no_cap_grows_until_the_managers_have_told_what_they_hold():
    s = PortShares(started=100.0, settle_s=2.0)
    assert s.cap(1, 0, 1, 5, None, wants(2, 5), 101.0) == 2
    assert s.cap(1, 0, 1, 5, None, wants(2, 2), 102.5) == 5


def test_an_unlimited_grant_is_no_cap():
    s = PortShares(started=0.0, settle_s=0.0)
    assert s.cap(1, 0, 2, None, None, wants(7, None), 1.0) is None
    with pytest.raises(ValueError):
        s.cap(1, 2, 2, 5, None, wants(), 1.0)


# -- managers under the Agent Manager ---------------------------------------------------------------
class Licenses:
    """The Agent Manager's `ports` as a manager sees it (None: no answer)."""

    def __init__(self, floor: Floor | None):
        self.floor, self.asked = floor, 0

    async def ports(self, job_id, index, managers, in_use, held, wanting):
        self.asked += 1
        return None if self.floor is None else self.floor.svc.ports(job_id, index, managers, in_use, held, wanting)


class Notifications:
    """Notification jobs (one call handler, 65 s calls) on one gateway and one Agent Manager."""

    def __init__(self, ports: int):
        self.clock = ManualClock(T0)
        self.db = FakeDatabase(NOTIFY, CONTACTS)
        self.floor = Floor(0, pools=LicensePools(ports=ports))
        self.floor.svc.port_shares.settle_until = 0.0      # started long ago
        self.licenses = Licenses(self.floor)
        self.gateways = LocalGateways(Gateway(GatewayConfig(name="gw", voice=LONG), self.clock))
        self.rules = LocalRules(RuleService(lambda: FakeRuleStore(), self.clock))
        self.managers: dict[int, list[ManagerService]] = {}
        self.priorities: dict[int, int] = {}

    def start(self, priority: int, managers: int = 1) -> int:
        job_id = self.db.create_job(self.db.add_campaign(f"c{len(self.db.campaigns)}"), 2, managers, T0)
        self.db.jobs[job_id]["state"] = "running"
        self.priorities[job_id] = priority
        self.floor.svc.set_jobs([], [Demand(j, "ports", p) for j, p in self.priorities.items()])
        self.managers[job_id] = [self.manager(job_id, i, managers) for i in range(managers)]
        for shard in range(2):
            self.db.grant(job_id, {shard: self.managers[job_id][shard % managers].holder}, 6.0)
        return job_id

    def manager(self, job_id: int, index: int, managers: int, licenses=None) -> ManagerService:
        name = manager_name(job_id, index)
        holder = new_holder(name)
        svc = ManagerService(Settings(lease_ttl_s=6.0, batch_size=1000), job_id=job_id, name=name, holder=holder,
                             managers=managers, open_store=lambda: FakeWorkStore(self.db, job_id, holder),
                             rules=self.rules, gateways=self.gateways, clock=self.clock,
                             agents=licenses or self.licenses, index=index)
        svc.draining = False
        return svc

    def grant(self, job_id: int) -> int:
        return self.floor.svc.allocation[job_id]

    def in_flight(self, job_id: int) -> int:
        return len(self.db.job_items(job_id, "in_flight"))

    def cycle(self) -> None:
        """Every manager once, each asking for its cap (the periodic ask is due at every step)."""
        for svcs in self.managers.values():
            for svc in svcs:
                svc.ports_due = -float("inf")
                asyncio.run(svc.cycle())


def test_no_notification_job_runs_over_its_share_of_the_ports():
    n = Notifications(ports=7)
    high, low = n.start(priority=10, managers=2), n.start(priority=5)
    assert (n.grant(high), n.grant(low)) == (5, 2)
    most = {high: 0, low: 0}
    for step in range(40):
        n.cycle()
        for job in (high, low):
            assert n.in_flight(job) <= n.grant(job)
            most[job] = max(most[job], n.in_flight(job))
        assert n.in_flight(high) + n.in_flight(low) <= 7
        n.clock.advance(10)                                      # calls end, others start
    assert most == {high: 5, low: 2}                             # each used its whole share
    caps = {i: svc.ports_cap for i, svc in enumerate(n.managers[high])}
    assert sum(caps.values()) <= 5 and n.floor.svc.licenses()["pools"]["ports"]["in_use"] <= 7
    assert n.licenses.asked >= 40 * 3 and not any(m.stats["cycle_errors"] for ms in n.managers.values() for m in ms)


def test_the_caps_follow_a_grant_lowered_by_a_higher_priority_job():
    n = Notifications(ports=4)
    low = n.start(priority=5)
    for _ in range(3):
        n.cycle()
    assert n.in_flight(low) == 4                                 # alone: the whole pool
    high = n.start(priority=10)
    assert (n.grant(high), n.grant(low)) == (3, 1)
    before = n.in_flight(low)
    for step in range(20):
        n.cycle()
        assert n.in_flight(low) + n.in_flight(high) <= 4          # the pool, also while low finishes
        assert n.in_flight(low) <= max(n.grant(low), before)     # low dials nothing above its new grant
        before = n.in_flight(low)
        n.clock.advance(10)
    assert n.in_flight(high) == n.grant(high) and n.in_flight(low) == n.grant(low)
    assert n.managers[low][0].ports_cap == n.grant(low)


def test_no_answer_from_the_agent_manager_keeps_the_cap_held_and_none_held_is_no_call():
    n = Notifications(ports=3)
    job = n.start(priority=5)
    n.cycle()
    assert n.in_flight(job) == 3
    svc = n.managers[job][0]
    svc.agents = Licenses(None)                                  # the Agent Manager is gone
    n.clock.advance(70)                                          # the calls end: 3 more, not more
    n.cycle()
    n.cycle()
    assert n.in_flight(job) == 3 and svc.ports_cap == 3
    fresh = n.manager(job, 0, 1, licenses=Licenses(None))        # a new incarnation knows no cap
    n.managers[job] = [fresh]
    n.db.grant(job, {0: fresh.holder, 1: fresh.holder}, 6.0)
    n.clock.advance(70)
    n.cycle()
    n.cycle()
    assert n.in_flight(job) == 0 and fresh.ports_cap == 0


def test_the_cap_is_asked_for_periodically_not_per_cycle(monkeypatch):
    monkeypatch.setattr("pom_actors.services.manager.PORTS_REFRESH_S", 60.0)     # however slow the machine
    n = Notifications(ports=3)
    job = n.start(priority=5)
    svc = n.managers[job][0]
    for _ in range(5):
        asyncio.run(svc.cycle())
        n.clock.advance(70)
    assert n.licenses.asked == 1 and svc.ports_cap == 3 and svc.stats["dispatched"] > 3     # it dialled on, under its cap


def test_a_manager_with_nothing_to_dial_leaves_its_share_to_the_other():
    n = Notifications(ports=4)
    job = n.start(priority=5, managers=2)
    first, second = n.managers[job]
    n.db.grant(job, {0: first.holder, 1: first.holder}, 6.0)     # every shard with the first
    for _ in range(4):
        n.cycle()
    assert n.in_flight(job) == 4 and (first.ports_cap, second.ports_cap) == (4, 0)


def test_without_a_ports_pool_no_manager_is_capped():
    """Unlicensed ports: a manager that found nothing due (its retries not yet due) is not held
    to its calls in flight, so the retries are dialled when due, not at its next probe."""
    n = Notifications(ports=None)
    job = n.start(priority=5)
    n.floor.svc.set_jobs([], [Demand(job, "ports", 5, maximum=40)])     # max_concurrent: 40
    (svc,) = n.managers[job]
    assert n.grant(job) == 40
    assert n.floor.svc.ports(job, 0, 1, 0, 0, False) == {"cap": None, "grant": 40}
    for _ in range(3):
        n.cycle()
    assert svc.ports_cap is None and n.in_flight(job) > 0
