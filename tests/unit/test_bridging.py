"""Answered live calls bridged onto agents, or abandoned: the decision (core/agents/bridge.py),
the voice simulator's agent legs, the Agent Manager's batch of call events, and a Campaign
Manager working it end to end without Ray or a database — every answered call is either
connected to an agent (ready -> reserved -> on call -> wrap-up, the screen popped) or
abandoned in the ledger and counted as such in the campaign's persisted rule window."""
import asyncio
from datetime import datetime, timedelta, timezone

from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.bridge import ABANDONED, ANSWERED, BRIDGE_WAIT_S, deadline, decide, expired
from pom_actors.core.clock import ManualClock
from pom_actors.core.orders import Order
from pom_actors.core.pacing.window import Tally
from pom_actors.media.voice_sim import VoiceProfile, VoiceSimulator, answered_at
from tests.unit.test_agent_manager_service import Floor
from tests.unit.test_manager_pacing import Agents, Job, cycle

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
HUMAN = VoiceProfile(answer_human=1, answer_machine=0, busy=0, no_answer=0, invalid_number=0, fax=0,
                     network_refusal=0, ring_s={"dist": "fixed", "value": 5.0},
                     talk_s={"dist": "fixed", "value": 30.0})


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# -- the decision -----------------------------------------------------------------------------------
def test_a_call_with_an_agent_in_time_is_connected_one_without_waits_then_is_abandoned():
    answered = {c: deadline(t) for c, t in {"a": at(0), "b": at(0), "c": at(-3), "d": at(-3)}.items()}
    d = decide(answered, {"a": 7, "b": None, "c": 8}, at(1.5))
    assert d.connect == {"a": 7}
    assert d.wait == ["b"]                                   # 1.5 s: it may still get an agent
    assert d.release == {"c": 8} and d.abandon == ["c", "d"]  # 4.5 s: too late, the agent is freed
    assert expired(answered, at(1.5)) == ["c", "d"]


def test_the_deadline_is_two_seconds_inclusive():
    answered = {"a": deadline(at(0))}
    assert deadline(at(0)) == at(BRIDGE_WAIT_S) and deadline(at(0), 30) == at(30)
    assert decide(answered, {"a": 1}, at(BRIDGE_WAIT_S)).connect == {"a": 1}
    assert decide(answered, {}, at(BRIDGE_WAIT_S)).wait == ["a"]
    assert decide(answered, {}, at(BRIDGE_WAIT_S + 0.001)).abandon == ["a"]
    assert expired(answered, at(BRIDGE_WAIT_S)) == []


# -- the voice simulator's agent legs ---------------------------------------------------------------
def orders(n: int, bridge: bool = True) -> list[Order]:
    return [Order(f"{i}.1", 1, 0, 1, "call", "+14155550100", "mgr", bridge=bridge) for i in range(n)]


def test_an_answered_call_is_a_notice_then_talks_on_the_agents_nailed_session():
    sim = VoiceSimulator(HUMAN, ManualClock(T0))
    sim.hold({"s7": 7})                                                 # agent 7's leg, nailed
    sim.place(orders(2), T0)
    notices = sim.due(at(5))
    assert [(o.code, o.at) for o in notices] == [(ANSWERED, at(5))] * 2 and len(sim) == 2
    assert notices[0].details == {"ring_s": 5.0, "bridge_wait_s": BRIDGE_WAIT_S}
    assert sim.bridge({"0.1": 7, "1.1": 7}, at(6)) == ["1.1"]          # one call per session
    assert sim.agent_legs() == {"nailed": 1, "bridged": 1, "waiting": 1, "opened": 1, "released": 0}
    done = sim.due(at(40))
    codes = {o.attempt_id: (o.code, o.at, o.details) for o in done}
    assert codes["0.1"] == ("answer_human", at(36), {"ring_s": 5.0, "talk_s": 30.0, "wait_s": 1.0, "agent_id": 7,
                                                      "session_id": "s7"})
    assert answered_at(*codes["0.1"][1:]) == at(5)                     # read back from the completion
    assert codes["1.1"][0] == ABANDONED and codes["1.1"][1] == at(7)   # no agent by its deadline
    assert codes["1.1"][2]["message"] == "played" and len(sim) == 0
    assert sim.agent_legs()["nailed"] == 1 and sim.agent_legs()["bridged"] == 0   # the session stays nailed
    assert sim.due(at(100)) == []                                       # the bridged call's deadline is stale


