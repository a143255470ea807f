"""Jobs, their work items and shard leases: the director's statements.

A job is created with all its work items in one INSERT … SELECT (one per contact, shard =
contact id mod shards) and one lease row per shard (holder NULL, epoch 0). Lease moves bump
the epoch; lease expiry is the database's `now()`, never business time.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.events import JOBS_TOPIC, job_key
from ..core.finish import FinishCriteria, JobCounts
from ..core.lifecycle import JobState
from ..names import DEFAULT_ZONE
from .catalog import NotFound
from .dialling import campaign_lists, create_work_items

def create_job(conn: psycopg.Connection, campaign_id: int, shards: int, managers: int, now: datetime,
               zone: str | None = None, default_zone: str = DEFAULT_ZONE) -> int:
    """A queued job of the campaign over every contact of its lists (ranked by list priority
    and sort order: store/dialling.py), with its shard leases; the job's filter is a copy of the
    campaign's template's expression (NULL without one). Its zone: `zone` if given, else the
    campaign's, else `default_zone` (the caller checked it exists)."""
    camp = conn.execute("SELECT c.strategy_id, c.finish, t.expression, c.zone FROM campaigns c "
                        "LEFT JOIN filter_templates t ON t.id = c.filter_id WHERE c.id = %s",
                        (campaign_id,)).fetchone()
    if not camp:
        raise NotFound(f"campaign {campaign_id} does not exist")
    strategy_id, finish, expression, campaign_zone = camp
    initial = conn.execute("SELECT document->>'initial' FROM strategies WHERE id = %s",
                           (strategy_id,)).fetchone()[0]
    lists = campaign_lists(conn, campaign_id)
    job_id = conn.execute(
        "INSERT INTO jobs (campaign_id, strategy_id, state, shards, managers, finish, filter, zone, lists) "
        "VALUES (%s, %s, 'queued', %s, %s, %s, %s, %s, %s) RETURNING id",
        (campaign_id, strategy_id, shards, max(1, min(managers, shards)), Jsonb(finish),
         expression, zone or campaign_zone or default_zone, Jsonb([e.as_dict() for e in lists]))).fetchone()[0]
    create_work_items(conn, job_id, lists, shards, now, initial)
    conn.execute("INSERT INTO shard_leases (job_id, shard) SELECT %s, s FROM generate_series(0, %s - 1) s",
                 (job_id, shards))
    return job_id


def job(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT j.*, c.name AS campaign FROM jobs j JOIN campaigns c ON c.id = j.campaign_id "
                          "WHERE j.id = %s", (job_id,)).fetchone()
    if not row:
        raise NotFound(f"job {job_id} does not exist")
    return row


def jobs(conn: psycopg.Connection, states: tuple[str, ...] | None = None, *, after: int = 0,
         limit: int | None = None, campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Jobs by id: in `states`, of `campaign_id`, with an id above `after`; at most `limit`."""
    where, params = ["j.id > %s"], [after]
    if states:
        where.append("j.state = ANY(%s)")
        params.append(list(states))
    if campaign_id is not None:
        where.append("j.campaign_id = %s")
        params.append(campaign_id)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT j.*, c.name AS campaign FROM jobs j JOIN campaigns c ON c.id = j.campaign_id "
                           f"WHERE {' AND '.join(where)} ORDER BY j.id LIMIT %s", (*params, limit)).fetchall()


def set_state(conn: psycopg.Connection, job_id: int, expected: str, new: JobState | str, *,
              reason: str | None = None, finishing: bool | None = None) -> bool:
    """Compare-and-set of a job's state; stamps start and end times and writes the job's event
    to the outbox in the same statement. False if it had moved on."""
    new = JobState(new)
    sets = ["state = %(new)s"]
    params: dict[str, Any] = {"new": str(new), "id": job_id, "expected": str(expected),
                              "topic": JOBS_TOPIC, "key": job_key(job_id)}
    if reason is not None:
        sets.append("reason = %(reason)s")
        params["reason"] = reason
    if finishing is not None:
        sets.append("finishing = %(finishing)s")
        params["finishing"] = finishing
    if new == JobState.RUNNING:
        sets.append("started_at = coalesce(started_at, now())")
    if new in (JobState.COMPLETED, JobState.STOPPED, JobState.FAILED):
        sets.append("ended_at = now()")
    return conn.execute(
        f"WITH moved AS (UPDATE jobs SET {', '.join(sets)} WHERE id = %(id)s AND state = %(expected)s "
        "RETURNING id, campaign_id, state, reason) "
        "INSERT INTO event_outbox (topic, key, payload) "
        "SELECT %(topic)s, %(key)s, jsonb_build_array(jsonb_build_object('job_id', id, "
        "'campaign_id', campaign_id, 'state', state, 'previous', %(expected)s::text, 'reason', reason, "
        "'at', now())) FROM moved", params).rowcount == 1


def state_counts(conn: psycopg.Connection, job_ids: list[int]) -> dict[int, dict[str, int]]:
    """Work items per state of each job."""
    out: dict[int, dict[str, int]] = {j: {} for j in job_ids}
    for job_id, state, n in conn.execute(
            "SELECT job_id, state, count(*) FROM work_items WHERE job_id = ANY(%s) GROUP BY 1, 2",
            (job_ids,)):
        out[job_id][state] = n
    return out


def counts(conn: psycopg.Connection, job_id: int, criteria: FinishCriteria | None,
           now: datetime | None = None) -> JobCounts:
    """What the finish criteria look at, and only that: the director asks every tick, so the
    open check walks the partial indexes (a count of a whole job's items would scan it all)
    and the done and goal counts run only when a criterion needs them.

    With a filter in force, only the open items the filter selects (evaluated at `now`, the
    business clock's) hold the job open: the items it excludes will not be dialled, and are
    cancelled when the job ends (`cancel_open`). Without `now`, a filter reading `now`/`today`
    is evaluated at the latest business time of the job's ledger."""
    expression = conn.execute("SELECT filter FROM jobs WHERE id = %s", (job_id,)).fetchone()
    expression = expression[0] if expression else None
    if expression is None:
        has_open = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM work_items WHERE job_id = %(j)s AND state = 'ready') "
            "OR EXISTS (SELECT 1 FROM work_items WHERE job_id = %(j)s AND state = 'scheduled') "
            "OR EXISTS (SELECT 1 FROM work_items WHERE job_id = %(j)s AND state = 'in_flight')",
            {"j": job_id}).fetchone()[0]
    else:
        has_open = _has_open_filtered(conn, job_id, expression, now)
    done = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND state = 'done'",
                        (job_id,)).fetchone()[0] if criteria and criteria.max_processed else 0
    goal_codes = criteria.goal_codes if criteria else []
    by_code = dict(conn.execute(
        "SELECT last_code, count(*) FROM work_items WHERE job_id = %s AND state = 'done' "
        "AND last_code = ANY(%s) GROUP BY 1", (job_id, list(goal_codes))).fetchall()) if goal_codes else {}
    return JobCounts(done=done, by_code=by_code, has_open=has_open)


