"""The Agent SDK's wire protocol (docs/agent-sdk.md): JSON text frames over the agent WebSocket
`/api/v1/agents/ws`, one JSON object per frame, each with a `type`.

Client → server: `login`, `logout`, `ready`, `not_ready`, `accept`, `skip`, `dispose`, `ping`.
Server → client: `state`, `preview`, `call`, `error`, `pong`.

`parse(text)` turns one received frame into a message model or a `ProtocolError` naming the
field at fault with a machine-readable code; it never raises, so a bad frame costs the client
an `error` frame and nothing else. `RateLimiter` bounds the frames a connection may send.
`protocol_json_schema()` is the published schema (docs/agent-sdk.schema.json; a unit test
keeps the file current). Pure: no Ray, no I/O.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from pom_actors.core.codes import CODE_NAME

from .validation import printable, text_fault

MAX_MESSAGE_BYTES = 8192          # a client frame larger than this gets `too_large`
RATE_PER_S = 20.0                 # client frames per second a connection may send, sustained
RATE_BURST = 40                   # ... and at once
SCHEMA_ID = "https://pom-actors.dev/schemas/agent-sdk.schema.json"
REASON = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# Error codes (the `code` of an error frame).
TOO_LARGE, NOT_JSON, NOT_OBJECT = "too_large", "not_json", "not_an_object"
MISSING_FIELD, UNKNOWN_TYPE, UNKNOWN_FIELD, INVALID_FIELD = "missing_field", "unknown_type", "unknown_field", "invalid_field"
RATE_LIMITED, NOT_LOGGED_IN, ALREADY_LOGGED_IN = "rate_limited", "not_logged_in", "already_logged_in"
UNKNOWN_AGENT, ILLEGAL_TRANSITION, REJECTED = "unknown_agent", "illegal_transition", "rejected"
UNAVAILABLE, TIMEOUT, REPLACED, INTERNAL = "unavailable", "timeout", "session_replaced", "internal"
FORBIDDEN = "forbidden"
ERROR_CODES = (TOO_LARGE, NOT_JSON, NOT_OBJECT, MISSING_FIELD, UNKNOWN_TYPE, UNKNOWN_FIELD, INVALID_FIELD,
               RATE_LIMITED, NOT_LOGGED_IN, ALREADY_LOGGED_IN, UNKNOWN_AGENT, ILLEGAL_TRANSITION, REJECTED,
               UNAVAILABLE, TIMEOUT, REPLACED, INTERNAL, FORBIDDEN)


def _clean(value: str) -> str:
    if (reason := text_fault(value)) is not None:
        raise ValueError(reason)
    return value


Text = Annotated[str, pydantic.AfterValidator(_clean)]
MessageId = Annotated[str | int, Field(description="any id of the client's; echoed in the error or pong it causes")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: MessageId | None = None

    @pydantic.field_validator("id")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if isinstance(v, str) and (len(v) > 64 or text_fault(v)):
            raise ValueError("an id is at most 64 characters of text")
        if isinstance(v, int) and not -(2**53) <= v <= 2**53:
            raise ValueError("a numeric id must be a safe JSON integer")
        return v


class Login(_Message):
    """Start (or re-attach) this connection's session as agent `agent` (a login name)."""
    type: Literal["login"]
    agent: Text = Field(min_length=1, max_length=100, description="the agent's login name")


class Logout(_Message):
    """End the agent's session (deferred while the agent works a call)."""
    type: Literal["logout"]


class Ready(_Message):
    """The agent is available for calls."""
    type: Literal["ready"]


class NotReady(_Message):
    """The agent is not available, for a reason code (`break`, `lunch`, `training`...)."""
    type: Literal["not_ready"]
    reason: str = Field(pattern=REASON, description="a reason code")


class Accept(_Message):
    """Take the contact of the preview card `card_id`: the call is placed."""
    type: Literal["accept"]
    card_id: Text = Field(min_length=1, max_length=200)


