"""The campaign strategy: handlers (call, sms, email, custom webhook) and their result processors.

A strategy is a user document (YAML or JSON). `parse_strategy` turns it into a validated model
or refuses it with EVERY fault at once, each with the dotted path of the field at fault
(`handlers.call.results.busy.after`), because an administrator fixing a document one error per
round trip is the slow path. Shape faults come from pydantic; cross-field faults (unknown
handler or code, goto loops without exit, templates naming missing attributes) from `_Checker`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from .codes import FLAGS, CodeBook, CompletionCode
from .outbound import OutboundPolicy
from .scripts import NAME as SCRIPT_NAME, SCRIPT_TEXT_MAX, SCRIPT_URL_MAX, AgentScript
from .templates import placeholders
from .windows import ContactWindow, parse_local_time

ADDRESS_FIELDS = ("phone1", "phone2", "email")
STANDARD_ATTRIBUTES = frozenset({"first_name", "last_name", "phone1", "phone2", "email", "external_id"})
DEFAULT_ADDRESSES = {"call": ["phone1", "phone2"], "sms": ["phone1", "phone2"], "email": ["email"]}
HANDLER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MAX_DELAY_S = 30 * 86400
MAX_RETRIES = 100
# Size bounds (docs/strategy.md): generous for real campaigns, and they keep validation cheap.
MAX_HANDLERS = 1000
MAX_CUSTOM_CODES = 200
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_DURATION_TEXT = 64
# Each handler's texts and collections (docs/strategy.md): a message (an e-mail body) as long as
# an agent script, a subject, a sender or caller id (an e-mail address at most), a webhook URL
# and headers, the addresses tried, and results naming at most every code a campaign can have.
MAX_MESSAGE = 65_536
MAX_SUBJECT = 1000
MAX_SENDER = 320
MAX_URL = 4096
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 50, 256, 8192
MAX_ADDRESSES, MAX_ADDRESS_NAME = 20, 200
MAX_RESULTS = 300
MAX_REF = 64                    # a handler or code name (their patterns allow no more)
MAX_SKILLS = 100                # skills a handler's agents need (as an agent has at most)
SCHEMA_ID = "https://pom-actors.dev/schemas/strategy.schema.json"

# Fields each action uses; those in _REQUIRED must be given, the others are optional.
_USES: dict[str, frozenset[str]] = {
    "done": frozenset(),
    "goto": frozenset({"handler"}),
    "retry": frozenset({"after", "max", "otherwise"}),
    "next_address": frozenset({"otherwise"}),
    "wait_until": frozenset({"at", "max", "otherwise"}),
    "wait_window": frozenset({"max", "otherwise"}),
}
_REQUIRED: dict[str, frozenset[str]] = {
    "goto": frozenset({"handler"}), "retry": frozenset({"after", "max"}), "wait_until": frozenset({"at"}),
}
_OPTIONAL_FIELDS = ("handler", "after", "max", "at", "otherwise")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SHORTHAND = re.compile(r"^(?:(done|next_address|wait_window)|goto\s+(\S+)|retry\s+(\S+)\s+x(\d+))$")
_DURATION_SCHEMA = {"anyOf": [{"type": "number"},
                              {"type": "string", "maxLength": MAX_DURATION_TEXT,
                               "pattern": r"^\s*-?(\d+(\.\d+)?\s*[smhdw]?\s*)+$"}]}
_TIME_SCHEMA = {"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2})?$"}


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string like "45s", "30m", "2h", "1d", "1h30m" or "600"."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_DURATION_TEXT:  # the unit pattern backtracks: its time grows with the square
        raise ValueError(f"a duration is at most {MAX_DURATION_TEXT} characters")
    text = value.strip().lower()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("-").strip()
    try:
        return sign * float(body)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(body)
    if not parts or _DURATION_PART.sub("", body).strip():
        raise ValueError(f"{value!r} is not a duration; use seconds or e.g. '45s', '30m', '2h', '1d'")
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)


def _local_time(value: Any) -> Any:
    if isinstance(value, dt.time) and value.tzinfo is not None:
        raise ValueError("a time of day here is contact-local; give it without a zone")
    return value


Seconds = Annotated[float, pydantic.BeforeValidator(parse_duration), pydantic.WithJsonSchema(_DURATION_SCHEMA)]
LocalTime = Annotated[dt.time, pydantic.BeforeValidator(parse_local_time), pydantic.AfterValidator(_local_time), pydantic.WithJsonSchema(_TIME_SCHEMA)]


PACING_MODES = ("preview", "progressive", "predictive", "cruise_control", "time_based", "skill_based")
# Modes that put calls through to agents: a call handler in one of them makes its job
# agent-based (the Agent Manager attaches agents to it; its license pool follows the mode).
AGENT_MODES = frozenset({"preview", "progressive", "predictive", "cruise_control", "skill_based"})
MAX_WRAP_UP_S = 3600.0
SKILL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")     # skills and agent groups
MAX_AGENT_GROUPS = 100                  # groups an agent belongs to, or a handler names


class Pacing(BaseModel):
    """How a handler paces its attempts: the mode (core/pacing), the mode's own settings,
    and limits that hold in every mode (None = unlimited)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["preview", "progressive", "predictive", "cruise_control", "time_based", "skill_based"] = Field(
        "time_based", description="time_based paces by the limits alone; the others pace by the agents of the job")
    settings: dict[str, Any] = Field(default_factory=dict, description=(
        "the mode's parameters (docs/pacing.md), e.g. {target: 0.03} for predictive; not for time_based"))
    max_concurrent: int | None = Field(None, ge=1)
    attempts_per_second: float | None = Field(None, gt=0)

    @pydantic.model_validator(mode="after")
    def _settings(self) -> "Pacing":
        if self.mode == "time_based":
            if self.settings:
                raise ValueError("time_based pacing takes no settings: use max_concurrent and attempts_per_second")
            return self
        if "mode" in self.settings:
            raise ValueError("settings.mode: not a setting (the mode is pacing.mode)")
        from .pacing.factory import parse_pacing_config

        try:
            parse_pacing_config({**self.settings, "mode": self.mode})
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:])
            raise ValueError(f"settings.{where}: {first['msg']}" if where else first["msg"]) from None
        return self

    @property
    def agent_based(self) -> bool:
        return self.mode in AGENT_MODES


