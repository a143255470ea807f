"""The director's import-schedule duty, as a plain class (docs/imports.md, "Scheduled imports").

At each director tick it reads the import schedules and, for each one due (`core.schedule.
due_runs`: the latest due time after the last one served; missed ones coalesce), creates a
queued import (of its SQL query or its server-side file) through `store.import_schedules.
start_due` — which serves a due time once, whichever director (or restarted director) gets
there first. The Importer actor picks
the import up like any other.

Collaborators (passed in, faked by the unit tests): `open_store()` gives a `store.
import_schedules.ImportScheduleStore`; `clock` the business clock.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..core.clock import Clock
from ..core.schedule import due_runs, parsed

log = logging.getLogger(__name__)


class ImportScheduleDuty:
    def __init__(self, *, open_store: Callable[[], Any], clock: Clock):
        self.open_store, self.clock = open_store, clock
        self.store: Any = None

    def tick(self) -> list[int]:
        """Start the imports that are due; their ids."""
        if self.store is None or self.store.broken:
            self.store = self.open_store()
        now = self.clock.now()
        started = []
        for row in self.store.schedules():
            try:
                schedule = parsed(row["schedule"])
            except ValueError as exc:   # refused at creation; an old row must not stop the tick
                log.error("import schedule %s is invalid: %s", row["name"], exc)
                continue
            since = row["last_run_at"] or row["created_at"]
            if since > now:
                if row["last_run_at"] is None:
                    # created_at is the database's time: on a clock behind it (a scaled
                    # business clock) count from the clock's now, as the campaigns do
                    self.store.mark_served(row["id"], now, None)
                continue                    # served beyond now: never moved back, never re-run
            run_at = due_runs(schedule, since, now)
            if run_at is None:
                continue
            try:
                import_id = self.store.start_due(row, run_at)
            except (LookupError, ValueError) as exc:     # its list gone, its source no longer valid
                log.error("import schedule %s cannot start: %s", row["name"], exc)
                continue
            if import_id is not None:
                log.info("import schedule %s (due %s) started import %s", row["name"], run_at, import_id)
                started.append(import_id)
        return started
