"""System and campaign rules checked before every attempt, a batch at a time.

The RuleEngine actor is a shell over `evaluate`: managers send it the candidates they claimed,
it answers one `Verdict` per candidate. Each verdict names the rule that decided it so the
attempt ledger can say *why* a contact was not tried.

Rules are rows of the `rules` table (`Rule`); a campaign's effective set (`RuleSet`) is the
system rules overridden kind by kind by that campaign's rules. Checks run cheapest and most
final first (see `CHECK_ORDER` and docs/rules.md), and the first restriction decides.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import Field, StrictInt

from pom_actors.core.nuisance import NuisanceTracker
from pom_actors.core.windows import ContactWindow, is_open

ALLOWED = "allowed"
T = TypeVar("T")


class RuleKind(StrEnum):
    DNC_ADDRESS = "dnc_address"
    DNC_CONTACT = "dnc_contact"
    WINDOW = "window"
    MAX_ATTEMPTS_CONTACT = "max_attempts_contact"
    MAX_ATTEMPTS_ADDRESS = "max_attempts_address"
    NUISANCE = "nuisance"
    CHANNEL = "channel"
    LAST_CODE = "last_code"
    NO_ADDRESS = "no_address"


# The completion code a restriction by each kind gives the attempt.
RESTRICTION_CODES: Mapping[RuleKind, str] = {
    RuleKind.NO_ADDRESS: "invalid_number",
    RuleKind.DNC_CONTACT: "dnc_restricted",
    RuleKind.DNC_ADDRESS: "dnc_restricted",
    RuleKind.CHANNEL: "channel_restricted",
    RuleKind.LAST_CODE: "last_code_restricted",
    RuleKind.MAX_ATTEMPTS_CONTACT: "max_attempts_restricted",
    RuleKind.MAX_ATTEMPTS_ADDRESS: "max_attempts_restricted",
    RuleKind.WINDOW: "window_restricted",
    RuleKind.NUISANCE: "nuisance_restricted",
}

# Order in which `evaluate` checks: set lookups and final facts first, the window (time-zone
# arithmetic) and the nuisance count (shared state) last.
CHECK_ORDER: tuple[RuleKind, ...] = (
    RuleKind.NO_ADDRESS, RuleKind.DNC_CONTACT, RuleKind.DNC_ADDRESS, RuleKind.CHANNEL,
    RuleKind.LAST_CODE, RuleKind.MAX_ATTEMPTS_CONTACT, RuleKind.MAX_ATTEMPTS_ADDRESS,
    RuleKind.WINDOW, RuleKind.NUISANCE,
)

# Compliance rules that apply even without a row; only an explicit disabled row turns them off.
ALWAYS_ON: frozenset[RuleKind] = frozenset(
    {RuleKind.DNC_ADDRESS, RuleKind.DNC_CONTACT, RuleKind.WINDOW, RuleKind.NO_ADDRESS})


# Bounds of a rule's lists (a 422 at the field beyond them): channels and completion codes are
# names of at most 64 characters (core/codes.py), and a campaign has at most 200 custom codes
# besides the system's.
MAX_NAME_CHARS = 64
MAX_CHANNELS = 16
MAX_CODES = 300
_Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class _MaxParams(_Params):
    max: Annotated[StrictInt, Field(ge=1)]


class _NuisanceParams(_Params):
    max: Annotated[StrictInt, Field(ge=1)]
    period_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _ChannelParams(_Params):
    blocked: list[_Name] = Field(max_length=MAX_CHANNELS)


class _LastCodeParams(_Params):
    codes: list[_Name] = Field(max_length=MAX_CODES)


_PARAMS: Mapping[RuleKind, type[_Params]] = {
    RuleKind.MAX_ATTEMPTS_CONTACT: _MaxParams,
    RuleKind.MAX_ATTEMPTS_ADDRESS: _MaxParams,
    RuleKind.NUISANCE: _NuisanceParams,
    RuleKind.CHANNEL: _ChannelParams,
    RuleKind.LAST_CODE: _LastCodeParams,
    RuleKind.DNC_ADDRESS: _Params,
    RuleKind.DNC_CONTACT: _Params,
    RuleKind.WINDOW: _Params,
    RuleKind.NO_ADDRESS: _Params,
}


def params_faults(kind: RuleKind, params: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """(path inside `params`, reason) of every fault of a `kind` rule's parameters (what
    `Rule` refuses in one message, for an editor that names each field)."""
    try:
        _PARAMS[kind].model_validate(params)
    except pydantic.ValidationError as exc:
        return [(tuple(err["loc"]), err["msg"]) for err in exc.errors()]
    return []


class Rule(pydantic.BaseModel):
    """One row of the `rules` table; `campaign_id` None makes it a system rule.

    A disabled row only switches its kind off, so it may omit params; given params are checked.
    """

    kind: RuleKind
    campaign_id: int | None = None
    enabled: bool = True
    params: dict[str, Any] = {}

    @pydantic.model_validator(mode="after")
    def _check_params(self) -> "Rule":
        if not self.enabled and not self.params:
            return self
        try:
            parsed = _PARAMS[self.kind].model_validate(self.params)
        except pydantic.ValidationError as exc:
            faults = "; ".join(
                f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"]
                else f"params: {err['msg']}"
                for err in exc.errors())
            raise ValueError(f"{self.kind} rule: {faults}") from None
        self.params = parsed.model_dump()
        return self


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(kind=RuleKind.NO_ADDRESS),
    Rule(kind=RuleKind.DNC_CONTACT),
    Rule(kind=RuleKind.DNC_ADDRESS),
    Rule(kind=RuleKind.WINDOW),
    Rule(kind=RuleKind.MAX_ATTEMPTS_CONTACT, params={"max": 10}),
    Rule(kind=RuleKind.MAX_ATTEMPTS_ADDRESS, params={"max": 5}),
    Rule(kind=RuleKind.NUISANCE, params={"max": 3, "period_s": 86400}),
)


class RuleSet:
    """The enabled rules in force for one campaign, pre-digested for the hot path."""

    def __init__(self, rules: Mapping[RuleKind, Rule]):
        self.rules: dict[RuleKind, Rule] = {k: r for k, r in rules.items() if r.enabled}
        self.max_contact: int | None = self._param(RuleKind.MAX_ATTEMPTS_CONTACT, "max")
        self.max_address: int | None = self._param(RuleKind.MAX_ATTEMPTS_ADDRESS, "max")
        self.nuisance_max: int | None = self._param(RuleKind.NUISANCE, "max")
        period = self._param(RuleKind.NUISANCE, "period_s")
        self.nuisance_period: timedelta | None = None if period is None else timedelta(seconds=period)
        self.blocked_channels = frozenset(self._param(RuleKind.CHANNEL, "blocked") or ())
        self.restricted_codes = frozenset(self._param(RuleKind.LAST_CODE, "codes") or ())

    def _param(self, kind: RuleKind, name: str) -> Any:
        rule = self.rules.get(kind)
        return None if rule is None else rule.params[name]

    @classmethod
    def compile(cls, rules: Iterable[Rule], campaign_id: int | None) -> "RuleSet":
        """System rules, overridden kind by kind by `campaign_id`'s rules (others ignored).

        DNC, window and no-address checks are on unless a row disables them. Two rows of one
        kind in one scope are refused: which one wins would be arbitrary.
        """
        scopes: dict[int | None, dict[RuleKind, Rule]] = {None: {}, campaign_id: {}}
        for rule in rules:
            scope = scopes.get(rule.campaign_id)
            if scope is None:
                continue
            if rule.kind in scope:
                owner = "system" if rule.campaign_id is None else f"campaign {rule.campaign_id}"
                raise ValueError(f"two {owner} rules of kind {rule.kind}")
            scope[rule.kind] = rule
        effective = {kind: Rule(kind=kind) for kind in RuleKind if kind in ALWAYS_ON}
        effective.update(scopes[None])
        effective.update(scopes[campaign_id])
        return cls(effective)

    @classmethod
    def default(cls) -> "RuleSet":
        """The system defaults (`DEFAULT_RULES`)."""
        return cls.compile(DEFAULT_RULES, None)

    def enabled(self, kind: RuleKind) -> bool:
        return kind in self.rules

    @property
    def nuisance_period_s(self) -> float | None:
        """Look-back of the nuisance rule: the tracker's horizon must cover it."""
        return None if self.nuisance_period is None else self.nuisance_period.total_seconds()