class AgentNeeds(BaseModel):
    """Which agents an agent-based call handler's job takes, and how many (docs/agents.md)."""

    model_config = ConfigDict(extra="forbid")
    skills: list[str] = Field(default_factory=list, max_length=MAX_SKILLS, description="an agent needs every one of these")
    groups: list[str] = Field(default_factory=list, max_length=MAX_AGENT_GROUPS,
                              description="an agent must be in at least one of these agent groups (none: any agent)")
    min: int = Field(0, ge=0, le=100_000, description="agents the job gets first, before any share")
    max: int | None = Field(None, ge=0, le=100_000, description="agents the job never exceeds (null: no limit)")
    wrap_up: Seconds | None = Field(60.0, description="after-call work limit in seconds (null: none)")

    @pydantic.field_validator("skills", "groups")
    @classmethod
    def _names(cls, names: list[str], info: pydantic.ValidationInfo) -> list[str]:
        what = "skill" if info.field_name == "skills" else "agent group"
        for s in names:
            if not SKILL_NAME.match(s):
                raise ValueError(f"{what} {s!r} must match {SKILL_NAME.pattern}")
        return names

    @pydantic.field_validator("wrap_up")
    @classmethod
    def _wrap(cls, wrap: float | None) -> float | None:
        if wrap is not None and not 0 < wrap <= MAX_WRAP_UP_S:
            raise ValueError(f"wrap-up limit {wrap:g} s must be between 0 and {MAX_WRAP_UP_S:g} s")
        return wrap

    @pydantic.model_validator(mode="after")
    def _range(self) -> "AgentNeeds":
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class Script(BaseModel):
    """The agent script shown with a call: native `text` (a template over the contact's
    attributes), a `url` template the agent desktop opens (values URL-encoded), or the `name`
    of a stored one (core/scripts.py, `/api/v1/agent-scripts`)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=SCRIPT_TEXT_MAX)
    url: str | None = Field(None, max_length=SCRIPT_URL_MAX)
    name: str | None = Field(None, pattern=SCRIPT_NAME.pattern, description="a stored script (agent-scripts)")

    @pydantic.model_validator(mode="after")
    def _one(self) -> "Script":
        if sum(v is not None for v in (self.text, self.url, self.name)) != 1:
            raise ValueError("a script has either text or url, or the name of a stored script")
        return self


class ResultAction(BaseModel):
    """What to do with a work item after an attempt ended with a given completion code."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["done", "goto", "retry", "next_address", "wait_until", "wait_window"]
    handler: str | None = Field(None, max_length=MAX_REF)
    after: Seconds | None = None
    max: int | None = None
    at: LocalTime | None = None
    otherwise: ResultAction | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """"done", "next_address", "wait_window", "goto sms" and "retry 10m x3" as plain strings."""
        if not isinstance(data, str):
            return data
        m = _SHORTHAND.match(data.strip())
        if m is None:
            raise ValueError(f"{data!r} is not an action; use a mapping or one of 'done', 'next_address', "
                             "'wait_window', 'goto <handler>', 'retry <delay> x<count>'")
        bare, target, after, count = m.groups()
        if bare:
            return {"action": bare}
        if target:
            return {"action": "goto", "handler": target}
        return {"action": "retry", "after": after, "max": int(count)}

    @pydantic.field_validator("after")
    @classmethod
    def _sane_delay(cls, after: float | None) -> float | None:
        if after is not None and not 0 <= after <= MAX_DELAY_S:
            raise ValueError(f"delay {after:.0f} s must be between 0 and {MAX_DELAY_S} s (30 days)")
        return after

    @pydantic.field_validator("max")
    @classmethod
    def _sane_count(cls, count: int | None) -> int | None:
        if count is not None and not 1 <= count <= MAX_RETRIES:
            raise ValueError(f"count {count} must be between 1 and {MAX_RETRIES}")
        return count


