"""How the gateway's errors look: one handler per kind of fault, each a JSON body with a
machine-readable `error` (and, for bad input, the path of every fault).

`install(app)` registers them all; routers raise the domain's own exceptions (NotFound,
StrategyError, IllegalTransition, ...) and never build error responses themselves.
"""
from __future__ import annotations

import json
from typing import Any

import psycopg
import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pom_actors.core.agents.attachment import AttachmentError
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.core.contacts import ContactRowError
from pom_actors.core.filters import FilterError
from pom_actors.core.imports.reader import FileError
from pom_actors.core.lifecycle import IllegalTransition, StateChanged, allowed_events
from pom_actors.core.strategy import StrategyError
from pom_actors.services.agent_manager import UnknownAgent, UnknownCall
from pom_actors.store.auth import LastAdmin
from pom_actors.store.catalog import NotFound
from pom_actors.store.filters import FilterConflict
from pom_actors.store.imports import ImportStateError

from .validation import Fault, printable


class Unavailable(RuntimeError):
    """An actor the request needs is not running (503)."""


class NoAnswer(TimeoutError):
    """An actor did not answer in time (504); what it was asked may still take effect."""


class Unauthorized(PermissionError):
    """No API token, or one that is unknown or revoked (401, `WWW-Authenticate: Bearer`)."""

    def __init__(self, message: str, invalid: bool = False):
        super().__init__(message)
        self.invalid = invalid


class Forbidden(PermissionError):
    """A valid token whose role may not do this (403)."""


class ErrorResponse(JSONResponse):
    """JSON that renders whatever text an error echoes: should an unpaired surrogate slip into
    a message, it is written as a `\\udxxx` escape instead of failing to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode("ascii")


def _error(status: int, error: str, **fields) -> JSONResponse:
    return ErrorResponse(status_code=status, content={"error": error, **fields})


def _path(error: dict) -> str:
    """Where a validation error is: its location without the leading `body`, then the path
    a `validation.Fault` found inside that field (a key of a strategy document, say)."""
    loc = list(error["loc"])
    if loc[:1] == ["body"]:
        loc = loc[1:]
    fault = (error.get("ctx") or {}).get("error")
    if isinstance(fault, Fault):
        loc += fault.path
    return ".".join(printable(str(p)) for p in loc)


async def not_found(_: Request, exc: NotFound) -> JSONResponse:
    return _error(404, "not_found", message=str(exc))


async def bad_strategy(_: Request, exc: StrategyError) -> JSONResponse:
    return _error(422, "invalid_strategy", errors=exc.errors)


async def illegal_transition(_: Request, exc: IllegalTransition) -> JSONResponse:
    return _error(409, "illegal_transition", state=str(exc.state), event=str(exc.event),
                  allowed=[str(e) for e in allowed_events(exc.state)], message=str(exc))


async def state_changed(_: Request, exc: StateChanged) -> JSONResponse:
    return _error(409, "conflict", message=str(exc))


async def invalid(_: Request, exc: RequestValidationError | pydantic.ValidationError) -> JSONResponse:
    return _error(422, "invalid", errors=[{"path": _path(e), "message": printable(e["msg"])}
                                          for e in exc.errors()])


async def unique_violation(_: Request, exc: psycopg.errors.UniqueViolation) -> JSONResponse:
    return _error(409, "conflict", message=exc.diag.message_detail or str(exc))


async def foreign_key_violation(_: Request, exc: psycopg.errors.ForeignKeyViolation) -> JSONResponse:
    return _error(404, "not_found", message=exc.diag.message_detail or str(exc))


async def bad_contacts(_: Request, exc: ContactRowError) -> JSONResponse:
    return _error(422, "invalid_contacts", errors=exc.errors, imported=exc.imported)


async def bad_filter(_: Request, exc: FilterError) -> JSONResponse:
    """A filter expression refused, with the position of the fault in `expression`."""
    return _error(422, "invalid_filter", errors=[{"path": "expression", **exc.as_dict(),
                                                  "message": printable(exc.message)}])


async def filter_conflict(_: Request, exc: FilterConflict) -> JSONResponse:
    return _error(409, "conflict", message=str(exc))


async def bad_file(_: Request, exc: FileError) -> JSONResponse:
    """An import file that cannot be imported as a whole (empty, header only, bad header...)."""
    return _error(422, "invalid_file", message=printable(str(exc)))


async def import_state(_: Request, exc: ImportStateError) -> JSONResponse:
    return _error(409, "illegal_transition", state=exc.state, event=exc.command, message=str(exc))


async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    response = _error(401, "unauthorized", message=str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if exc.invalid else "Bearer"
    return response


async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
    return _error(403, "forbidden", message=str(exc))


async def last_admin(_: Request, exc: LastAdmin) -> JSONResponse:
    return _error(409, "conflict", message=str(exc))


async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
    return _error(503, "unavailable", message=str(exc))


async def no_answer(_: Request, exc: NoAnswer) -> JSONResponse:
    return _error(504, "timeout", message=str(exc))


async def unknown_agent(_: Request, exc: UnknownAgent | UnknownCall) -> JSONResponse:
    what = "agent" if isinstance(exc, UnknownAgent) else "call"
    return _error(404, "not_found", message=printable(f"no {what} {exc.args[0]!r}"))


async def illegal_agent_transition(_: Request, exc: IllegalAgentTransition) -> JSONResponse:
    return _error(409, "illegal_transition", state=str(exc.state), event=str(exc.event), message=str(exc))


async def attachment_refused(_: Request, exc: AttachmentError) -> JSONResponse:
    return _error(409, "conflict", message=str(exc))


async def bad_disposition(_: Request, exc: DispositionError) -> JSONResponse:
    return _error(422, "invalid", errors=[{"path": exc.field, "message": printable(str(exc))}])


HANDLERS = {
    NotFound: not_found,
    StrategyError: bad_strategy,
    IllegalTransition: illegal_transition,
    StateChanged: state_changed,
    RequestValidationError: invalid,
    pydantic.ValidationError: invalid,
    psycopg.errors.UniqueViolation: unique_violation,
    psycopg.errors.ForeignKeyViolation: foreign_key_violation,
    ContactRowError: bad_contacts,
    FilterError: bad_filter,
    FilterConflict: filter_conflict,
    FileError: bad_file,
    ImportStateError: import_state,
    Unavailable: unavailable,
    NoAnswer: no_answer,
    UnknownAgent: unknown_agent,
    UnknownCall: unknown_agent,
    IllegalAgentTransition: illegal_agent_transition,
    AttachmentError: attachment_refused,
    DispositionError: bad_disposition,
    Unauthorized: unauthorized,
    Forbidden: forbidden,
    LastAdmin: last_admin,
}


def install(app: FastAPI) -> None:
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
