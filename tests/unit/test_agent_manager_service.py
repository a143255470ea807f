"""The Agent Manager's plain class over an in-memory store: lifecycle, attachment,
reserve/release, snapshot, licenses, batched writes, and a rebuild after a restart."""
from __future__ import annotations

import inspect
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.config import Settings
from pom_actors.core.agents.attachment import AttachmentError, JobSpec
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.agents.disposal import kept
from pom_actors.core.agents.licenses import Demand, LicensePools
from pom_actors.core.agents.state import AgentState, IllegalAgentTransition
from pom_actors.services.agent_manager import (MOVES_PER_TICK, RESERVE_TIMEOUT_S, AgentManagerService, UnknownAgent,
                                             UnknownCall)

S = AgentState
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class StepClock:
    def __init__(self):
        self.t = T0

    def now(self):
        return self.t

    def real_seconds(self, s):
        return s

    def advance(self, s: float):
        self.t += timedelta(seconds=s)


class FakeAgentDb:
    """The `agents` and `agent_events` tables in memory."""

    def __init__(self):
        self.agents: dict[int, dict] = {}
        self.logins: dict[str, int] = {}
        self.events: list = []
        self.writes = 0
        self.down = False
        self.disposed: list[tuple[int, str, str]] = []     # (job, call, code) written by the Agent Manager
        self.in_flight: set[str] = set()                   # calls whose attempt has not settled
        self.kept: dict[str, dict] = {}                    # agent_dispositions: call -> disposition
        self.written_at: dict[str, float] = {}             # ... and when it was written (`real`)
        self.real = 0.0                                    # the database's now(), seconds
        self.tokens: dict[int, int] = {}                   # agent token id -> its agent (not revoked)


class FakeAgentStore:
    """`store.agents.AgentStore` over a FakeAgentDb."""

    def __init__(self, db: FakeAgentDb):
        self.db = db

    @property
    def broken(self) -> bool:
        return self.db.down

    def create_agent(self, login, name="", skills=(), groups=()):
        if login in self.db.logins:
            a = self.db.agents[self.db.logins[login]]
            a.update(name=name, skills=sorted(set(skills)), groups=sorted(set(groups)))
            if a["state"] == "deleted":
                a["state"] = "logged_out"
            return a["id"]
        i = self.db.logins[login] = len(self.db.agents) + 1
        self.db.agents[i] = {"id": i, "login": login, "name": name, "skills": sorted(set(skills)),
                             "groups": sorted(set(groups)), "state": "logged_out", "job_id": None, "updated_at": T0}
        return i

    def update_agent(self, agent_id, *, name=None, skills=None, groups=None):
        a = self.db.agents[agent_id]
        for key, value in (("name", name), ("skills", skills), ("groups", groups)):
            if value is not None and a["state"] != "deleted":
                a[key] = value if key == "name" else sorted(set(value))

    def delete_agent(self, agent_id):
        self.db.agents[agent_id].update(state="deleted", job_id=None, screen=None)
        revoked = [t for t, a in self.db.tokens.items() if a == agent_id]
        for t in revoked:
            del self.db.tokens[t]
        return revoked

    def write(self, transitions, states, dispositions=()):
        if self.db.down:
            raise ConnectionError("the database is down")
        self.db.writes += 1
        self.db.events.extend(transitions)
        for d in kept(dispositions):
            self.db.kept[d["call_id"]], self.db.written_at[d["call_id"]] = dict(d), self.db.real
        for i, state, job_id, at, screen in states:
            if self.db.agents[i]["state"] != "deleted":
                self.db.agents[i].update(state=state, job_id=job_id, updated_at=at, screen=screen)

    def load(self):
        latest = {}
        for t in self.db.events:
            latest[t.agent_id] = t
        out = []
        for i, a in sorted(self.db.agents.items()):
            if a["state"] == "deleted":
                continue
            e = latest.get(i)
            out.append({"id": i, "login": a["login"], "name": a["name"], "skills": a["skills"], "groups": a["groups"],
                        "row_state": a["state"], "job_id": a["job_id"], "updated_at": a["updated_at"],
                        "screen": a.get("screen"),
                        "at": e and e.at, "to_state": e and str(e.to_state), "event": e and e.event,
                        "reason": e and e.reason, "event_job": e and e.job_id, "call_id": e and e.call_id,
                        "pending": e and e.pending, "pending_reason": e and e.pending_reason,
                        "wrap_until": e and e.wrap_until})
        return out

    def dispositions(self, older_than_s=None, known=(), ended=()):
        return sorted((d for c, d in self.db.kept.items() if older_than_s is None or c not in known and
                       (self.db.real - self.db.written_at[c] >= older_than_s or d["job_id"] in ended)),
                      key=lambda d: (d["at"], d["call_id"]))

    def dispose(self, job_id, dispositions, expire_before=None):
        """As store/dispositions.py: applied once (its kept row deleted), unless its call id is
        in `db.in_flight` (pending; expired, its row deleted, if made before `expire_before`);
        one whose row is gone is `written` already."""
        if self.db.down:
            raise ConnectionError("the database is down")
        out = {"applied": [], "refused": [], "called_back": [], "pending": [], "written": [], "expired": []}
        for d in dispositions:
            c = d["call_id"]
            if c not in self.db.kept:
                out["written"].append(c)
            elif c not in self.db.in_flight:
                self.db.disposed.append((job_id, c, d["code"]))
                out["applied"].append(c)
                del self.db.kept[c]
            elif expire_before is not None and d["at"] < expire_before:
                out["expired"].append(c)
                del self.db.kept[c]
            else:
                out["pending"].append(c)
        return out

    def sessions(self):
        latest = {t.agent_id: t for t in self.db.events if t.event in ("nail", "reuse", "unnail")}
        return [(i, t.event, t.reason) for i, t in sorted(latest.items())
                if self.db.agents[i]["state"] not in ("logged_out", "deleted")]