class Handler(BaseModel):
    """One way of reaching the contact: a channel, its addresses, message and result processors."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["call", "sms", "email", "custom"]
    addresses: list[Annotated[str, Field(max_length=MAX_ADDRESS_NAME)]] = Field(min_length=1, max_length=MAX_ADDRESSES)
    message: str | None = Field(None, max_length=MAX_MESSAGE)
    subject: str | None = Field(None, max_length=MAX_SUBJECT)
    caller_id: str | None = Field(None, max_length=MAX_SENDER)
    sender: str | None = Field(None, max_length=MAX_SENDER)
    url: str | None = Field(None, max_length=MAX_URL)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[Annotated[str, Field(min_length=1, max_length=MAX_HEADER_NAME)],
                  Annotated[str, Field(max_length=MAX_HEADER_VALUE)]] = Field(default_factory=dict, max_length=MAX_HEADERS)
    timeout: Seconds = Field(10.0, gt=0, le=300)
    retries: int = Field(2, ge=0, le=10)
    window: ContactWindow | None = None
    pacing: Pacing = Field(default_factory=Pacing)
    agents: AgentNeeds | None = None
    script: Script | None = None
    ring_timeout: Seconds = 15.0
    results: dict[Annotated[str, Field(max_length=MAX_REF)], ResultAction] = Field(default_factory=dict,
                                                                                  max_length=MAX_RESULTS)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_addresses(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "addresses" not in data and data.get("type") in DEFAULT_ADDRESSES:
            return {**data, "addresses": DEFAULT_ADDRESSES[data["type"]]}
        return data

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _upper(cls, method: Any) -> Any:
        return method.upper() if isinstance(method, str) else method

    @pydantic.field_validator("ring_timeout")
    @classmethod
    def _ring(cls, ring: float, info: pydantic.ValidationInfo) -> float:
        if info.data.get("type") == "call" and not 15 <= ring <= 120:
            raise ValueError(f"ring timeout {ring:g} s must be between 15 and 120 s")
        if ring <= 0:
            raise ValueError("ring timeout must be positive")
        return ring

    @property
    def channel(self) -> str:
        return self.type

    @property
    def agent_based(self) -> bool:
        return self.type == "call" and self.pacing.agent_based


class CustomCode(BaseModel):
    """A campaign's own completion code (e.g. set by an agent or a webhook), with its flags."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=MAX_REF)
    final: bool = False
    contact_uncallable: bool = False
    address_uncallable: bool = False
    human_contact: bool = False
    counts_as_abandon: bool = False

    @pydantic.model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    def code(self) -> CompletionCode:
        return CompletionCode(**self.model_dump(), system=False)


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    version: int = Field(1, ge=1)
    initial: str = Field(max_length=MAX_REF)
    handlers: dict[str, Handler] = Field(min_length=1, max_length=MAX_HANDLERS)
    custom_codes: list[CustomCode] = Field(default_factory=list, max_length=MAX_CUSTOM_CODES)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    _disabled: frozenset[str] = pydantic.PrivateAttr(default_factory=frozenset)
    def codebook(self) -> CodeBook:
        return self._codebook

    @cached_property
    def _codebook(self) -> CodeBook:
        """Built once: next_step asks for it on every outcome (a plain attribute after that)."""
        return CodeBook(c.code() for c in self.custom_codes)

    def with_codes(self, codes: Iterable[CompletionCode]) -> "Strategy":
        """This strategy with a campaign's custom codes (store/codes.py) in place of its own:
        those it declares, as the campaign now has them, and those added through the API.
        Disabled codes stay in the book (its results still route on them, their flags still
        count) but are kept apart: `disabled_codes`, never offered to agents."""
        codes = list(codes)
        custom = [CustomCode(name=c.name, **{f: getattr(c, f) for f in FLAGS}) for c in codes]
        CodeBook(c.code() for c in custom)               # ValueError for a clash, before any use
        copy = self.model_copy(update={"custom_codes": custom})
        copy.__dict__.pop("_codebook", None)             # the cached book is this one's
        copy._disabled = frozenset(c.name for c in codes if not c.enabled)
        return copy

    def disabled_codes(self) -> frozenset[str]:
        """The custom codes disabled through the API (`with_codes`): not for agents to choose."""
        return self._disabled

    def script_names(self) -> set[str]:
        """The stored scripts its handlers name."""
        return {h.script.name for h in self.handlers.values() if h.script is not None and h.script.name}

    def with_scripts(self, found: Mapping[str, AgentScript]) -> "Strategy":
        """This strategy with each stored script its handlers name in place of the name (as
        found: enabled and existing); a handler whose script is not found shows none."""
        handlers = {}
        for key, h in self.handlers.items():
            if h.script is not None and h.script.name is not None:
                stored = found.get(h.script.name)
                h = h.model_copy(update={"script": None if stored is None else Script(**{stored.kind: stored.body})})
            handlers[key] = h
        return self.model_copy(update={"handlers": handlers})


