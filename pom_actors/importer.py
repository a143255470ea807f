"""Importer actor: one per cluster, a thin shell over `services.importer.ImporterService`.

Its loop (a thread) takes up every queued or interrupted import; each chunk of a file (or
of a SQL query's rows) is parsed and merged by a Ray task (`_chunk_task`), anywhere in the
cluster: the chunk's bytes or rows travel in the object store, so the file (or the source
database) need only be reachable from the importer. A worker keeps
its database connection and its phone-number caches between chunks.
"""
from __future__ import annotations

import threading
from functools import partial

import ray

from . import names
from .config import Settings
from .core.outbound import OutboundPolicy
from .services.importer import ChunkSpec, ImporterService, load_chunk_with
from .store.database import connect
from .store.imports import ImportStore
from .store.load import CachedRestrictions

_CONN: dict[str, object] = {}


@ray.remote(num_cpus=1, max_retries=3)
def _chunk_task(url: str, spec: ChunkSpec, data: bytes | list[tuple]) -> dict | None:
    conn = _CONN.get(url)
    if conn is None or conn.closed or conn.broken:
        conn = _CONN[url] = connect(url, autocommit=True)
    return load_chunk_with(conn, spec, data)


def _submit(url: str, spec: ChunkSpec, rows: list[tuple] | None):
    if rows is not None:
        return _chunk_task.remote(url, spec, rows)
    with open(spec.path, "rb") as f:
        f.seek(spec.start)
        data = f.read(spec.end - spec.start)
    return _chunk_task.remote(url, spec, data)


def _wait(pending: list) -> tuple[list, list]:
    ready, rest = ray.wait(pending, num_returns=1, timeout=5.0)
    return [ray.get(r) for r in ready], rest


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=4)
class Importer:
    def __init__(self, settings: Settings, parallel: int | None = None):
        url = settings.database_url
        cpus = int(ray.cluster_resources().get("CPU", 2))
        restrictions = CachedRestrictions(lambda: self.service.store.conn, ttl_s=0.0)   # read at every tick
        self.service = ImporterService(partial(ImportStore.open, url), partial(_submit, url), _wait,
                                       parallel=parallel or max(2, cpus),
                                       admit=lambda: restrictions().allows("import"),
                                       policy=OutboundPolicy.from_setting(settings.outbound_allow))
        self.thread = threading.Thread(target=self.service.loop, daemon=True, name="importer")
        self.thread.start()

    def kick(self) -> list[int]:
        """Look for new or resumed imports now (the API calls this after a change)."""
        return self.service.tick()

    def status(self) -> dict:
        return self.service.status()


def start_importer(settings: Settings):
    """The cluster's importer, created if it is not running (named, detached)."""
    return Importer.options(name=names.IMPORTER, namespace=names.NAMESPACE, lifetime="detached",
                            get_if_exists=True).remote(settings)