class Floor:
    """A service, its clock and its database; `restart()` builds a new service over the same
    database, as Ray does after the actor died."""

    def __init__(self, agents: int = 0, skills=("sales",), pools: LicensePools | None = None):
        self.db, self.clock = FakeAgentDb(), StepClock()
        self.pools = pools
        self.svc = self.new()
        self.ids = [self.svc.add_agent(f"a{i}", skills=skills) for i in range(agents)]

    def new(self) -> AgentManagerService:
        return AgentManagerService(Settings(tick_s=0.01), open_store=lambda: FakeAgentStore(self.db),
                                   clock=self.clock, pools=self.pools)

    def restart(self) -> AgentManagerService:
        self.svc = self.new()
        self.svc.rebuild()
        return self.svc

    def staff(self, *ids):
        for i in ids or self.ids:
            self.svc.login(i)
            self.svc.set_ready(i)


def test_lifecycle_through_a_call():
    f = Floor(1)
    a = f.ids[0]
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=30)])
    f.staff()
    f.svc.tick()
    assert f.svc.view(a)["job_id"] == 1 and f.svc.view(a)["state"] == "ready"
    assert f.svc.reserve(1, "call-1") == a
    assert f.svc.reserve(1, "call-1") == a                    # the same call again: the same agent
    assert f.svc.reserve(1, "call-2") is None                 # nobody else is ready
    f.svc.connect("call-1")
    f.clock.advance(60)
    f.svc.hangup("call-1")
    assert f.svc.view(a)["state"] == "wrap_up" and f.svc.view(a)["wrap_until"] == f.clock.t + timedelta(seconds=30)
    f.svc.dispose(a, "sale")
    f.svc.not_ready(a, "lunch")
    f.svc.logout(a)
    f.svc.tick()
    events = [(str(t.from_state), str(t.to_state), t.event) for t in f.db.events]
    assert events == [("logged_out", "not_ready", "login"), ("not_ready", "ready", "ready"),
                      ("ready", "ready", "attach"), ("ready", "ready", "nail"), ("ready", "reserved", "reserve"),
                      ("reserved", "on_call", "connect"), ("on_call", "wrap_up", "hangup"),
                      ("wrap_up", "ready", "dispose"), ("ready", "not_ready", "not_ready"),
                      ("not_ready", "logged_out", "logout"), ("logged_out", "logged_out", "detach"),
                      ("logged_out", "logged_out", "unnail")]
    assert f.db.agents[a]["state"] == "logged_out" and f.db.agents[a]["job_id"] is None


def test_commands_by_name_and_an_unknown_one_refused():
    f = Floor(1)
    a = f.ids[0]
    assert f.svc.command(a, "login")["state"] == "not_ready"
    assert f.svc.command(a, "not_ready", "lunch")["reason"] == "lunch"
    assert f.svc.command(a, "force_logoff")["state"] == "logged_out"
    with pytest.raises(ValueError, match="unknown agent command 'sleep'"):
        f.svc.command(a, "sleep")


def test_illegal_commands_raise_and_change_nothing():
    f = Floor(1)
    a = f.ids[0]
    with pytest.raises(IllegalAgentTransition) as exc:
        f.svc.set_ready(a)
    assert exc.value.state == S.LOGGED_OUT and str(exc.value.event) == "ready"
    with pytest.raises(UnknownAgent):
        f.svc.login(99)
    with pytest.raises(UnknownCall):
        f.svc.connect("nope")
    assert f.svc.release("nope") is None
    assert f.svc.view(a)["state"] == "logged_out" and f.svc.log == []


