"""A POM system on three Ray nodes of this machine, the faults the chaos tests inject, and the
invariants a job must keep through them. Shared by tests/chaos and bench/failover.py.

The cluster is `ray.cluster_utils.Cluster`: three real raylets (each a POM server, with the
`pom_server` resource), started by this process; the system is started on it by
`Runtime.start` as `pom run` would join a cluster (`ray_address`). Every process a fault
touches is checked to belong to this cluster (a descendant of one of its raylets) or to this
runtime (its embedded PostgreSQL) before it is signalled.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import ray
from ray.cluster_utils import Cluster

from pom_actors import names
from pom_actors.config import Settings
from pom_actors.core.orders import Order, Refusal
from pom_actors.core.wire import pack, unpack
from pom_actors.runtime import Runtime
from pom_actors.store import catalog, jobs as jobstore
from pom_actors.store.work import WorkStore

SERVER = names.server_resources()            # a POM server of the default zone
NODE = {"num_cpus": 2, "resources": SERVER}
CLOCK_START = "2026-11-25T15:00:00+00:00"      # a Wednesday afternoon (no window is set anyway)
NUMBERS = 3_000_000                            # contacts get +1212<NUMBERS + offset + i>


def strategy(name: str, max_concurrent: int = 600) -> dict:
    """One call per contact, a busy line retried once 10 business minutes later."""
    return {"name": name, "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
                                  "pacing": {"max_concurrent": max_concurrent},
                                  "results": {"busy": {"action": "retry", "after": "10m", "max": 1},
                                              "default": "done"}}}}


def contacts(n: int, offset: int):
    for i in range(n):
        yield {"external_id": f"f{offset + i}", "first_name": "F", "phone1": f"+1212{NUMBERS + offset + i:07d}"}


def campaign(conn, n: int, offset: int, name: str = "failover", max_concurrent: int = 600) -> int:
    """A campaign over `n` fresh contacts (numbers never used by another campaign of the run,
    so the cross-campaign nuisance rule does not couple jobs)."""
    with conn.transaction():
        list_id = catalog.create_list(conn, f"{name}-{offset}")
        catalog.add_contacts(conn, list_id, contacts(n, offset))
        sid, _ = catalog.save_strategy(conn, strategy(f"{name}-{offset}", max_concurrent))
        return catalog.create_campaign(conn, f"{name}-{offset}", sid, list_id)


@dataclass
class System:
    """The three-node cluster and the POM system running on it."""

    cluster: Cluster
    workers: list
    rt: Runtime
    data_dir: str
    crash_dir: str = ""                      # POM_CRASH_DIR of every process of the cluster
    offsets: Iterator[int] = field(default_factory=lambda: iter(range(0, 10**6, 50_000)))

    @property
    def nodes(self) -> list:
        return [self.cluster.head_node, *self.workers]

    def primary(self) -> set[str]:
        """Node ids of the primary server: where the director and the rule engine live."""
        return {self.cluster.head_node.node_id, ray.get(self.rt.director.status.remote(), timeout=30)["node"]}

    def add_node(self):
        node = self.cluster.add_node(**NODE)
        self.cluster.wait_for_nodes()
        self.workers.append(node)
        return node

    def remove_node(self, node) -> None:
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def stop(self) -> None:
        try:
            self.rt.stop(drain_s=2)
        finally:
            ray.shutdown()
            self.cluster.shutdown()


def start(data_dir: str, base: Settings | None = None, **settings) -> System:
    """Three POM servers and the system on them (the driver joins the head node, which is
    therefore the primary server). `base` (default: the defaults) under the cluster's
    settings, `settings` over them."""
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    try:
        workers = [cluster.add_node(**NODE) for _ in range(2)]
        cluster.wait_for_nodes()
        ours = dict(data_dir=data_dir, demo=False, ray_address=cluster.address, clock_scale=300.0,
                    clock_start=CLOCK_START, managers_per_job=3, shards_per_job=12)
        rt = Runtime.start((base or Settings()).replace(**{**ours, **settings}))
    except BaseException:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        raise
    return System(cluster, workers, rt, data_dir)


# -- waiting and reading ----------------------------------------------------------------------
def until(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition", every: float = 0.05):
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(every)


class Db:
    """A connection that opens itself again when the database restarted under it."""

    def __init__(self, url: str):
        self.url, self.conn = url, None

    def __call__(self, sql: str, params=(), timeout: float = 60.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.conn is None or self.conn.closed or self.conn.broken:
                    self.conn = psycopg.connect(self.url, autocommit=True)
                return self.conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self.conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def one(self, sql: str, params=()):
        return self(sql, params)[0][0]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def states(db: Db, job_id: int) -> Counter:
    return Counter(dict(db("SELECT state, count(*) FROM work_items WHERE job_id = %s GROUP BY 1", (job_id,))))


def done(db: Db, job_id: int) -> int:
    return states(db, job_id).get("done", 0)


def leases(db: Db, job_id: int) -> dict[int, tuple[str | None, int]]:
    """shard -> (holder, epoch)."""
    return {s: (h, e) for s, h, e in db("SELECT shard, holder, epoch FROM shard_leases WHERE job_id = %s",
                                       (job_id,))}


def job_state(db: Db, job_id: int) -> str:
    return db.one("SELECT state FROM jobs WHERE id = %s", (job_id,))


def wait_job(db: Db, job_id: int, timeout: float = 240.0) -> str:
    return until(lambda: (s := job_state(db, job_id)) in ("completed", "stopped", "failed") and s,
                 timeout, f"job {job_id} to end", every=0.2)


def status(name: str, timeout: float = 2.0) -> dict | None:
    """An actor's `status()`, or None if it does not answer in time."""
    try:
        return ray.get(ray.get_actor(name).status.remote(), timeout=timeout)
    except Exception:
        return None


