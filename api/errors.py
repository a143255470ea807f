"""How the gateway's errors look: RFC 9457 problem details (`application/problem+json`), one
handler per kind of fault, and the OpenAPI declaration of every status a route can answer.

Every error body has the standard members `type` (`urn:pom:problem:<error>`), `title`,
`status` and `detail`, and the extensions `error` (the same code, machine-readable),
`message` (= `detail`, as before) and, for bad input, `errors` (the field at fault: `path`,
or `line` and `field` of a contact row). `install(app)` registers the handlers and the
OpenAPI hook; routers raise the domain's own exceptions (NotFound, StrategyError,
IllegalTransition, ...) and never build error responses themselves.

What a route declares is derived from the route itself (`statuses`), so a router added later
is covered without doing anything: 401/403 from its access rule, 503/504 from the actor
dependencies it uses (`raises`), 404 for a path parameter or a body (which may name another
resource), 422 for any parameter or body, 409 for a change, 413 for any request; a route
declares what else it answers with FastAPI's own `responses=` (`declare(503)`).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import psycopg
import pydantic
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from pom_actors.core.agents.attachment import AttachmentError
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.attributes import AttributesRefused
from pom_actors.core.codes import CodeError
from pom_actors.core.jobchanges import JobChangeError
from pom_actors.core.scripts import ScriptError
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.core.contacts import ContactRowError
from pom_actors.core.dialling import ListsError
from pom_actors.core.filters import FilterError
from pom_actors.core.imports.reader import FileError
from pom_actors.core.lifecycle import IllegalTransition, StateChanged, allowed_events
from pom_actors.core.reports import RangeError, ReportLimited
from pom_actors.core.strategy import StrategyError
from pom_actors.core.zones import ZoneError
from pom_actors.services.agent_manager import UnknownAgent, UnknownCall
from pom_actors.store.auth import LastAdmin
from pom_actors.store.catalog import CampaignDisabled, CampaignInUse, NotFound
from pom_actors.store.codes import CodeInUse, CodeReadOnly
from pom_actors.store.scripts import ScriptInUse
from pom_actors.store.strategies import StrategyInUse
from pom_actors.store.lists import ListInUse
from pom_actors.store.contacts import AttemptConflict
from pom_actors.store.dialling import JobEnded
from pom_actors.store.filters import FilterConflict
from pom_actors.store.imports import ImportStateError
from pom_actors.store.purges import PurgePending
from pom_actors.store.zones import ZoneInUse

from .validation import Fault, printable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:pom:problem:"           # + the `error` code: the stable `type` of each kind

# Every `error` code the gateway answers, with its problem `title` (docs/api.md, "Errors").
TITLES = {
    "unauthorized": "No valid API token",
    "forbidden": "Role not allowed",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "illegal_transition": "Not allowed in this state",
    "conflict": "Conflict",
    "too_large": "Request body too large",
    "invalid": "Invalid request",
    "invalid_strategy": "Invalid strategy",
    "invalid_contacts": "Contact rows refused",
    "invalid_filter": "Invalid filter expression",
    "invalid_file": "Import file refused",
    "unavailable": "Service unavailable",
    "timeout": "No answer in time",
    "internal": "Internal error",
}


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
    """A problem document (`application/problem+json`) that renders whatever text an error echoes: should an unpaired surrogate slip into
    a message, it is written as a `\\udxxx` escape instead of failing to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode("ascii")

    media_type = PROBLEM_JSON


