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

An import from a SQL query (`query`: core/imports/query.py) has no file: step 1 checks the
source's host against the outbound policy and opens the query (`store.source.SourceQuery`:
read only, a server-side cursor); its column names are the header; each chunk is the next
`fetch_rows` rows, sent to the task as values (step 2 as above, chunk `i` being rows
`i*fetch_rows+1...`); a resumed import re-runs the query and skips the chunks recorded.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from ..core.imports.dnc import map_dnc_header, parse_dnc_text
from ..core.imports.phones import PhoneNormaliser
from ..core.imports.query import PostgresSource, cell
from ..core.imports.reader import (FileError, SAMPLE_BYTES, chunk_bounds, decode, detect_dialect,
                                   detect_encoding, header_end)
from ..core.imports.rows import Options, map_header, parse_records, parse_text
from ..core.imports.splitter import parse_splitter
from ..core.outbound import OutboundPolicy

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
    form: str = "file"                  # or rows: the task is given a query's rows, not bytes


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


def parse_chunk(spec: ChunkSpec, data: bytes | list[tuple] | None = None):
    """Decode and parse one chunk (in a task): the `rows.Parsed` result."""
    from ..core.imports.reader import Dialect
    options = Options(**spec.options)
    phones = _PHONES.get(options.region)
    if phones is None:
        phones = _PHONES[options.region] = PhoneNormaliser(options.region)
    columns = [tuple(c) if c is not None else None for c in spec.columns]
    if spec.form == "rows":                     # a query's rows: values, numbered from first_line
        records = ((spec.first_line + i, [cell(v) for v in row], "") for i, row in enumerate(data))
        return parse_records(records, columns, options, phones)
    if data is None:
        with open(spec.path, "rb") as f:
            f.seek(spec.start)
            data = f.read(spec.end - spec.start)
    text = decode(data, spec.encoding if spec.encoding != "utf-8-sig" else "utf-8")
    if spec.kind == "dnc":
        return parse_dnc_text(text, Dialect(spec.delimiter), columns, options, spec.first_line, phones)
    return parse_text(text, Dialect(spec.delimiter), columns, options, spec.first_line, phones)


