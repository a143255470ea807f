"""Preview: the contact handed to an agent before any dial. The card's life (core/agents/preview.py:
shown -> accepted | skipped | timed out | cancelled, once), the Agent Manager holding the cards
(the time-out's action, a card withdrawn when its agent leaves or is lost in a restart), and a
Campaign Manager working a preview job without Ray or a database: every contact is accepted and
dialled — its call bridged to the agent who accepted it — skipped or timed out exactly once,
and the ledger and the agents' log agree."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.agents import preview as P
from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.orders import Order
from pom_actors.core.reconcile import not_sent
from tests.unit.test_agent_manager_service import Floor
from tests.unit.test_bridging import HUMAN
from tests.unit.test_manager_pacing import Agents, Job

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
CONTACTS = 24
BUSY = HUMAN.model_copy(update={"answer_human": 0, "busy": 1})


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def card(timeout_s=30.0, on_timeout="dial", codes=("skipped", "wrong_person")) -> P.Card:
    return P.Card("7.1", 3, 1, "m", T0, timeout_s, on_timeout, codes)


# -- the card ---------------------------------------------------------------------------------------
def test_a_card_ends_once_accepted_skipped_timed_out_or_cancelled():
    c = card()
    a = P.accept(c, at(4))
    assert (a.answer, a.dial, a.code, a.shown_s) == ("accept", True, None, 4.0) and c.dialled and not c.open
    with pytest.raises(DispositionError) as twice:
        P.skip(c, at(5))
    assert twice.value.field == "card_id"
    assert P.expire(c, at(60)) is None                       # answered: the time-out has nothing to do
    s = P.skip(card(), at(2), "wrong_person")
    assert (s.answer, s.dial, s.code) == ("skip", False, "wrong_person")
    assert P.skip(card(), at(2)).code == "skipped"          # no code: the first skip code
    with pytest.raises(DispositionError) as bad:
        P.skip(card(), at(2), "sale")
    assert bad.value.field == "code"
    x = P.cancel(card(), at(1), "logged out")
    assert (x.answer, x.dial, x.code, x.reason) == ("cancelled", False, "cancelled", "logged out")


@pytest.mark.parametrize("on_timeout, dial, code", [("dial", True, None), ("skip", False, "timeout")])
def test_the_time_out_dials_or_skips_as_the_strategy_says(on_timeout, dial, code):
    c = card(20.0, on_timeout)
    assert c.expires_at == at(20) and P.expire(c, at(19.9)) is None and c.open
    t = P.expire(c, at(20))
    assert (t.answer, t.dial, t.code) == ("timeout", dial, code) and c.dialled is dial
    assert P.expire(card(None), at(10**6)) is None           # no time-out: the agent answers


def test_what_an_undialled_cards_attempt_completes_with():
    def ans(answer, dial, code, reason=None):
        return P.Answer("7.1", 3, answer, dial, code, at(5), 5.0, reason).as_dict()
    assert P.outcome(ans("accept", True, None)) is None and P.outcome(ans("timeout", True, None)) is None
    skipped = P.outcome(ans("skip", False, "wrong_person"))
    assert (skipped.code, skipped.details["card"], skipped.details["card_agent"]) == ("wrong_person", "skip", 3)
    assert not not_sent(skipped)                             # settled per the strategy
    assert P.outcome(ans("timeout", False, "timeout")).code == "timeout"
    returned = P.outcome(ans("cancelled", False, "cancelled", "logged out"))
    assert not_sent(returned) and returned.details["reason"] == "logged out"   # due again, never dialled


def test_held_orders_follow_their_cards():
    h = P.HeldOrders()
    for i in range(3):
        h.hold(Order(f"{i}.1", 1, 0, 1, "call", "+1", "m", bridge=True), {"card_id": f"{i}.1"})
    h.ready = 5
    assert h.wanted(2) == 0 and h.wanted() == 2              # one of 2 managers: 3 of 5 ready, 3 queued
    assert P.HeldOrders(ready=1).wanted(2) == 1              # a lone agent: each manager may offer it one
    h.placed({"0.1": 7, "1.1": 8, "2.1": None})
    assert set(h.shown) == {"0.1", "1.1"} and set(h.queued) == {"2.1"}
    accept = P.Answer("0.1", 7, "accept", True, None, T0, 1.0).as_dict()
    skip = P.Answer("1.1", 8, "skip", False, "skipped", T0, 1.0).as_dict()
    stray = P.Answer("9.1", 9, "accept", True, None, T0, 1.0).as_dict()
    dial, settle, strays = h.answered({"0.1": accept, "1.1": skip, "9.1": stray})
    assert [o.attempt_id for o in dial] == ["0.1"] and h.dialled == {"0.1"}
    assert [(o.attempt_id, o.code) for o in settle] == [("1.1", "skipped")] and strays == ["9.1"]
    assert h.answered({"1.1": skip}) == ([], [], [])          # answered once: a repeat is nothing
    h.placed({"2.1": 9})
    h.forget(["2.1"])                                        # its shard lost: an accept is a stray now
    assert len(h) == 0
    assert h.answered({"2.1": {**accept, "card_id": "2.1"}})[2] == ["2.1"]


# -- the Agent Manager holding the cards ------------------------------------------------------------
def floor(n=2) -> Floor:
    f = Floor(n)
    f.svc.set_jobs([JobSpec(1, mode="preview")])
    f.staff()
    f.svc.tick()
    return f


@pytest.mark.parametrize("leave", ["logout", "not_ready", "force_logoff", "disconnect"])
def test_an_agent_leaving_with_a_card_cancels_it_and_the_contact_is_returned(leave):
    f = floor(1)
    login = f.svc.view(f.ids[0])["login"]
    r = f.svc.offer_cards(1, "m", {"5.1": {"contact": {}}}, timeout_s=30, on_timeout="dial")
    assert r["offered"] == {"5.1": f.ids[0]} and r["ready"] == 0
    if leave == "logout":
        f.svc.desk(login, "logout")
    elif leave == "not_ready":
        f.svc.desk(login, "not_ready", reason="break")
    elif leave == "force_logoff":
        f.svc.supervise(login, "force_logoff", reason="shift end")
    else:
        f.svc.desk(login, "not_ready", reason="disconnected")        # what the hub sends
    answer = f.svc.offer_cards(1, "m", {}, ["5.1"])["answers"]["5.1"]
    assert (answer["answer"], answer["dial"], answer["code"]) == ("cancelled", False, "cancelled")
    assert f.svc.view(f.ids[0])["state"] == ("not_ready" if leave in ("not_ready", "disconnect") else "logged_out")
    f.clock.advance(60)
    f.svc.tick()                                             # the time-out finds nothing to dial
    assert f.svc.offer_cards(1, "m", {}, [])["answers"] == {}


def test_a_timed_out_card_to_dial_keeps_its_agent_for_the_call():
    f = floor(2)
    r = f.svc.offer_cards(1, "m", {"1.1": {}, "2.1": {}, "3.1": {}}, timeout_s=10, on_timeout="dial")
    assert list(r["offered"].values()).count(None) == 1      # two agents: the third card waits
    f.clock.advance(10)
    f.svc.tick()
    answers = f.svc.offer_cards(1, "m", {}, ["1.1", "2.1"])["answers"]
    assert {c: (a["answer"], a["dial"]) for c, a in answers.items()} == {"1.1": ("timeout", True),
                                                                        "2.1": ("timeout", True)}
    assert {a["state"] for a in f.svc.list_agents()} == {"reserved"}
    assert f.svc.reserve_many(1, ["1.1"]) == {"1.1": r["offered"]["1.1"]}   # the answered call finds its agent
    f.svc.settle_calls(connect=["1.1"], release=["2.1"])
    assert sorted(a["state"] for a in f.svc.list_agents()) == ["on_call", "ready"]
    f.svc.flush()
    notes = [(t.call_id, t.event, t.reason) for t in f.db.events if t.event == "accept"]
    assert sorted(notes) == [("1.1", "accept", "timeout"), ("2.1", "accept", "timeout")]


def test_cards_lost_in_a_restart_are_cancelled_and_their_agents_freed():
    f = floor(1)
    f.svc.offer_cards(1, "m", {"1.1": {}}, timeout_s=30)
    f.svc.flush()
    svc = f.restart()
    assert svc.view(f.ids[0])["state"] == "reserved"
    answer = svc.offer_cards(1, "m", {}, ["1.1"])["answers"]["1.1"]
    assert (answer["answer"], answer["reason"]) == ("cancelled", "lost")
    assert svc.view(f.ids[0])["state"] == "ready"


# -- a Campaign Manager working a preview job -------------------------------------------------------
class Desks(Agents):
    """The Agent Manager with the agents' desktops: each card shown is answered by `choose(i)`
    (accept, skip or None: left to time out), in the order shown."""

    def __init__(self, floor, choose):
        super().__init__(floor)
        self.choose, self.shown = choose, []

    async def offer_cards(self, job_id, owner, new, shown, **card):
        r = self.floor.svc.offer_cards(job_id, owner, new, shown, **card)
        for card_id, agent in r["offered"].items():
            if agent is not None:
                self.shown.append(card_id)
                act = self.choose(len(self.shown) - 1)
                login = self.floor.svc.view(agent)["login"]
                if act:
                    self.floor.svc.desk(login, act, card_id=card_id)
        return r


def preview_job(pacing: str, agents: int, choose, voice=HUMAN):
    job = Job(pacing, agents=agents, voice=voice)
    for item in job.db.job_items(job.job_id)[CONTACTS:]:     # a short list
        item["state"] = "done"
    job.floor.clock.t = job.clock.now()                        # one business clock
    job.floor.svc.set_jobs([JobSpec(job.job_id, mode="preview", wrap_limit_s=5.0)])
    desks = Desks(job.floor, choose)
    svc = job.manager(agents=desks)
    job.give(svc)
    return job, desks, svc


def turn(job, svc, seconds=1.0):
    svc.offered = svc.fetched = svc.counted = -float("inf")
    asyncio.run(svc.cycle())
    job.clock.advance(seconds)
    job.floor.clock.advance(seconds)
    job.floor.svc.tick()


def test_a_preview_job_dials_only_accepted_cards_and_bridges_them_to_their_agent():
    acts = ["accept", "skip", None]                          # every third card left to time out
    job, desks, svc = preview_job("{mode: preview, settings: {timeout_s: 10, dial_on_timeout: false}}", 3,
                                  lambda i: acts[i % 3])
    for _ in range(1000):
        turn(job, svc)
        if not job.db.job_items(job.job_id, "ready", "scheduled", "in_flight"):
            break
    rows = {f"{a.work_item_id}.{a.attempt_no}": a for a in job.db.attempts}
    assert len(rows) == CONTACTS == len(desks.shown) == len(set(desks.shown))
    job.floor.svc.flush()
    ends = {}
    for t in job.floor.db.events:
        if t.call_id in rows and (t.event == "accept" or t.event == "release"):
            ends.setdefault(t.call_id, []).append((t.agent_id, t.event, t.reason))
    for i, card_id in enumerate(desks.shown):
        row, act = rows[card_id], acts[i % 3]
        if act == "accept":                                   # dialled once, talked to the agent who took it
            assert row.code == "answer_human" and row.gateway == "gw"
            assert [e[1:] for e in ends[card_id]] == [("accept", "agent")]
            assert row.details["agent_id"] == ends[card_id][0][0]
        elif act == "skip":
            assert (row.code, row.details["card"]) == ("skipped", "skip")
            assert [e[1:] for e in ends[card_id]] == [("release", "skipped")]
        else:
            assert (row.code, row.details["card"]) == ("timeout", "timeout")
            assert [e[1:] for e in ends[card_id]] == [("release", "timeout")]
    sent = asyncio.run(job.gateways.live["gw"].order_ids())  # every order the gateway ever took
    assert sorted(sent) == sorted(c for i, c in enumerate(desks.shown) if acts[i % 3] == "accept")
    assert svc.stats["cards_accept"] == svc.stats["cards_skip"] == svc.stats["cards_timeout"] == len(rows) // 3
    assert sum(t.live for t in job.db.pacing.values()) == svc.stats["cards_accept"]   # skips are no calls


def test_an_accepted_call_nobody_answers_frees_its_agent():
    job, desks, svc = preview_job("{mode: preview}", 1, lambda i: "accept", voice=BUSY)
    while not job.db.attempts:
        turn(job, svc)
    assert job.db.attempts[0].code == "busy"
    assert job.floor.svc.list_agents()[0]["state"] in ("ready", "reserved")   # freed, then the next card
    job.floor.svc.flush()
    first = desks.shown[0]
    assert [t.event for t in job.floor.db.events if t.call_id == first] == ["reserve", "accept", "release"]
