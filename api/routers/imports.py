"""File imports into contact lists and DNC lists: start one (an uploaded file, a server-side
path, or a SQL query on another PostgreSQL database), watch its state and counts, read its
rejected rows (CSV or JSON), pause, resume or stop it.

The upload is spooled to `<data dir>/imports/` before the route runs (`_upload`, the only
async part); the head of the file is checked at once (encoding, dialect, header), so an
empty file, a header-only file or a bad header is a 422 at once, never a failed import later.
The Importer actor does the rest; the routes only read and write the database.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import asdict
from typing import Any, Literal

import orjson
import psycopg
import pydantic
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from pom_actors import names
from pom_actors.config import Settings
from pom_actors.core.imports.reader import (FileError, SAMPLE_BYTES, decode, detect_dialect,
                                            detect_encoding, header_end, records)
from pom_actors.core.imports.dnc import map_dnc_header
from pom_actors.core.imports.query import PostgresSource
from pom_actors.core.imports.rows import Options, map_header, rejects_csv
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.imports.splitter import parse_splitter
from pom_actors.store import dnc as dnc_store
from pom_actors.store import imports as store
from pom_actors.store import load as load_store

from .. import deps
from ..errors import Unavailable, declare
from ..idempotency import KEYED
from ..pages import Page
from ..validation import Id, Text, bounded_text

router = APIRouter(tags=["imports"])
REJECTS_PAGE = 10_000           # rejected rows a GET .../rejects answers at most (its pages: ?after=LINE)
UPLOAD_PATH = re.compile(r"/api/v1/(dnc-)?lists/[^/]+/imports")     # the routes that take large bodies


# Bounds of the import options (a 422 at the field beyond them): a codec name, a delimiter, the
# header mapping's entries and each column name or target, a server-side path.
MAX_ENCODING, MAX_DELIMITER, MAX_MAPPING, MAX_COLUMN, MAX_PATH = 64, 8, 1000, 300, 4096
ServerPath = bounded_text(MAX_PATH, 1)


class FileOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    encoding: bounded_text(MAX_ENCODING, 1) | None = None  # type: ignore[valid-type]
    delimiter: bounded_text(MAX_DELIMITER, 1) | None = None  # type: ignore[valid-type]
    mapping: dict[bounded_text(MAX_COLUMN), bounded_text(MAX_COLUMN)] = pydantic.Field(  # type: ignore[valid-type]
        default={}, max_length=MAX_MAPPING, description="header name -> contact field, attributes.NAME or ignore")
    region: Text | None = pydantic.Field(None, pattern=r"^[A-Za-z]{2}$")
    max_field_chars: int = pydantic.Field(4096, ge=1, le=1_000_000)


class ImportOptions(FileOptions):
    dedupe_key: Literal["external_id", "phone1", "email"] = "external_id"
    policy: Literal["update", "skip", "keep_both"] = "update"
    splitter: dict[str, Any] | None = pydantic.Field(
        None, description="rows routed to lists by rules on their columns (docs/imports.md, \"Splitters\")")

    @pydantic.field_validator("splitter")
    @classmethod
    def _splitter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            parse_splitter(value)             # SplitterError (a ValueError) names the field at fault
        return value


class DncImportOptions(FileOptions):
    mode: Literal["append", "replace"] = pydantic.Field(
        "append", description="replace: the entries the file does not carry go when it is done")


class ImportSource(pydantic.BaseModel):
    """Where the rows of an import that is not a file come from."""
    model_config = pydantic.ConfigDict(extra="forbid")
    postgres: PostgresSource


class ServerFile(ImportOptions):
    path: ServerPath | None = None  # type: ignore[valid-type]
    source: ImportSource | None = pydantic.Field(
        None, description="instead of a file: a SELECT on another PostgreSQL database (docs/imports.md)")

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> "ServerFile":
        if (self.path is None) == (self.source is None):
            raise ValueError("give either path (a server-side file) or source (a SQL query)")
        return self


class DncServerFile(DncImportOptions):
    path: ServerPath  # type: ignore[valid-type]


class Upload:
    def __init__(self, path: str | None, source: str, options: FileOptions, spooled: bool,
                 query: PostgresSource | None = None):
        self.path, self.source, self.options, self.spooled = path, source, options, spooled
        self.query = query              # a SQL import's source (then no path)


def _spool_dir(settings: Settings) -> str:
    path = os.path.join(os.path.abspath(settings.data_dir), "imports")
    os.makedirs(path, exist_ok=True)
    return path


async def _upload(request: Request, settings: Settings = Depends(deps.settings)) -> Upload:
    """The contact file of a request (`_read_upload`)."""
    return await _read_upload(request, settings, ImportOptions, ServerFile)


async def _dnc_upload(request: Request, settings: Settings = Depends(deps.settings)) -> Upload:
    """The DNC file of a request (`_read_upload`)."""
    return await _read_upload(request, settings, DncImportOptions, DncServerFile)


async def _read_upload(request: Request, settings: Settings, model: type[FileOptions],
                       server_model: type[FileOptions]) -> Upload:
    """The file of a request: a multipart upload (field `file`, options as form fields or one
    JSON field `options`) spooled to disk, or a JSON body naming a server-side file."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20, max_part_size=1024 * 1024)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise pydantic.ValidationError.from_exception_data("ImportUpload", [
                {"type": "missing", "loc": ("file",), "input": None}])
        raw = dict(orjson.loads(form["options"])) if isinstance(form.get("options"), str) else {}
        for key in model.model_fields:
            if isinstance(form.get(key), str):
                raw[key] = _json_field(key, form[key]) if key in ("mapping", "splitter") else form[key]
        options = model(**raw)
        path = os.path.join(_spool_dir(settings), f"upload-{secrets.token_hex(8)}.dat")

        def copy() -> None:
            upload.file.seek(0)
            with open(path, "wb") as out:
                while block := upload.file.read(1 << 20):
                    out.write(block)

        await run_in_threadpool(copy)
        return Upload(path, f"upload:{upload.filename or 'file'}", options, True)
    body = server_model(**orjson.loads(await request.body() or b"{}"))
    if getattr(body, "source", None) is not None:
        query = body.source.postgres
        return Upload(None, query.label(), model(**body.model_dump(exclude={"path", "source"})), False, query)
    path = server_path(settings, body.path)
    if not os.path.isfile(path):
        raise FileError(f"no such file: {body.path}")
    return Upload(path, f"path:{body.path}", model(**body.model_dump(exclude={"path", "source"})), False)


