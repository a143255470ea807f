"""Nailing (core/agents/nailing.py and the Agent Manager): an agent attached to a job gets one
nailed session; a move keeps it; after a detach it is kept for the grace and reused by the
next job; a logout or the end of the grace releases it; a restart re-attaches the sessions."""
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest

from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.nailing import NAIL, REUSE, Nails, last_sessions
from tests.unit.test_agent_manager_service import Floor

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def nails(grace_s: float = 60.0) -> Nails:
    ids = count(1)
    return Nails(grace_s, new_id=lambda: f"s{next(ids)}")


def test_a_session_is_nailed_once_kept_across_a_move_and_reused_within_the_grace():
    n = nails()
    assert n.attach(1, 10) == (NAIL, n.sessions[1]) and n.sessions[1].id == "s1"
    assert n.attach(1, 11)[0] is None and n.sessions[1].id == "s1"          # moved: the same leg
    n.detach(1, T0)
    assert n.sessions[1].release_at == T0 + timedelta(seconds=60) and n.counts() == {"attached": 0, "grace": 1}
    assert n.due(T0 + timedelta(seconds=59)) == []
    what, s = n.attach(1, 12)
    assert (what, s.id, s.job_id, s.release_at) == (REUSE, "s1", 12, None)
    assert n.legs() == {"s1": 1}


def test_the_grace_ends_the_session_and_a_logout_ends_it_at_once():
    n = nails(30)
    n.attach(1, 10)
    n.attach(2, 10)
    n.detach(1, T0)
    n.detach(1, T0 + timedelta(seconds=20))                # detached again: the first deadline holds
    assert [s.id for s in n.due(T0 + timedelta(seconds=30))] == ["s1"]
    assert n.attach(1, 10)[0] == NAIL and n.sessions[1].id == "s3"         # after the grace: a new one
    assert n.release(2).id == "s2" and n.release(2) is None and n.legs() == {"s3": 1}


def test_restored_sessions_and_bounds():
    n = nails()
    n.restore(1, "old", 10, T0)
    n.restore(2, "kept", None, T0)
    assert n.attach(1, 10)[0] is None and n.sessions[2].release_at == T0 + timedelta(seconds=60)
    assert n.attach(2, 11)[0] == REUSE
    assert last_sessions([(1, "nail", "a"), (2, "unnail", "b"), (3, "reuse", "c")]) == {1: "a", 3: "c"}
    with pytest.raises(ValueError, match="nail grace"):
        Nails(-1)


# -- the Agent Manager --------------------------------------------------------------------------
def events(f: Floor, *kinds) -> list[tuple[int, str, str]]:
    f.svc.flush()
    return [(t.agent_id, t.event, t.reason) for t in f.db.events if t.event in kinds]


def test_the_agent_manager_nails_at_attach_reuses_for_the_next_job_and_releases_after_the_grace():
    f = Floor(2)                                          # the default grace: 60 business seconds
    assert f.svc.settings.nail_grace_s == 60
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    first = {login: s["session_id"] for login, s in f.svc.sessions().items()}
    assert set(first) == {"a0", "a1"} and len(set(first.values())) == 2
    assert f.svc.nails.legs() == {first["a0"]: f.ids[0], first["a1"]: f.ids[1]}
    f.svc.set_jobs([])                                    # the job ends: detached, sessions kept
    f.svc.tick()
    assert {s["job_id"] for s in f.svc.sessions().values()} == {None} and f.svc.status()["nailed"]["grace"] == 2
    f.clock.advance(50)
    f.svc.set_jobs([JobSpec(2)])                          # the next job within the grace
    f.svc.tick()
    assert {login: s["session_id"] for login, s in f.svc.sessions().items()} == first
    assert sorted(e[1] for e in events(f, "nail", "reuse", "unnail")) == ["nail", "nail", "reuse", "reuse"]
    f.svc.set_jobs([])
    f.svc.tick()
    f.clock.advance(59)
    f.svc.tick()
    assert len(f.svc.sessions()) == 2
    f.clock.advance(1)
    f.svc.tick()                                          # the grace is over: released
    assert f.svc.sessions() == {} and f.svc.metrics()["nailed"] == {"attached": 0, "grace": 0}
    assert sorted(e[2] for e in events(f, "unnail")) == sorted(first.values())


def test_a_logout_releases_at_once_and_a_restart_reattaches_the_sessions():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    f.staff()
    f.svc.tick()
    before = f.svc.sessions()
    f.svc.logout(f.ids[1])
    assert set(f.svc.sessions()) == {"a0"}
    f.svc.tick()
    version = f.svc.legs_version
    svc = f.restart()                                     # rebuilt from the store: the same session
    assert svc.sessions() == {"a0": before["a0"]} and svc.legs_version == 0 < version
    assert events(f, "nail", "reuse", "unnail")[-1] == (f.ids[1], "unnail", before["a1"]["session_id"])