def test_reserve_takes_the_longest_ready_agent_and_release_puts_it_back_last():
    f = Floor(3)
    f.svc.set_jobs([JobSpec(1)])
    for i in f.ids:
        f.staff(i)
        f.clock.advance(1)
    f.svc.tick()
    assert f.svc.reserve_many(1, ["x", "y"]) == {"x": f.ids[0], "y": f.ids[1]}
    assert f.svc.release("x") == f.ids[0]
    assert f.svc.reserve(1, "z") == f.ids[2]                 # the released agent queues again at the end
    assert f.svc.reserve(1, "w") == f.ids[0]


def test_reservations_and_wrap_ups_time_out_at_the_tick():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=5)])
    f.staff()
    f.svc.tick()
    f.svc.reserve(1, "c1")
    b = f.svc.reserve(1, "c2")
    f.svc.connect("c2")
    f.svc.hangup("c2")
    f.clock.advance(RESERVE_TIMEOUT_S + 1)
    out = f.svc.tick()
    assert out["released"] == 1 and out["wrap_timeouts"] == 1
    assert all(f.svc.view(i)["state"] == "ready" for i in f.ids) and b in f.ids


def test_force_logoff_during_a_call_happens_at_the_hangup():
    f = Floor(1)
    a = f.ids[0]
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    f.svc.reserve(1, "c")
    f.svc.connect("c")
    assert f.svc.force_logoff(a)["pending"] == "force_logoff"
    f.svc.hangup("c")
    v = f.svc.view(a)
    assert v["state"] == "logged_out" and v["job_id"] is None and "c" not in f.svc.calls


def test_agents_are_shared_by_priority_and_skills_and_rebalanced_when_jobs_change():
    f = Floor(6)
    spanish = [f.svc.add_agent(f"es{i}", skills=("sales", "spanish")) for i in range(2)]
    f.staff(*f.ids, *spanish)
    f.svc.set_jobs([JobSpec(1, priority=10), JobSpec(2, priority=5, skills=frozenset({"spanish"}))])
    f.svc.tick()
    assert sorted(f.svc.members[2]) == spanish and len(f.svc.members[1]) == 6
    # a third job starts: it takes its share from job 1, with the fewest moves
    f.svc.set_jobs([JobSpec(1, priority=10), JobSpec(2, priority=5, skills=frozenset({"spanish"})),
                    JobSpec(3, priority=5)])
    out = f.svc.tick()
    assert {j: len(m) for j, m in f.svc.members.items()} == {1: 4, 2: 2, 3: 2}
    assert out["moves"] == 2
    # job 1 stops: its agents go to the others
    f.svc.set_jobs([JobSpec(2, priority=5, skills=frozenset({"spanish"})), JobSpec(3, priority=5)])
    f.svc.tick()
    assert len(f.svc.members[1]) == 0 and len(f.svc.members[3]) == 6


def test_a_job_naming_groups_gets_only_their_agents_and_an_update_moves_one_out():
    f = Floor(0)
    gold = [f.svc.add_agent(f"g{i}", skills=("sales",), groups=("gold", "x")) for i in range(2)]
    silver = f.svc.add_agent("s0", skills=("sales",), groups=("silver",))
    loose = f.svc.add_agent("n0", skills=("sales",))
    f.staff(*gold, silver, loose)
    f.svc.set_jobs([JobSpec(1, priority=10, groups=frozenset({"gold"})), JobSpec(2, priority=1, min_agents=1)])
    f.svc.tick()
    assert sorted(f.svc.members[1]) == gold and sorted(f.svc.members[2]) == [silver, loose]
    assert [a["login"] for a in f.svc.list_agents(group="gold")] == ["g0", "g1"]
    assert f.svc.view(gold[0])["groups"] == ["gold", "x"]
    with pytest.raises(AttachmentError, match="none of the groups"):
        f.svc.move(silver, 1)
    # one gold agent on a call leaves the group: it stays for the call, then leaves the job
    f.svc.reserve(1, "c")
    busy = f.svc.calls["c"]
    idle = next(a for a in gold if a != busy)
    f.svc.connect("c")
    v = f.svc.update_agent(f"g{gold.index(busy)}", groups=["silver"])
    assert v["groups"] == ["silver"] and v["skills"] == ["sales"] and v["job_id"] == 1   # skills kept
    f.svc.tick()
    assert f.svc.view(busy)["job_id"] == 1 and f.svc.view(busy)["moving_to"] == 2
    f.svc.hangup("c")
    f.svc.dispose(busy, "done")
    assert f.svc.view(busy)["job_id"] == 2 and sorted(f.svc.members[1]) == [idle]
    # an idle one pinned to the job loses the pin and leaves at the next rebalance
    f.svc.move(idle, 1)
    assert f.svc.update_agent(f"g{gold.index(idle)}", name="Gail", groups=[])["pinned"] is False
    f.svc.tick()
    assert f.svc.view(idle)["job_id"] == 2 and f.svc.view(idle)["name"] == "Gail" and not f.svc.members[1]
    assert f.db.agents[idle]["groups"] == [] and f.db.agents[idle]["name"] == "Gail"
    # groups and names come back after a restart
    f.svc.update_agent("n0", groups=["gold"])
    svc = f.restart()
    assert svc.view(loose)["groups"] == ["gold"] and svc.view(idle)["name"] == "Gail"
    svc.set_jobs([JobSpec(1, priority=10, groups=frozenset({"gold"})), JobSpec(2, priority=1, min_agents=1)])
    svc.tick()
    assert sorted(svc.members[1]) == [loose]
    with pytest.raises(UnknownAgent):
        svc.update_agent("nobody", groups=["gold"])