# -- faults -----------------------------------------------------------------------------------
def raylet_pids(system: System) -> set[int]:
    return {info.process.pid for node in system.nodes
            for info in node.all_processes.get("raylet", []) if info.process is not None}


def actor_pid(system: System, name: str) -> int:
    """The pid of a named actor's process, checked to be a worker of this cluster."""
    pid = ray.get(ray.get_actor(name).__ray_call__.remote(lambda self: os.getpid()), timeout=10)
    parents = {p.pid for p in psutil.Process(pid).parents()}
    assert parents & raylet_pids(system), f"pid {pid} of {name} is not a worker of this test cluster"
    return pid


def signal_actor(system: System, name: str, sig: signal.Signals) -> int:
    pid = actor_pid(system, name)
    os.kill(pid, sig)
    return pid


def postmaster_pid(system: System) -> int:
    """The embedded PostgreSQL's postmaster, as `<data_dir>/pgdata/postmaster.pid` names it
    (and as the runtime's supervisor knows it)."""
    pgdata = Path(system.rt.embedded.pgdata)
    pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    assert pid == system.rt.embedded.pid, "postmaster.pid is not this runtime's server"
    return pid


# -- invariants -------------------------------------------------------------------------------
def invariants(conn, job_id: int) -> dict:
    """The ledger's view (bench/failover.py): contacts not final, contacts dialled more often
    than their strategy asked, attempts recorded in doubt."""
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


def epoch_regressions(conn, job_id: int) -> int:
    """Ledger rows written under an epoch older than one already used on their shard.

    A claim (which records the attempt's intent and the epoch it is sent under) commits only
    inside a fenced transaction that holds the shard's lease row FOR SHARE at that epoch; a
    grant of epoch e+1 waits for it, and the new holder claims only after the grant. So, by
    the time the attempt was sent (`created_at`, business time from one clock shared by all
    processes), a shard's epochs never go down; a row that does was written by a deposed
    holder whose write was not refused."""
    return conn.execute("""
        SELECT count(*) FROM (
          SELECT epoch, max(epoch) OVER (PARTITION BY shard ORDER BY created_at, epoch
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
          FROM attempts WHERE job_id = %s) a
        WHERE epoch < before""", (job_id,)).fetchone()[0]


def gateway_orders(job_items: set[int]) -> dict[str, list[str]]:
    """Per live gateway, the attempt ids of the job's items in its order record."""
    out = {}
    for name, handle in names.gateways(refresh=True).items():
        ids = ray.get(handle.order_ids.remote(), timeout=30)
        out[name] = [a for a in ids if int(a.split(".")[0]) in job_items]
    return out


def stale_refusals() -> dict[str, int]:
    """Per live gateway, the orders it refused as of a stale epoch (OrderBook stats)."""
    return {name: ray.get(h.stats.remote(), timeout=30)["orderbook"]["refused"].get("stale epoch", 0)
            for name, h in names.gateways(refresh=True).items()}


