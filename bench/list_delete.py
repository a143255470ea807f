"""Deleting a large contact list (store.lists.delete, DELETE /api/v1/lists/{id}): how fast its
contacts go, the longest batch (the longest the list's lock and any of its rows' are held), the
longest an upload to the same list waited meanwhile — against one DELETE statement over an
identical list (what a single statement would hold) — on an embedded PostgreSQL, no Ray.

    python bench/list_delete.py [--contacts 1000000] [--batch 10000]

Two lists of `--contacts` contacts each (COPY, then VACUUM ANALYZE). The first is deleted the
product's way while a writer adds one contact to it every 10 ms (as an upload would; it stops
when the list is gone); the second by one `DELETE FROM contacts WHERE list_id = ...`. The last
line printed is one JSON object: contacts_per_s, max_batch_ms, writer_max_ms, single_statement_ms, ...
Before, a page of 1,000 contacts of the second list is read (the contacts route's query): the
first page and one in the middle.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from pom_actors.store import lists  # noqa: E402
from bench.scratch import embedded_database, timed_writer  # noqa: E402
from pom_actors.store.database import connect  # noqa: E402


def seed(conn, name: str, n: int) -> int:
    list_id = conn.execute("INSERT INTO contact_lists (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]
    with conn.cursor() as cur, cur.copy("COPY contacts (list_id, external_id, first_name, phone1) FROM STDIN") as copy:
        for i in range(n):
            copy.write_row((list_id, f"c{i:09d}", f"F{i}", f"+1212{i % 10**7:07d}"))
    return list_id


def page_ms(conn, list_id: int, after: int) -> float:
    """GET /api/v1/lists/{id}/contacts's query for a page of 1,000 after `after`: median of 3."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        lists.contacts(conn, list_id, after=after, limit=1000)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=lists.DELETE_BATCH)
    args = ap.parse_args()
    with embedded_database("pom-bench-lists-") as url:
        with connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            deleted_list, single_list = seed(conn, "batched", args.contacts), seed(conn, "single", args.contacts)
            conn.execute("VACUUM ANALYZE")
            seeded_s = time.perf_counter() - t0
            middle = conn.execute("SELECT min(id) + %s FROM contacts WHERE list_id = %s",
                                  (args.contacts // 2, single_list)).fetchone()[0]
            pages = {at: page_ms(conn, single_list, after) for at, after in (("first", 0), ("middle", middle))}

        holds: list[float] = []
        hold = lists._hold

        def timed_hold(c, list_id):
            holds.append(time.perf_counter())
            hold(c, list_id)
        lists._hold = timed_hold

        def write(w, n):
            try:
                w.execute("INSERT INTO contacts (list_id, external_id) VALUES (%s, %s)", (deleted_list, f"w{n}"))
            except psycopg.errors.ForeignKeyViolation:
                return False                                         # the list is gone
        with connect(url, autocommit=True) as conn, timed_writer(url, write) as writer_ms:
            t0 = time.perf_counter()
            deleted = lists.delete(conn, deleted_list, batch=args.batch)
            ended = time.perf_counter()
        batches = [(b - a) * 1000 for a, b in zip(holds, holds[1:] + [ended])]
        with connect(url, autocommit=True) as conn:
            t = time.perf_counter()
            conn.execute("DELETE FROM contacts WHERE list_id = %s", (single_list,))
            single_ms = (time.perf_counter() - t) * 1000
        delete_s = ended - t0
        return {"contacts": args.contacts, "batch": args.batch, "seeded_s": round(seeded_s, 1),
                "deleted": deleted, "writer_rows": len(writer_ms), "delete_s": round(delete_s, 2),
                "contacts_per_s": round(deleted / delete_s), "batches": len(batches),
                "max_batch_ms": round(max(batches), 1), "p50_batch_ms": round(statistics.median(batches), 1),
                "writer_max_ms": round(max(writer_ms), 1) if writer_ms else None,
                "writer_p50_ms": round(statistics.median(writer_ms), 2) if writer_ms else None,
                "single_statement_ms": round(single_ms, 1), "page_first_ms": pages["first"],
                "page_middle_ms": pages["middle"]}


if __name__ == "__main__":
    print(json.dumps(main()))
