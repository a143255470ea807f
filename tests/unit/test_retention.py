"""core.retention and services.purges: cut-offs per clock, when a purge runs or waits, the
bisection that bounds an id walk, and runs carried out in batches against a fake store —
never more than a batch per statement, never a pending outbox row, an agent's latest event
or an attempt of a job that has not ended; deferred mid-run under load, resumed with the same
cut-offs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pydantic
import pytest

from pom_actors.core.load import LoadConfig, Restrictions, restrictions
from pom_actors.core.retention import RetentionConfig, boundary, cutoffs, decide
from pom_actors.services import purges as service
from pom_actors.services.purges import PurgeDuty

BIZ = datetime(2026, 6, 1, tzinfo=timezone.utc)          # the business clock (scaled in tests)
DB = datetime(2026, 11, 30, tzinfo=timezone.utc)          # the database's
FREE = Restrictions()
SATURATED = restrictions(["database.sessions"], LoadConfig())


def days(n: float) -> timedelta:
    return timedelta(days=n)


# -- decisions ------------------------------------------------------------------------------------
def test_cutoffs_are_measured_on_the_clock_each_target_is_stamped_with():
    cfg = RetentionConfig(keep_days={"outbox": 2, "attempts": 30})
    cut = cutoffs(cfg, BIZ, DB)
    assert cut == {"outbox": DB - days(2), "agent_events": BIZ - days(180), "imports": DB - days(30),
                   "attempts": BIZ - days(30)}


@pytest.mark.parametrize("doc, path", [
    ({"keep_days": {"ledger": 3}}, "keep_days"),
    ({"keep_days": {"attempts": 0.5}}, "keep_days"),
    ({"batch": 0}, "batch"),
    ({"every_s": 5}, "every_s"),
    ({"surprise": 1}, "surprise"),
])
def test_a_bad_retention_config_names_its_field(doc, path):
    with pytest.raises(pydantic.ValidationError) as err:
        RetentionConfig.model_validate(doc)
    assert err.value.errors()[0]["loc"][0] == path


def test_decide_schedules_runs_resumes_and_defers():
    cfg = RetentionConfig(every_s=3600)
    assert decide(cfg, DB, None, None, FREE).action == "schedule"                      # never run
    assert decide(cfg, DB, None, DB - timedelta(seconds=3599), FREE).action == "idle"
    assert decide(cfg, DB, None, DB - timedelta(seconds=3600), FREE).action == "schedule"
    assert decide(cfg.model_copy(update={"enabled": False}), DB, None, None, FREE).action == "idle"
    held = decide(cfg, DB, None, None, SATURATED)
    assert (held.action, held.deferred) == ("schedule", True) and "database.sessions" in held.why
    pending = {"id": 7, "state": "queued"}
    assert decide(cfg, DB, pending, DB, FREE) == decide(cfg, DB, {**pending, "state": "running"}, DB, FREE)
    assert decide(cfg, DB, pending, DB, FREE).action == "run"
    assert (d := decide(cfg, DB, pending, DB, SATURATED)).action == "defer" and d.run_id == 7
    assert decide(cfg, DB, {"id": 7, "state": "deferred"}, DB, SATURATED).action == "idle"
    assert decide(cfg, DB, {"id": 7, "state": "deferred"}, DB, FREE).action == "run"     # lifted: resumes


@pytest.mark.parametrize("ids, old_below", [
    ([1, 2, 3, 10, 11], 11), ([5, 6, 7], 5), ([5, 6, 7], 100), ([1], 2), (list(range(1, 10_000, 7)), 5001),
])
def test_boundary_bisects_to_the_first_id_past_the_old_rows(ids, old_below):
    probes = []

    def is_old(x):
        probes.append(x)
        first = next((i for i in ids if i >= x), None)
        return None if first is None else first < old_below
    end = boundary(ids[0], ids[-1], is_old)
    assert all(i < end for i in ids if i < old_below) and all(i >= end for i in ids if i >= old_below)
    assert len(probes) <= (ids[-1] - ids[0]).bit_length() + 2


# -- runs against a fake store --------------------------------------------------------------------
class FakePurgeStore:
    """The tables a purge touches, in memory, with the statements' semantics."""

    def __init__(self):
        self.broken = False
        self.config_doc: dict = {}
        self.held = FREE
        self.outbox: list[dict] = []
        self.events: list[dict] = []
        self.imports: dict[int, dict] = {}
        self.jobs: dict[int, str] = {}
        self.attempts: list[dict] = []
        self.runs: dict[int, dict] = {}
        self.deletes: list[int] = []          # rows deleted by each statement
        self.after_delete = lambda: None

    def _deleted(self, n: int) -> int:
        self.deletes.append(n)
        self.after_delete()
        return n

    # -- config, runs
    def config(self):
        return RetentionConfig.model_validate(self.config_doc)

    def restrictions(self):
        return self.held

    def database_now(self):
        return DB

    def pending_run(self):
        return next((r for r in sorted(self.runs.values(), key=lambda r: r["id"])
                     if r["state"] in ("queued", "deferred", "running")), None)

    def last_scheduled(self):
        return max((r["created_at"] for r in self.runs.values() if r["trigger"] == "schedule"), default=None)

    def create_run(self, trigger, state="queued", requested_by=None, message=None):
        run_id = len(self.runs) + 1
        self.runs[run_id] = {"id": run_id, "trigger": trigger, "state": state, "message": message, "cutoffs": {},
                             "counts": {}, "batches": 0, "created_at": DB, "finished_at": None}
        return self.runs[run_id]

    def run(self, run_id):
        return dict(self.runs[run_id])

    def update_run(self, run_id, **fields):
        self.runs[run_id].update({k: (dict(v) if isinstance(v, dict) else v) for k, v in fields.items()})

    # -- id tables
    def _table(self, target):
        return self.outbox if target == "outbox" else self.events

    def id_range(self, target):
        ids = [r["id"] for r in self._table(target)]
        return (min(ids), max(ids)) if ids else None

    def is_old(self, target, cutoff, x):
        first = next((r for r in sorted(self._table(target), key=lambda r: r["id"]) if r["id"] >= x), None)
        return None if first is None else first["at"] < cutoff

    def _may_go(self, target, row):
        if target == "outbox":
            return row["published"]
        return any(e["agent_id"] == row["agent_id"] and e["id"] > row["id"] for e in self.events)

    def delete_ids(self, target, cutoff, after, below, n):
        table = self._table(target)
        gone = sorted((r for r in table if after < r["id"] < below and r["at"] < cutoff and self._may_go(target, r)),
                      key=lambda r: r["id"])[:n]
        for r in gone:
            table.remove(r)
        return self._deleted(len(gone)), max((r["id"] for r in gone), default=None)

    # -- imports
    def old_imports(self, cutoff, after, limit):
        return sorted(i for i, imp in self.imports.items()
                      if imp["state"] == "done" and imp["finished_at"] < cutoff and i > after)[:limit]

    def delete_import_rows(self, import_id, n):
        if import_id not in self.imports:
            return self._deleted(0)
        imp = self.imports[import_id]
        for part in ("rejects", "chunks"):
            if imp[part]:
                k = min(n, imp[part])
                imp[part] -= k
                return self._deleted(k)
        del self.imports[import_id]
        return self._deleted(1)

    # -- attempts
    def ended_jobs_with_old_attempts(self, cutoff, after, limit):
        return sorted(j for j, state in self.jobs.items() if state in ("completed", "stopped", "failed") and j > after
                      and any(a["job_id"] == j and a["at"] < cutoff for a in self.attempts))[:limit]

    def delete_attempts(self, job_id, cutoff, n):
        if self.jobs[job_id] not in ("completed", "stopped", "failed"):
            return self._deleted(0)
        gone = [a for a in self.attempts if a["job_id"] == job_id and a["at"] < cutoff][:n]
        for a in gone:
            self.attempts.remove(a)
        return self._deleted(len(gone))


