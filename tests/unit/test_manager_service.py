"""The campaign manager's cycle without Ray or a database: claim → rules → intent → dispatch →
settle, a stale holder fenced off, a gateway that vanishes, a failed cycle that re-adopts."""
import asyncio
from datetime import datetime, timezone

import pytest

from pom_actors.config import Settings
from pom_actors.core.clock import ManualClock
from pom_actors.core.reconcile import GatewaySlow, GatewayUnreachable
from pom_actors.core.strategy import parse_strategy
from pom_actors.media.gateway import Gateway, GatewayConfig
from pom_actors.media.voice_sim import VoiceProfile
from pom_actors.names import manager_name, new_holder
from pom_actors.services.manager import ManagerService
from pom_actors.services.rule_engine import RuleService
from tests.unit.fakes import DatabaseDown, FakeDatabase, FakeRuleStore, FakeWorkStore, LocalGateways, LocalRules

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)     # a Wednesday: New York's window is open
STRATEGY = parse_strategy("""
name: unit
initial: call
handlers:
  call:
    type: call
    addresses: [phone1]
    window: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00"}
    results:
      answer_human: done
      busy: {action: retry, after: 10m, max: 1}
      default: done
""")
CONTACTS = [{"external_id": str(i), "phone1": f"+1212555{i:04d}", "timezones": ["America/New_York"],
             "attributes": {}} for i in range(20)]
DNC = "+12125550007"
SHARDS = 4
SETTINGS = Settings(lease_ttl_s=6.0, batch_size=1000)
INSTANT = VoiceProfile(instant=True, seed=1)
SLOW = VoiceProfile(answer_human=1, answer_machine=0, busy=0, no_answer=0, invalid_number=0, fax=0,
                    network_refusal=0)


class World:
    """One job in a fake database, its gateways and the rule service, in business time."""

    def __init__(self, voice: VoiceProfile = INSTANT, gateways: tuple[str, ...] = ("gw-a",)):
        self.clock = ManualClock(T0)
        self.db = FakeDatabase(STRATEGY, CONTACTS)
        self.db.add_campaign()
        self.job_id = self.db.create_job(1, SHARDS, 1, T0)
        self.db.jobs[self.job_id]["state"] = "running"
        self.gateways = LocalGateways(*[Gateway(GatewayConfig(name=n, voice=voice), self.clock) for n in gateways])
        self.rules = LocalRules(RuleService(lambda: FakeRuleStore({DNC}), self.clock))

    def manager(self, index: int = 0) -> ManagerService:
        name = manager_name(self.job_id, index)
        holder = new_holder(name)
        svc = ManagerService(SETTINGS, job_id=self.job_id, name=name, holder=holder, managers=1,
                             open_store=lambda: FakeWorkStore(self.db, self.job_id, holder),
                             rules=self.rules, gateways=self.gateways, clock=self.clock)
        svc.draining = False
        return svc

    def give(self, svc: ManagerService, shards=range(SHARDS)) -> None:
        """The director leases `shards` to `svc` (epochs bumped) and tells it to renew."""
        self.db.grant(self.job_id, {s: svc.holder for s in shards}, SETTINGS.lease_ttl_s)
        svc.refresh()

    def ledger(self) -> list[tuple[int, int]]:
        return sorted((a.work_item_id, a.attempt_no) for a in self.db.attempts)

    def dialled(self) -> list[str]:
        return asyncio.run(self.gateways.order_ids())


def run(coro):
    return asyncio.run(coro)


def test_claim_rules_intent_dispatch_settle():
    world = World()
    svc = world.manager()
    world.give(svc)
    seen_at_dispatch = {}
    submit = world.gateways.submit

    async def checking_submit(name, orders):    # the intent is committed before an order leaves
        seen_at_dispatch.update({o.attempt_id: world.db.items[int(o.attempt_id.split(".")[0])] for o in orders})
        return await submit(name, orders)
    world.gateways.submit = checking_submit

    assert run(svc.cycle()) is True
    allowed = [i for i in world.db.items.values() if i["state"] == "in_flight"]
    assert len(allowed) == len(CONTACTS) - 1                    # one address is on the DNC list
    assert all(i["in_flight_epoch"] == 1 and i["in_flight_gateway"] == "gw-a" for i in allowed)
    assert all(i["state"] == "in_flight" and i["attempts"] == 1 for i in seen_at_dispatch.values())
    restricted = [a for a in world.db.attempts if a.verdict == "restricted"]
    assert [(a.address, a.code, a.rule) for a in restricted] == [(DNC, "dnc_restricted", "dnc_address")]
    assert [e["code"] for e in world.db.events] == ["dnc_restricted"]

    assert run(svc.cycle()) is True                               # the instant outcomes settle
    assert not [i for i in world.db.items.values() if i["state"] == "in_flight"]
    assert len(world.db.attempts) == len(CONTACTS) and len(world.db.events) == len(CONTACTS)
    assert sorted(world.dialled()) == sorted(f"{w}.{n}" for w, n in world.ledger() if (w, n) != (8, 1))
    busy = [i for i in world.db.items.values() if i["last_code"] == "busy"]
    assert all(i["state"] == "scheduled" and i["next_at"] > T0 for i in busy)
    assert svc.status()["settled"] == len(CONTACTS) - 1 and svc.inflight == {}