def assert_exactly_once(conn, job_id: int, n: int) -> dict:
    """Every invariant of a job that ran through faults; returns the figures.

    * 0 lost: the job completed and every one of its `n` items is `done`; no ledger row
      without a code;
    * 0 duplicate dispatches: no attempt id in two gateways' order records (a record holds an
      id once), no contact dialled more often than its strategy asked (ledger);
    * the records and the ledger agree: every order of the job at a live gateway is an
      allowed, not-cancelled ledger row, and every such row sent to a live gateway is in
      that gateway's record (the rows of a gateway that died with its server cannot be
      checked against a record: they are counted as `unverifiable`);
    * no stale-epoch write got through: `epoch_regressions` is 0.
    """
    assert jobstore.job(conn, job_id)["state"] == "completed"
    counts = Counter(dict(conn.execute("SELECT state, count(*) FROM work_items WHERE job_id = %s GROUP BY 1",
                                       (job_id,)).fetchall()))
    assert counts == {"done": n}, f"lost contacts: {counts}"
    assert conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code IS NULL",
                        (job_id,)).fetchone()[0] == 0
    items = {r[0] for r in conn.execute("SELECT id FROM work_items WHERE job_id = %s", (job_id,))}
    records = gateway_orders(items)
    everywhere = Counter(a for ids in records.values() for a in ids)
    twice = [a for a, k in everywhere.items() if k > 1]
    assert not twice, f"attempt ids at two gateways: {twice[:10]}"
    # a preview card not dialled (skipped, timed out to skip: `card` in its details) sent no order
    rows = conn.execute("SELECT work_item_id || '.' || attempt_no, gateway FROM attempts WHERE job_id = %s "
                        "AND verdict = 'allowed' AND code <> 'cancelled' AND NOT details ? 'card'",
                        (job_id,)).fetchall()
    ledger = {a for a, _ in rows}
    unrecorded = [a for a in everywhere if a not in ledger]
    assert not unrecorded, f"dialled but not in the ledger (or recorded as never sent): {unrecorded[:10]}"
    missing = [a for a, g in rows if g in records and a not in set(records[g])]
    assert not missing, f"in the ledger as sent to a live gateway that has no record of it: {missing[:10]}"
    figures = invariants(conn, job_id)
    assert figures["lost"] == 0 and figures["duplicates"] == 0, figures
    regressions = epoch_regressions(conn, job_id)
    assert regressions == 0, f"{regressions} ledger rows written under a stale epoch"
    return {**figures, "orders": len(everywhere), "ledger_dials": len(ledger),
            "unverifiable": sum(1 for _, g in rows if g not in records),
            "cancelled": conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code = 'cancelled'",
                                      (job_id,)).fetchone()[0]}


def assert_deposed_fenced(url: str, job_id: int, deposed: dict[int, tuple[str, int]],
                          gateways: set[str]) -> int:
    """A holder deposed by a fault, probed once its shards have moved (`deposed`: shard ->
    (its holder, its epoch) before the fault, for the shards since granted anew): a fenced
    transaction of that holder at those epochs finds none of them valid (so it writes
    nothing there), and every gateway in `gateways` (those that took orders before the fault:
    the new holders fenced them) refuses an order of those epochs. Returns the orders probed."""
    by_holder: dict[str, dict[int, int]] = {}
    for shard, (holder, epoch) in deposed.items():
        by_holder.setdefault(holder, {})[shard] = epoch
    probes = 0
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            for holder, epochs in by_holder.items():
                with WorkStore(conn, job_id, holder).fenced(epochs) as valid:
                    assert valid == {}, f"deposed holder {holder} still valid on {valid}"
        item = {s: conn.execute("SELECT id FROM work_items WHERE job_id = %s AND shard = %s LIMIT 1",
                                (job_id, s)).fetchone()[0] for s in deposed}
    live = names.gateways(refresh=True)
    for name in gateways & set(live):
        orders = [Order(attempt_id=f"{item[s]}.999", job_id=job_id, shard=s, epoch=e, channel="call",
                        address="+12125550000", reply_to="chaos-probe") for s, (_, e) in deposed.items()]
        refused = unpack(Refusal, ray.get(live[name].submit.remote(pack(orders)), timeout=30))
        assert len(refused) == len(orders) and all(r.reason.startswith("stale epoch") for r in refused), \
            f"{name} took an order of a deposed epoch: {refused}"
        probes += len(orders)
    return probes


def report(name: str, **figures) -> None:
    """One JSON line per scenario (shown with `pytest -s`)."""
    print(f"\nCHAOS {json.dumps({'scenario': name, **figures}, default=str)}")