@dataclass(slots=True)
class Candidate:
    """One claimed work item about to be attempted; verdicts come back keyed by `key`."""

    key: int
    campaign_id: int
    contact_id: int
    channel: str
    address: str | None
    zones: tuple[str, ...]
    window: ContactWindow | None
    attempts_contact: int
    attempts_address: int
    last_code: str | None


# The DNC entries a batch met: {(campaign id, address or contact id): the DNC list's name}.
DncHits = Mapping[tuple[int, T], str]


@dataclass(slots=True)
class Verdict:
    key: int
    allowed: bool
    rule: str
    reason: str
    code: str | None


def _restrict(c: Candidate, kind: RuleKind, reason: str) -> Verdict:
    return Verdict(c.key, False, kind.value, reason, RESTRICTION_CODES[kind])


def _window_fault(window: ContactWindow | None, zones: tuple[str, ...], now: datetime) -> str | None:
    """Why the window is closed for these zones now, or None when open in all of them."""
    if is_open(window, zones, now):
        return None
    if not zones:
        return "no known time zone for the address"
    closed = [z for z in zones if not is_open(window, (z,), now)]
    return f"outside window in {', '.join(closed or zones)}"


def evaluate(candidates: Sequence[Candidate], rules: dict[int, RuleSet] | RuleSet, now: datetime,
             dnc_addresses: DncHits[str], dnc_contacts: DncHits[int],
             nuisance: NuisanceTracker) -> list[Verdict]:
    """One verdict per candidate, in order; the first failing check in `CHECK_ORDER` decides.

    The DNC hits are per campaign — {(campaign id, address or contact id): DNC list name} —
    since each campaign checks the DNC lists that apply to it (docs/rules.md).

    `rules` is one RuleSet for all candidates or one per campaign id. Allowed candidates count
    at once: they are recorded in `nuisance` and towards the batch's attempt maxima, so two
    candidates for one address in a batch cannot both slip under a limit.
    """
    if now.tzinfo is None:
        raise ValueError("evaluate needs a timezone-aware `now`")
    batch_contact: Counter[tuple[int, int]] = Counter()
    batch_address: Counter[tuple[int, str]] = Counter()
    windows: dict[tuple[int, tuple[str, ...]], str | None] = {}
    verdicts: list[Verdict] = []
    for c in candidates:
        if isinstance(rules, RuleSet):
            rs = rules
        else:
            rs = rules.get(c.campaign_id)
            if rs is None:
                raise KeyError(f"no rule set for campaign {c.campaign_id}")
        verdict = _check(c, rs, now, dnc_addresses, dnc_contacts, nuisance,
                         batch_contact, batch_address, windows)
        if verdict.allowed:
            batch_contact[c.campaign_id, c.contact_id] += 1
            if c.address:
                batch_address[c.campaign_id, c.address] += 1
                nuisance.record(c.address, now)
        verdicts.append(verdict)
    return verdicts


