"""The hot-path SQL of a campaign manager: leases, claims, intents, outcomes (principles 2, 3).

Every write of a manager runs inside `fenced()`, which share-locks the manager's lease rows
and keeps only the shards whose epoch is still the one the manager holds: a takeover by the
director (which bumps the epoch) waits for the transaction, and a stale manager writes
nothing. Batches move as JSON documents and COPY; no per-row round trips.
"""
from __future__ import annotations

import functools
import dataclasses
import orjson
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..core import dialling as D
from ..core.pacing.window import Tally
from ..core.codes import CompletionCode
from ..core.scripts import AgentScript
from ..core.strategy import Strategy
from ..core.work import AttemptRow, ItemUpdate, make_item
from ..core.agents.disposal import Disposal
from ..core.filters import Filter, parse as parse_filter
from . import catalog, codes, dispositions, jobs, pacing
from .filters import compile_sql
from .scripts import found as found_scripts
from .base import Store

ATTEMPT_COLUMNS = ("work_item_id", "attempt_no", "job_id", "campaign_id", "contact_id", "shard", "epoch",
                   "handler", "channel", "address", "verdict", "rule", "reason", "gateway", "code",
                   "created_at", "completed_at", "details")

# Each kind of due item (core.dialling) and how the claim reads it: the index it walks, in its order.
_KIND_SQL = {
    D.PRIORITY: ("w.state = 'ready' AND w.priority", "w.rank"),
    D.REGULAR: ("w.state = 'ready' AND NOT w.priority", "w.rank"),
    D.RETRIES: ("w.state = 'scheduled'", "w.next_at"),
}


@functools.lru_cache(maxsize=64)
def _claim_sql(order: tuple[str, ...] = D.DEFAULT_ORDER, fragment: str | None = None) -> str:
    """The claim: it takes the items and records the intent of their attempts (locked, in
    flight under the lease epoch of their shard, to the gateway chosen, attempt number
    spent) — all undone if the transaction (rules, restrictions) does not commit.

    Items are taken kind by kind in the job's dialling `order`, each kind walking its own
    index in its own order (ready items by rank, items due again by due time). A CTE is read
    only as far as its reader asks and an Append reads its branches in turn, so `due` (the
    kinds' CTEs one after the other, cut at the limit) locks the items of a kind only when
    the kinds before it had fewer than the batch: a claim reads no more rows than it takes
    plus those it skips. With a job's filter in force (`fragment`, compiled over the contact
    `c`), the due items are only those whose contact it selects; the others stay where they
    are, not dialled. The batch comes back in no particular order (it is dispatched as one).
    Positional parameters in text order: per kind (job, shards, handler, now, the fragment's,
    limit), then limit, epochs, gateway, now."""
    join, where, of = (" JOIN contacts c ON c.id = w.contact_id", f" AND {fragment}", " OF w") if fragment \
        else ("", "", "")
    kinds = []
    for i, kind in enumerate(order):
        test, index_order = _KIND_SQL[kind]
        kinds.append(f"""k{i} AS (
    SELECT w.id FROM work_items w{join}
    WHERE w.job_id = %s AND {test} AND w.shard = ANY(%s) AND w.handler = %s AND w.next_at <= %s{where}
    ORDER BY {index_order}
    LIMIT %s
    FOR UPDATE{of} SKIP LOCKED
)""")
    due = " UNION ALL ".join(f"SELECT id FROM k{i}" for i in range(len(order)))
    return f"""
WITH {", ".join(kinds)}, due AS (SELECT id FROM ({due}) u LIMIT %s), taken AS (
    UPDATE work_items w SET state = 'in_flight', attempts = w.attempts + 1,
           in_flight_epoch = (%s::jsonb ->> w.shard::text)::bigint,
           in_flight_gateway = %s, in_flight_at = %s
    FROM due WHERE w.id = due.id
    RETURNING w.id, w.job_id, w.contact_id, w.shard, w.handler, w.address_index, w.retries,
              w.address_attempts, w.attempts - 1 AS attempts, w.last_code
)
SELECT t.*, c.external_id, c.first_name, c.last_name, c.phone1, c.phone2, c.email, c.timezones,
       c.attributes
FROM taken t JOIN contacts c ON c.id = t.contact_id
"""

# Batches travel as one JSON document read by jsonb_to_recordset: one C-speed dump on the
# client, and a row estimate (100) that keeps the planner on the primary key — an `unnest` of
# known length makes it hash-join the whole table instead.
# `expect_*` set: an outcome, which applies only to the attempt in flight under the epoch
# that sent it; NULL: an item claimed in this transaction and restricted by a rule. Either
# way the item leaves flight.
UPDATE_ITEMS_SQL = """
UPDATE work_items w SET state = u.state, next_at = u.next_at, handler = u.handler,
       address_index = u.address_index, retries = u.retries,
       address_attempts = u.address_attempts, attempts = u.attempts,
       last_code = u.last_code, in_flight_epoch = NULL, in_flight_gateway = NULL, in_flight_at = NULL
FROM jsonb_to_recordset(%s::jsonb)
     AS u(id bigint, state text, next_at timestamptz, handler text, address_index int, retries jsonb,
          address_attempts jsonb, attempts int, last_code text,
          expect_epoch bigint, expect_attempt int)
WHERE w.id = u.id
  AND (u.expect_attempt IS NULL OR (w.state = 'in_flight' AND w.in_flight_epoch = u.expect_epoch
                                    AND w.attempts = u.expect_attempt))
RETURNING w.id
"""