def problem(status: int, error: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """The body of an error: RFC 9457's members, then `error`, `message` and `extensions`."""
    return {"type": PROBLEM_TYPE + error, "title": TITLES[error], "status": status, "detail": detail,
            "error": error, "message": detail, **extensions}


def _error(status: int, error: str, detail: str, **extensions: Any) -> JSONResponse:
    return ErrorResponse(status_code=status, content=problem(status, error, detail, **extensions))


def _faults(errors: list[dict]) -> str:
    """A `detail` for a list of faults: the first, and how many more."""
    if not errors:
        return "the request was refused"
    first = errors[0]
    where = first.get("path") or (f"line {first['line']}" + (f" {first['field']}" if first.get("field") else "")
                                  if "line" in first else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{first.get('message', '')}{more}"


def _path(error: dict) -> str:
    """Where a validation error is: its location without the leading `body`, then the path
    a `validation.Fault` found inside that field (a key of a strategy document, say); `body`
    when the body as a whole is at fault (a list of too many items, say)."""
    loc = list(error["loc"])
    if loc[:1] == ["body"]:
        loc = loc[1:] or (["body"] if len(loc) == 1 and not (error.get("ctx") or {}).get("error") else [])
    fault = (error.get("ctx") or {}).get("error")
    if isinstance(fault, Fault):
        loc += fault.path
    return ".".join(printable(str(p)) for p in loc)


async def not_found(_: Request, exc: NotFound) -> JSONResponse:
    return _error(404, "not_found", str(exc))


async def bad_strategy(_: Request, exc: StrategyError) -> JSONResponse:
    return _error(422, "invalid_strategy", _faults(exc.errors), errors=exc.errors)


async def illegal_transition(_: Request, exc: IllegalTransition) -> JSONResponse:
    return _error(409, "illegal_transition", str(exc), state=str(exc.state), event=str(exc.event),
                  allowed=[str(e) for e in allowed_events(exc.state)])


async def state_changed(_: Request, exc: StateChanged) -> JSONResponse:
    return _error(409, "conflict", str(exc))


async def invalid(_: Request, exc: RequestValidationError | pydantic.ValidationError) -> JSONResponse:
    errors = [{"path": _path(e), "message": printable(e["msg"])} for e in exc.errors()]
    return _error(422, "invalid", _faults(errors), errors=errors)


async def unique_violation(_: Request, exc: psycopg.errors.UniqueViolation) -> JSONResponse:
    return _error(409, "conflict", exc.diag.message_detail or str(exc))


async def foreign_key_violation(_: Request, exc: psycopg.errors.ForeignKeyViolation) -> JSONResponse:
    return _error(404, "not_found", exc.diag.message_detail or str(exc))


async def bad_contacts(_: Request, exc: ContactRowError) -> JSONResponse:
    return _error(422, "invalid_contacts", _faults(exc.errors), errors=exc.errors, imported=exc.imported)


async def bad_filter(_: Request, exc: FilterError) -> JSONResponse:
    """A filter expression refused, with the position of the fault in `expression`."""
    errors = [{"path": "expression", **exc.as_dict(), "message": printable(exc.message)}]
    return _error(422, "invalid_filter", _faults(errors), errors=errors)


async def filter_conflict(_: Request, exc: FilterConflict) -> JSONResponse:
    return _error(409, "conflict", str(exc))


async def bad_file(_: Request, exc: FileError) -> JSONResponse:
    """An import file that cannot be imported as a whole (empty, header only, bad header...)."""
    detail = printable(str(exc))
    return _error(422, "invalid_file", detail, errors=[{"path": "file", "message": detail}])


async def import_state(_: Request, exc: ImportStateError) -> JSONResponse:
    return _error(409, "illegal_transition", str(exc), state=exc.state, event=exc.command)


async def bad_zone(_: Request, exc: ZoneError) -> JSONResponse:
    """A zone name, failover or state refused, with the field at fault."""
    errors = [{"path": exc.field, "message": printable(str(exc))}]
    return _error(422, "invalid", _faults(errors), errors=errors)


async def zone_in_use(_: Request, exc: ZoneInUse) -> JSONResponse:
    return _error(409, "conflict", printable(str(exc)))


async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    response = _error(401, "unauthorized", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if exc.invalid else "Bearer"
    return response


async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
    return _error(403, "forbidden", str(exc))


async def last_admin(_: Request, exc: LastAdmin) -> JSONResponse:
    return _error(409, "conflict", str(exc))


async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
    return _error(503, "unavailable", str(exc))


async def no_answer(_: Request, exc: NoAnswer) -> JSONResponse:
    return _error(504, "timeout", str(exc))


async def unknown_agent(_: Request, exc: UnknownAgent | UnknownCall) -> JSONResponse:
    what = "agent" if isinstance(exc, UnknownAgent) else "call"
    return _error(404, "not_found", printable(f"no {what} {exc.args[0]!r}"))


async def illegal_agent_transition(_: Request, exc: IllegalAgentTransition) -> JSONResponse:
    return _error(409, "illegal_transition", str(exc), state=str(exc.state), event=str(exc.event))


async def attachment_refused(_: Request, exc: AttachmentError) -> JSONResponse:
    return _error(409, "conflict", str(exc))


async def conflict(_: Request, exc: AttemptConflict | CampaignInUse | CampaignDisabled | JobEnded
                   | StrategyInUse | ListInUse) -> JSONResponse:
    """A change the resource's state does not allow now (the message says what would)."""
    return _error(409, "conflict", printable(str(exc)))


async def bad_disposition(_: Request, exc: DispositionError | AttributesRefused | CodeError | ScriptError
                          | JobChangeError | ListsError) -> JSONResponse:
    errors = [{"path": exc.field, "message": printable(str(exc))}]
    return _error(422, "invalid", _faults(errors), errors=errors)





async def purge_pending(_: Request, exc: PurgePending) -> JSONResponse:
    return _error(409, "conflict", str(exc))


async def bad_range(_: Request, exc: RangeError) -> JSONResponse:
    """A report's range or bounds refused: the query parameter at fault."""
    errors = [{"path": f"query.{exc.field}", "message": printable(str(exc))}]
    return _error(422, "invalid", _faults(errors), errors=errors)


async def report_limited(_: Request, exc: ReportLimited) -> JSONResponse:
    """A report over a longer range than the database's load allows now (core.reports)."""
    response = _error(503, "unavailable", str(exc), max_range_s=exc.max_range_s, retry_after_s=exc.retry_after_s,
                      because=exc.because)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own: a URL that names no route (404), a method the route does not take
    (405, with `Allow`), and any other HTTPException a dependency raises."""
    path = printable(request.url.path)
    if exc.status_code == 400:          # FastAPI: a body it cannot decode (not UTF-8, say)
        errors = [{"path": "body", "message": f"cannot be read as the route's content type ({exc.detail})"}]
        return _error(422, "invalid", _faults(errors), errors=errors)
    if exc.status_code == 404:
        error, detail = "not_found", f"no route {path}"
    elif exc.status_code == 405:
        error, detail = "method_not_allowed", f"{request.method} is not allowed on {path}"
    else:                    # not raised by the gateway's own code today
        error, detail = ("internal", "internal error") if exc.status_code >= 500 else ("invalid", str(exc.detail))
    extensions = {"errors": [{"path": "", "message": printable(detail)}]} if error == "invalid" else {}
    response = _error(exc.status_code, error, printable(detail), **extensions)
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:          # Starlette names the first matching route's methods only
        response.headers["Allow"] = ", ".join(sorted(_methods(request.app, request.url.path)))
    return response


def _methods(app: FastAPI, path: str) -> set[str]:
    """Every method some route of `app` takes on `path`."""
    return {m for route in iter_route_contexts(app.routes)
            if getattr(route, "path_regex", None) is not None and route.path_regex.match(path)
            for m in (route.methods or ())}


async def internal(request: Request, exc: Exception) -> JSONResponse:
    """Anything unforeseen: a 500 problem that says nothing of the cause (it is logged)."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal", "internal error (logged by the gateway)")


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
    RangeError: bad_range,
    PurgePending: purge_pending,
    ReportLimited: report_limited,
    AttributesRefused: bad_disposition,
    AttemptConflict: conflict,
    CampaignInUse: conflict,
    CampaignDisabled: conflict,
    CodeError: bad_disposition,
    CodeReadOnly: conflict,
    CodeInUse: conflict,
    ScriptError: bad_disposition,
    ScriptInUse: conflict,
    StrategyInUse: conflict,
    ListInUse: conflict,
    JobChangeError: bad_disposition,
    ListsError: bad_disposition,
    JobEnded: conflict,
    ZoneError: bad_zone,
    ZoneInUse: zone_in_use,
    Unauthorized: unauthorized,
    Forbidden: forbidden,
    LastAdmin: last_admin,
    HTTPException: http_error,
    Exception: internal,
}


def install(app: FastAPI) -> None:
    """The handlers, and the OpenAPI hook that declares every route's problems."""
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_problems(app, generate())
        return app.openapi_schema

    app.openapi = openapi


# -- the OpenAPI declaration --------------------------------------------------------------------
class FaultItem(BaseModel):
    """One fault: the dotted `path` of a field (a filter's also `position`, `line`, `column`),
    or the `line` and `field` of a contact row."""
    model_config = ConfigDict(extra="allow")
    message: str
    path: str | None = None
    line: int | None = None
    field: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details; `error` is the machine-readable code (`type` is
    `urn:pom:problem:<error>`), `message` the same text as `detail`."""
    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    error: str
    message: str
    errors: list[FaultItem] | None = None
    state: str | None = None
    event: str | None = None
    allowed: list[str] | None = None


class ValidationProblem(Problem):
    """A 422: every fault with the field at fault (`imported`: the good contact rows stored)."""
    errors: list[FaultItem]
    imported: int | None = None


def raises(*statuses: int) -> Callable:
    """Marks a dependency that may answer `statuses` (the director's 503/504): every route
    that depends on it declares them."""
    def mark(call: Callable) -> Callable:
        call.problems = statuses
        return call
    return mark


def declare(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for what a route answers beyond what `statuses` derives."""
    return {s: {"description": HTTPStatus(s).phrase} for s in statuses}


def _nodes(dependant: Dependant):
    stack = [dependant]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.dependencies)


def statuses(route: RouteContext) -> set[int]:
    """Every error status `route` (as included, with its routers' dependencies and
    `responses`) may answer (see the module's docstring)."""
    out = {int(code) for code in route.responses if str(code).isdigit() and int(code) >= 400}
    for node in _nodes(route.dependant):
        out.update(getattr(node.call, "problems", ()))
        if node.path_params or node.query_params or node.header_params or node.cookie_params or node.body_params:
            out.add(422)
        if node.path_params or node.body_params:
            out.add(404)
    if route.methods - {"GET", "HEAD", "OPTIONS"}:
        out.add(409)
    out.add(413)
    return out


def declare_problems(app: FastAPI, schema: dict[str, Any]) -> None:
    """Each operation of `schema` (FastAPI's document of `app`) gets every status of
    `statuses` with the problem schema (422: `ValidationProblem`); a status the route declared
    with a model or content of its own keeps it. FastAPI's own 422 schema goes."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        own = {str(code): spec for code, spec in route.responses.items()}
        for method in route.methods - {"HEAD"}:
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            for status in sorted(statuses(route)):
                if "model" in own.get(str(status), {}) or "content" in own.get(str(status), {}):
                    continue
                model = ValidationProblem if status == 422 else Problem
                responses[str(status)] = {
                    "description": HTTPStatus(status).phrase,
                    "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