class Skip(_Message):
    """Pass on the preview card `card_id`: it is not dialled; `code`, one of the card's
    `skip_codes` (default: the first), is recorded as the attempt's completion code."""
    type: Literal["skip"]
    card_id: Text = Field(min_length=1, max_length=200)
    code: str | None = Field(None, pattern=CODE_NAME.pattern)


class Dispose(_Message):
    """End the after-call work with a completion code of the campaign (system or custom);
    `callback_at` (ISO 8601 with a zone, within 30 days) asks for a call-back then."""
    type: Literal["dispose"]
    code: str = Field(pattern=CODE_NAME.pattern)
    callback_at: datetime | None = None


class Ping(_Message):
    """Answered by a `pong` with the same id (keep-alive, round-trip measurement)."""
    type: Literal["ping"]


CLIENT_MESSAGES: dict[str, type[_Message]] = {
    "login": Login, "logout": Logout, "ready": Ready, "not_ready": NotReady, "accept": Accept,
    "skip": Skip, "dispose": Dispose, "ping": Ping}


# -- server frames (documented and schema-checked; built as plain dicts) ------------------------
class _Frame(BaseModel):
    model_config = ConfigDict(extra="allow")


class StateFrame(_Frame):
    """Every change of the agent's state, attachment or pending command, in order; also sent
    at login and after a resync (`resync: true`) with the agent as it stands."""
    type: Literal["state"]
    seq: int = Field(description="position in the Agent Manager's change feed (per incarnation)")
    agent: str = Field(description="the agent's login")
    agent_id: int
    state: Literal["logged_out", "not_ready", "ready", "reserved", "on_call", "wrap_up"]
    previous: str | None = Field(description="the state before (null in a resync)")
    event: str = Field(description="login, ready, not_ready, reserve, release, connect, hangup, dispose, "
                                   "wrap_timeout, logout, force_logoff; attach, detach, move, accept; nail, reuse, "
                                   "unnail (the agent's nailed session, reason = its id); resync. "
                                   "A preview card: reserve (reason preview), then accept (reason agent or "
                                   "timeout: dialled) or release (reason skipped, timeout or cancelled)")
    reason: str | None = Field(description="not-ready reason, disposition code, why")
    at: datetime = Field(description="when the state began (business time)")
    job_id: int | None = Field(description="the call's job, else the job the agent is attached to")
    call_id: str | None
    deferred: bool = Field(False, description="a command kept until the call ends (see pending)")
    pending: str | None = Field(description="a deferred not_ready / logout / force_logoff")
    wrap_until: datetime | None = Field(description="when after-call work times out")
    resync: bool = False


class PreviewFrame(_Frame):
    """A preview card: the contact before the call; answer `accept` or `skip` by `expires_at`
    (unanswered, the card times out: `on_timeout` dial — the call is placed and put through to
    this agent — or skip). Logging out, going not ready or disconnecting cancels it."""
    type: Literal["preview"]
    seq: int
    agent: str
    card_id: str
    job_id: int
    contact: dict[str, Any]
    script: dict[str, str] | None = None
    timeout_s: float | None
    expires_at: datetime | None
    on_timeout: Literal["dial", "skip"] = Field("dial", description="what the time-out does with the contact")
    skip_codes: list[str] = Field(default_factory=lambda: ["skipped"],
                                  description="the completion codes a skip may name (the first is the default)")


class CallFrame(_Frame):
    """The screen pop of a call bridged onto the agent: the contact's attributes, the agent
    script rendered for it (`{"text": ...}` or `{"url": ...}`) and the codes to dispose it with."""
    type: Literal["call"]
    seq: int
    agent: str
    call_id: str
    job_id: int
    contact: dict[str, Any]
    script: dict[str, str] | None
    codes: list[str]
    resent: bool = Field(False, description="sent again with a login or resync view: the agent holds this call "
                                            "(a desktop shows a call it already has once)")