def test_calls_bridge_only_onto_nailed_legs_which_outlive_their_calls_and_are_released_after():
    sim = VoiceSimulator(HUMAN, ManualClock(T0))
    sim.place(orders(3), T0)
    sim.due(at(5))
    assert sim.bridge({"0.1": 1}, at(5)) == ["0.1"]                     # agent 1 has no leg: no new one per call
    sim.hold({"s1": 1, "s2": 2})
    assert sim.bridge({"0.1": 1, "1.1": 2}, at(5)) == []
    assert sim.hold({"s1": 1}) == {"nailed": 2, "bridged": 2, "waiting": 1, "opened": 2, "released": 0}
    assert sim.bridge({"2.1": 2}, at(5)) == ["2.1"]                     # s2 is being released: no new call
    done = {o.attempt_id: o for o in sim.due(at(36))}                   # the calls end after 30 s
    assert done["1.1"].details["session_id"] == "s2"
    legs = sim.agent_legs()
    assert (legs["nailed"], legs["released"]) == (1, 1)                 # s2 went with its call; s1 stays
    assert sim.hold({"s1b": 1})["released"] == 2                        # a new session replaces the old


def test_the_list_told_as_changes_holds_what_the_whole_list_holds():
    """`hold_changes` (what the Agent Manager sends a gateway that took its list before) ends
    with the legs `hold` of the whole list would: new sessions opened, an agent's new session
    replacing its old one, released ones closed, a leg carrying a call kept until its end."""
    whole, told = VoiceSimulator(HUMAN, ManualClock(T0)), VoiceSimulator(HUMAN, ManualClock(T0))
    for sim in (whole, told):
        sim.place(orders(1), T0)
        sim.due(at(5))
    steps = [{"s1": 1, "s2": 2}, {"s1": 1, "s2": 2, "s3": 3}, {"s1b": 1, "s2": 2, "s3": 3}, {"s3": 3}]
    held: dict[str, int] = {}
    for i, sessions in enumerate(steps):
        a = whole.hold(sessions)
        b = told.hold_changes({s: x for s, x in sessions.items() if held.get(s) != x},
                              [s for s in held if s not in sessions])
        held = sessions
        assert a == b and sorted(whole._legs) == sorted(told._legs)
        if i == 0:
            assert whole.bridge({"0.1": 2}, at(5)) == told.bridge({"0.1": 2}, at(5)) == []
    assert sorted(told._legs) == ["s2", "s3"] and told._legs["s2"].closing   # s2 ends with its call
    assert told.hold_changes({}, ["gone"]) == whole.agent_legs()                # an unknown id: nothing


def test_a_bridge_past_the_deadline_or_of_an_unknown_call_is_refused():
    sim = VoiceSimulator(HUMAN, ManualClock(T0))
    sim.place(orders(1), T0)
    sim.due(at(5))
    assert sim.bridge({"0.1": 1, "9.1": 2}, at(7.5)) == ["0.1", "9.1"]
    assert [o.code for o in sim.due(at(8))] == [ABANDONED]


def test_the_wait_is_the_profiles():
    sim = VoiceSimulator(HUMAN.model_copy(update={"bridge_wait_s": 30.0}), ManualClock(T0))
    sim.hold({"s1": 1})
    sim.place(orders(1), T0)
    assert sim.due(at(5))[0].details["bridge_wait_s"] == 30.0
    assert sim.due(at(34)) == [] and sim.bridge({"0.1": 1}, at(34)) == []
    assert sim.due(at(64))[0].details["wait_s"] == 29.0


def test_calls_of_agentless_handlers_are_not_bridged():
    sim = VoiceSimulator(HUMAN, ManualClock(T0))
    sim.place(orders(1, bridge=False), T0)
    assert [(o.code, o.at) for o in sim.due(at(40))] == [("answer_human", at(35))]