def ledger() -> FakePurgeStore:
    """Rows each side of the cut-offs (outbox 7 days on the database clock, agent events 180 and
    attempts 400 days on the business clock, imports 30 days)."""
    s = FakePurgeStore()
    s.outbox = [{"id": i, "at": DB - days(10) + timedelta(minutes=i), "published": i != 3} for i in range(1, 26)]
    s.outbox += [{"id": 100 + i, "at": DB - days(1), "published": True} for i in range(5)]
    s.events = [{"id": i, "agent_id": i % 2, "at": BIZ - days(200)} for i in range(1, 8)]   # agent 1's latest: 7
    s.events += [{"id": 20, "agent_id": 0, "at": BIZ}]
    s.imports = {1: {"state": "done", "finished_at": DB - days(40), "rejects": 7, "chunks": 2},
                 2: {"state": "done", "finished_at": DB - days(1), "rejects": 3, "chunks": 1},
                 3: {"state": "running", "finished_at": DB - days(90), "rejects": 5, "chunks": 1}}
    s.jobs = {1: "completed", 2: "running", 3: "stopped"}
    s.attempts = [{"job_id": j, "at": BIZ - days(500)} for j in (1, 2, 3) for _ in range(9)]
    s.attempts += [{"job_id": 1, "at": BIZ - days(10)}]
    return s


def duty(store: FakePurgeStore) -> PurgeDuty:
    return PurgeDuty(open_store=lambda: store, clock=SimpleNamespace(now=lambda: BIZ), sleep=lambda s: None)