def test_only_a_logged_out_agent_is_deleted_and_its_login_is_refused():
    f = Floor(2)
    a, b = f.ids
    f.db.tokens = {7: a, 8: b}
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    with pytest.raises(AttachmentError, match="log it off first"):
        f.svc.delete_agent("a0")
    f.svc.force_logoff(a, "leaving")
    assert f.svc.delete_agent("a0") == {"id": a, "login": "a0", "deleted": True, "revoked_tokens": [7]}
    assert f.db.tokens == {8: b}
    f.svc.tick()                                               # the flush leaves the mark alone
    assert f.db.agents[a]["state"] == "deleted" and any(t.agent_id == a for t in f.db.events)   # history kept
    for refused in (lambda: f.svc.agent_id("a0"), lambda: f.svc.delete_agent("a0"),
                    lambda: f.svc.update_agent("a0", name="x")):
        with pytest.raises(UnknownAgent):
            refused()
    assert [x["login"] for x in f.svc.list_agents()] == ["a1"]
    svc = f.restart()
    assert "a0" not in svc.logins and a not in svc.agents
    assert svc.add_agent("a0", skills=("sales",)) == a          # created again: its history with it
    assert svc.view(a)["state"] == "logged_out"


def test_an_agent_on_a_call_moves_only_after_it():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    busy = f.svc.reserve(1, "c")
    f.svc.connect("c")
    f.svc.set_jobs([JobSpec(2)])                              # job 1 stopped
    f.svc.tick()
    idle = next(i for i in f.ids if i != busy)
    assert f.svc.view(idle)["job_id"] == 2
    assert f.svc.view(busy)["job_id"] == 1 and f.svc.view(busy)["moving_to"] == 2
    f.svc.hangup("c")
    assert f.svc.view(busy)["job_id"] == 1                    # wrapping up the job-1 call
    f.svc.dispose(busy, "done")
    assert f.svc.view(busy)["job_id"] == 2 and f.svc.view(busy)["state"] == "ready"
    assert f.svc.reserve(2, "d") in f.ids


def test_supervisor_commands_limits_and_moves():
    f = Floor(4)
    f.svc.set_jobs([JobSpec(1, priority=5), JobSpec(2, priority=5, max_agents=3)])
    f.staff()
    f.svc.tick()
    assert [len(f.svc.members[j]) for j in (1, 2)] == [2, 2]
    f.svc.set_job(1, min_agents=3)
    f.svc.tick()
    assert [len(f.svc.members[j]) for j in (1, 2)] == [3, 1]
    mover = next(iter(f.svc.members[1]))
    f.svc.move(mover, 2)
    f.svc.tick()
    assert f.svc.view(mover)["job_id"] == 2 and f.svc.view(mover)["pinned"]
    # the pin holds; job 1's minimum of 3 takes back the agent job 2 had
    assert f.svc.members[2] == {mover} and len(f.svc.members[1]) == 3
    with pytest.raises(AttachmentError):
        f.svc.move(mover, 7)                                  # no such job
    with pytest.raises(AttachmentError):
        f.svc.set_job(2, min_agents=5)                        # above its maximum
    with pytest.raises(AttachmentError):
        f.svc.set_job(9, priority=1)