def server_path(settings: Settings, path: str) -> str:
    """`path` resolved, if it lies under the import directory (POM_IMPORT_DIR); else FileError."""
    root = os.path.realpath(settings.import_dir) if getattr(settings, "import_dir", None) else None
    resolved = os.path.realpath(path)
    if root is None or os.path.commonpath([root, resolved]) != root:
        raise FileError("a server-side file must be under the import directory (POM_IMPORT_DIR)"
                        if root else "server-side files are not enabled (set POM_IMPORT_DIR)")
    return resolved


def _json_field(key: str, text: str) -> Any:
    """A form field that holds JSON (`mapping`, `splitter`): a 422 at the field when it does not parse."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise pydantic.ValidationError.from_exception_data("ImportUpload", [
            {"type": "json_invalid", "loc": (key,), "input": text[:100], "ctx": {"error": str(exc)}}]) from None


def check_head(path: str, options: Options, map_columns=map_header) -> None:
    """FileError now for what would fail the import anyway: empty, bad header, no rows."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    if not head.strip(b"\r\n\t \xef\xbb\xbf\xff\xfe\x00"):
        raise FileError("the file is empty")
    encoding = detect_encoding(head, options.encoding)
    text = decode(head, encoding)
    dialect = detect_dialect(text, options.delimiter)
    header, end = header_end(text, dialect)
    map_columns(header, options.mapping)
    if not any(True for _ in records(text[end:], dialect)):
        if os.path.getsize(path) <= SAMPLE_BYTES:
            raise FileError("the file has a header but no rows")


def check_source(source: PostgresSource, settings: Settings, at: tuple[str, ...]) -> None:
    """A 422 at the source's host now when the outbound policy refuses it (POM_OUTBOUND_ALLOW);
    the importer checks again when it runs."""
    fault, _ = source.target(OutboundPolicy.from_setting(settings.outbound_allow))
    if fault is not None:
        raise pydantic.ValidationError.from_exception_data("ImportSource", [
            {"type": "value_error", "loc": (*at, "host"), "input": None, "ctx": {"error": ValueError(fault)}}])


def _kick() -> None:
    """Tell the importer to look now (best effort: it looks every second anyway)."""
    try:
        handle = names.actor(names.IMPORTER)
        if handle is not None:
            handle.kick.remote()
    except Exception:       # noqa: BLE001 — Ray not reachable: the importer's own loop finds it
        pass