def _check(c: Candidate, rs: RuleSet, now: datetime, dnc_addresses: DncHits[str],
           dnc_contacts: DncHits[int], nuisance: NuisanceTracker,
           batch_contact: Counter[tuple[int, int]], batch_address: Counter[tuple[int, str]],
           windows: dict[tuple[int, tuple[str, ...]], str | None]) -> Verdict:
    on = rs.rules
    if RuleKind.NO_ADDRESS in on and not c.address:
        return _restrict(c, RuleKind.NO_ADDRESS, f"no {c.channel} address")
    if RuleKind.DNC_CONTACT in on and (listed := dnc_contacts.get((c.campaign_id, c.contact_id))):
        return _restrict(c, RuleKind.DNC_CONTACT, f"contact on DNC list {listed}")
    if RuleKind.DNC_ADDRESS in on and c.address and (listed := dnc_addresses.get((c.campaign_id, c.address))):
        return _restrict(c, RuleKind.DNC_ADDRESS, f"address on DNC list {listed}")
    if c.channel in rs.blocked_channels:
        return _restrict(c, RuleKind.CHANNEL, f"channel {c.channel} blocked")
    if c.last_code is not None and c.last_code in rs.restricted_codes:
        return _restrict(c, RuleKind.LAST_CODE, f"last completion code {c.last_code} ends attempts")
    if rs.max_contact is not None:
        made = c.attempts_contact + batch_contact[c.campaign_id, c.contact_id]
        if made >= rs.max_contact:
            return _restrict(c, RuleKind.MAX_ATTEMPTS_CONTACT,
                             f"{made} attempts on contact (max {rs.max_contact})")
    if rs.max_address is not None and c.address:
        made = c.attempts_address + batch_address[c.campaign_id, c.address]
        if made >= rs.max_address:
            return _restrict(c, RuleKind.MAX_ATTEMPTS_ADDRESS,
                             f"{made} attempts on address (max {rs.max_address})")
    if RuleKind.WINDOW in on:
        # Candidates of one handler share a window object, so id() is a cheap batch-local key.
        zones = tuple(c.zones)   # a list after a JSON round trip; tuples hash
        key = (id(c.window), zones)
        if key not in windows:
            windows[key] = _window_fault(c.window, zones, now)
        fault = windows[key]
        if fault is not None:
            return _restrict(c, RuleKind.WINDOW, fault)
    if rs.nuisance_max is not None and c.address:
        recent = nuisance.count(c.address, now - rs.nuisance_period)
        if recent >= rs.nuisance_max:
            return _restrict(c, RuleKind.NUISANCE,
                             f"{recent} attempts to address in {rs.nuisance_period_s:g} s "
                             f"(max {rs.nuisance_max})")
    return Verdict(c.key, True, ALLOWED, ALLOWED, None)
