"""The persisted rule window of the pacers (core/pacing/window.py): per-campaign buckets of call
outcomes, added to in the manager's settling transaction and summed over a window; and the
pacing alarm of a job (an AMD false-positive share over its target), raised and cleared on the
alarms path of the load monitor (`store/load.py`)."""
from __future__ import annotations

from datetime import datetime

import orjson
import psycopg

from ..core import load
from ..core.pacing.window import Tally
from .load import clear_alarm, raise_alarm

ADD_SQL = """
INSERT INTO pacing_counters AS p (campaign_id, bucket, dials, live, abandoned, machine, answer_s, talk_s, talked)
SELECT %s, b.bucket, b.dials, b.live, b.abandoned, b.machine, b.answer_s, b.talk_s, b.talked
FROM jsonb_to_recordset(%s::jsonb) AS b(bucket timestamptz, dials bigint, live bigint, abandoned bigint,
     machine bigint, answer_s double precision, talk_s double precision, talked bigint)
ON CONFLICT (campaign_id, bucket) DO UPDATE SET dials = p.dials + EXCLUDED.dials, live = p.live + EXCLUDED.live,
   abandoned = p.abandoned + EXCLUDED.abandoned, machine = p.machine + EXCLUDED.machine,
   answer_s = p.answer_s + EXCLUDED.answer_s, talk_s = p.talk_s + EXCLUDED.talk_s,
   talked = p.talked + EXCLUDED.talked
"""


def add_counts(conn: psycopg.Connection, campaign_id: int, buckets: dict[datetime, Tally]) -> None:
    """Add outcome tallies to the campaign's buckets (one statement; call it inside the
    transaction that settles the outcomes, so each counts once)."""
    if buckets:
        rows = [{"bucket": b, **t.as_dict()} for b, t in sorted(buckets.items())]
        conn.execute(ADD_SQL, (campaign_id, orjson.dumps(rows).decode()))


def window(conn: psycopg.Connection, campaign_id: int, since: datetime) -> Tally:
    """The campaign's outcomes in the buckets from `since` on."""
    row = conn.execute(
        "SELECT coalesce(sum(dials), 0), coalesce(sum(live), 0), coalesce(sum(abandoned), 0), "
        "coalesce(sum(machine), 0), coalesce(sum(answer_s), 0), coalesce(sum(talk_s), 0), "
        "coalesce(sum(talked), 0) FROM pacing_counters WHERE campaign_id = %s AND bucket >= %s",
        (campaign_id, since)).fetchone()
    return Tally(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]), float(row[5]), int(row[6]))


def recent_wraps(conn: psycopg.Connection, campaign_id: int, since: datetime) -> tuple[float, int]:
    """The wrap-ups of the campaign's calls since `since` that the agent ended with a
    disposition (agent_events: each `dispose` after the agent's `hangup`): their seconds and
    how many."""
    row = conn.execute(
        "SELECT coalesce(sum(s), 0), count(s) FROM ("
        "  SELECT e.event, extract(epoch FROM e.at - lag(e.at) OVER w) AS s, lag(e.event) OVER w AS prev"
        "  FROM agent_events e WHERE e.at >= %(since)s AND e.event IN ('hangup', 'dispose', 'wrap_timeout')"
        "    AND e.job_id IN (SELECT id FROM jobs WHERE campaign_id = %(campaign)s)"
        "  WINDOW w AS (PARTITION BY e.agent_id ORDER BY e.id)) x "
        "WHERE event = 'dispose' AND prev = 'hangup'", {"since": since, "campaign": campaign_id}).fetchone()
    return float(row[0]), int(row[1])


def alarm_source(job_id: int) -> str:
    return load.alarm_source("pacing.amd", f"job-{job_id}")


def set_alarm(conn: psycopg.Connection, job_id: int, message: str | None, value: float, target: float) -> None:
    """Raise (message given) or clear (None) job `job_id`'s pacing alarm, with its event; a
    second manager of the job raising it too changes nothing."""
    t = load.Transition(alarm_source(job_id), message is not None, "major",
                        message or f"job {job_id}: AMD false positives back under the target", value, target)
    (raise_alarm if t.raised else clear_alarm)(conn, t)
