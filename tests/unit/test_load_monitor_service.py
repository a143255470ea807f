"""The load monitor's service with an in-memory store: sampling, the leader alone reading the
database and POM figures, alarms raised and cleared with hysteresis, a restart that rebuilds
from the table, servers gone stale; and the restriction reaching the managers: the director
passes the dial factor with its ping, the manager's budgets are slowed by it."""
from __future__ import annotations

import asyncio

from pom_actors.core.load import LoadConfig, Restrictions, Transition, restrictions
from pom_actors.services.load_monitor import LoadMonitorService
from tests.unit.test_director_service import Cluster
from tests.unit.test_manager_service import T0, World


class FakeLoadDb:
    """What the `alarms`, `load_readings` and `load_config` tables and pg_stat_activity hold."""

    def __init__(self, config: dict | None = None):
        self.config = LoadConfig.build(config)
        self.alarms: dict[str, str] = {}              # active source -> severity
        self.events: list[tuple[str, bool]] = []      # (source, raised): the outbox
        self.readings: dict[str, dict] = {}
        self.ages: dict[str, float] = {}
        self.leader: str | None = "a"                # the session holding the advisory lock
        self.database = {"database.sessions": 1.0, "database.connections": 10.0,
                         "database.long_queries": 0.0, "database.blocked": 0.0}
        self.pom = {"pom.jobs": 0.0, "pom.agents": 0.0, "pom.imports": 0.0}