# -- the Agent Manager's batch ----------------------------------------------------------------------
def test_settle_calls_moves_agents_through_the_call_and_skips_stale_calls():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=30)])
    f.staff()
    f.svc.tick()
    screen = {"contact": {"first_name": "Ada"}, "script": {"text": "Hello Ada"}, "codes": ["sale"]}
    reserved = f.svc.reserve_many(1, ["c1", "c2", "c3"], {"c1": screen, "c2": screen, "c3": screen})
    assert sorted(v for v in reserved.values() if v) == sorted(f.ids) and reserved["c3"] is None
    assert f.svc.settle_calls(connect=["c1", "c9"], release=["c2"]) == \
        {"connected": 1, "released": 1, "hung_up": 0, "stale": 1}
    assert f.svc.settle_calls(hangup=["c1", "c2"]) == {"connected": 0, "released": 0, "hung_up": 1, "stale": 1}
    states = {a["id"]: a["state"] for a in f.svc.list_agents()}
    assert states == {reserved["c1"]: "wrap_up", reserved["c2"]: "ready"}
    pops = [e for _, _, e in f.svc.feed.entries if isinstance(e, dict) and e.get("type") == "call"]
    assert [p["call_id"] for p in pops] == ["c1", "c2"] and pops[0]["script"] == {"text": "Hello Ada"}


# -- a Campaign Manager bridging ---------------------------------------------------------------------
def test_answered_calls_are_bridged_within_two_seconds_or_abandoned_and_counted():
    job = Job("{mode: progressive, settings: {ratio: 2.0}}", agents=2, voice=HUMAN)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    assert job.in_flight() == 4                                        # 2 lines per ready agent
    job.clock.advance(5)                                               # 4 answered, 2 agents
    cycle(svc)
    states = [a["state"] for a in job.floor.svc.list_agents()]
    assert states == ["on_call", "on_call"] and svc.status()["waiting_for_agent"] == 2
    waited = svc.status()["answer_to_agent"]                          # answered-to-agent, business s
    assert waited["count"] == 2 and waited["sum"] <= 2 * BRIDGE_WAIT_S
    job.clock.advance(1)
    cycle(svc)
    assert svc.status()["waiting_for_agent"] == 2                      # still in time, still no agent
    figures = svc.status()["pacing"]["call"]
    assert figures["in_flight"] == 2 and figures["dials"] == 0          # the waiting calls are lines,
    assert figures["lines"] == 4                                        # the bridged ones their agents' calls
    job.clock.advance(1.5)                                             # past the deadline: abandoned
    cycle(svc)
    cycle(svc)
    abandoned = [a for a in job.db.attempts if a.code == ABANDONED]
    assert len(abandoned) == 2 and svc.status()["waiting_for_agent"] == 0
    assert all(a.details["wait_s"] == BRIDGE_WAIT_S and a.details["message"] == "played" for a in abandoned)
    assert svc.status()["answer_to_agent"]["count"] == 2                # the abandoned calls are not in it
    job.clock.advance(30)                                              # the bridged calls end
    cycle(svc)
    talked = [a for a in job.db.attempts if a.code == "answer_human"]
    agents = {a["id"]: a for a in job.floor.svc.list_agents()}
    assert sorted(a.details["agent_id"] for a in talked) == sorted(agents)
    assert {a["state"] for a in agents.values()} == {"wrap_up"}
    for a in talked:                                                    # the agent wraps up the call it had
        assert agents[a.details["agent_id"]]["call_id"] == f"{a.work_item_id}.{a.attempt_no}"
    total = sum(job.db.pacing.values(), Tally())
    assert (total.live, total.abandoned) == (4, 2)                      # in the persisted window
    job.floor.svc.flush()
    events = [(str(t.from_state), str(t.to_state)) for t in job.floor.db.events]
    assert events.count(("ready", "reserved")) == events.count(("reserved", "on_call")) == 2
    assert events.count(("on_call", "wrap_up")) == 2