def test_a_newer_epoch_fences_off_the_old_holder_and_the_new_one_reconciles():
    """The shards move while A's orders are on their way: the gateway refuses them, A writes
    nothing, and B finds they never reached a gateway, so they are due again: each contact is
    dialled once, and the ledger has no attempt twice."""
    world = World()
    a, b = world.manager(0), world.manager(0)
    world.give(a)
    submit = world.gateways.submit

    async def takeover_then_submit(name, orders):
        world.gateways.submit = submit              # once
        world.give(b)
        await b.cycle()                             # B fences the gateway at the new epochs
        return await submit(name, orders)
    world.gateways.submit = takeover_then_submit
    run(a.cycle())
    assert a.stats["refused"] == len(CONTACTS) - 1 and a.inflight == {}
    assert b.stats["adopted"] == len(CONTACTS) - 1
    assert not [aid for aid in world.dialled() if aid.endswith(".1")]    # none of A's orders went out

    a.refresh()
    assert run(a.cycle()) is False                  # A renews: it holds nothing, does nothing
    assert a.held == {}
    for _ in range(3):
        run(b.cycle())
    assert sorted(a.code for a in world.db.attempts if a.attempt_no == 1 and a.verdict == "allowed") == \
        ["cancelled"] * (len(CONTACTS) - 1)         # never sent: recorded, then attempted again
    dialled = world.dialled()
    assert len(dialled) == len(set(dialled)) == len(CONTACTS) - 1
    assert all(aid.endswith(".2") for aid in dialled)
    assert len(world.ledger()) == len(set(world.ledger()))


def test_a_stale_holders_outcomes_are_not_written():
    world = World()
    a, b = world.manager(0), world.manager(0)
    world.give(a)
    run(a.cycle())                                  # dispatched, outcomes waiting at the gateway
    world.give(b)                                   # B takes over; A has not renewed yet
    a.renewed = float("inf")                        # A's next cycle runs on its old belief
    run(a.cycle())
    assert [x for x in world.db.attempts if x.verdict == "allowed"] == []
    assert len([i for i in world.db.items.values() if i["state"] == "in_flight"]) == len(CONTACTS) - 1
    run(b.cycle())                                  # B adopts: looks the attempts up by id
    run(b.cycle())
    allowed = [x for x in world.db.attempts if x.verdict == "allowed"]
    assert len(allowed) == len(CONTACTS) - 1 and all(x.details.get("adopted") for x in allowed)
    assert all(x.epoch == 1 for x in allowed)       # recorded under the epoch that sent them
    assert len(world.dialled()) == len(CONTACTS) - 1


def test_a_vanished_gateway_leaves_its_attempts_in_doubt():
    world = World(voice=SLOW)
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    assert len(svc.inflight) == len(CONTACTS) - 1
    world.gateways.vanish("gw-a")                   # its server is gone, and its record with it
    run(svc.cycle())                                # poll fails -> watched -> looked up -> gone
    allowed = [x for x in world.db.attempts if x.verdict == "allowed"]
    assert len(allowed) == len(CONTACTS) - 1 and {x.code for x in allowed} == {"in_doubt"}
    assert all("gw-a" in x.details["reason"] for x in allowed)
    assert {i["state"] for i in world.db.items.values()} == {"done"}   # the strategy's default: done
    assert svc.inflight == {} and svc.watch == set()


def test_a_gateway_that_misses_a_poll_is_looked_up_and_its_outcomes_kept():
    world = World(voice=SLOW)
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    world.clock.advance(600)                        # every call has ended by now
    poll = world.gateways.poll

    async def failing_poll(name, reply_to):
        raise GatewayUnreachable(name)
    world.gateways.poll = failing_poll
    run(svc.cycle())
    world.gateways.poll = poll
    allowed = [x for x in world.db.attempts if x.verdict == "allowed"]
    assert len(allowed) == len(CONTACTS) - 1 and {x.code for x in allowed} == {"answer_human"}
    assert all(x.details.get("adopted") for x in allowed)