def test_a_run_purges_old_rows_in_batches_and_spares_what_must_stay():
    s = ledger()
    s.config_doc = {"batch": 4}
    run = s.create_run("manual")
    assert duty(s).carry_out(run["id"]) == "done"
    r = s.runs[run["id"]]
    # outbox: 24 of the 25 old rows (row 3 is not published), the 5 recent ones stay
    assert sorted(x["id"] for x in s.outbox) == [3, 100, 101, 102, 103, 104]
    # agent events: the old ones but each agent's latest (agent 1: 7; agent 0's latest is recent)
    assert sorted(e["id"] for e in s.events) == [7, 20]
    # imports: the old finished one with its rows; the recent one and the running one stay
    assert sorted(s.imports) == [2, 3]
    # attempts: the ended jobs' old rows; the running job's all stay, and job 1's recent one
    assert sorted((a["job_id"], a["at"] == BIZ - days(10)) for a in s.attempts) == [(1, True)] + [(2, False)] * 9
    assert r["counts"] == {"outbox": 24, "agent_events": 6, "imports": 7 + 2 + 1, "attempts": 18}
    assert r["batches"] == len([n for n in s.deletes if n]) and max(s.deletes) <= 4
    assert r["state"] == "done" and r["cutoffs"]["outbox"] == (DB - days(7)).isoformat()
    assert r["cutoffs"]["attempts"] == (BIZ - days(400)).isoformat()


def test_a_run_deferred_mid_way_under_load_resumes_with_the_same_cutoffs(monkeypatch):
    monkeypatch.setattr(service, "RESTRICTIONS_S", 0.0)         # look at every batch
    s = ledger()
    s.config_doc = {"batch": 5}
    d = duty(s)
    s.after_delete = lambda: setattr(s, "held", SATURATED) if len(s.deletes) == 2 else None
    run = s.create_run("manual")
    assert d.carry_out(run["id"]) == "deferred"
    r = s.runs[run["id"]]
    assert r["state"] == "deferred" and "database.sessions" in r["message"] and r["counts"]["outbox"] == 10
    first_cuts = dict(r["cutoffs"])
    assert d.tick() is not None and d.tick() is None            # looked once within CHECK_S
    assert s.runs[run["id"]]["state"] == "deferred" and not d.busy()
    s.held, s.after_delete = FREE, lambda: None
    s.config_doc = {"batch": 5, "keep_days": {"outbox": 1}}    # a changed config applies to new runs only
    assert d.carry_out(run["id"]) == "done"
    r = s.runs[run["id"]]
    assert r["cutoffs"] == first_cuts and r["counts"]["outbox"] == 24 and len(s.outbox) == 6


def test_tick_schedules_when_due_defers_under_load_and_starts_in_the_background(monkeypatch):
    monkeypatch.setattr(service, "CHECK_S", 0.0)
    s = FakePurgeStore()
    d = duty(s)
    s.held = SATURATED
    assert d.tick().action == "schedule"
    assert [(r["trigger"], r["state"]) for r in s.runs.values()] == [("schedule", "deferred")]
    assert d.tick().action == "idle" and not d.busy()             # still held: waits
    s.held = FREE
    assert d.tick().action == "run"
    d.worker.join(5)
    assert s.runs[1]["state"] == "done" and s.runs[1]["trigger"] == "schedule"
    assert d.tick().action == "idle"                              # the next is due in every_s
    s.runs[1]["created_at"] = DB - timedelta(seconds=RetentionConfig().every_s)
    assert d.tick().action == "schedule"


def test_a_failing_statement_fails_the_run_and_a_lost_database_leaves_it_to_resume():
    s = ledger()
    run = s.create_run("manual")

    def boom():
        raise RuntimeError("canceling statement due to lock timeout")
    s.after_delete = boom
    assert duty(s).carry_out(run["id"]) == "failed"
    assert s.runs[run["id"]]["state"] == "failed" and "lock timeout" in s.runs[run["id"]]["message"]
    run = s.create_run("manual")

    def gone():
        s.broken = True
        raise ConnectionError("server closed the connection")
    s.after_delete = gone
    assert duty(s).carry_out(run["id"]) == "running"
    assert s.pending_run()["id"] == run["id"]                     # the next tick resumes it


def test_the_director_looks_at_purges_every_tick_but_not_while_draining_and_survives_a_failure():
    import asyncio

    from tests.unit.test_director_service import Cluster

    class Duty:
        def __init__(self):
            self.ticks, self.fail = 0, False

        def tick(self):
            self.ticks += 1
            if self.fail:
                raise RuntimeError("database away")
    c = Cluster()
    c.director.purges = d = Duty()
    asyncio.run(c.director.tick())
    assert d.ticks == 1
    d.fail = True
    asyncio.run(c.director.tick())                 # logged; the tick goes on
    assert d.ticks == 2 and c.director.ticks == 2
    c.director.draining = True
    asyncio.run(c.director.tick())
    assert d.ticks == 2
