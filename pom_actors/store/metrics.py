"""What the gateway's `/metrics` reads from PostgreSQL, at a cost that does not grow with the
ledger (docs/api.md, "Metrics").

One scrape is one read-only REPEATABLE READ transaction (`read`), so every figure comes from
one snapshot: jobs by state (the `jobs` table is small), the open work items of each live job
(through the partial index on due items), the items in flight (through the partial index on
them), what the ledger gained since the last scrape, and the outbox rows not yet published.

The ledger (`attempts`) is append-only and may hold millions of rows, so it is never counted
whole on a scrape. Its only time index is a BRIN index on `created_at`, and `created_at` is
the business time at which the attempt's claim was made, not the time the row was written (an
allowed attempt's row is written when its outcome settles). The caller therefore keeps a
running tally and asks, each scrape, only for (`LedgerQuery`):

* the rows whose `created_at` is at or after the previous horizon `since` (a BRIN range scan
  of the recent end of the table, once `summarize_ledger_index` has summarized the ranges
  written since the last scrape), split at the new horizon `until`;
* the rows of the attempts that were in flight below the previous horizon (`pending`, looked
  up by primary key);
* the attempts in flight now whose claim time is below `until` (their rows are still to come,
  below the horizon, so they are the next `pending`).

`api/metrics.py` (`LedgerTally`) explains why that counts every row exactly once. A query with
`since=None` counts the ledger once, whole: the first read of a gateway process (`ledger`, run
off the scrape's clock). The job totals that `done` items are derived from are read once per
job for the same reason (`job_items_total`): `work_items` has no index on the job alone.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from ..core.lifecycle import TERMINAL

log = logging.getLogger(__name__)
# Label tuple of one ledger count: (channel, code, verdict, rule).
LedgerKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class LedgerQuery:
    since: datetime | None                  # None: the whole ledger (the first read)
    until: datetime                         # the new horizon
    pending: tuple[tuple[int, int], ...] = ()   # (work_item_id, attempt_no) awaited below `since`


@dataclass
class LedgerRead:
    below: dict[LedgerKey, int] = field(default_factory=dict)    # since <= created_at < until
    above: dict[LedgerKey, int] = field(default_factory=dict)    # created_at >= until
    landed: dict[LedgerKey, int] = field(default_factory=dict)   # rows of `pending` written since
    flying: tuple[tuple[int, int], ...] = ()                     # in flight, claimed before `until`


@dataclass
class OutboxRead:
    unpublished: int = 0
    oldest_age_s: float = 0.0               # now() - created_at of the oldest unpublished row
    low_id: int = 0                         # the smallest id a later read has to look at
    xmin: int = 0                           # this snapshot's oldest running transaction
    xmax: int = 0                           # and the first transaction it does not see


@dataclass
class Figures:
    jobs: dict[str, int]                                # jobs by state (every job)
    live: list[dict]                                    # non-terminal jobs: id, state, managers, campaign
    items: dict[int, dict[str, int]]                    # live job -> ready/scheduled/in_flight
    outbox: OutboxRead
    ledger: LedgerRead | None = None
    alarms: dict[str, str] = field(default_factory=dict)        # active alarm source -> severity
    load: list[dict] = field(default_factory=list)              # load_readings: server, leader, readings, age_s
    load_config: dict | None = None                             # the stored load configuration, if any
    imports: dict[str, dict[str, int]] = field(default_factory=dict)   # state -> imports, rows_read, ...


def oldest_transaction_s(conn: psycopg.Connection) -> float:
    """Age in seconds of the oldest transaction open in this database (other than ours): any
    ledger row not yet visible belongs to a claim made at most that long ago. Needs the
    sessions of the actors to be visible to this role (same role, or pg_read_all_stats)."""
    row = conn.execute(
        "SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL").fetchone()
    return max(0.0, float(row[0] or 0.0))


def summarize_ledger_index(conn: psycopg.Connection, deadline: float | None = None) -> int | None:
    """Summarize the page ranges of the ledger's BRIN index that no VACUUM has summarized yet
    (the index has `autosummarize` off, and autovacuum reaches an insert-only table only after
    a fifth of it is new). A BRIN scan returns every unsummarized range whole, so without this
    the range read since the horizon would read most of the table. Cost: the pages added since
    the last call, once. Returns the ranges summarized, or None if it could not run now (a
    VACUUM holds the table, or the role does not own the index): the read stays correct, only
    slower."""
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = 200")
            if deadline is not None:
                _bound(conn, deadline)
            return conn.execute("SELECT brin_summarize_new_values('ix_attempts_created_at')").fetchone()[0]
    except psycopg.Error as exc:
        log.info("ledger BRIN index not summarized now: %s", exc)
        return None


def read(conn: psycopg.Connection, *, deadline: float, ledger: LedgerQuery | None,
         outbox_from: int) -> Figures:
    """Everything of one scrape in one snapshot; each statement is cut off at `deadline`
    (time.monotonic), which aborts the whole read."""
    if ledger is not None:
        summarize_ledger_index(conn, deadline)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _bound(conn, deadline)
        jobs = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        live = [{"id": j, "state": s, "managers": m, "campaign": c} for j, s, m, c in conn.execute(
            "SELECT j.id, j.state, j.managers, c.name FROM jobs j JOIN campaigns c ON c.id = j.campaign_id "
            "WHERE j.state <> ALL(%s) ORDER BY j.id", ([str(s) for s in TERMINAL],)).fetchall()]
        ids = [j["id"] for j in live]
        items: dict[int, dict[str, int]] = {j: {} for j in ids}
        _bound(conn, deadline)
        for job_id, state, n in conn.execute(
                "SELECT job_id, state, count(*) FROM work_items "
                "WHERE job_id = ANY(%s) AND (state = 'ready' OR state = 'scheduled') GROUP BY 1, 2", (ids,)):
            items[job_id][state] = n
        _bound(conn, deadline)
        for job_id, n in conn.execute("SELECT job_id, count(*) FROM work_items WHERE state = 'in_flight' "
                                      "AND job_id = ANY(%s) GROUP BY 1", (ids,)):
            items[job_id]["in_flight"] = n
        _bound(conn, deadline)
        outbox = _outbox(conn, outbox_from)
        figures = Figures(jobs=jobs, live=live, items=items, outbox=outbox)
        _bound(conn, deadline)
        _load(conn, figures)
        _bound(conn, deadline)
        figures.imports = imports_by_state(conn)
        if ledger is not None:
            _bound(conn, deadline)
            figures.ledger = _ledger(conn, ledger)
    return figures


def _load(conn: psycopg.Connection, figures: Figures) -> None:
    """The load monitors' latest readings, the active alarms and the load configuration."""
    figures.alarms = dict(conn.execute("SELECT source, severity FROM alarms WHERE cleared_at IS NULL").fetchall())
    figures.load = [{"server": s, "leader": lead, "readings": r, "age_s": float(age)} for s, lead, r, age in conn.execute(
        "SELECT server, leader, readings, extract(epoch FROM now() - sampled_at) FROM load_readings ORDER BY server")]
    row = conn.execute("SELECT config FROM load_config WHERE id = 1").fetchone()
    figures.load_config = row[0] if row else None