@router.post("/lists/{list_id}/imports", status_code=202, responses=declare(503), dependencies=[KEYED])   # refused under load
def start_import(list_id: Id, upload: Upload = Depends(_upload), conn: psycopg.Connection = Depends(deps.db),
                 settings: Settings = Depends(deps.settings)) -> dict:
    def create(options: Options) -> int:
        if upload.query is not None:
            check_source(upload.query, settings, ("source", "postgres"))
            return store.create_import(conn, list_id, upload.source, None, asdict(options),
                                       query=upload.query.model_dump(exclude_none=True))
        check_head(upload.path, options)
        return store.create_import(conn, list_id, upload.source, upload.path, asdict(options))

    return {**_start(conn, upload, create), "list_id": list_id}


@router.post("/dnc-lists/{list_id}/imports", status_code=202, dependencies=[KEYED])
def start_dnc_import(list_id: Id, upload: Upload = Depends(_dnc_upload),
                     conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """A file into a DNC list (docs/imports.md, "DNC imports"): `mode` append or replace."""
    def create(options: Options) -> int:
        check_head(upload.path, options, map_dnc_header)
        return dnc_store.create_import(conn, list_id, upload.source, upload.path,
                                       {**asdict(options), "mode": upload.options.mode})

    return {**_start(conn, upload, create, exclude={"mode"}), "dnc_list_id": list_id}


def _start(conn: psycopg.Connection, upload: Upload, create, exclude: set[str] = frozenset()) -> dict:
    """A new import by `create(options)` unless the load refuses it (503); a refused upload
    leaves no spooled file behind."""
    try:
        restrictions = load_store.restrictions(conn)     # refused: 503; queued: waits for the lift
        if restrictions.imports == "refused":
            raise Unavailable("new imports are refused under load (alarms: "
                              f"{', '.join(restrictions.because.get('imports_refused', []))}); try again later")
        import_id = create(Options(**upload.options.model_dump(exclude=exclude)))
    except BaseException:
        if upload.spooled:
            os.unlink(upload.path)
        raise
    _kick()
    held = {"held": "load"} if not restrictions.allows("import") else {}
    return {"id": import_id, "state": "queued", **held}


@router.get("/imports")
def list_imports(list_id: Id | None = Query(None, description="imports into this contact list"),
                 dnc_list_id: Id | None = Query(None, description="imports into this DNC list"),
                 state: Literal[store.STATES] | None = None, page: Page = Depends(),
                 conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of imports by id (api/pages.py), newest last; counts but no options or progress."""
    return page.link(store.rows(conn, list_id=list_id, dnc_list_id=dnc_list_id, state=state,
                                after=page.after, limit=page.limit))


@router.get("/imports/{import_id}")
def get_import(import_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    row = store.get_import(conn, import_id)
    row["progress"] = round(row["chunks_done"] / row["chunks"], 4) if row["chunks"] else 0.0
    if (row["options"] or {}).get("splitter"):
        row["targets"] = store.target_counts(conn, import_id)     # per target list, so far
    return row


@router.get("/imports/{import_id}/rejects", responses={200: {
    "description": "The rejected rows: JSON, or CSV with `format=csv` or `Accept: text/csv`",
    "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}})
def get_rejects(import_id: Id, request: Request, format: Literal["csv", "json"] | None = Query(None),
                limit: int = Query(REJECTS_PAGE, ge=1, le=REJECTS_PAGE, description="rejects per page"),
                after: int = Query(0, ge=0, le=2**63 - 1, description="rejects of lines after this one"),
                conn: psycopg.Connection = Depends(deps.db)) -> Any:
    """A page of the rejected rows by line: `next` (JSON) and `Link: rel="next"` (both) while
    a page is full."""
    rows = store.rejects(conn, import_id, limit, after_line=after)
    following = rows[-1]["line"] if len(rows) == limit else None
    headers = {} if following is None else {
        "Link": f'<{request.url.include_query_params(after=following, limit=limit)}>; rel="next"'}
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if not wants_csv:
        return JSONResponse({"import_id": import_id, "rejects": rows, "next": following}, headers=headers)
    return Response(rejects_csv(rows), media_type="text/csv; charset=utf-8", headers={
        **headers, "Content-Disposition": f'attachment; filename="import-{import_id}-rejects.csv"'})


@router.post("/imports/{import_id}/{command}")
def command(import_id: Id, command: Literal["pause", "resume", "stop"],
            conn: psycopg.Connection = Depends(deps.db)) -> dict:
    state = store.command(conn, import_id, command)
    if command == "resume":
        _kick()
    return {"id": import_id, "state": state}