def _json(value: Any) -> str:
    """orjson: ~10x the stdlib's speed, and datetimes natively (ISO 8601 with offset)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class WorkStore(Store):
    """One manager's connection to the database and the statements of its cycle.

    A manager frozen inside its fenced transaction (a stopped process, a host that hangs)
    would hold its lease rows' share locks, and the director's takeover with them: the server
    ends a session idle in a transaction this long, so the locks go and the takeover proceeds
    (the frozen manager's transaction rolls back; it writes nothing)."""

    SESSION = {"idle_in_transaction_session_timeout": "5s"}

    def __init__(self, conn: psycopg.Connection, job_id: int, holder: str):
        super().__init__(conn)
        self.job_id = job_id
        self.holder = holder
        # The job's filter in force, read with its state at each lease renewal (`job_state`)
        # and compiled at each claim with the business time of the claim.
        self.filter: Filter | None = None
        # The job's dialling order, read with it (core.dialling).
        self.dialling_order: tuple[str, ...] = D.DEFAULT_ORDER

    def job(self) -> dict[str, Any]:
        return jobs.job(self.conn, self.job_id)

    def strategy(self, strategy_id: int) -> Strategy:
        return catalog.load_strategy(self.conn, strategy_id)

    def custom_codes(self, campaign_id: int) -> list[CompletionCode]:
        return codes.custom_codes(self.conn, campaign_id)

    def scripts(self, names: Iterable[str]) -> dict[str, AgentScript]:
        return found_scripts(self.conn, names) if names else {}

    def job_pacing(self) -> dict[str, Any]:
        """The job's run-time pacing changes (core/jobchanges.py), {} if none or no such job."""
        row = self.conn.execute("SELECT pacing FROM jobs WHERE id = %s", (self.job_id,)).fetchone()
        return row[0] if row else {}

    # -- leases ---------------------------------------------------------------------------
    def renew(self, ttl_s: float) -> dict[int, int]:
        """Extend this holder's leases; returns the shards it holds now, with their epochs."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "UPDATE shard_leases SET expires_at = now() + make_interval(secs => %s) "
                "WHERE job_id = %s AND holder = %s RETURNING shard, epoch",
                (ttl_s, self.job_id, self.holder)).fetchall()
        return {shard: epoch for shard, epoch in rows}

    @contextmanager
    def fenced(self, held: dict[int, int]):
        """A transaction in which only the shards still held at their epochs may be written.

        Yields the dict of valid shards -> epoch (possibly fewer than `held`)."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT shard, epoch FROM shard_leases WHERE job_id = %s AND holder = %s "
                "AND shard = ANY(%s) FOR SHARE", (self.job_id, self.holder, list(held))).fetchall()
            yield {shard: epoch for shard, epoch in rows if held.get(shard) == epoch}

    # -- claims and intents --------------------------------------------------------------
    def claim(self, epochs: dict[int, int], handler: str, gateway: str, now: datetime,
              limit: int) -> list[dict[str, Any]]:
        """Take up to `limit` due items of the shards in `epochs`, in flight to `gateway`
        (call inside `fenced`)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            fragment, params = compile_sql(self.filter, now, alias="c") if self.filter else (None, [])
            kind = [self.job_id, list(epochs), handler, now, *params, limit]
            cur.execute(_claim_sql(self.dialling_order, fragment),
                        [*kind * len(self.dialling_order), limit, _json(epochs), gateway, now])
            return cur.fetchall()

    def write_attempts(self, rows: Sequence[AttemptRow]) -> None:
        """Append finished attempts to the ledger (COPY)."""
        if not rows:
            return
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row((r.work_item_id, r.attempt_no, r.job_id, r.campaign_id, r.contact_id,
                                    r.shard, r.epoch, r.handler, r.channel, r.address, r.verdict, r.rule,
                                    r.reason, r.gateway, r.code, r.created_at, r.completed_at,
                                    _json(r.details)))

    def update_items(self, updates: Sequence[ItemUpdate],
                     expect: Sequence[tuple[int, int]] | None = None) -> set[int]:
        """Write new item states; with `expect` [(epoch, attempt_no)], only where that attempt
        is still the one in flight. Returns the ids written."""
        if not updates:
            return set()
        expect = expect or [(None, None)] * len(updates)
        rows = [{"id": u.id, "state": u.state, "next_at": u.next_at, "handler": u.handler,
                 "address_index": u.address_index, "retries": u.retries,
                 "address_attempts": u.address_attempts, "attempts": u.attempts,
                 "last_code": u.last_code,
                 "expect_epoch": e, "expect_attempt": n} for u, (e, n) in zip(updates, expect)]
        return {r[0] for r in self.conn.execute(UPDATE_ITEMS_SQL, (_json(rows),)).fetchall()}

    def dispose(self, disposals: Sequence[Disposal], expire_before: datetime | None = None) -> dict[str, list[str]]:
        """Apply the agents' disposals of one cycle in one call (`store.dispositions.dispose`)."""
        return dispositions.dispose(self.conn, self.job_id, disposals, expire_before)

    def outbox(self, topic: str, key: str, events: list[dict[str, Any]]) -> None:
        """One outbox row per batch: the relay fans it out into one Kafka message per event."""
        if events:
            self.conn.execute("INSERT INTO event_outbox (topic, key, payload) VALUES (%s, %s, %s::jsonb)",
                              (topic, key, _json(events)))

    # -- pacing ------------------------------------------------------------------------------
    def count_calls(self, campaign_id: int, buckets: dict[datetime, Tally]) -> None:
        """Add settled call outcomes to the campaign's rule window (call inside `fenced`)."""
        pacing.add_counts(self.conn, campaign_id, buckets)

    def pacing_window(self, campaign_id: int, since: datetime) -> Tally:
        return pacing.window(self.conn, campaign_id, since)

    def warm_start(self, campaign_id: int, since: datetime) -> Tally:
        """What a new pacer starts from: the campaign's outcomes and its agents' wrap-ups since `since`."""
        wrap_s, wrapped = pacing.recent_wraps(self.conn, campaign_id, since)
        return dataclasses.replace(pacing.window(self.conn, campaign_id, since), wrap_s=wrap_s, wrapped=wrapped)

    def pacing_alarm(self, message: str | None, value: float, target: float) -> None:
        pacing.set_alarm(self.conn, self.job_id, message, value, target)

    # -- recovery ---------------------------------------------------------------------------
    def in_flight(self, shards: Iterable[int]) -> list[dict[str, Any]]:
        """Items left in flight on `shards` (by any epoch), with the intent of the attempt out."""
        return in_flight_items(self.conn, self.job_id, shards)

    def job_state(self) -> str | None:
        """The job's state; reads the filter in force and the dialling order with it, which
        the next claims apply."""
        row = self.conn.execute("SELECT state, filter, dialling_order FROM jobs WHERE id = %s",
                                (self.job_id,)).fetchone()
        if not row:
            return None
        state, expression, order = row
        self.dialling_order = D.dialling_order(order)
        if expression is None:
            self.filter = None
        elif self.filter is None or self.filter.source != expression:
            self.filter = parse_filter(expression)
        return state