IMPORT_COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "duplicates", "dnc_flagged")


def imports_by_state(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Imports by state with the sums of their row counts: one pass over `import_jobs` (one row
    per import, like `jobs`; a running import's counts grow chunk by chunk)."""
    out = {}
    for state, n, *sums in conn.execute(
            "SELECT state, count(*), " + ", ".join(f"coalesce(sum({c}), 0)" for c in IMPORT_COUNTS)
            + " FROM import_jobs GROUP BY state"):
        out[state] = {"imports": n, **{c: int(v) for c, v in zip(IMPORT_COUNTS, sums)}}
    return out


def ledger(conn: psycopg.Connection, query: LedgerQuery) -> LedgerRead:
    """The ledger part of a read on its own snapshot (the first, whole-ledger read; it first
    summarizes the BRIN index, so that the reads of the scrapes after it are cheap)."""
    summarize_ledger_index(conn)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _ledger(conn, query)


def job_items_total(conn: psycopg.Connection, job_ids: Sequence[int]) -> dict[int, int]:
    """Work items of each job: fixed when the job is created, so read once per job (one scan
    of `work_items` for all the jobs asked together)."""
    if not job_ids:
        return {}
    found = dict(conn.execute("SELECT job_id, count(*) FROM work_items WHERE job_id = ANY(%s) GROUP BY 1",
                              (list(job_ids),)).fetchall())
    return {j: found.get(j, 0) for j in job_ids}


# -- the parts of a read ------------------------------------------------------------------------
def _bound(conn: psycopg.Connection, deadline: float) -> None:
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    conn.execute(f"SET LOCAL statement_timeout = {left_ms}")


_KEY = "channel, coalesce(code, ''), verdict, rule"


def _ledger(conn: psycopg.Connection, q: LedgerQuery) -> LedgerRead:
    out = LedgerRead()
    where, params = ("WHERE created_at >= %(since)s", {"since": q.since}) if q.since else ("", {})
    for channel, code, verdict, rule, below, n in conn.execute(
            f"SELECT {_KEY}, created_at < %(until)s, count(*) FROM attempts {where} GROUP BY 1, 2, 3, 4, 5",
            {**params, "until": q.until}):
        (out.below if below else out.above)[(channel, code, verdict, rule)] = n
    if q.pending:
        items, numbers = zip(*q.pending)
        for channel, code, verdict, rule, n in conn.execute(
                f"SELECT {_KEY}, count(*) FROM attempts a "
                "JOIN unnest(%s::bigint[], %s::int[]) AS p(id, no) "
                "ON a.work_item_id = p.id AND a.attempt_no = p.no GROUP BY 1, 2, 3, 4",
                (list(items), list(numbers))):
            out.landed[(channel, code, verdict, rule)] = n
    # The attempt in flight on an item is its number `attempts`; a NULL claim time (an intent
    # older than migration 0002) is taken as long ago.
    out.flying = tuple(conn.execute(
        "SELECT id, attempts FROM work_items WHERE state = 'in_flight' "
        "AND (in_flight_at < %s OR in_flight_at IS NULL)", (q.until,)).fetchall())
    return out


def _outbox(conn: psycopg.Connection, low_id: int) -> OutboxRead:
    """Unpublished rows from `low_id` on (primary key range). Every row below `low_id` has been
    seen published; published rows never become unpublished."""
    n, oldest, first, last, xmin, xmax = conn.execute(
        "SELECT count(*) FILTER (WHERE published_at IS NULL), "
        "extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL)), "
        "min(id) FILTER (WHERE published_at IS NULL), max(id), "
        "pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
        "pg_snapshot_xmax(pg_current_snapshot())::text::bigint "
        "FROM event_outbox WHERE id >= %s", (low_id,)).fetchone()
    low = first if first is not None else (last + 1 if last is not None else low_id)
    return OutboxRead(unpublished=n, oldest_age_s=max(0.0, float(oldest or 0.0)), low_id=low,
                      xmin=xmin, xmax=xmax)
