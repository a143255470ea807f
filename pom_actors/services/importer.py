"""Everything the Importer does, as plain code (the actor in `pom_actors/importer.py` only
creates it, runs its loop in a thread and hands chunks to Ray tasks).

An import runs in three steps:

1. **prepare** (here, once per run): read the head of the spooled file, find its encoding and
   dialect, map its header (a bad header fails the import with the reason), cut the rest into
   chunks of about `chunk_bytes` at record boundaries (a UTF-16 file is first re-encoded as
   UTF-8 next to itself, so boundaries can be found on bytes);
2. **chunks**: each chunk not yet in `import_chunks` goes to a parsing task (`run_chunk`: a
   Ray task in the cluster, a plain call in the unit tests) that decodes, parses and merges
   it with its rejects and counts in ONE transaction (`store.imports.load_chunk`); at most
   `parallel` chunks are out at once. Before each chunk is sent the import's state is read:
   a paused or stopped import sends nothing more (chunks already sent finish);
3. **finish**: `done` — or `failed` when the file held no valid row. A DNC import (kind
   `dnc`, into a DNC list: `core.imports.dnc`, `store.dnc`) in `replace` mode removes, as it
   ends, the entries of its list the file did not carry.

After a crash the import is still `running` in the database: the next importer takes it up
and skips the chunks already recorded, so no row is merged twice.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from dataclasses import asdict, dataclass
from typing import Any

from ..core.imports.dnc import map_dnc_header, parse_dnc_text
from ..core.imports.phones import PhoneNormaliser
from ..core.imports.reader import (FileError, SAMPLE_BYTES, chunk_bounds, decode, detect_dialect,
                                   detect_encoding, header_end)
from ..core.imports.rows import Options, map_header, parse_text
from ..core.imports.splitter import parse_splitter

log = logging.getLogger(__name__)
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ChunkSpec:
    """What a parsing task needs: where its bytes are and how to read them."""
    import_id: int
    chunk: int
    list_id: int
    path: str
    start: int
    end: int
    first_line: int
    encoding: str
    delimiter: str
    columns: list
    options: dict
    kind: str = "contacts"              # or dnc: `list_id` is then a DNC list


@dataclass(frozen=True)
class Prepared:
    path: str                     # the file chunks are read from (UTF-8 or single-byte)
    encoding: str
    delimiter: str
    columns: list
    chunks: list[tuple[int, int, int]]


def prepare(path: str, options: Options, chunk_bytes: int = CHUNK_BYTES, map_columns=map_header) -> Prepared:
    """Encoding, dialect, header (read by `map_columns`) and chunks of a file (FileError for a
    file that cannot be imported)."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES + 4)
    if not head.strip(b"\r\n\t \xef\xbb\xbf\xff\xfe\x00"):
        raise FileError("the file is empty")
    encoding = detect_encoding(head, options.encoding)
    if encoding == "utf-16":
        path = _as_utf8(path)
        encoding = "utf-8"
        with open(path, "rb") as f:
            head = f.read(SAMPLE_BYTES + 4)
    text = decode(head[:SAMPLE_BYTES], encoding)
    dialect = detect_dialect(text, options.delimiter)
    header, end = header_end(text, dialect)
    columns = map_columns(header, options.mapping)
    start = len(text[:end].encode("utf-8" if encoding.startswith("utf-8") else encoding,
                                  errors="surrogateescape"))
    if encoding == "utf-8-sig" and head.startswith(b"\xef\xbb\xbf"):
        start += 3
    with open(path, "rb") as f:
        data = f.read()
    chunks = chunk_bounds(data, chunk_bytes, start)
    if not any(data[s:e].strip() for s, e, _ in chunks):
        raise FileError("the file has a header but no rows")
    return Prepared(path, encoding, dialect.delimiter, columns, chunks)


def _as_utf8(path: str) -> str:
    target = path + ".utf8"
    if not os.path.exists(target):
        with open(path, "rb") as f:
            text = f.read().decode("utf-16", errors="surrogatepass")
        with open(target + ".tmp", "wb") as f:
            f.write(text.encode("utf-8", errors="surrogateescape" if False else "surrogatepass"))
        os.replace(target + ".tmp", target)
    return target