def test_a_failed_cycle_forgets_its_memory_and_readopts_from_the_database():
    world = World(voice=SLOW)
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    world.clock.advance(600)
    write = svc.store.write_attempts

    def broken_write(rows):
        raise RuntimeError("disk full")
    svc.store.write_attempts = broken_write
    with pytest.raises(RuntimeError):
        run(svc.cycle())                            # outcomes polled, then the transaction fails
    assert not [x for x in world.db.attempts if x.verdict == "allowed"]     # rolled back
    svc.recover()
    assert svc.held == {} and svc.inflight == {} and svc.stats["cycle_errors"] == 1
    svc.store.write_attempts = write
    run(svc.cycle())                                # re-adopts every shard, looks the attempts up
    run(svc.cycle())
    allowed = [x for x in world.db.attempts if x.verdict == "allowed"]
    assert len(allowed) == len(CONTACTS) - 1 and {x.code for x in allowed} == {"answer_human"}
    assert len(world.dialled()) == len(CONTACTS) - 1             # nothing dialled again
    assert {i["state"] for i in world.db.items.values()} == {"done"}


def test_a_lost_database_connection_is_opened_again_once_the_database_is_back():
    world = World()
    svc = world.manager()
    world.give(svc)
    first = svc.store
    world.db.down = True
    with pytest.raises(DatabaseDown):
        run(svc.cycle())
    svc.recover()                                   # still down: keeps the broken store
    assert svc.store is first
    world.db.down = False
    first_broken = FakeWorkStore.broken
    FakeWorkStore.broken = property(lambda self: self is first)  # the old connection stays dead
    try:
        svc.recover()
        assert svc.store is not first
        run(svc.cycle())
    finally:
        FakeWorkStore.broken = first_broken
    assert len([i for i in world.db.items.values() if i["state"] == "in_flight"]) == len(CONTACTS) - 1


def test_a_draining_manager_settles_but_claims_nothing():
    world = World(voice=SLOW)
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    svc.draining = True
    world.clock.advance(600)
    run(svc.cycle())
    assert {i["state"] for i in world.db.items.values()} == {"done"}
    world.db.jobs[world.job_id]["state"] = "running"
    for item in world.db.items.values():            # new work is due, but the manager drains
        item.update(state="ready", next_at=T0)
    assert run(svc.cycle()) is False


def test_a_slow_gateway_is_not_waited_for_nor_sent_to_and_its_outcomes_are_kept():
    world = World(voice=SLOW, gateways=("gw-a", "gw-b"))
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    first = svc._gateway()
    other = ({"gw-a", "gw-b"} - {first}).pop()
    world.clock.advance(600)                        # every call has ended by now
    world.gateways.slow.add(first)                  # its server is being lost, or it is busy
    run(svc.cycle())
    assert not [x for x in world.db.attempts if x.verdict == "allowed"]   # nothing decided on it
    assert svc.watch and not svc._answers(first) and svc._gateway() == other
    world.gateways.slow.clear()                     # it answers again
    svc.suspect.clear()
    run(svc.cycle())
    allowed = [x for x in world.db.attempts if x.verdict == "allowed"]
    assert len(allowed) == len(CONTACTS) - 1 and {x.code for x in allowed} == {"answer_human"}


def test_an_unfenced_gateways_never_received_is_not_believed_until_it_is_fenced():
    """B takes A's shards while A's gateway does not answer the fence. Once the gateway
    answers again B fences it before it believes "never received", so an order of A still on
    its way, arriving after that, is refused: each contact is dialled once."""
    world = World(voice=SLOW)
    a, b = world.manager(0), world.manager(0)
    world.give(a)
    late = []
    submit = world.gateways.submit

    async def lost_on_the_way(name, orders):        # A's orders are delayed in the network
        late.extend(orders)
        raise GatewaySlow(name)
    world.gateways.submit = lost_on_the_way
    run(a.cycle())
    world.gateways.submit = submit
    world.gateways.slow.add("gw-a")
    world.give(b)
    run(b.cycle())                                  # adopts; the fence does not get through
    assert b.unfenced == {"gw-a": {s: 2 for s in range(SHARDS)}}
    world.gateways.slow.clear()
    b.suspect.clear()
    run(b.cycle())                                  # fenced now; then "never received": resent
    refused = run(world.gateways.submit_directly("gw-a", late))   # A's orders arrive after all
    assert len(refused) == len(late) == len(CONTACTS) - 1
    world.clock.advance(600)
    for _ in range(3):
        run(b.cycle())
    dialled = world.dialled()
    assert len(dialled) == len(set(dialled)) == len(CONTACTS) - 1 and all(d.endswith(".2") for d in dialled)
    assert not b.unfenced