def test_licenses_cap_the_jobs_and_are_readable():
    f = Floor(10, pools=LicensePools(preview=1, predictive=4, ports=50))
    f.svc.set_jobs([JobSpec(1, priority=10, mode="predictive"), JobSpec(2, priority=5, mode="progressive"),
                    JobSpec(3, mode="preview")], notifications=[Demand(4, "ports", 5, 10, None)])
    f.staff()
    f.svc.tick()
    lic = f.svc.licenses()
    assert lic["pools"]["predictive"] == {"size": 4, "granted": 4, "free": 0}
    assert {j["job_id"]: j["granted"] for j in lic["jobs"]} == {1: 3, 2: 1, 3: 1, 4: 50}
    assert {j: len(m) for j, m in f.svc.members.items()} == {1: 3, 2: 1, 3: 1}
    assert sum(1 for i in f.ids if f.svc.view(i)["job_id"] is None) == 5


def test_snapshot_of_a_job():
    f = Floor(3)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    f.svc.reserve(1, "c")
    f.svc.connect("c")
    f.clock.advance(10)
    snap = f.svc.snapshot(1, dialling=(2.0,))
    assert snap.ready == (10.0, 10.0) and snap.talking == (10.0,) and snap.dialling == (2.0,)
    assert snap.now == f.clock.t and f.svc.snapshot(99).staffed == 0


def test_transitions_are_written_in_one_batch_per_tick():
    f = Floor(50)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    assert f.db.writes == 0 and f.db.events == []
    f.svc.tick()
    assert f.db.writes == 1 and len(f.db.events) == 200      # login, ready, attach, nail per agent
    f.svc.tick()
    assert f.db.writes == 1                                   # nothing new: no write


def test_a_failed_flush_loses_nothing():
    f = Floor(2)
    f.staff()
    f.db.down = True
    with pytest.raises(ConnectionError):
        f.svc.tick()
    f.db.down = False
    f.svc.tick()
    assert [t.event for t in f.db.events] == ["login", "ready", "login", "ready"]


def test_rebuild_after_a_restart_gives_the_same_states_and_attachments():
    f = Floor(5)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=20), JobSpec(2)])
    f.staff()
    f.svc.tick()
    a = f.svc.reserve(1, "c1")
    f.svc.connect("c1")
    f.svc.force_logoff(a)
    b = f.svc.reserve(1, "c2")
    f.svc.connect("c2")
    f.svc.hangup("c2")
    c = f.svc.reserve(2, "c3")
    d = next(i for i in f.ids if i not in (a, b, c) and f.svc.view(i)["state"] == "ready")
    f.svc.not_ready(d, "training")
    f.svc.tick()
    before = {i: f.svc.view(i) for i in f.ids}
    ready_order = {j: list(f.svc.roster.ready(j)) for j in f.svc.roster.jobs}

    svc = f.restart()
    assert {i: svc.view(i) for i in f.ids} == before
    assert {j: list(svc.roster.ready(j)) for j in svc.roster.jobs} == ready_order
    assert svc.calls == {"c1": a, "c2": b, "c3": c}
    # it goes on where it stopped: the pending force logoff, the wrap-up deadline
    svc.hangup("c1")
    assert svc.view(a)["state"] == "logged_out"
    svc.connect("c3")
    f.clock.advance(25)
    svc.tick()
    assert svc.view(b)["state"] == "ready"
    # nothing is rebalanced before the running jobs are told again
    assert svc.rebalance() == 0 and svc.view(d)["job_id"] == before[d]["job_id"]


def test_a_screen_pop_outlives_a_restart_and_is_given_again_with_the_view():
    """The screen pop of the call an agent holds is written with its row: a restarted Agent
    Manager gives it again with the agent's view (resync, login) and checks the disposition's
    code against it; once the call is disposed it is gone, here and in the store."""
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=60)])
    f.staff()
    f.svc.tick()
    screen = {"job_id": 1, "contact": {"first_name": "Ann"}, "script": {"text": "Hello Ann"},
              "codes": ["answer_human", "sale"]}
    a = f.svc.reserve_many(1, ["c1"], {"c1": screen})["c1"]
    b = f.svc.reserve_many(1, ["c2"])["c2"]                    # popped at connect instead, never
    login = f.svc.view(a)["login"]
    f.svc.tick()                                              # written, then the actor dies
    svc = f.restart()
    resent = svc.views([login, svc.view(b)["login"]])["screens"]
    assert list(resent) == [login] and resent[login] == {**screen, "type": "call", "call_id": "c1"}
    assert svc.desk(login, "login")["screen"] == resent[login]
    svc.connect("c1")
    svc.hangup("c1")
    with pytest.raises(DispositionError) as refused:
        svc.dispose(a, "refund")                              # not among the call's codes
    assert refused.value.field == "code"
    svc.dispose(a, "sale")
    svc.tick()
    assert svc.views([login])["screens"] == {} and f.db.agents[a]["screen"] is None