_CUSTOM_CODES = pydantic.TypeAdapter(list[CustomCode])


class StrategyError(ValueError):
    """A refused strategy: `errors` holds every fault as {"path": ..., "message": ...}."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("invalid strategy:\n" + "\n".join(
            f"  {e['path'] or '(document)'}: {e['message']}" for e in errors))


class _Loader(yaml.SafeLoader):
    """YAML 1.1 without sexagesimal numbers, so `start: 21:00` stays the string "21:00"."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def load_document(doc: str | bytes | Mapping) -> Any:
    """The document as data: JSON if it starts with `{`, else YAML (StrategyError if neither)."""
    if isinstance(doc, Mapping):
        return doc
    text = doc.decode("utf-8") if isinstance(doc, bytes) else doc
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as e:
        raise StrategyError([{"path": "", "message": f"not valid JSON: {e}"}]) from None
    except yaml.YAMLError as e:
        raise StrategyError([{"path": "", "message": f"not valid YAML: {e}"}]) from None


def _pydantic_faults(error: pydantic.ValidationError) -> list[dict[str, str]]:
    return [{"path": ".".join(str(p) for p in e["loc"]),
             "message": e["msg"].removeprefix("Value error, ")} for e in error.errors()]


def parse_strategy(doc: str | bytes | Mapping, attributes: Iterable[str] | None = None,
                   outbound: OutboundPolicy | None = None) -> Strategy:
    """Validate a strategy document; raise one StrategyError listing every fault.

    `attributes` are the contact attribute names the target list offers; when given, templates
    and addresses naming any other attribute are faults. `outbound`: the policy a custom
    handler's webhook URL must meet (core/outbound.py), when the strategy is saved through the API.
    """
    raw = load_document(doc)
    if not isinstance(raw, Mapping):
        raise StrategyError([{"path": "", "message": "a strategy must be a mapping (object)"}])
    if oversized := _oversized(raw):
        raise StrategyError(oversized)
    known = None if attributes is None else STANDARD_ATTRIBUTES | set(attributes)
    try:
        strategy: Strategy | None = Strategy.model_validate(raw)
        faults: list[dict[str, str]] = []
    except pydantic.ValidationError as e:
        strategy, faults = None, _pydantic_faults(e)
    faults += _Checker(raw, strategy, known, outbound).faults()
    if faults:
        unique = list({(f["path"], f["message"]): f for f in faults}.values())
        raise StrategyError(unique)
    assert strategy is not None
    return strategy