def in_flight_items(conn: psycopg.Connection, job_id: int | None = None,
                    shards: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Work items in flight (of one job's `shards`, or of every job) with their contact, the
    intent of the attempt out (`in_flight_*`) and the job's strategy id."""
    where = ["w.state = 'in_flight'"]
    params: list[Any] = []
    if job_id is not None:
        where.append("w.job_id = %s")
        params.append(job_id)
    if shards is not None:
        where.append("w.shard = ANY(%s)")
        params.append(list(shards))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT w.id, w.job_id, w.contact_id, w.shard, w.handler, w.address_index, w.retries, "
            "w.address_attempts, w.attempts, w.last_code, w.in_flight_epoch, w.in_flight_gateway, "
            "w.in_flight_at, j.strategy_id, c.external_id, c.first_name, c.last_name, "
            "c.phone1, c.phone2, c.email, c.timezones, c.attributes "
            "FROM work_items w JOIN contacts c ON c.id = w.contact_id JOIN jobs j ON j.id = w.job_id "
            f"WHERE {' AND '.join(where)}", params)
        return cur.fetchall()


def in_flight_attempts(conn: psycopg.Connection) -> list[tuple[str, datetime]]:
    """(address, time sent) of every attempt in flight in any job. The address is not stored
    with the intent: it is derived from the item's progress exactly as the manager derived it."""
    strategies: dict[int, Strategy] = {}
    out = []
    for row in in_flight_items(conn):
        sid = row["strategy_id"]
        if sid not in strategies:
            strategies[sid] = catalog.load_strategy(conn, sid)
        address = make_item(row, strategies[sid]).address
        if address:
            out.append((address, row["in_flight_at"]))
    return out


def latest_business_time(conn: psycopg.Connection) -> datetime | None:
    """The latest business time the database has seen (an attempt recorded or sent)."""
    return conn.execute("SELECT greatest((SELECT max(created_at) FROM attempts), "
                        "(SELECT max(in_flight_at) FROM work_items))").fetchone()[0]