def test_dispositions_of_a_job_whose_managers_stopped_are_written_by_the_agent_manager():
    """A job that ends while its agents wrap up has no manager left to take their codes: the
    Agent Manager writes them itself (the running jobs' dispositions stay for their managers);
    one whose attempt has not settled is tried again, for DISPOSE_WAIT_S at most; the database
    down, they wait."""
    import asyncio
    from pom_actors.core.agents.disposal import DISPOSE_WAIT_S

    f = Floor(3)
    f.svc.set_jobs([JobSpec(1), JobSpec(2)])
    f.staff()
    f.svc.tick()
    calls = {}
    for job, call in ((1, "11.1"), (1, "12.1"), (2, "21.1")):
        calls[call] = f.svc.reserve(job, call)
        f.svc.connect(call)
        f.svc.hangup(call)
    f.svc.set_jobs([JobSpec(2)])                               # job 1 completed meanwhile
    for call, code in (("11.1", "sale"), ("12.1", "no_sale"), ("21.1", "sale")):
        f.svc.dispose(calls[call], code)
    f.svc.flush()                                             # written: theirs to take
    f.db.in_flight, f.db.down = {"12.1"}, True
    with pytest.raises(ConnectionError):
        asyncio.run(f.svc.dispose_orphans())
    assert len(f.svc.dispositions) == 3                       # kept while the database is down
    f.db.down = False
    assert asyncio.run(f.svc.dispose_orphans()) == 1
    assert f.db.disposed == [(1, "11.1", "sale")]
    assert [d["call_id"] for d in f.svc.take_dispositions(2)] == ["21.1"]    # job 2's manager's
    assert [d["call_id"] for d in f.svc.dispositions] == ["12.1"]            # tried again later
    f.db.in_flight = set()
    assert asyncio.run(f.svc.dispose_orphans()) == 1 and f.db.disposed[-1] == (1, "12.1", "no_sale")
    f.svc.set_jobs([JobSpec(1), JobSpec(2)])                  # one that never settles is given up
    b = f.svc.reserve(1, "13.1")
    f.svc.connect("13.1")
    f.svc.hangup("13.1")
    f.svc.set_jobs([JobSpec(2)])
    f.svc.dispose(b, "sale")
    f.svc.flush()
    f.db.in_flight = {"13.1"}
    asyncio.run(f.svc.dispose_orphans())
    f.clock.advance(DISPOSE_WAIT_S + 1)
    asyncio.run(f.svc.dispose_orphans())
    assert f.svc.dispositions == [] and f.svc.stats["orphans_applied"] == 2
    assert f.db.kept == {"21.1": f.db.kept["21.1"]}           # only job 2's, its manager's to write


def test_ten_thousand_agents_fit_in_a_few_megabytes():
    f = Floor(0)
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for i in range(10_000):
        f.svc.add_agent(f"agent-{i:05d}", skills=("sales", "spanish") if i % 3 else ("sales",))
    for i in f.svc.agents:
        f.svc.login(i)
        f.svc.set_ready(i)
    f.svc.set_jobs([JobSpec(j) for j in range(1, 11)])
    f.svc.rebalance()
    while f.svc.moves_left:
        f.svc.next_moves()
    f.svc.log.clear()                                 # transitions wait only until the next flush
    f.svc.feed.entries.clear()                        # bounded (FEED_MAX entries), whatever the agents
    # the fake database's rows (FakeAgentStore, PostgreSQL's part) are not the Agent Manager's memory
    lines, first = inspect.getsourcelines(FakeAgentStore)
    fake = range(first, first + len(lines))
    used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "lineno")
               if not (s.traceback[0].filename == __file__ and s.traceback[0].lineno in fake))
    tracemalloc.stop()
    assert used / 10_000 < 1_000, f"{used / 10_000:.0f} bytes per agent"     # measured: about 560
    assert sum(len(m) for m in f.svc.members.values()) == 10_000


def test_a_reply_waits_until_its_transitions_are_written_and_callers_share_the_write():
    """`written()` (what the actor awaits before it answers a reservation, a connect or a
    command): every transition recorded so far is in the store when it returns, whatever a
    restart then loses; callers of the same moment share one write."""
    import asyncio

    f = Floor(3)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()                                   # attached to the job, written
    writes = f.db.writes
    reserved = f.svc.reserve_many(1, ["c1", "c2"])
    f.svc.settle_calls(connect=["c1"])

    async def two_callers():
        await asyncio.gather(f.svc.written(), f.svc.written())
    asyncio.run(two_callers())
    assert f.db.writes == writes + 1 and f.svc.durable == f.svc.recorded
    asyncio.run(f.svc.written())                   # nothing new: no write
    assert f.db.writes == writes + 1
    svc = f.restart()                              # the actor killed right after it answered
    assert svc.view(reserved["c1"])["state"] == "on_call" and svc.view(reserved["c2"])["call_id"] == "c2"


