"""Failover across POM servers: a 3-node cluster (ray.cluster_utils.Cluster, three real raylets
on this machine, each a POM server), a job run once without a fault and once with the node
of one of its managers removed mid-job.

    python bench/failover.py [--contacts 20000] [--scale 300]

`failover_s` is the time from the node's removal to every shard it held dispatching again on
the survivors (an item of the shard claimed under a newer epoch); `slowdown` the faulty job's
time over the fault-free one's; `lost` the contacts not final at the end; `duplicates` the
contacts dialled more often than their strategy asked (from the ledger: the removed node's
gateway took its order record with it). The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from pom_actors import names  # noqa: E402
from pom_actors.config import Settings  # noqa: E402
from pom_actors.runtime import Runtime  # noqa: E402
from pom_actors.store import jobs as jobstore  # noqa: E402
from tests.chaos.cluster import campaign, invariants, start  # noqa: E402  (shared with tests/chaos)


def run_job(rt: Runtime, conn, campaign_id: int, fault=None) -> dict:
    start = time.monotonic()
    job_id = ray.get(rt.director.create_job.remote(campaign_id))
    out = {"job_id": job_id}
    while jobstore.job(conn, job_id)["state"] not in ("completed", "stopped", "failed"):
        if fault and not out.get("fault_done") and jobstore.state_counts(conn, [job_id])[job_id].get("done", 0) > 0.3 * fault["n"]:
            out.update(fault["do"](job_id))
            out["fault_done"] = True
        time.sleep(0.05)
    out["seconds"] = time.monotonic() - start
    out.update(invariants(conn, job_id))
    return out


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--scale", type=float, default=300.0)
    args = ap.parse_args()
    system = start(tempfile.mkdtemp(prefix="pom-failover-"), Settings.from_env(), clock_scale=args.scale)
    cluster, workers, rt = system.cluster, system.workers, system.rt
    try:
        with rt.connect() as conn:
            clean = run_job(rt, conn, campaign(conn, args.contacts, 0))

            def remove_a_managers_node(job_id: int) -> dict:
                # A worker server running one of the job's managers. The director and the
                # rule engine live on the primary (the server that started the system, here
                # whichever raylet the driver joined): a server lost is another one.
                primary = {cluster.head_node.node_id, ray.get(rt.director.status.remote())["node"]}
                for i in range(3):
                    victim = names.manager_name(job_id, i)
                    node_id = ray.get(names.actor(victim).status.remote())["node"]
                    node = next((w for w in workers if w.node_id == node_id and node_id not in primary), None)
                    if node is not None:
                        break
                holder = ray.get(names.actor(victim).status.remote())["holder"]
                shards = {r["shard"]: r["epoch"] for r in jobstore.leases(conn, job_id) if r["holder"] == holder}
                cluster.remove_node(node, allow_graceful=False)
                died = time.monotonic()
                pending = dict(shards)
                reassigned = None
                while pending and time.monotonic() - died < 120:
                    if reassigned is None and all(r["epoch"] > shards[r["shard"]] for r in jobstore.leases(conn, job_id)
                                                  if r["shard"] in shards):
                        reassigned = time.monotonic() - died
                    moved = conn.execute(
                        "SELECT DISTINCT shard FROM work_items WHERE job_id = %s AND shard = ANY(%s) "
                        "AND in_flight_epoch > (%s::jsonb ->> shard::text)::bigint",
                        (job_id, list(pending), json.dumps(pending))).fetchall()
                    moved += conn.execute(
                        "SELECT DISTINCT shard FROM attempts WHERE job_id = %s AND shard = ANY(%s) "
                        "AND epoch > (%s::jsonb ->> shard::text)::bigint",
                        (job_id, list(pending), json.dumps(pending))).fetchall()
                    for (shard,) in moved:
                        pending.pop(shard, None)
                    time.sleep(0.05)
                return {"failover_s": time.monotonic() - died, "reassigned_s": reassigned, "shards_moved": len(shards),
                        "shards_never_resumed": len(pending)}

            faulty = run_job(rt, conn, campaign(conn, args.contacts, args.contacts),
                             fault={"n": args.contacts, "do": remove_a_managers_node})
    finally:
        system.stop()
    return {"failover_s": round(faulty["failover_s"], 2), "reassigned_s": round(faulty["reassigned_s"] or -1, 2),
            "lost": clean["lost"] + faulty["lost"],
            "duplicates": clean["duplicates"] + faulty["duplicates"], "slowdown": round(faulty["seconds"] / clean["seconds"], 2),
            "in_doubt": faulty["in_doubt"], "shards_moved": faulty["shards_moved"],
            "shards_never_resumed": faulty["shards_never_resumed"], "clean_s": round(clean["seconds"], 1),
            "faulty_s": round(faulty["seconds"], 1), "contacts": args.contacts}


if __name__ == "__main__":
    print(json.dumps(main()))
