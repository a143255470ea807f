"""Actors killed mid-job: no contact lost, none attempted twice (checked from the gateways)."""
from __future__ import annotations

import time
from collections import Counter

import ray

from pom_actors.names import DIRECTOR, manager_name

from .conftest import gateway_orders, phone_contacts

PACED = {
    "name": "paced",
    "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hi {first_name}",
                          "pacing": {"max_concurrent": 40},
                          "results": {"busy": {"action": "retry", "after": "10m", "max": 1},
                                      "default": "done"}}},
}


def _until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _assert_exactly_once(conn, job_id: int, n: int) -> None:
    items = {r[0] for r in conn.execute("SELECT id FROM work_items WHERE job_id = %s", (job_id,))}
    states = Counter(r[0] for r in conn.execute("SELECT state FROM work_items WHERE job_id = %s", (job_id,)))
    assert states == {"done": n}, states                      # none lost
    orders = [a for a in gateway_orders() if int(a.split(".")[0]) in items]
    assert len(orders) == len(set(orders)), "an attempt id reached a gateway twice"
    ledger = {f"{w}.{a}" for w, a in conn.execute(
        "SELECT work_item_id, attempt_no FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
        "AND code IS DISTINCT FROM 'cancelled'", (job_id,))}
    assert set(orders) == ledger                              # every dial is in the ledger, once
    # an item is dialled again only as a strategy retry of a busy attempt
    per_item = Counter(int(a.split(".")[0]) for a in orders)
    busy = {r[0] for r in conn.execute("SELECT work_item_id FROM attempts WHERE job_id = %s AND code = 'busy'",
                                       (job_id,))}
    assert all(count == 1 or item in busy for item, count in per_item.items())
    assert conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code IS NULL",
                        (job_id,)).fetchone()[0] == 0


def test_director_killed_mid_job(campaigns, conn):
    n = 2500
    job_id = campaigns.start(campaigns.make(PACED, phone_contacts(n)))
    _until(lambda: campaigns.items(job_id).get("done", 0) > 300)
    director = ray.get_actor(DIRECTOR)
    ray.kill(director, no_restart=False)                      # Ray restarts it; it rebuilds from the database
    _until(lambda: _answers(DIRECTOR))
    job = campaigns.wait(job_id, timeout=180)
    assert job["state"] == "completed"
    _assert_exactly_once(conn, job_id, n)


def test_manager_killed_mid_job_its_shards_are_reconciled(campaigns, conn):
    n = 2500
    job_id = campaigns.start(campaigns.make(PACED, phone_contacts(n)))
    _until(lambda: campaigns.items(job_id).get("done", 0) > 300)
    victim = ray.get_actor(manager_name(job_id, 0))
    held = ray.get(victim.status.remote())["shards"]
    assert held, "the victim held no shard"
    ray.kill(victim, no_restart=True)                         # gone for good: another takes over
    job = campaigns.wait(job_id, timeout=180)
    assert job["state"] == "completed"
    epochs = dict(conn.execute("SELECT shard, epoch FROM shard_leases WHERE job_id = %s", (job_id,)).fetchall())
    assert all(epochs[s] > e for s, e in held.items())        # its shards were taken over (epoch bumped)
    _assert_exactly_once(conn, job_id, n)


def _answers(name: str) -> bool:
    try:
        ray.get(ray.get_actor(name).status.remote(), timeout=2)
        return True
    except Exception:
        return False


def _status(name: str) -> dict | None:
    try:
        return ray.get(ray.get_actor(name).status.remote(), timeout=2)
    except Exception:
        return None


def test_a_manager_restarted_during_a_drain_does_not_dial_until_served(campaigns, conn, pom):
    n = 2000
    job_id = campaigns.start(campaigns.make(PACED, phone_contacts(n)))
    _until(lambda: campaigns.items(job_id).get("done", 0) > 200)
    name = manager_name(job_id, 0)
    try:
        ray.get(pom.director.drain.remote(10))                # what `pom run` does on Ctrl-C
        old = _status(name)["holder"]
        ray.kill(ray.get_actor(name), no_restart=False)       # Ray restarts it, as after a crash
        _until(lambda: (_status(name) or {}).get("holder", old) != old)
        _until(lambda: campaigns.items(job_id).get("in_flight", 0) == 0)
        frozen = campaigns.items(job_id)
        time.sleep(2)
        assert campaigns.items(job_id) == frozen, "a manager dialled during the drain"
        assert _status(name)["draining"]
    finally:
        ray.get(pom.director.serve.remote())                  # the next `pom run`
    assert campaigns.wait(job_id, timeout=180)["state"] == "completed"
    _assert_exactly_once(conn, job_id, n)