def _oversized(raw: Mapping) -> list[dict[str, str]]:
    """The collections beyond their bounds: such a document is refused before any other check,
    so a huge one costs no more than counting its entries."""
    bounds = {"handlers": MAX_HANDLERS, "custom_codes": MAX_CUSTOM_CODES}
    return [{"path": field, "message": f"at most {limit} {field.replace('_', ' ')}, not {len(raw[field])}"}
            for field, limit in bounds.items()
            if isinstance(raw.get(field), (Mapping, list)) and len(raw[field]) > limit]


def _salvage(data: Any) -> Handler | None:
    """A handler built from the parts of `data` that validate (faulty fields and result entries
    dropped), so its other fields can still be checked; None when even that fails."""
    if not isinstance(data, Mapping):
        return None
    data = {**data, "results": dict(data["results"])} if isinstance(data.get("results"), Mapping) else dict(data)
    for _ in range(3):
        try:
            return Handler.model_validate(data)
        except pydantic.ValidationError as e:
            for loc in (err["loc"] for err in e.errors()):
                if loc[:1] == ("results",) and len(loc) > 1 and isinstance(data.get("results"), dict):
                    data["results"].pop(loc[1], None)
                elif loc and loc[0] != "type":
                    data.pop(loc[0], None)
    return None


