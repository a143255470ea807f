"""Agents' dispositions into the ledger (core/agents/disposal.py decides, this writes): the
code set on the settled attempt, the call-back scheduled. One function for both writers: the
Campaign Manager that takes a job's dispositions (`WorkStore.dispose`) and the Agent Manager,
for a job whose managers have stopped (`AgentStore.dispose`)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
import psycopg

from ..core.agents.desk import DispositionError
from ..core.agents.disposal import Disposal
from ..core.finish import FinishCriteria
from .catalog import NotFound
from .contacts import AttemptConflict, set_code

# Call-backs of agents' dispositions (core.agents.disposal): the item is due again at the
# call-back time where no later attempt was made since (so once, and the same on a repeat);
# the attempt's details say what was asked and whether it was scheduled (written once per time).
CALLBACKS_SQL = """
WITH d AS (SELECT * FROM jsonb_to_recordset(%s::jsonb)
                  AS d(item bigint, attempt int, at timestamptz, refused text)),
moved AS (
  UPDATE work_items w SET state = 'scheduled', next_at = d.at
  FROM d WHERE w.id = d.item AND w.job_id = %s AND d.refused IS NULL AND w.attempts = d.attempt
           AND w.state IN ('scheduled', 'done')
  RETURNING w.id)
UPDATE attempts a SET details = a.details || jsonb_build_object('callback', jsonb_build_object(
         'at', d.at, 'scheduled', d.item IN (SELECT id FROM moved),
         'why', coalesce(d.refused, CASE WHEN d.item IN (SELECT id FROM moved) THEN NULL
                                         ELSE 'a later attempt of the contact was already made' END)))
FROM d WHERE a.work_item_id = d.item AND a.attempt_no = d.attempt
         AND NOT coalesce(a.details->'callback' @> jsonb_build_object('at', d.at, 'scheduled', true), false)
RETURNING a.work_item_id, a.attempt_no, d.item IN (SELECT id FROM moved)
"""


def dispose(conn: psycopg.Connection, job_id: int, disposals: Sequence[Disposal]) -> dict[str, list[str]]:
    """Apply disposals of job `job_id`: each code set on its settled attempt by
    `contacts.set_code` (the gateway's code kept in its details), each call-back scheduled
    (CALLBACKS_SQL). Returns attempt ids: `applied`, `pending` (still in flight: apply again
    later), `refused` (never sent, unknown, not a campaign code: the error), `called_back`
    (item due again at the call-back time)."""
    out: dict[str, list[str]] = {"applied": [], "pending": [], "refused": [], "called_back": []}
    asked = []
    for d in disposals:
        try:
            set_code(conn, d.work_item_id, d.attempt_no, d.code)
        except AttemptConflict as e:
            out["pending" if "in flight" in str(e) else "refused"].append(d.attempt_id)
            continue
        except (DispositionError, NotFound) as e:
            out["refused"].append(f"{d.attempt_id}: {e}")
            continue
        out["applied"].append(d.attempt_id)
        if d.asked_callback_at is not None:
            asked.append({"item": d.work_item_id, "attempt": d.attempt_no, "at": d.asked_callback_at,
                          "refused": d.callback_refused})
    if asked:
        rows = conn.execute(CALLBACKS_SQL, (orjson.dumps(asked).decode(), job_id)).fetchall()
        out["called_back"] = [f"{item}.{number}" for item, number, moved in rows if moved]
    return out


def job_end(conn: psycopg.Connection, job_id: int) -> tuple[str | None, datetime | None]:
    """The job's state and its finish end time (what a call-back is checked against); (None,
    None) for a job that does not exist."""
    row = conn.execute("SELECT state, finish FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        return None, None
    return row[0], FinishCriteria.model_validate(row[1] or {}).end_time
