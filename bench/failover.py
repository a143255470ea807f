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
from ray.cluster_utils import Cluster  # noqa: E402

from pom_actors import names  # noqa: E402
from pom_actors.config import Settings  # noqa: E402
from pom_actors.runtime import Runtime  # noqa: E402
from pom_actors.store import catalog, jobs as jobstore  # noqa: E402

STRATEGY = {"name": "failover", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
                                  "pacing": {"max_concurrent": 600},
                                  "results": {"busy": {"action": "retry", "after": "10m", "max": 1},
                                              "default": "done"}}}}
SERVER = {names.SERVER_RESOURCE: 1}
NODE = {"num_cpus": 2, "resources": SERVER}


def contacts(n: int, offset: int):
    for i in range(n):
        yield {"external_id": f"f{offset + i}", "first_name": "F", "phone1": f"+1212{3000000 + offset + i:07d}"}


def campaign(conn, n: int, offset: int) -> int:
    with conn.transaction():
        list_id = catalog.create_list(conn, f"failover-{offset}")
        catalog.add_contacts(conn, list_id, contacts(n, offset))
        sid, _ = catalog.save_strategy(conn, {**STRATEGY, "name": f"failover-{offset}"})
        return catalog.create_campaign(conn, f"failover-{offset}", sid, list_id)


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


def invariants(conn, job_id: int) -> dict:
    lost = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND state <> 'done'",
                        (job_id,)).fetchone()[0]
    # an item dialled more than once must owe it to a strategy retry (busy) before the last try
    duplicates = conn.execute("""
        SELECT count(*) FROM (
          SELECT work_item_id, count(*) AS dials,
                 count(*) FILTER (WHERE code = 'busy') AS retries
          FROM attempts WHERE job_id = %s AND verdict = 'allowed' AND code <> 'cancelled'
          GROUP BY 1) d
        WHERE dials > retries + 1""", (job_id,)).fetchone()[0]
    in_doubt = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code = 'in_doubt'",
                            (job_id,)).fetchone()[0]
    return {"lost": lost, "duplicates": duplicates, "in_doubt": in_doubt}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--scale", type=float, default=300.0)
    args = ap.parse_args()
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    settings = Settings.from_env().replace(
        data_dir=tempfile.mkdtemp(prefix="pom-failover-"), demo=False, ray_address=cluster.address,
        clock_scale=args.scale, clock_start="2026-11-25T15:00:00+00:00", managers_per_job=3, shards_per_job=12)
    rt = Runtime.start(settings)
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
        rt.stop(drain_s=2)
        ray.shutdown()
        cluster.shutdown()
    return {"failover_s": round(faulty["failover_s"], 2), "reassigned_s": round(faulty["reassigned_s"] or -1, 2),
            "lost": clean["lost"] + faulty["lost"],
            "duplicates": clean["duplicates"] + faulty["duplicates"], "slowdown": round(faulty["seconds"] / clean["seconds"], 2),
            "in_doubt": faulty["in_doubt"], "shards_moved": faulty["shards_moved"],
            "shards_never_resumed": faulty["shards_never_resumed"], "clean_s": round(clean["seconds"], 1),
            "faulty_s": round(faulty["seconds"], 1), "contacts": args.contacts}


if __name__ == "__main__":
    print(json.dumps(main()))