_PHONES: dict[str | None, PhoneNormaliser] = {}      # per process: the caches outlive a chunk


def parse_chunk(spec: ChunkSpec, data: bytes | None = None):
    """Decode and parse one chunk (in a task): the `rows.Parsed` result."""
    from ..core.imports.reader import Dialect
    if data is None:
        with open(spec.path, "rb") as f:
            f.seek(spec.start)
            data = f.read(spec.end - spec.start)
    options = Options(**spec.options)
    phones = _PHONES.get(options.region)
    if phones is None:
        phones = _PHONES[options.region] = PhoneNormaliser(options.region)
    text = decode(data, spec.encoding if spec.encoding != "utf-8-sig" else "utf-8")
    columns = [tuple(c) if c is not None else None for c in spec.columns]
    if spec.kind == "dnc":
        return parse_dnc_text(text, Dialect(spec.delimiter), columns, options, spec.first_line, phones)
    return parse_text(text, Dialect(spec.delimiter), columns, options, spec.first_line, phones)


def load_chunk_with(conn, spec: ChunkSpec, data: bytes | None = None) -> dict[str, Any] | None:
    """Parse one chunk and merge it on `conn` (one transaction): its counts, None if it was done."""
    from ..store import dnc
    from ..store.imports import load_chunk
    parsed = parse_chunk(spec, data)
    if spec.kind == "dnc":
        merged = dnc.load_chunk(conn, spec.import_id, spec.chunk, spec.list_id, parsed.entries,
                                parsed.rejects, parsed.rows_read)
        return None if merged is None else {
            "chunk": spec.chunk, "rows_read": parsed.rows_read, "rows_loaded": merged.loaded,
            "rows_rejected": len(parsed.rejects), "duplicates": merged.duplicates, "dnc_flagged": 0}
    options = Options(**spec.options)
    if options.splitter is None:
        merged = load_chunk(conn, spec.import_id, spec.chunk, spec.list_id, parsed.rows, parsed.rejects,
                            parsed.rows_read, options.dedupe_key, options.policy)
    else:
        merged = _load_split(conn, spec, parsed, options)
    if merged is None:
        return None
    return {"chunk": spec.chunk, "rows_read": parsed.rows_read, "rows_loaded": merged.loaded,
            "rows_rejected": len(parsed.rejects), "duplicates": merged.duplicates,
            "dnc_flagged": merged.dnc_flagged, "fast_phones": parsed.fast_phones,
            "slow_phones": parsed.slow_phones}


def _load_split(conn, spec: ChunkSpec, parsed, options: Options):
    """A chunk routed by the import's splitter: each target list's rows merged in turn, all in
    the chunk's one transaction (so a resumed import still merges each row exactly once); rows
    no rule took are rejects."""
    from ..store.imports import Merged, merge_parsed, record_chunk, record_targets
    routed, unmatched = parse_splitter(options.splitter).route(parsed.rows, datetime.now(timezone.utc))

    def merge_each() -> Merged:
        total, parts = Merged(), {}
        for list_id in sorted(routed):              # one order for every merge: no lock cycles
            part = parts[list_id] = merge_parsed(conn, list_id, routed[list_id], key=options.dedupe_key,
                                                 policy=options.policy, import_id=spec.import_id)
            total.loaded += part.loaded
            total.inserted += part.inserted
            total.duplicates += part.duplicates
            total.dnc_flagged += part.dnc_flagged
        record_targets(conn, spec.import_id, spec.chunk, parts)
        return total

    rejects = sorted(parsed.rejects + unmatched, key=lambda r: r["line"])
    parsed.rejects = rejects
    return record_chunk(conn, spec.import_id, spec.chunk, rejects, parsed.rows_read, merge_each)