class FakeLoadStore:
    def __init__(self, db: FakeLoadDb, session: str):
        self.db, self.session, self.broken, self.leading = db, session, False, False

    def lead(self) -> bool:
        if self.db.leader is None:
            self.db.leader = self.session
        return self.db.leader == self.session

    def config(self) -> LoadConfig:
        return self.db.config

    def database_readings(self, long_query_s: float) -> dict:
        return dict(self.db.database)

    def pom_readings(self) -> dict:
        return dict(self.db.pom)

    def active_alarms(self) -> dict:
        return dict(self.db.alarms)

    def apply(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if t.raised and t.source not in self.db.alarms:
                self.db.alarms[t.source] = t.severity
                self.db.events.append((t.source, True))
            elif not t.raised and self.db.alarms.pop(t.source, None) is not None:
                self.db.events.append((t.source, False))

    def record(self, server, node_id, leader, readings) -> None:
        self.db.readings[server] = {"leader": leader, **readings}
        self.db.ages[server] = 0.0

    def sample_ages(self) -> dict:
        return dict(self.db.ages)

    def retire_servers(self, servers, why) -> None:
        for s in servers:
            for source in [a for a in self.db.alarms if a.endswith("@" + s)]:
                del self.db.alarms[source]
                self.db.events.append((source, False))
            self.db.readings.pop(s, None)
            self.db.ages.pop(s, None)


class Server:
    def __init__(self, db: FakeLoadDb, name: str):
        self.cpu, self.memory = 10.0, 20.0
        self.service = LoadMonitorService(server=name, node_id=name + "-node",
                                          open_store=lambda: FakeLoadStore(db, name),
                                          sample_server=lambda: {"server.cpu": self.cpu, "server.memory": self.memory})

    def sample(self) -> list[tuple[str, bool]]:
        return [(t.source, t.raised) for t in self.service.sample()]


QUICK = {"thresholds": {"server.memory": {"raise_at": 80, "clear_below": 60, "samples": 2},
                        "database.blocked": {"raise_at": 3, "clear_below": 1, "samples": 1}}}


def test_only_the_leader_reads_the_database_and_every_server_its_own_load():
    db = FakeLoadDb(QUICK)
    a, b = Server(db, "a"), Server(db, "b")
    a.sample(), b.sample()
    assert db.readings["a"]["leader"] and "database.blocked" in db.readings["a"]
    assert not db.readings["b"]["leader"] and "database.blocked" not in db.readings["b"]
    assert set(db.readings["b"]) == {"leader", "server.cpu", "server.memory"}


def test_alarms_raise_and_clear_with_hysteresis_and_restrictions_follow():
    db = FakeLoadDb(QUICK)
    a, b = Server(db, "a"), Server(db, "b")
    b.memory = 95.0
    assert b.sample() == []                                 # one sample over: not yet
    assert b.sample() == [("server.memory@b", True)]
    assert b.service.restrictions.imports == "queued" and not b.service.restrictions.allows("import")
    db.database["database.blocked"] = 5
    assert a.sample() == [("database.blocked", True)]
    assert a.service.restrictions.dial_factor == 0.5 and a.service.restrictions.imports == "refused"
    assert a.service.status()["levels"]["database"]["level"] == "major"
    b.memory = 70.0                                         # between the thresholds: stays
    assert b.sample() == [] and b.sample() == []
    b.memory = 50.0
    assert b.sample() == [] and b.sample() == [("server.memory@b", False)]
    db.database["database.blocked"] = 0
    assert a.sample() == [("database.blocked", False)]
    assert a.service.restrictions == Restrictions()
    assert db.events == [("server.memory@b", True), ("database.blocked", True),
                         ("server.memory@b", False), ("database.blocked", False)]


def test_a_restarted_monitor_and_a_new_leader_rebuild_from_the_table():
    db = FakeLoadDb(QUICK)
    a = Server(db, "a")
    db.database["database.blocked"] = 5
    a.memory = 90.0
    a.sample(), a.sample()
    assert set(db.alarms) == {"database.blocked", "server.memory@a"}
    again = Server(db, "a")                  # restarted: nothing raised twice
    again.memory = 90.0
    db.leader = None                         # its old session is gone
    assert again.sample() == []
    db.database["database.blocked"] = 0
    a.memory = again.memory = 10.0
    assert again.sample() == [("database.blocked", False)]
    assert again.sample() == [("server.memory@a", False)]
    assert db.events.count(("database.blocked", True)) == 1


def test_the_leader_clears_the_alarms_of_a_server_gone_stale():
    db = FakeLoadDb(QUICK)
    a, b = Server(db, "a"), Server(db, "b")
    b.memory = 99.0
    b.sample(), b.sample()
    assert "server.memory@b" in db.alarms
    db.ages["b"] = 3600.0
    a.sample()
    assert "server.memory@b" not in db.alarms and "b" not in db.readings
    assert ("server.memory@b", False) in db.events


def test_a_failed_sample_is_counted_and_the_store_reopened():
    db = FakeLoadDb()
    a = Server(db, "a")
    a.service.store.broken = True
    a.service.recover(RuntimeError("connection lost"))
    assert a.service.errors == 1 and not a.service.store.broken
    assert a.service.status()["state"] == "failing"
    a.sample()
    assert a.service.status()["state"] == "up"


# -- the restriction applied: dialling slowed -----------------------------------------------------
def test_the_manager_budgets_are_slowed_by_the_factor():
    w = World()
    svc = w.manager()
    assert svc._budgets(T0) == {"call": 1000}
    svc.slow_factor = 0.5
    assert svc._budgets(T0) == {"call": 500}
    svc.slow_factor = 0.3
    assert [svc._budgets(T0)["call"] for _ in range(3)] == [300, 300, 300]
    assert svc.status()["slow_factor"] == 0.3


def test_the_director_passes_the_dial_factor_to_every_manager_with_its_ping():
    c = Cluster()
    saturated = restrictions(["database.connections"], LoadConfig())
    c.director.restrictions = lambda: saturated
    job_id = asyncio.run(c.director.create_job(1))
    assert [m.slow_factor for m in c.managers()] == [0.5, 0.5]
    assert c.director.status()["slow_factor"] == 0.5

    def unreadable():
        raise ConnectionError("database away")
    c.director.restrictions = unreadable                    # the last factor stands
    asyncio.run(c.director.tick())
    assert [m.slow_factor for m in c.managers()] == [0.5, 0.5]
    c.director.restrictions = lambda: Restrictions()
    asyncio.run(c.director.tick())
    assert [m.slow_factor for m in c.managers()] == [1.0, 1.0] and c.db.jobs[job_id]["state"] == "running"
