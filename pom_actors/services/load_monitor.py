"""Everything a LoadMonitor does, as a plain class (the actor in `pom_actors/load_monitor.py`
only creates it and runs its loop). One runs on every POM server.

Every `sample_s` seconds (the stored configuration's, re-read at each sample):

1. its own server's CPU and memory (`sample_server`, psutil in the actor);
2. if it **leads** — it holds a PostgreSQL advisory lock, so exactly one monitor does while the
   database is up, and another takes over at its next sample when the leader's session ends —
   the database's figures (`pg_stat_activity`) and POM's (active jobs, agents, imports);
3. `core.load.Hysteresis` turns the readings into alarm transitions, which the store writes
   with their events (`pom.alarms`) in the same statement; the readings are recorded
   (`load_readings`); the leader also retires servers not heard of for `stale_s` (their
   alarms cleared);
4. the active alarms are read back and the restrictions in force derived
   (`core.load.restrictions`), kept in memory for `restrictions()`.

Its alarm state is rebuilt from the `alarms` table (after a restart, or on taking the lead),
so an alarm is neither raised twice nor forgotten.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a `store.load.
LoadStore`; `sample_server()` the server's readings (`server.cpu`, `server.memory`).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.load import (NONE, SERVER_METRICS, Hysteresis, LoadConfig, Restrictions, Transition, levels,
                         parse_source, restrictions, stale_servers)

log = logging.getLogger(__name__)
RETRY_S = 2.0


class LoadMonitorService:
    def __init__(self, *, server: str, node_id: str, open_store: Callable[[], Any],
                 sample_server: Callable[[], dict[str, float]]):
        self.server, self.node_id = server, node_id
        self.open_store, self.sample_server = open_store, sample_server
        self.store = open_store()
        self.config = LoadConfig()
        self.own: Hysteresis | None = None         # this server's sources
        self.cluster: Hysteresis | None = None     # database and POM sources, while leading
        self.leader = False
        self.readings: dict[str, float] = {}
        self.active: dict[str, str] = {}
        self.restrictions: Restrictions = NONE
        self.samples = self.errors = 0
        self.last_error: str | None = None
        self.sampled_at = 0.0
        self._lock = threading.Lock()

    # -- one sample ----------------------------------------------------------------------------
    def sample(self) -> list[Transition]:
        """Sample, raise and clear alarms, record; the transitions of this sample."""
        with self._lock:
            if self.store.broken:
                self._reopen()
            store = self.store
            config = self.config = store.config()
            active = store.active_alarms()
            mine = {s for s in active if parse_source(s)[1] == self.server}
            if self.own is None:
                self.own = Hysteresis(mine)
            self.own.sync(mine)
            readings = {k: float(v) for k, v in self.sample_server().items() if k in SERVER_METRICS}
            transitions = self.own.observe(readings, config, self.server)
            self.leader = store.lead()
            if self.leader:
                cluster = {s for s in active if parse_source(s)[1] is None}
                if self.cluster is None:
                    self.cluster = Hysteresis(cluster)
                self.cluster.sync(cluster)
                figures = {**store.database_readings(config.long_query_s), **store.pom_readings()}
                transitions += self.cluster.observe(figures, config)
                readings.update(figures)
            else:
                self.cluster = None               # another leads: start afresh if this one takes over
            store.apply(transitions)
            store.record(self.server, self.node_id, self.leader, readings)
            if self.leader:
                gone = sorted(stale_servers(store.sample_ages(), config) - {self.server})
                if gone:
                    store.retire_servers(gone, f"server not heard of for over {config.stale_s:g} s")
                    log.warning("load monitor: servers %s gone, their alarms cleared", gone)
            self.active = store.active_alarms()
            self.restrictions = restrictions(self.active, config)
            self.readings = readings
            self.samples += 1
            self.sampled_at = time.time()
            for t in transitions:
                log.warning("alarm %s: %s", "raised" if t.raised else "cleared", t.message)
            return transitions

    def _reopen(self) -> None:
        self.store = self.open_store()
        self.leader = False
        self.own = self.cluster = None            # rebuilt from the table

    def recover(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        if self.store.broken:
            try:
                self._reopen()
            except Exception as again:            # still down: the next sample tries again
                log.warning("load monitor: database unreachable: %s", again)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sample)
                delay = self.config.sample_s
            except Exception as exc:
                log.exception("load monitor: sample failed")
                self.recover(exc)
                delay = RETRY_S
            await asyncio.sleep(delay)

    # -- what others read --------------------------------------------------------------------------
    def state(self) -> str:
        """up (sampled lately), starting (not yet sampled, no failure) or failing."""
        if self.samples and time.time() - self.sampled_at <= 3 * self.config.sample_s + RETRY_S:
            return "up"
        return "starting" if not self.errors else "failing"

    def status(self) -> dict[str, Any]:
        return {"state": self.state(), "server": self.server, "node": self.node_id, "leader": self.leader,
                "samples": self.samples, "errors": self.errors, "last_error": self.last_error,
                "sampled_at": self.sampled_at, "readings": self.readings, "alarms": self.active,
                "levels": levels(self.active), "restrictions": self.restrictions.to_dict()}