def test_calls_at_a_silent_gateway_do_not_hold_the_concurrency_cap():
    """A lost server's calls are gone with it: the manager dials on through the others
    instead of waiting for Ray to declare that server dead."""
    capped = parse_strategy("""
name: capped
initial: call
handlers:
  call:
    type: call
    addresses: [phone1]
    pacing: {max_concurrent: 5}
    results: {default: done}
""")
    world = World(voice=SLOW, gateways=("gw-a", "gw-b"))
    world.db.strategies[1] = capped
    svc = world.manager()
    world.give(svc)
    run(svc.cycle())
    first = {row.gateway for _, row in svc.inflight.values()}
    assert len(svc.inflight) == 5 and len(first) == 1
    run(svc.cycle())
    assert len(svc.inflight) == 5                   # capped
    silent = first.pop()
    world.gateways.slow.add(silent)                 # that server goes silent
    run(svc.cycle())
    fresh = [row for _, row in svc.inflight.values() if row.gateway != silent]
    assert len(svc.inflight) > 5 and len(fresh) == len(svc.inflight) - 5   # more, through the other gateway


class Crashed(BaseException):
    """What the crash hook's `os._exit` raises here instead of ending the test process."""


@pytest.mark.parametrize("point, dialled, in_flight, settled", [
    ("after_claim", 0, 0, 0),                       # rolled back with the claim's transaction
    ("after_intent", 0, 19, 0),                     # intents committed, no order sent
    ("after_dispatch", 19, 19, 0),                  # at the gateway, nothing settled
    ("after_result", 19, 19, 0),                    # the settling transaction rolled back
])
def test_a_crash_point_ends_the_process_once_where_it_is_armed(tmp_path, monkeypatch, point, dialled, in_flight,
                                                               settled):
    """tests/chaos arms `POM_CRASH_DIR/<point>`: the first process to reach that point exits
    (removing the file); unarmed, or once it has fired, the cycle runs through."""
    from pom_actors.services import manager as manager_module

    def exit_(code):
        raise Crashed(code)
    monkeypatch.setattr(manager_module.os, "_exit", exit_)
    world = World()
    svc = world.manager()
    world.give(svc)
    monkeypatch.setenv("POM_CRASH_DIR", str(tmp_path))
    (tmp_path / point).touch()
    with pytest.raises(Crashed):
        for _ in range(3):                          # after_result needs a cycle with outcomes
            run(svc.cycle())
    assert not (tmp_path / point).exists()
    assert len(world.dialled()) == dialled
    assert len(world.db.job_items(world.job_id, "in_flight")) == in_flight
    assert len([a for a in world.db.attempts if a.verdict == "allowed"]) == settled
    run(svc.cycle())                                # fired once: the same process goes on


def test_crash_points_do_nothing_unless_armed(tmp_path, monkeypatch):
    from pom_actors.services import manager as manager_module

    monkeypatch.setattr(manager_module.os, "_exit", lambda code: pytest.fail("crashed"))
    monkeypatch.delenv("POM_CRASH_DIR", raising=False)
    for point in manager_module.CRASH_POINTS:
        manager_module.crash_point(point)
    monkeypatch.setenv("POM_CRASH_DIR", str(tmp_path))          # armed directory, no file
    world = World()
    svc = world.manager()
    world.give(svc)
    for _ in range(3):
        run(svc.cycle())
    assert len(world.dialled()) == len(CONTACTS) - 1


def test_a_manager_uses_its_campaigns_codes_as_they_are_when_it_starts():
    """A code added or changed through the API (store/codes.py) is in the code book of the
    job's next manager: its flags decide the next step, agents are offered it."""
    from pom_actors.core.codes import CompletionCode

    world = World()
    assert "callback_later" not in world.manager().strategy.codebook()
    world.db.campaigns[1]["codes"] = [CompletionCode("callback_later", final=True, system=False)]
    book = world.manager().strategy.codebook()
    assert book["callback_later"].final and not book["callback_later"].system
