"""Import schedules (docs/imports.md, "Scheduled imports"): an import into a list — of a SQL
query, or of a server-side file read anew each time — run by the director at each due time of
a cron schedule; create, list, read, change, delete.

Everything is checked before it is stored: the cron and time zone (`core.schedule`, bounded
like a campaign's), the query and the source (`core.imports.query`, the host against the
outbound policy) or the file's place (under POM_IMPORT_DIR; it need not exist until it is due),
the import options. No password is ever accepted or answered: a source names one by
`password_ref`."""
from __future__ import annotations

from dataclasses import asdict

import psycopg
import pydantic
from fastapi import APIRouter, Depends, Response

from pom_actors.config import Settings
from pom_actors.core.imports.query import PostgresSource
from pom_actors.core.imports.reader import FileError
from pom_actors.core.imports.rows import Options
from pom_actors.core.schedule import Schedule
from pom_actors.store import import_schedules as store

from .. import deps
from ..pages import Page
from ..validation import Id, Text
from .imports import ImportOptions, ServerPath, check_source, server_path

router = APIRouter(tags=["imports"])


class ScheduleSource(pydantic.BaseModel):
    """Where a scheduled import's rows come from at each due time: one of the two."""
    model_config = pydantic.ConfigDict(extra="forbid")
    postgres: PostgresSource | None = None
    path: ServerPath | None = pydantic.Field(  # type: ignore[valid-type]
        None, description="a file under the import directory (POM_IMPORT_DIR), read as it is at each due time")

    @pydantic.model_validator(mode="after")
    def _one(self) -> "ScheduleSource":
        if (self.postgres is None) == (self.path is None):
            raise ValueError("give either postgres (a SQL query) or path (a server-side file)")
        return self


class ScheduleCreate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: Text = pydantic.Field(min_length=1, max_length=200)
    list_id: Id
    schedule: Schedule
    source: ScheduleSource
    options: ImportOptions = ImportOptions()


class ScheduleUpdate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: Text | None = pydantic.Field(None, min_length=1, max_length=200)
    list_id: Id | None = None
    schedule: Schedule | None = None
    source: ScheduleSource | None = None
    options: ImportOptions | None = None


def _stored(body: pydantic.BaseModel, settings: Settings) -> dict:
    """The body's fields as stored (the source checked against the outbound policy)."""
    out = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"source", "options", "schedule"})
    if getattr(body, "schedule", None) is not None:
        out["schedule"] = body.schedule.model_dump()
    if getattr(body, "source", None) is not None and body.source.path is not None:
        try:
            out["source"] = {"path": server_path(settings, body.source.path)}
        except FileError as exc:
            raise pydantic.ValidationError.from_exception_data("ScheduleSource", [
                {"type": "value_error", "loc": ("source", "path"), "input": None,
                 "ctx": {"error": ValueError(str(exc))}}]) from None
    elif getattr(body, "source", None) is not None:
        source: PostgresSource = body.source.postgres
        check_source(source, settings, ("source", "postgres"))
        out["source"] = source.model_dump(exclude_none=True)
    if getattr(body, "options", None) is not None:
        out["options"] = asdict(Options(**body.options.model_dump()))
    return out


@router.post("/import-schedules", status_code=201)
def create_schedule(body: ScheduleCreate, conn: psycopg.Connection = Depends(deps.db),
                    settings: Settings = Depends(deps.settings)) -> dict:
    fields = _stored(body, settings)
    return store.create(conn, fields["name"], fields["list_id"], fields["schedule"], fields["source"],
                        fields["options"])


@router.get("/import-schedules")
def list_schedules(page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of schedules by id (api/pages.py)."""
    return page.link(store.page(conn, page.after, page.limit))


@router.get("/import-schedules/{schedule_id}")
def get_schedule(schedule_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.get(conn, schedule_id)


@router.patch("/import-schedules/{schedule_id}")
def update_schedule(schedule_id: Id, body: ScheduleUpdate, conn: psycopg.Connection = Depends(deps.db),
                    settings: Settings = Depends(deps.settings)) -> dict:
    with conn.transaction():
        return store.update(conn, schedule_id, _stored(body, settings))


@router.delete("/import-schedules/{schedule_id}", status_code=204)
def delete_schedule(schedule_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    store.delete(conn, schedule_id)
    return Response(status_code=204)