def test_a_failed_write_fails_its_waiters_and_loses_nothing():
    import asyncio

    f = Floor(1)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.db.down = True
    with pytest.raises(ConnectionError):
        asyncio.run(f.svc.written())
    assert f.svc.durable < f.svc.recorded and f.svc.stats["flush_errors"] == 1
    f.db.down = False
    asyncio.run(f.svc.written())
    assert len(f.db.events) == f.svc.recorded and f.db.agents[f.ids[0]]["state"] == "ready"


def test_a_reservation_outlasts_a_manager_failover_and_the_bridged_call_is_connected_at_its_end():
    """A manager bridged a call at the gateway and died before telling the connect: the
    reservation (real seconds, whatever the clock's scale) still holds the agent when the
    call's end arrives from its successor, which connects it, then hangs it up."""
    f = Floor(1)
    f.clock.real_seconds = lambda s: s / 300.0        # a clock 300 times real time
    f.restart()
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    a = f.svc.reserve(1, "c1")
    f.clock.advance(300 * 20)                         # 20 real seconds: a failover
    assert f.svc.tick()["released"] == 0
    assert f.svc.settle_calls(hangup=["c1"]) == {"connected": 0, "released": 0, "hung_up": 1, "stale": 0}
    f.svc.flush()
    assert [(t.event, t.call_id) for t in f.db.events if t.call_id] == \
        [("reserve", "c1"), ("connect", "c1"), ("hangup", "c1")] and f.svc.view(a)["state"] == "wrap_up"


def test_a_disposition_is_handed_out_once_written_and_survives_restarts_until_a_manager_writes_it():
    """What the desktop is answered after (the flush with its `dispose` transition) is what a
    restarted Agent Manager hands to the job's manager: a disposition of a placed call is kept
    in PostgreSQL (agent_dispositions) until the ledger has it, whatever the restarts between."""
    import asyncio

    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    a, b = f.svc.reserve(1, "7.1"), f.svc.reserve(1, "card-9")   # a placed call; a card never dialled
    for call in ("7.1", "card-9"):
        f.svc.connect(call)
        f.clock.advance(30)
        f.svc.hangup(call)
    f.clock.advance(5)
    back = f.clock.now() + timedelta(hours=1)
    f.svc.dispose(a, "sale", back)
    f.svc.dispose(b, "no_sale")
    assert f.svc.take_dispositions(1) == []                  # not written yet: not handed out
    f.db.down = True
    with pytest.raises(ConnectionError):
        f.svc.flush()
    assert f.svc.take_dispositions(1) == [] and f.db.kept == {}
    f.db.down = False
    f.svc.flush()                                            # the desktop is answered after this
    assert list(f.db.kept) == ["7.1"]                        # the card's sets no code: not kept

    f.restart()                                              # killed before the manager took it
    [d] = f.svc.take_dispositions(1)
    assert (d["call_id"], d["job_id"], d["agent_id"], d["code"], d["callback_at"], d["talk_s"], d["wrap_s"]) == \
        ("7.1", 1, a, "sale", back, 30.0, 35.0)
    assert f.svc.take_dispositions(1) == []
    f.restart()                                              # taken, not yet written: handed out again
    assert [x["call_id"] for x in f.svc.take_dispositions(1)] == ["7.1"]
    assert f.svc.store.dispose(1, [d])["applied"] == ["7.1"]  # the manager writes it: the row goes
    f.restart()
    assert f.svc.take_dispositions(1) == [] and f.db.kept == {}

    f.svc.set_jobs([JobSpec(1)])                             # a job that stops while one waits:
    c = f.svc.reserve(1, "8.1")
    f.svc.connect("8.1")
    f.svc.hangup("8.1")
    f.svc.dispose(c, "no_sale")
    f.svc.flush()
    f.restart()                                              # ... the restarted Agent Manager
    f.svc.set_jobs([])                                       # writes it itself once told the jobs
    assert asyncio.run(f.svc.dispose_orphans()) == 1
    assert f.db.disposed[-1] == (1, "8.1", "no_sale") and f.db.kept == {}


