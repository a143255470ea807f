"""Zones on the chaos cluster (issue 12, "Zones"): a fourth POM server in zone `b` (failover:
the default zone of the other three). A job started in `b` has its managers only on that
server; zone `b` going down mid-job — set down by command, or its only server removed —
moves it: its managers retired (drained first when they answer), new ones placed on the
default zone's servers, taking every shard over with a new epoch; the job completes with 0
lost and 0 duplicates (`cluster.assert_exactly_once`)."""
from __future__ import annotations

import contextlib
import json
import time

import pytest
import ray

from pom_actors import names
from pom_actors.core.zones import ZoneState
from pom_actors.store import zones as zonestore

from . import cluster as chaos

N = 6_000


def _managers(job_id: int, count: int) -> list[dict]:
    """Every manager's status, once all of them answer."""
    def answering():
        out = [chaos.status(names.manager_name(job_id, i)) for i in range(count)]
        return all(out) and out
    return chaos.until(answering, 60, f"job {job_id}'s managers answering")


@pytest.mark.parametrize("how", ["command", "servers_gone"])
def test_a_job_runs_in_its_zone_and_moves_to_the_failover_when_its_zone_goes_down(system, how):
    rt, db = system.rt, chaos.Db(system.rt.settings.database_url)
    node = system.cluster.add_node(num_cpus=2, resources=names.server_resources("b"))
    system.cluster.wait_for_nodes()
    system.workers.append(node)
    try:
        with rt.connect() as conn:
            zonestore.create(conn, "b", failover="default")
            campaign = chaos.campaign(conn, N, next(system.offsets), "zones", max_concurrent=200)
        chaos.until(lambda: (chaos.status(names.DIRECTOR) or {}).get("zone_servers", {}).get("b") == 1, 30,
                    "the director seeing zone b's server")
        chaos.until(lambda: any(names.on_node(g, node.node_id) for g in names.gateways(refresh=True)), 30,
                    "a gateway on zone b's server")       # managers send through their own server's
        started = time.monotonic()
        job_id = ray.get(rt.director.create_job.remote(campaign, True, "b"), timeout=60)
        count = db.one("SELECT managers FROM jobs WHERE id = %s", (job_id,))

        before = _managers(job_id, count)
        assert {m["node"] for m in before} == {node.node_id}, "a manager outside zone b"
        chaos.until(lambda: chaos.done(db, job_id) >= 0.3 * N, 120, "30% of the job done")
        gateways_b = {g for (g,) in db("SELECT DISTINCT gateway FROM attempts WHERE job_id = %s", (job_id,))}
        assert gateways_b and all(names.on_node(g, node.node_id) for g in gateways_b)
        epochs = chaos.leases(db, job_id)

        down = time.monotonic()
        if how == "command":
            with rt.connect() as conn:
                zonestore.update(conn, "b", state=ZoneState.DOWN, reason="chaos test")
        else:
            system.remove_node(node)
        default_nodes = {n.node_id for n in system.nodes} - {node.node_id}
        chaos.until(lambda: db.one("SELECT placed_zone FROM jobs WHERE id = %s", (job_id,)) == "default", 60,
                    "the job placed in the failover zone")
        after = chaos.until(lambda: (ms := _managers(job_id, count)) and
                            {m["holder"] for m in ms}.isdisjoint(m["holder"] for m in before) and ms, 60,
                            "new managers answering")
        assert {m["node"] for m in after} <= default_nodes, "a manager outside the failover zone"
        holders = {m["holder"] for m in after}
        chaos.until(lambda: all(h in holders and e > epochs[s][1] for s, (h, e) in chaos.leases(db, job_id).items()),
                    60, "every shard taken over by the new managers with a new epoch")
        moved_s = round(time.monotonic() - down, 2)
        assert chaos.done(db, job_id) < N, "the job ended before it moved"

        assert chaos.wait_job(db, job_id) == "completed"
        with rt.connect() as conn:
            figures = chaos.assert_exactly_once(conn, job_id, N)
        old = json.dumps({s: e for s, (_, e) in epochs.items()})
        later = {g for (g,) in db("SELECT DISTINCT gateway FROM attempts WHERE job_id = %s "
                                  "AND epoch > (%s::jsonb ->> shard::text)::bigint", (job_id, old))}
        assert later and not any(names.on_node(g, node.node_id) for g in later), "dialled in zone b after the move"
        chaos.report(f"zone-down-{how}", job_id=job_id, moved_s=moved_s, job_s=round(time.monotonic() - started, 1),
                     managers_before=sorted({m["node"][:8] for m in before}),
                     managers_after=sorted({m["node"][:8] for m in after}), contacts=N, **figures)
    finally:
        if node in system.workers:
            system.remove_node(node)
        with rt.connect() as conn, contextlib.suppress(zonestore.ZoneInUse):    # (the job failed)
            zonestore.delete(conn, "b", rt.settings.default_zone)
        db.close()