class _Checker:
    """Cross-field faults. Works on whatever parts of the document validated, so that a shape
    fault in one handler does not hide the semantic faults of the others."""

    def __init__(self, raw: Mapping, strategy: Strategy | None, attributes: set[str] | None,
                 outbound: OutboundPolicy | None = None):
        self.attributes, self.outbound = attributes, outbound
        self.errors: list[dict[str, str]] = []
        raw_handlers = raw.get("handlers") if isinstance(raw.get("handlers"), Mapping) else {}
        self.names = {str(n) for n in raw_handlers}
        self.raw_handlers = {str(n): d for n, d in raw_handlers.items() if isinstance(d, Mapping)}
        if strategy is not None:
            self.handlers: dict[str, Handler] = dict(strategy.handlers)
        else:
            self.handlers = {str(n): h for n, h in ((n, _salvage(d)) for n, d in raw_handlers.items())
                             if h is not None}
        self.initial = raw.get("initial")
        self.book = self._codebook(raw.get("custom_codes"))
        self._settled: dict[tuple[str, str], tuple[str, str] | None] = {}

    def fault(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "message": message})

    def faults(self) -> list[dict[str, str]]:
        for name in sorted(self.names):
            if not HANDLER_NAME.match(name):
                self.fault(f"handlers.{name}", f"handler name must match {HANDLER_NAME.pattern}")
        if isinstance(self.initial, str) and self.names and self.initial not in self.names:
            self.fault("initial", self._unknown_handler(self.initial))
        for name, handler in self.handlers.items():
            self._handler(name, handler)
        if self.book is not None:
            self._loops()
        return self.errors

    def _codebook(self, custom: Any) -> CodeBook | None:
        try:
            codes = _CUSTOM_CODES.validate_python(custom or [])
        except pydantic.ValidationError:
            return None  # its faults are already reported by the whole-document pass
        book = CodeBook()
        for i, c in enumerate(codes):
            try:
                book.add(c.code())
            except ValueError as e:
                self.fault(f"custom_codes.{i}.name", str(e))
        return book

    def _unknown_handler(self, name: str) -> str:
        return f"unknown handler {name!r}; known: {self._known}"

    @cached_property
    def _known(self) -> str:
        """The handler names an unknown-handler fault lists: the first 20 (one fault per bad
        goto, so listing all would make the answer grow with the square of the handlers)."""
        names = sorted(self.names)
        return ", ".join(names[:20]) + (f" (+{len(names) - 20} more)" if len(names) > 20 else "")

    def _handler(self, name: str, h: Handler) -> None:
        base = f"handlers.{name}"
        if h.type in ("sms", "email") and not h.message:
            self.fault(f"{base}.message", f"a message is required for {h.type} handlers")
        if h.type == "custom":
            if not h.url:
                self.fault(f"{base}.url", "a url is required for custom handlers")
            elif not re.match(r"^https?://", h.url):
                self.fault(f"{base}.url", "the url must start with http:// or https://")
            elif self.outbound is not None and (refused := self.outbound.url_fault(h.url)) is not None:
                self.fault(f"{base}.url", refused)
        elif h.url is not None:
            self.fault(f"{base}.url", f"only custom handlers have a url, not {h.type}")
        seen: set[str] = set()
        for i, field in enumerate(h.addresses):
            path = f"{base}.addresses.{i}"
            if field in seen:
                self.fault(path, f"address field {field!r} is listed twice")
            seen.add(field)
            if h.type in ("call", "sms") and field == "email" or h.type == "email" and field in ("phone1", "phone2"):
                self.fault(path, f"a {h.type} handler cannot use the {field} address")
            elif self.attributes is not None and field not in self.attributes:
                self.fault(path, f"unknown contact attribute {field!r}")
        if h.type != "call" and h.pacing.mode != "time_based":
            self.fault(f"{base}.pacing.mode", f"only call handlers pace by agents; a {h.type} handler is time_based")
        if h.pacing.mode == "preview" and self.book is not None:
            for i, code in enumerate(h.pacing.settings.get("skip_codes") or ()):
                if code not in self.book:
                    self.fault(f"{base}.pacing.settings.skip_codes.{i}",
                               f"unknown completion code {code!r}: a system code or one of custom_codes")
        for field in ("agents", "script"):
            if getattr(h, field) is not None and not h.agent_based:
                self.fault(f"{base}.{field}", f"{field} applies to call handlers with an agent-based pacing mode "
                                              f"({', '.join(sorted(AGENT_MODES))})")
        if h.script is not None and h.script.url is not None and not re.match(r"^https?://", h.script.url):
            self.fault(f"{base}.script.url", "the url must start with http:// or https://")
        templates = {"message": h.message, "subject": h.subject, "url": h.url,
                     **{f"headers.{k}": v for k, v in h.headers.items()}}
        if h.script is not None:
            templates.update({"script.text": h.script.text, "script.url": h.script.url})
        for field, template in templates.items():
            if template is not None:
                self._template(f"{base}.{field}", template)
        for key, action in h.results.items():
            has_window = h.window is not None or bool(self.raw_handlers.get(name, {}).get("window"))
            self._result(f"{base}.results", key, action, has_window)

    def _template(self, path: str, template: str) -> None:
        try:
            names = placeholders(template)
        except ValueError as e:
            self.fault(path, f"bad template: {e}")
            return
        missing = sorted(names - self.attributes) if self.attributes is not None else []
        if missing:
            self.fault(path, f"template names unknown contact attribute(s) {', '.join(missing)}")

    def _result(self, base: str, key: str, action: ResultAction | None, has_window: bool) -> None:
        if key != "default" and self.book is not None and key not in self.book:
            self.fault(f"{base}.{key}", f"unknown completion code {key!r}")
        path = f"{base}.{key}"
        while action is not None:
            uses = _USES[action.action]
            for field in _OPTIONAL_FIELDS:
                given = getattr(action, field) is not None
                if given and field not in uses:
                    self.fault(f"{path}.{field}", f"not used by action {action.action}")
                elif not given and field in _REQUIRED.get(action.action, ()):
                    self.fault(f"{path}.{field}", f"required for action {action.action}")
            if action.action == "goto" and action.handler is not None and action.handler not in self.names:
                self.fault(f"{path}.handler", self._unknown_handler(action.handler))
            if action.action == "wait_window" and not has_window:
                self.fault(f"{path}.action", "wait_window needs the handler to have a window")
            if action.otherwise is None or "otherwise" not in uses:
                break
            action, path = action.otherwise, f"{path}.otherwise"

    def _loops(self) -> None:
        """A goto cycle that an outcome repeating forever never leaves is a fault.

        Retry counters never reset and next_address runs out, so in the long run an outcome's
        processor behaves like its final `otherwise`; following those per code from every
        handler finds the cycles in which gotos alone keep the contact going, immediately.
        Every handler has at most one such successor per code, so one walk over the handlers
        finds all of a code's cycles, and the codes no processor names share one walk: the work
        grows with the handlers times the codes named in `results`, both bounded.
        """
        assert self.book is not None
        named = {key for h in self.handlers.values() for key in h.results}
        order = sorted(self.handlers)
        shared: list[tuple[tuple[str, ...], str]] | None = None
        found: dict[tuple[tuple[str, ...], str], list[str]] = {}
        for code in self.book:
            if code.contact_uncallable:
                continue                                  # no processor runs
            if code.name in named:
                cycles = self._cycles(code, order)
            elif code.address_uncallable:
                continue                                  # no processor runs: `default` is skipped
            else:                                         # every handler answers with `default`
                shared = self._cycles(code, order) if shared is None else shared
                cycles = shared
            for cycle in cycles:
                found.setdefault(cycle, []).append(code.name)
        for (cycle, path), codes in found.items():
            shown = ", ".join(codes[:5]) + (f" (+{len(codes) - 5} more)" if len(codes) > 5 else "")
            self.fault(path, f"goto loop with no exit: {' -> '.join([*cycle, cycle[0]])} never ends "
                             f"for code(s) {shown}")

    def _cycles(self, code: CompletionCode, order: list[str]) -> list[tuple[tuple[str, ...], str]]:
        """`code`'s cycles as (handlers from the least name, path of that one's processor), in
        the order walks from each handler in `order` meet them; each handler is stepped once."""
        cycles: list[tuple[tuple[str, ...], str]] = []
        done: set[str] = set()
        for start in order:
            walk: list[tuple[str, str]] = []
            at: dict[str, int] = {}                       # position of each handler on this walk
            current: str | None = start
            while current is not None and current not in done and current not in at:
                at[current] = len(walk)
                step = self._long_run(current, code)
                if step is None:
                    current = None
                else:
                    walk.append((current, step[1]))
                    current = step[0]
            if current is not None and current in at:
                cycle = walk[at[current]:]
                first = min(range(len(cycle)), key=lambda i: cycle[i][0])
                cycle = cycle[first:] + cycle[:first]
                cycles.append((tuple(h for h, _ in cycle), cycle[0][1]))
            done.update(at)
        return cycles

    def _long_run(self, name: str, code: CompletionCode) -> tuple[str, str] | None:
        """(goto target, path of the processor) that `code` settles into at `name`, or None when
        it ends or waits (a wait is paced by time, not an immediate loop)."""
        if code.contact_uncallable:
            return None
        results = self.handlers[name].results
        key = code.name if code.name in results else None
        if key is None and not code.address_uncallable and "default" in results:
            key = "default"
        if key is None:
            return None
        if (name, key) not in self._settled:
            self._settled[(name, key)] = self._settle(name, key)
        return self._settled[(name, key)]

    def _settle(self, name: str, key: str) -> tuple[str, str] | None:
        """`_long_run` of the processor `key` at `name`, walked once for all the codes using it."""
        action: ResultAction | None = self.handlers[name].results[key]
        path = f"handlers.{name}.results.{key}"
        while action is not None:
            if action.action == "goto":
                return (action.handler, path) if action.handler in self.handlers else None
            bounded = action.action in ("retry", "next_address") or action.max is not None
            if action.action == "done" or not bounded:
                return None
            action, path = action.otherwise, f"{path}.otherwise"
        return None