class ErrorFrame(_Frame):
    """A message refused; the connection stays open."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["error"]
    code: Literal[ERROR_CODES]  # type: ignore[valid-type]
    field: str | None = Field(description="the field at fault (dotted path), null for the frame as a whole")
    message: str
    id: MessageId | None = None
    state: str | None = None


class PongFrame(_Frame):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pong"]
    id: MessageId | None = None
    at: float = Field(description="the server's Unix time")


SERVER_FRAMES: dict[str, type[_Frame]] = {"state": StateFrame, "preview": PreviewFrame, "call": CallFrame,
                                          "error": ErrorFrame, "pong": PongFrame}


@dataclass(frozen=True)
class ProtocolError:
    """A refused frame: machine-readable `code`, the `field` at fault, and a message."""

    code: str
    field: str | None
    message: str
    id: Any = None
    state: str | None = None

    def frame(self) -> dict[str, Any]:
        out = {"type": "error", "code": self.code, "field": self.field, "message": printable(self.message),
               "id": self.id}
        if self.state is not None:
            out["state"] = self.state
        return out


def _echo(raw: dict) -> Any:
    v = raw.get("id")
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str) and len(v) <= 64 and text_fault(v) is None:
        return v
    if isinstance(v, int) and -(2**53) <= v <= 2**53:
        return v
    return None


def parse(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> _Message | ProtocolError:
    """One client frame as its message, or why it is refused (never raises)."""
    if len(text) > max_bytes or (isinstance(text, str) and len(text) * 4 > max_bytes
                                 and len(text.encode("utf-8", "surrogatepass")) > max_bytes):
        return ProtocolError(TOO_LARGE, None, f"a message is at most {max_bytes} bytes")
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return ProtocolError(NOT_JSON, None, f"not valid JSON: {e}")
    if not isinstance(raw, dict):
        return ProtocolError(NOT_OBJECT, None, f"a message is a JSON object, not {type(raw).__name__}")
    echo = _echo(raw)
    kind = raw.get("type")
    if kind is None:
        return ProtocolError(MISSING_FIELD, "type", "every message has a type", echo)
    model = CLIENT_MESSAGES.get(kind) if isinstance(kind, str) else None
    if model is None:
        shown = printable(kind) if isinstance(kind, str) else repr(kind)[:40]
        return ProtocolError(UNKNOWN_TYPE, "type", f"unknown message type {shown!r}; known: "
                                                   f"{', '.join(CLIENT_MESSAGES)}", echo)
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        field = printable(str(err["loc"][0])) if err["loc"] else None     # messages are flat
        code = {"missing": MISSING_FIELD, "extra_forbidden": UNKNOWN_FIELD}.get(err["type"], INVALID_FIELD)
        message = {MISSING_FIELD: f"{kind} needs the field {field}",
                   UNKNOWN_FIELD: f"{kind} has no field {field}"}.get(code, printable(err["msg"]))
        return ProtocolError(code, field, message, echo)


def encode(frame: dict[str, Any]) -> str:
    """A server frame as JSON text (datetimes in ISO 8601)."""
    return orjson.dumps(frame).decode()


class RateLimiter:
    """A token bucket: `burst` frames at once, `rate` per second sustained."""

    def __init__(self, rate: float = RATE_PER_S, burst: int = RATE_BURST,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def protocol_json_schema() -> dict[str, Any]:
    """The published JSON Schema: one definition per message in `$defs` (client messages and
    server frames), the document itself any client message."""
    defs: dict[str, Any] = {}

    def add(name: str, model: type[BaseModel]) -> dict:
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}

    client = [add(f"client.{k}", m) for k, m in CLIENT_MESSAGES.items()]
    server = [add(f"server.{k}", m) for k, m in SERVER_FRAMES.items()]
    defs["client"] = {"description": "any message a desktop sends", "oneOf": client}
    defs["server"] = {"description": "any frame the gateway sends", "oneOf": server}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "POM Agent SDK messages", "$ref": "#/$defs/client", "$defs": defs}
