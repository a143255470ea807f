"""End-to-end throughput: a voice-notification job on the instant voice simulator, through the
director, managers, rule engine, gateways and PostgreSQL — against the rate at which raw COPY
writes the same number of attempt rows into the same database (this machine's limit).

    python bench/throughput.py [--contacts 100000] [--managers 2] [--shards 8] [--batch N]

The last line printed is one JSON object: attempts_per_s, copy_rows_per_s, ratio, ...
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from pom_actors.config import Settings  # noqa: E402
from pom_actors.names import manager_name  # noqa: E402
from pom_actors.runtime import Runtime  # noqa: E402
from pom_actors.store import catalog, jobs as jobstore  # noqa: E402
from pom_actors.store.work import ATTEMPT_COLUMNS  # noqa: E402

STRATEGY = {
    "name": "bench-voice",
    "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
                          "caller_id": "+12125550100", "results": {"default": "done"}}},
}


def contacts(n: int):
    for i in range(n):
        yield {"external_id": f"b{i}", "first_name": "B", "phone1": f"+1212{2000000 + i:07d}"}


def bench_campaign(conn, n: int) -> int:
    """The benchmark's campaign over `n` fresh contacts, statistics up to date."""
    with conn.transaction():
        list_id = catalog.create_list(conn, "bench")
        catalog.add_contacts(conn, list_id, contacts(n))
        sid, _ = catalog.save_strategy(conn, STRATEGY)
        campaign = catalog.create_campaign(conn, "bench", sid, list_id)
    conn.execute("ANALYZE")
    return campaign


def copy_rate(conn, n: int) -> float:
    """Rows per second that COPY writes into a table shaped like `attempts` (same indexes)."""
    conn.execute("CREATE TEMP TABLE copy_probe (LIKE attempts INCLUDING ALL)")
    buf = io.StringIO()
    for i in range(n):
        buf.write(f"{i}\t1\t1\t1\t{i}\t{i % 8}\t1\tcall\tcall\t+1212{2000000 + i:07d}\tallowed\tallowed\t"
                  f"allowed\tgw\tanswer_human\t2026-11-25 15:00:00+00\t2026-11-25 15:00:30+00\t{{}}\n")
    data = buf.getvalue()
    start = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY copy_probe ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as copy:
            copy.write(data)
    elapsed = time.perf_counter() - start
    conn.execute("DROP TABLE copy_probe")
    return n / elapsed


def main() -> dict:
    configured = Settings.from_env()
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--managers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--batch", type=int, default=configured.batch_size,
                    help="work items per manager cycle (default: the product's, POM_BATCH_SIZE)")
    args = ap.parse_args()
    settings = configured.replace(
        data_dir=tempfile.mkdtemp(prefix="pom-bench-"), demo=False, voice_instant=True,
        managers_per_job=args.managers, shards_per_job=args.shards, batch_size=args.batch)
    rt = Runtime.start(settings)
    try:
        with rt.connect() as conn:
            campaign = bench_campaign(conn, args.contacts)
            # Both ends on the database's clock: from just before create_job to the job's
            # ended_at, which the director sets when it finds the job complete.
            start = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            job_id = ray.get(rt.director.create_job.remote(campaign))
            phases: dict[str, dict] = {}
            cpu_by_pid: dict[int, tuple[str, float]] = {}
            while jobstore.job(conn, job_id)["state"] not in ("completed", "stopped", "failed"):
                phases.update(manager_phases(job_id, args.managers))
                sample_cpu(cpu_by_pid)
                time.sleep(0.5)
            elapsed = (jobstore.job(conn, job_id)["ended_at"] - start).total_seconds()
            attempts = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s", (job_id,)).fetchone()[0]
            done = jobstore.state_counts(conn, [job_id])[job_id].get("done", 0)
            sample_cpu(cpu_by_pid)
            cpu: dict[str, float] = {}
            for kind, seconds in cpu_by_pid.values():
                cpu[kind] = round(cpu.get(kind, 0) + seconds, 2)
            copy_rows_per_s = copy_rate(conn, attempts)
    finally:
        rt.stop(drain_s=1)
    rate = attempts / elapsed
    return {"contacts": args.contacts, "done": done, "attempts": attempts, "seconds": round(elapsed, 2),
            "attempts_per_s": round(rate), "copy_rows_per_s": round(copy_rows_per_s),
            "ratio": round(rate / copy_rows_per_s, 3), "managers": args.managers, "shards": args.shards,
            "batch": args.batch, "cpu_seconds": cpu, "manager_seconds_by_phase": phases}


def manager_phases(job_id: int, managers: int) -> dict[str, dict]:
    """Cumulative seconds per cycle phase of each manager (kept from the last sample)."""
    out = {}
    for i in range(managers):
        try:
            out[manager_name(job_id, i)] = ray.get(ray.get_actor(manager_name(job_id, i)).status.remote(),
                                                   timeout=2)["seconds"]
        except Exception:  # not started yet, or retired at the end of the job
            continue
    return out


def sample_cpu(seen: dict[int, tuple[str, float]]) -> None:
    """Record the CPU seconds so far of each process of this system (Ray actors, PostgreSQL),
    by pid: sampled while the job runs, since managers end with it."""
    import psutil

    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        line = " ".join(proc.info["cmdline"] or [])
        kind = ("postgres" if proc.info["name"] == "postgres" else
                line.split("::")[1].split(".")[0].split()[0] if line.startswith("ray::") else None)
        if kind and kind != "IDLE" and proc.info["cpu_times"]:
            times = proc.info["cpu_times"]
            seen[proc.pid] = (kind, times.user + times.system)


if __name__ == "__main__":
    print(json.dumps(main()))
