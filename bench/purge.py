"""Purge and report costs on a large ledger: how fast a purge deletes, how long its longest
statement holds its rows' locks (the hot path never waits longer than that), and how long the
reports take over a day of one job and over all jobs — on an embedded PostgreSQL, no Ray.

    python bench/purge.py [--attempts 1000000] [--batch 1000]

The ledger: `--attempts` rows of an ended job spread evenly over 800 business days (half of them
older than the 400-day retention), a tenth as many old rows of a running job (never purged),
and as many published outbox rows as attempts / 2, half older than 7 days. While the purge
runs, a writer appends ledger rows of the running job in batches of 100 (as managers do) and
its slowest batch is reported. The reports read one day and 31 days (the longest range) of
the ended job, and of all jobs. The last line printed is one JSON object: purge_rows_per_s,
max_batch_ms, writer_max_ms, report_job_day_ms, report_all_month_ms, ...
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pom_actors.core.clock import SystemClock  # noqa: E402
from pom_actors.services.purges import PurgeDuty  # noqa: E402
from pom_actors.store import reports  # noqa: E402
from bench.scratch import embedded_database, timed_writer  # noqa: E402
from pom_actors.store.database import connect  # noqa: E402
from pom_actors.store.purges import PurgeStore, create_run, save_config  # noqa: E402

COLUMNS = ("work_item_id, attempt_no, job_id, campaign_id, contact_id, shard, epoch, handler, channel, verdict, "
           "rule, code, created_at, completed_at")
CODES = ("answer_human", "busy", "no_answer", "answer_machine", "abandoned")


def seed(conn, attempts: int) -> tuple[int, int]:
    """An ended and a running job with their ledgers, and the outbox; (ended, running)."""
    list_id = conn.execute("INSERT INTO contact_lists (name) VALUES ('bench') RETURNING id").fetchone()[0]
    sid = conn.execute("INSERT INTO strategies (name) VALUES ('bench') RETURNING id").fetchone()[0]
    cid = conn.execute("INSERT INTO campaigns (name, strategy_id, list_id) VALUES ('bench', %s, %s) RETURNING id",
                       (sid, list_id)).fetchone()[0]
    ended, running = (conn.execute("INSERT INTO jobs (campaign_id, strategy_id, state) VALUES (%s, %s, %s) "
                                   "RETURNING id", (cid, sid, state)).fetchone()[0]
                      for state in ("completed", "running"))
    now = datetime.now(timezone.utc)
    step = timedelta(days=800) / attempts
    with conn.cursor() as cur, cur.copy(f"COPY attempts ({COLUMNS}) FROM STDIN") as copy:
        for i in range(attempts):
            at = now - timedelta(days=800) + i * step
            copy.write_row((i, 1, ended, cid, i, i % 8, 1, "call", "voice", "allowed", "none", CODES[i % 5], at, at))
        for i in range(attempts // 10):
            at = now - timedelta(days=700) + i * step
            copy.write_row((10**9 + i, 1, running, cid, i, i % 8, 1, "call", "voice", "allowed", "none", "busy",
                            at, at))
    with conn.cursor() as cur, cur.copy("COPY event_outbox (topic, key, payload, created_at, published_at) "
                                        "FROM STDIN") as copy:
        n = attempts // 2
        for i in range(n):
            at = now - timedelta(days=14) + i * timedelta(days=14) / n
            copy.write_row(("pom.attempts", str(i), "[]", at, at))
    conn.execute("VACUUM ANALYZE")
    return ended, running


def timed(fn, repeat: int = 5) -> float:
    """The median of `repeat` runs, in milliseconds."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(out), 2)


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    with embedded_database("pom-bench-purge-") as url:
        with connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            ended, running = seed(conn, args.attempts)
            seeded_s = time.perf_counter() - t0
            now = datetime.now(timezone.utc)
            day = (now - timedelta(days=200), now - timedelta(days=199))
            report_job_day = timed(lambda: reports.attempts_by_code(conn, *day, job_id=ended))
            report_all_day = timed(lambda: reports.attempts_by_code(conn, *day))
            abandons_job_day = timed(lambda: reports.abandons(conn, *day, job_id=ended))
            month = (now - timedelta(days=231), now - timedelta(days=200))
            report_job_month = timed(lambda: reports.attempts_by_code(conn, *month, job_id=ended))
            report_all_month = timed(lambda: reports.attempts_by_code(conn, *month))
            save_config(conn, {"batch": args.batch, "pause_s": 0})
            run_id = create_run(conn, "manual")["id"]

        store = PurgeStore.open(url)
        durations: list[float] = []
        for name in ("delete_attempts", "delete_ids"):
            inner = getattr(store, name)

            def wrapped(*a, _inner=inner):
                t = time.perf_counter()
                try:
                    return _inner(*a)
                finally:
                    durations.append((time.perf_counter() - t) * 1000)
            setattr(store, name, wrapped)

        def write(w, n):
            with w.cursor() as cur, cur.copy(f"COPY attempts ({COLUMNS}) FROM STDIN") as copy:
                for k in range(n * 100, n * 100 + 100):
                    at = datetime.now(timezone.utc)
                    copy.write_row((2 * 10**9 + k, 1, running, 1, k, 0, 1, "call", "voice", "allowed",
                                    "none", "busy", at, at))
        duty = PurgeDuty(open_store=lambda: store, clock=SystemClock())
        with timed_writer(url, write) as writer_ms:
            t0 = time.perf_counter()
            state = duty.carry_out(run_id)
            purge_s = time.perf_counter() - t0
        with connect(url, autocommit=True) as conn:
            counts = conn.execute("SELECT counts, batches FROM purge_runs WHERE id = %s", (run_id,)).fetchone()
            left_running = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND created_at < now() "
                                        "- interval '400 days'", (running,)).fetchone()[0]
        deleted = sum(counts[0].values())
        return {"state": state, "attempts": args.attempts, "batch": args.batch, "seeded_s": round(seeded_s, 1),
                "deleted": deleted, "counts": counts[0], "batches": counts[1], "purge_s": round(purge_s, 2),
                "purge_rows_per_s": round(deleted / purge_s), "max_batch_ms": round(max(durations), 1),
                "p50_batch_ms": round(statistics.median(durations), 2),
                "writer_max_ms": round(max(writer_ms), 1), "writer_p50_ms": round(statistics.median(writer_ms), 2),
                "running_job_old_rows_kept": left_running,
                "report_job_day_ms": report_job_day, "report_all_day_ms": report_all_day,
                "abandons_job_day_ms": abandons_job_day, "report_job_month_ms": report_job_month,
                "report_all_month_ms": report_all_month}


if __name__ == "__main__":
    print(json.dumps(main()))