def test_an_answered_call_is_bridged_when_the_gateway_has_it_not_at_the_next_cycle():
    job = Job("{mode: progressive}", agents=2, voice=HUMAN)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    gateway = job.gateways.live["gw"]
    assert asyncio.run(gateway.answers(svc.name, 0.0)) == []            # nothing answered yet
    job.clock.advance(5)
    found = asyncio.run(gateway.answers(svc.name, 0.0))                # the long poll brings the notices
    assert [o.code for o in found] == [ANSWERED, ANSWERED]
    asyncio.run(svc.bridge_answers(found))                              # no cycle
    assert [a["state"] for a in job.floor.svc.list_agents()] == ["on_call", "on_call"]
    assert asyncio.run(gateway.stats())["agent_legs"]["bridged"] == 2
    pops = [e for _, _, e in job.floor.svc.feed.entries if isinstance(e, dict) and e.get("type") == "call"]
    assert sorted(p["call_id"] for p in pops) == sorted(o.attempt_id for o in found)
    job.clock.advance(30)                                              # the calls end; taken between cycles,
    ended = asyncio.run(gateway.poll(svc.name))                        # their agents wrap up at once and
    asyncio.run(svc.bridge_answers(ended))                              # the ledger has them at the next cycle
    assert [a["state"] for a in job.floor.svc.list_agents()] == ["wrap_up", "wrap_up"]
    assert [a.code for a in job.db.attempts] == [] and len(svc.carried) == 2
    cycle(svc)
    assert sorted(a.code for a in job.db.attempts) == ["answer_human", "answer_human"] and svc.carried == []


class SettleHeld(Agents):
    """The Agent Manager with its `settle_calls` replies held until `gate` opens."""

    def __init__(self, floor):
        super().__init__(floor)
        self.gate, self.reserved = asyncio.Event(), []

    async def reserve(self, job_id, call_ids, screens):
        self.reserved.append(sorted(call_ids))
        return await super().reserve(job_id, call_ids, screens)

    async def settle_calls(self, connect, release, hangup):
        await self.gate.wait()
        return await super().settle_calls(connect, release, hangup)


def test_a_call_answered_while_another_is_being_bridged_is_reserved_at_once():
    job = Job("{mode: progressive}", agents=2, voice=HUMAN)
    agents = SettleHeld(job.floor)
    svc = job.manager(agents=agents)
    job.give(svc)
    cycle(svc)
    job.clock.advance(5)
    first, second = asyncio.run(job.gateways.live["gw"].answers(svc.name, 0.0))

    async def two_bridgings():
        one = asyncio.ensure_future(svc.bridge_answers([first]))
        while not agents.reserved:                  # reserved; its settle_calls not answered
            await asyncio.sleep(0)
        two = asyncio.ensure_future(svc.bridge_answers([second]))
        for _ in range(20):
            await asyncio.sleep(0)
        pops = [e["call_id"] for _, _, e in job.floor.svc.feed.entries if isinstance(e, dict) and e.get("type") == "call"]
        assert agents.reserved == [[first.attempt_id], [second.attempt_id]]   # not behind the first's settle,
        assert sorted(pops) == sorted([first.attempt_id, second.attempt_id])  # nor the first call twice
        assert not one.done() and not two.done()
        agents.gate.set()
        await asyncio.gather(one, two)

    asyncio.run(two_bridgings())
    assert [a["state"] for a in job.floor.svc.list_agents()] == ["on_call", "on_call"]
    assert svc.status()["bridged"] == 2 and svc.reserving == set()


class ReplyLost(Agents):
    """An Agent Manager that reserves but whose reply is lost (a time-out: Ray's retry ran it)."""

    async def reserve(self, job_id, call_ids, screens):
        await super().reserve(job_id, call_ids, screens)
        return None


def test_an_agent_reserved_for_a_call_whose_reply_was_lost_is_freed_when_the_call_ends_unbridged():
    job = Job("{mode: progressive}", agents=1, voice=HUMAN)
    svc = job.manager(agents=ReplyLost(job.floor))
    job.give(svc)
    cycle(svc)
    job.clock.advance(5)                                               # answered; no reply
    cycle(svc)
    assert [a["state"] for a in job.floor.svc.list_agents()] == ["reserved"]
    job.clock.advance(BRIDGE_WAIT_S + 1)                               # abandoned by the gateway
    cycle(svc)
    cycle(svc)
    assert [a.code for a in job.db.attempts] == [ABANDONED]
    assert [a["state"] for a in job.floor.svc.list_agents()] == ["ready"]   # not held for 30 s
    assert svc.unsure == set()


def test_without_an_agent_manager_answered_calls_are_abandoned_by_the_gateway():
    job = Job("{mode: progressive}", agents=2, voice=HUMAN)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    svc.agents = None
    job.clock.advance(5)
    cycle(svc)
    job.clock.advance(3)
    cycle(svc)
    assert [a.code for a in job.db.attempts] == [ABANDONED, ABANDONED]