def load_chunk_with(conn, spec: ChunkSpec, data: bytes | list[tuple] | None = None) -> dict[str, Any] | None:
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
    """`open_store()` gives an `ImportStore`; `submit(spec, data) -> handle` starts a chunk
    (`data`: a query's rows, or None for a file's bytes) and `wait(handles) -> (finished
    results, still pending)` collects them (Ray tasks in the actor, plain calls in tests);
    `open_source(source, password, address)` opens a query (`store.source.SourceQuery`),
    whose host `policy` must allow; a password_ref is read from `environ`."""

    def __init__(self, open_store: Callable[[], Any], submit: Callable[[ChunkSpec, Any], Any],
                 wait: Callable[[list], tuple[list, list]], parallel: int = 2,
                 chunk_bytes: int = CHUNK_BYTES, poll_s: float = 1.0,
                 admit: Callable[[], bool] = lambda: True, open_source: Callable[..., Any] | None = None,
                 policy: OutboundPolicy | None = None, environ: Mapping[str, str] = os.environ):
        self.open_store, self.submit, self.wait = open_store, submit, wait
        self.admit = admit          # may a queued import start? (the load restrictions: store.load)
        if open_source is None:
            from ..store.source import SourceQuery
            open_source = SourceQuery
        self.open_source, self.policy, self.environ = open_source, policy or OutboundPolicy(), environ
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
            if row["query"] is not None:
                return self._run_query(store, import_id, target, PostgresSource(**row["query"]), options)
            try:
                prepared = prepare(row["path"], options, self.chunk_bytes,
                                   map_dnc_header if dnc else map_header)
            except (FileError, ValueError, OSError) as exc:
                store.finish(import_id, "failed", str(exc))
                return "failed"
            if not store.start(import_id, len(prepared.chunks)):
                return store.state(import_id)
            done = store.done_chunks(import_id)
            columns = [list(c) if c else None for c in prepared.columns]
            todo = ((ChunkSpec(import_id, i, target, prepared.path, s, e, line, prepared.encoding,
                               prepared.delimiter, columns, asdict(options), row["kind"]), None)
                    for i, (s, e, line) in enumerate(prepared.chunks) if i not in done)
            self._drive(store, import_id, todo)
            return self._finish(store, import_id, len(prepared.chunks), replace, "no valid row in the file")
        finally:
            store.conn.close()

    def _run_query(self, store, import_id: int, list_id: int, source: PostgresSource, options: Options) -> str:
        """An import from a SQL query: the host allowed, the query opened, its column names
        mapped like a header, its rows sent chunk by chunk (the chunks loaded before skipped)."""
        try:
            password = source.password(self.environ)
            fault, address = source.target(self.policy)
            if fault is not None:
                raise ValueError(f"the source is refused: {fault}")
            reader = self.open_source(source, password, address)
            reader.__enter__()
        except (ValueError, OSError, psycopg.Error) as exc:
            message = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
            store.finish(import_id, "failed", f"the query could not run: {message}")
            return "failed"
        try:
            try:
                columns = [list(c) if c else None for c in map_header(reader.columns, options.mapping)]
            except FileError as exc:
                store.finish(import_id, "failed", f"the query's columns: {exc}")
                return "failed"
            if not store.start(import_id, 0):
                return store.state(import_id)
            done = store.done_chunks(import_id)
            fetched = [0]                               # chunks of the query so far
            fault: list[str] = []                       # why the source stopped answering

            def chunks() -> Iterator[tuple[ChunkSpec, Any]]:
                size = source.fetch_rows
                while True:
                    i = fetched[0]
                    try:
                        rows = None if i in done else reader.fetch()
                        moved = reader.skip() if i in done else len(rows)
                    except psycopg.Error as exc:        # the query itself failed (read only, timeout...)
                        fault.append(str(exc).splitlines()[0][:500] or type(exc).__name__)
                        return
                    if rows is None:
                        if moved:
                            fetched[0] += 1
                        if moved < size:
                            return
                        continue
                    if not rows:
                        return
                    fetched[0] += 1
                    yield ChunkSpec(import_id, i, list_id, "", 0, 0, i * size + 1, "", "", columns,
                                    asdict(options), form="rows"), rows
                    if len(rows) < size:
                        return

            self._drive(store, import_id, chunks())
            if fault:
                store.finish(import_id, "failed", f"the query failed after {fetched[0]} chunks: {fault[0]}")
                return "failed"
            if store.state(import_id) == "running":
                store.set_chunks(import_id, fetched[0])
            return self._finish(store, import_id, fetched[0], False, "no valid row in the query's result")
        finally:
            reader.__exit__(None, None, None)

    def _drive(self, store, import_id: int, todo: Iterator[tuple[ChunkSpec, Any]]) -> None:
        """Send each chunk of `todo` to a task, at most `parallel` out at once, until all are
        back; a paused or stopped import sends nothing more (those out finish)."""
        pending: list = []
        more = True
        while more or pending:
            if more and store.state(import_id) != "running":
                more = False
            while more and len(pending) < self.parallel:
                item = next(todo, None)
                if item is None:
                    more = False
                else:
                    pending.append(self.submit(*item))
            if pending:
                finished, pending = self.wait(pending)
                for result in finished:
                    if result:
                        self.stats["chunks"] += 1
                        self.stats["fast_phones"] += result.get("fast_phones", 0)
                        self.stats["slow_phones"] += result.get("slow_phones", 0)

    def _finish(self, store, import_id: int, chunks: int, replace: bool, empty: str) -> str:
        """The import's end once every chunk is back: done, failed (`empty`: no valid row), or
        still running when a chunk failed (the next tick retries it)."""
        state = store.state(import_id)
        if state != "running":
            return state
        counts = store.counts(import_id)
        if counts["chunks_done"] < chunks:
            return state
        if counts["rows_loaded"] == 0 and counts["duplicates"] == 0:
            store.finish(import_id, "failed", empty)
            return "failed"
        if replace:
            store.finish_replace(import_id)
        else:
            store.finish(import_id, "done")
        self.stats["imports"] += 1
        return "done"

    def status(self) -> dict:
        return {"state": "up", "running": sorted(self.running), **self.stats}
