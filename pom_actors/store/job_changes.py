"""Run-time changes of a job through the API (`PATCH /api/v1/jobs/{id}`): its priority, its
handlers' pacing (core/jobchanges.py) and the filter in force from a template. Each is read by
whoever applies it without being told: the director each tick (priority: agents and outbound
ports are shared by it), the job's managers at each lease renewal (pacing, filter)."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..core.jobchanges import changed_pacing
from ..core.lifecycle import TERMINAL, JobState
from .catalog import NotFound, load_strategy
from .filters import FilterConflict, check_for_list

UNSET: Any = object()


def change(conn: psycopg.Connection, job_id: int, *, priority: Any = UNSET, pacing: Any = UNSET,
           filter_id: Any = UNSET) -> None:
    """Apply the changes given (None: back to the campaign's priority, the strategy's pacing,
    no filter) to a job that has not ended (FilterConflict otherwise: 409); a pacing change is
    checked against the job's strategy (JobChangeError), a template against its list."""
    with conn.transaction():
        row = conn.execute("SELECT j.state, j.strategy_id, j.pacing, c.list_id FROM jobs j "
                           "JOIN campaigns c ON c.id = j.campaign_id WHERE j.id = %s FOR UPDATE OF j",
                           (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        state, strategy_id, current, list_id = row
        if JobState(state) in TERMINAL:
            raise FilterConflict(f"job {job_id} has ended ({state}): it cannot change")
        values: dict[str, Any] = {}
        if priority is not UNSET:
            values["priority"] = priority
        if pacing is not UNSET:
            values["pacing"] = Jsonb(changed_pacing(load_strategy(conn, strategy_id), current, pacing))
        if filter_id is not UNSET:
            values["filter"] = None if filter_id is None else check_for_list(conn, list_id, filter_id).source
        if values:
            conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = %({k})s' for k in values)} WHERE id = %(id)s",
                         {**values, "id": job_id})