class ImporterService:
    """`open_store()` gives an `ImportStore`; `submit(spec) -> handle` starts a chunk and
    `wait(handles) -> (finished results, still pending)` collects them (Ray tasks in the actor,
    plain calls in tests)."""

    def __init__(self, open_store: Callable[[], Any], submit: Callable[[ChunkSpec], Any],
                 wait: Callable[[list], tuple[list, list]], parallel: int = 2,
                 chunk_bytes: int = CHUNK_BYTES, poll_s: float = 1.0,
                 admit: Callable[[], bool] = lambda: True):
        self.open_store, self.submit, self.wait = open_store, submit, wait
        self.admit = admit          # may a queued import start? (the load restrictions: store.load)
        self.parallel, self.chunk_bytes, self.poll_s = max(1, parallel), chunk_bytes, poll_s
        self.store = open_store()
        self.running: dict[int, threading.Thread] = {}
        self.stats = {"imports": 0, "chunks": 0, "failed": 0, "fast_phones": 0, "slow_phones": 0}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- the loop ----------------------------------------------------------------------------
    def tick(self) -> list[int]:
        """Start a worker thread for each active import not yet being worked on."""
        if self.store.broken:
            self.store = self.open_store()
        started = []
        with self.lock:
            for import_id, thread in list(self.running.items()):
                if not thread.is_alive():
                    del self.running[import_id]
            held = not self.admit()
            for import_id in self.store.active():
                if held and import_id not in self.running and self.store.state(import_id) == "queued":
                    continue                        # queued while the load restrictions say so
                if import_id not in self.running:
                    thread = threading.Thread(target=self._run_safely, args=(import_id,), daemon=True,
                                              name=f"import-{import_id}")
                    self.running[import_id] = thread
                    thread.start()
                    started.append(import_id)
        return started

    def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("importer tick failed")
            self.stopping.wait(self.poll_s)

    def _run_safely(self, import_id: int) -> None:
        try:
            self.run(import_id)
        except Exception as exc:        # noqa: BLE001 — the import stays active and is retried
            log.exception("import %s: run failed", import_id)
            self.stats["failed"] += 1
            time.sleep(self.poll_s)
            del exc

    # -- one import --------------------------------------------------------------------------
    def run(self, import_id: int) -> str:
        """Work on one import until it is done, failed, paused or stopped; its final state."""
        store = self.open_store()
        try:
            row = store.load(import_id)
            if row["state"] not in ("queued", "running"):
                return row["state"]
            settings = dict(row["options"])
            replace = settings.pop("mode", "append") == "replace"          # a DNC import's mode
            options = Options(**settings)
            dnc = row["kind"] == "dnc"
            target = row["dnc_list_id"] if dnc else row["list_id"]
            try:
                prepared = prepare(row["path"], options, self.chunk_bytes,
                                   map_dnc_header if dnc else map_header)
            except (FileError, ValueError, OSError) as exc:
                store.finish(import_id, "failed", str(exc))
                return "failed"
            if not store.start(import_id, len(prepared.chunks)):
                return store.state(import_id)
            done = store.done_chunks(import_id)
            todo = [ChunkSpec(import_id, i, target, prepared.path, s, e, line, prepared.encoding,
                              prepared.delimiter, [list(c) if c else None for c in prepared.columns],
                              asdict(options), row["kind"])
                    for i, (s, e, line) in enumerate(prepared.chunks) if i not in done]
            pending: list = []
            while todo or pending:
                state = store.state(import_id)
                if state != "running":
                    todo = []                       # paused or stopped: send nothing more
                while todo and len(pending) < self.parallel:
                    pending.append(self.submit(todo.pop(0)))
                if pending:
                    finished, pending = self.wait(pending)
                    for result in finished:
                        if result:
                            self.stats["chunks"] += 1
                            self.stats["fast_phones"] += result.get("fast_phones", 0)
                            self.stats["slow_phones"] += result.get("slow_phones", 0)
            state = store.state(import_id)
            if state != "running":
                return state
            counts = store.counts(import_id)
            if counts["chunks_done"] < len(prepared.chunks):
                return state                        # a chunk failed: the next tick retries it
            if counts["rows_loaded"] == 0 and counts["duplicates"] == 0:
                store.finish(import_id, "failed", "no valid row in the file")
                return "failed"
            if replace:
                store.finish_replace(import_id)
            else:
                store.finish(import_id, "done")
            self.stats["imports"] += 1
            return "done"
        finally:
            store.conn.close()

    def status(self) -> dict:
        return {"state": "up", "running": sorted(self.running), **self.stats}
