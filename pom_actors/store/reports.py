"""The reports' statements (docs/api.md, "Reports"): attempts by completion code per job and
time bucket, abandon rates per job and window, agent time by state. Every statement reads one
bounded time range (`core.reports.resolve`) and at most `limit + 1` rows (the extra one tells
the caller the answer was truncated).

What each range read uses: the ledger by job through `ix_attempts_job_at (job_id, created_at)`,
across jobs through the BRIN index on `created_at`; agent events through the BRIN index on
`at`, and each agent's state at the start of the range through `ix_agent_events_agent
(agent_id, id)` read backwards. `created_at` and `at` are business times (the injected clock).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..core.reports import ORIGIN, abandon_rate

# A report statement that runs longer than this is cancelled (the gateway answers 503): a
# bounded range should never need it, a database too busy to answer should not be queued on.
STATEMENT_TIMEOUT = "15s"
_JOB = "AND a.job_id = %(job)s"


def _rows(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET LOCAL statement_timeout = '" + STATEMENT_TIMEOUT + "'")
        return cur.execute(sql, params).fetchall()


def attempts_by_code(conn: psycopg.Connection, since: datetime, until: datetime, *, job_id: int | None = None,
                     bucket_s: int = 3600, limit: int = 1000) -> list[dict[str, Any]]:
    """Per job, bucket (its start) and completion code (a restricted attempt without one: its
    verdict): the attempts created in [since, until)."""
    sql = ("SELECT a.job_id, date_bin(make_interval(secs => %(bucket)s), a.created_at, %(origin)s) AS at, "
           "coalesce(a.code, a.verdict) AS code, count(*) AS attempts "
           "FROM attempts a WHERE a.created_at >= %(since)s AND a.created_at < %(until)s "
           f"{_JOB if job_id is not None else ''} "
           "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT %(n)s")
    return _rows(conn, sql, {"since": since, "until": until, "job": job_id, "bucket": bucket_s,
                             "origin": ORIGIN, "n": limit + 1})


def abandons(conn: psycopg.Connection, since: datetime, until: datetime, *, job_id: int | None = None,
             window_s: int = 900, limit: int = 1000) -> list[dict[str, Any]]:
    """Per job and window (and per job over the whole range: `at` null, first): live answers
    (`answered`: a code with human_contact; `abandoned`: counts_as_abandon, by the campaign's
    code book) and the abandon rate."""
    sql = ("SELECT job_id, at, count(*) AS attempts, "
           "count(*) FILTER (WHERE human AND NOT abandon) AS answered, count(*) FILTER (WHERE abandon) AS abandoned "
           "FROM (SELECT a.job_id, date_bin(make_interval(secs => %(window)s), a.created_at, %(origin)s) AS at, "
           "      coalesce(c.human_contact, false) AS human, coalesce(c.counts_as_abandon, false) AS abandon "
           "      FROM attempts a LEFT JOIN completion_codes c ON c.name = a.code "
           "      AND (c.campaign_id IS NULL OR c.campaign_id = a.campaign_id) "
           "      WHERE a.created_at >= %(since)s AND a.created_at < %(until)s "
           f"     {_JOB if job_id is not None else ''}) x "
           "GROUP BY GROUPING SETS ((job_id), (job_id, at)) ORDER BY job_id, at NULLS FIRST LIMIT %(n)s")
    rows = _rows(conn, sql, {"since": since, "until": until, "job": job_id, "window": window_s,
                             "origin": ORIGIN, "n": limit + 1})
    for r in rows:
        r["rate"] = abandon_rate(r)
    return rows


def agent_time(conn: psycopg.Connection, since: datetime, until: datetime, *, agent_id: int | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
    """Per agent and state (logged out left out): the seconds spent in it within [since, until)
    and how many times it was entered. An agent's state at `since` is its latest event before;
    its last state lasts until `until` (or now, if sooner)."""
    agent = "AND e.agent_id = %(agent)s" if agent_id is not None else ""
    sql = ("WITH ev AS ("
           f"  SELECT e.agent_id, e.id, e.at, e.to_state, true AS entered FROM agent_events e "
           f"  WHERE e.at >= %(since)s AND e.at < %(until)s {agent} "
           "  UNION ALL "
           "  SELECT ag.id, p.id, %(since)s, p.to_state, false FROM agents ag CROSS JOIN LATERAL ("
           "    SELECT e.id, e.to_state FROM agent_events e WHERE e.agent_id = ag.id AND e.at < %(since)s "
           "    ORDER BY e.id DESC LIMIT 1) p "
           f"  WHERE {'ag.id = %(agent)s' if agent_id is not None else 'true'}"
           "), spans AS ("
           "  SELECT agent_id, to_state, entered, at, "
           "  lead(at, 1, greatest(at, least(%(until)s, now()))) OVER (PARTITION BY agent_id ORDER BY at, id) AS stop "
           "  FROM ev"
           ") "
           "SELECT s.agent_id, ag.login, s.to_state AS state, "
           "round(sum(extract(epoch FROM s.stop - s.at))::numeric, 3)::float8 AS seconds, "
           "count(*) FILTER (WHERE s.entered) AS entered "
           "FROM spans s JOIN agents ag ON ag.id = s.agent_id WHERE s.to_state <> 'logged_out' "
           "GROUP BY s.agent_id, ag.login, s.to_state ORDER BY s.agent_id, s.to_state LIMIT %(n)s")
    return _rows(conn, sql, {"since": since, "until": until, "agent": agent_id, "n": limit + 1})


def job_agent_time(conn: psycopg.Connection, job_id: int) -> dict[str, float]:
    """For a job's summary: the seconds its agents spent on its calls (`on_call`), in after-call
    work on them (`wrap_up`, which the agent's disposition ends) and logged in while working for
    it (`logged_in`: every state but logged out, of the events that name the job — a call's job,
    else the job attached to), each event lasting until the agent's next one."""
    sql = ("WITH ev AS (SELECT e.job_id, e.to_state, "
           "  extract(epoch FROM lead(e.at) OVER (PARTITION BY e.agent_id ORDER BY e.id) - e.at) AS s "
           "  FROM agent_events e WHERE e.agent_id IN (SELECT DISTINCT agent_id FROM agent_events WHERE job_id = %(job)s)) "
           "SELECT coalesce(sum(s) FILTER (WHERE to_state = 'on_call'), 0)::float8 AS on_call, "
           "coalesce(sum(s) FILTER (WHERE to_state = 'wrap_up'), 0)::float8 AS wrap_up, "
           "coalesce(sum(s) FILTER (WHERE to_state <> 'logged_out'), 0)::float8 AS logged_in "
           "FROM ev WHERE job_id = %(job)s AND s IS NOT NULL")
    return _rows(conn, sql, {"job": job_id})[0]
