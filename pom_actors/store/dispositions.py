"""Agents' dispositions into the ledger (core/agents/disposal.py decides, this writes): the
code set on the settled attempt, the call-back scheduled. One function for both writers: the
Campaign Manager that takes a job's dispositions (`WorkStore.dispose`) and the Agent Manager,
for a job whose managers have stopped (`AgentStore.dispose`).

Exactly once: the Agent Manager keeps each disposition it acknowledged in `agent_dispositions`
until it is written (a restarted Agent Manager hands it out again, so a manager may be given the
same one twice); a disposal is applied only in the transaction that deletes its row, so the
second time it is found gone (`written`) and nothing is written again."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
import psycopg

from ..core.agents.desk import DispositionError
from ..core.agents.disposal import Disposal, callback_refusal
from ..core.finish import FinishCriteria
from .catalog import NotFound
from .contacts import AttemptConflict, set_codes

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


def dispose(conn: psycopg.Connection, job_id: int, disposals: Sequence[Disposal],
            expire_before: datetime | None = None) -> dict[str, list[str]]:
    """Apply disposals of job `job_id`, in one transaction: each code set on its settled
    attempt by `contacts.set_codes` (the gateway's code kept in its details), each call-back
    scheduled (CALLBACKS_SQL), the kept rows of those applied or refused deleted. Returns
    attempt ids: `applied`, `pending` (still in flight: apply again later), `refused` (never
    sent, unknown, not a campaign code: the error), `called_back` (item due again at the
    call-back time), `written` (its row gone: written already, nothing done), `expired` (in
    flight still, made before `expire_before`: given up, its row deleted)."""
    out: dict[str, list[str]] = {"applied": [], "pending": [], "refused": [], "called_back": [],
                                 "written": [], "expired": []}
    if not disposals:
        return out
    asked, done = [], []
    with conn.transaction():
        # The job's row before anything else (jobs.lock): a call-back is decided against the
        # job's state of now, and the director cannot end the job until this commits.
        state, end_time = (job_end(conn, job_id, share=True)
                           if any(d.asked_callback_at is not None for d in disposals) else (None, None))
        held = {r[0] for r in conn.execute(
            "SELECT call_id FROM agent_dispositions WHERE call_id = ANY(%s) ORDER BY call_id FOR UPDATE",
            ([d.attempt_id for d in disposals],))}
        mine = [d for d in disposals if d.attempt_id in held]
        out["written"] = [d.attempt_id for d in disposals if d.attempt_id not in held]
        for d, e in zip(mine, set_codes(conn, [(d.work_item_id, d.attempt_no, d.code) for d in mine])):
            if isinstance(e, AttemptConflict):
                if "in flight" not in str(e):
                    out["refused"].append(d.attempt_id)
                elif expire_before is not None and d.at < expire_before:
                    out["expired"].append(d.attempt_id)
                else:
                    out["pending"].append(d.attempt_id)
                    continue
            elif isinstance(e, (DispositionError, NotFound)):
                out["refused"].append(f"{d.attempt_id}: {e}")
            else:
                out["applied"].append(d.attempt_id)
                if d.asked_callback_at is not None:
                    asked.append({"item": d.work_item_id, "attempt": d.attempt_no, "at": d.asked_callback_at,
                                  "refused": callback_refusal(d.asked_callback_at, state, end_time)})
            done.append(d.attempt_id)
        if done:
            conn.execute("DELETE FROM agent_dispositions WHERE call_id = ANY(%s)", (done,))
        if asked:
            rows = conn.execute(CALLBACKS_SQL, (orjson.dumps(asked).decode(), job_id)).fetchall()
            out["called_back"] = [f"{item}.{number}" for item, number, moved in rows if moved]
    return out


def job_end(conn: psycopg.Connection, job_id: int, share: bool = False) -> tuple[str | None, datetime | None]:
    """The job's state and its finish end time (what a call-back is checked against); (None,
    None) for a job that does not exist. `share`: the row is held (FOR SHARE) until the
    transaction ends, so the director cannot end the job meanwhile (jobs.lock)."""
    row = conn.execute(f"SELECT state, finish FROM jobs WHERE id = %s{' FOR SHARE' if share else ''}",
                       (job_id,)).fetchone()
    if row is None:
        return None, None
    return row[0], FinishCriteria.model_validate(row[1] or {}).end_time