def test_kept_dispositions_are_those_of_placed_calls_one_per_call():
    from pom_actors.core.agents.disposal import kept as kept_of

    t = T0
    ds = [{"call_id": "5.1", "job_id": 1, "code": "a", "at": t},
          {"call_id": "5.1", "job_id": 1, "code": "b", "at": t + timedelta(seconds=1)},    # the later wins
          {"call_id": "card-1", "job_id": 1, "code": "c", "at": t},                        # no attempt
          {"call_id": "6.2", "job_id": None, "code": "d", "at": t},                        # no job
          {"call_id": None, "job_id": 1, "code": "e", "at": t},
          {"call_id": "6.3", "job_id": 2, "code": "f", "at": t}]
    assert [(d["call_id"], d["code"]) for d in kept_of(ds)] == [("5.1", "b"), ("6.3", "f")]


def test_a_disposition_taken_and_never_written_is_handed_out_again():
    """A manager that took a disposition and stopped before writing it (or holds it while its
    attempt is in flight) leaves its row: after REOFFER_S it is handed out again, marked
    `again`, once per look; those waiting here are not doubled."""
    import asyncio

    from pom_actors.services.agent_manager import REOFFER_S

    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    a, b = f.svc.reserve(1, "7.1"), f.svc.reserve(1, "7.2")
    for call in ("7.1", "7.2"):
        f.svc.connect(call)
        f.svc.hangup(call)
    f.svc.dispose(a, "sale")
    f.svc.flush()
    [taken] = f.svc.take_dispositions(1)                   # ... by a manager that then died
    f.svc.dispose(b, "no_sale")
    f.svc.flush()                                          # not taken yet: waiting here
    f.svc.reoffered_at -= REOFFER_S
    f.db.real = REOFFER_S - 1
    assert asyncio.run(f.svc.reoffer()) == 0               # written too recently
    f.svc.reoffered_at -= REOFFER_S
    f.db.real = REOFFER_S
    assert asyncio.run(f.svc.reoffer()) == 1
    assert asyncio.run(f.svc.reoffer()) == 0               # one look per REOFFER_S
    again = f.svc.take_dispositions(1)
    assert [(d["call_id"], d.get("again")) for d in again] == [("7.2", None), ("7.1", True)]
    assert again[1]["code"] == taken["code"] == "sale" and f.svc.stats["reoffered"] == 1


def test_a_disposition_taken_by_a_manager_of_a_job_that_stops_is_written_at_the_next_ticks():
    """A manager took a disposition while its attempt was in flight and stopped with the job
    before writing it: once the job is no longer running, the row is handed out again at once,
    whatever its age, and the Agent Manager writes it into the ledger itself."""
    import asyncio

    f = Floor(1)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    a = f.svc.reserve(1, "7.1")
    f.svc.connect("7.1")
    f.svc.hangup("7.1")
    f.svc.dispose(a, "sale")
    f.svc.flush()
    assert [d["call_id"] for d in f.svc.take_dispositions(1)] == ["7.1"]    # the manager's, unwritten
    assert asyncio.run(f.svc.reoffer()) == 0               # the job runs: its manager may write it
    f.svc.set_jobs([])                                     # ... it stopped
    assert f.svc.take_dispositions(1) == []                # a manager still cycling takes none now
    assert asyncio.run(f.svc.reoffer()) == 1 and asyncio.run(f.svc.reoffer()) == 0
    assert f.svc.take_dispositions(1) == []
    assert asyncio.run(f.svc.dispose_orphans()) == 1
    assert "7.1" not in f.db.kept and f.svc.stats["orphans_applied"] == 1


def test_a_job_starting_with_many_ready_agents_attaches_them_over_a_few_ticks():
    """At most `MOVES_PER_TICK` attachments a tick (two desktop frames each), the rest at the
    next ticks from the same plan; a move no longer as planned (the agent logged out) is
    skipped and the next tick plans again."""
    m = MOVES_PER_TICK
    f = Floor(3 * m)
    f.svc.set_jobs([])
    f.staff()
    f.svc.tick()
    f.svc.set_jobs([JobSpec(1)])
    attached = []
    for _ in range(2):
        f.svc.tick()
        attached.append(len(f.svc.members.get(1, ())))
    assert attached == [m, 2 * m]
    gone = f.svc.moves_left[0].agent_id
    f.svc.logout(gone)
    f.svc.tick()                                      # m - 1 made, the logged-out one skipped
    assert len(f.svc.members[1]) == 3 * m - 1 and f.svc.rebalance_due
    f.svc.tick()                                      # planned again: nothing left to move
    assert len(f.svc.members[1]) == 3 * m - 1 and not f.svc.moves_left and not f.svc.rebalance_due
    assert len(f.svc.snapshot(1).ready) == 3 * m - 1              # every one the pacer's