def _has_open_filtered(conn: psycopg.Connection, job_id: int, expression: str,
                       now: datetime | None) -> bool:
    from ..core.filters import parse
    from .filters import compile_sql, uses_clock
    f = parse(expression)
    if now is None:
        now = (conn.execute("SELECT max(created_at) FROM attempts WHERE job_id = %s", (job_id,)).fetchone()[0]
               if uses_clock(f) else None) or datetime.now(timezone.utc)
    fragment, params = compile_sql(f, now, alias="c")
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM work_items WHERE job_id = %s AND state = 'in_flight') "
        "OR EXISTS (SELECT 1 FROM work_items w JOIN contacts c ON c.id = w.contact_id "
        f"WHERE w.job_id = %s AND (w.state = 'ready' OR w.state = 'scheduled') AND {fragment})",
        [job_id, job_id, *params]).fetchone()[0]


def attempt_codes(conn: psycopg.Connection, job_id: int) -> dict[str, int]:
    """Attempts of a job by completion code, most frequent first, then `in_flight` (attempts
    not finished yet, which the ledger holds only once they are)."""
    codes = dict(conn.execute(
        "SELECT code, count(*) FROM attempts WHERE job_id = %s GROUP BY 1 ORDER BY 2 DESC", (job_id,)).fetchall())
    flying = in_flight(conn, job_id)
    return {**codes, "in_flight": flying} if flying else codes


def lock(conn: psycopg.Connection, job_id: int) -> str | None:
    """Take the job's row for this transaction (FOR UPDATE) and return its state: the
    director's end of a job and an agent's call-back (store/dispositions.py, FOR SHARE) are
    decided one after the other, so a call-back is never scheduled in a job that is ending."""
    row = conn.execute("SELECT state FROM jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
    return None if row is None else row[0]


def cancel_open(conn: psycopg.Connection, job_id: int) -> int:
    """At the end of a stopped or finished job, items never to be attempted end `cancelled`."""
    return conn.execute("UPDATE work_items SET state = 'done', last_code = 'cancelled' "
                        "WHERE job_id = %s AND (state = 'ready' OR state = 'scheduled')", (job_id,)).rowcount


def in_flight(conn: psycopg.Connection, job_id: int) -> int:
    return conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND state = 'in_flight'",
                        (job_id,)).fetchone()[0]


# -- leases -----------------------------------------------------------------------------------
def leases(conn: psycopg.Connection, job_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT shard, holder, epoch, expires_at, expires_at < now() AS lapsed "
                           "FROM shard_leases WHERE job_id = %s ORDER BY shard", (job_id,)).fetchall()


def grant(conn: psycopg.Connection, job_id: int, holders: Mapping[int, str], ttl_s: float) -> None:
    """Give shards to new holders: the epoch grows, so the previous holder is fenced off."""
    if holders:
        conn.execute(
            "UPDATE shard_leases l SET holder = g.holder, epoch = l.epoch + 1, "
            "expires_at = now() + make_interval(secs => %s) "
            "FROM unnest(%s::int[], %s::text[]) AS g(shard, holder) "
            "WHERE l.job_id = %s AND l.shard = g.shard",
            (ttl_s, list(holders), list(holders.values()), job_id))


def release_all(conn: psycopg.Connection, job_id: int) -> None:
    """A finished job's leases go to nobody, with a new epoch so late writes are refused."""
    conn.execute("UPDATE shard_leases SET holder = NULL, epoch = epoch + 1, expires_at = NULL "
                 "WHERE job_id = %s", (job_id,))