def strategy_json_schema() -> dict:
    """The published JSON Schema of a strategy document (docs/strategy.schema.json)."""
    schema = Strategy.model_json_schema()
    defs = schema["$defs"]
    defs["ResultAction"] = {"anyOf": [
        defs["ResultAction"],
        {"type": "string", "pattern": _SHORTHAND.pattern,
         "description": "shorthand: done | next_address | wait_window | goto <handler> | retry <delay> x<count>"},
    ]}
    defs["CustomCode"] = {"anyOf": [defs["CustomCode"], {"type": "string", "description": "a code name, no flags"}]}
    from .pacing.schema import pacing_settings_rules

    settings_defs, rules = pacing_settings_rules()      # each mode's settings, checked as in Python
    defs.update(settings_defs)
    defs["Pacing"]["allOf"] = rules
    defs["Pacing"]["properties"]["settings"]["description"] = (
        "the mode's parameters (docs/pacing.md), e.g. {target: 0.03} for predictive: those of "
        "<Mode>Settings for the mode; none for time_based")
    handler = defs["Handler"]
    handler["required"] = [r for r in handler.get("required", []) if r != "addresses"]
    handler["properties"]["addresses"]["description"] = (
        "contact attribute names tried in order; default phone1, phone2 (call, sms) or email (email)")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
