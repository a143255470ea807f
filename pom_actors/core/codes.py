"""Completion codes: the outcome of one attempt, and what that outcome implies.

The flags drive the next-step logic and the reports, so they are data, not scattered ifs:
- final: conclusive for the contact (reached, delivered, or never reachable by retrying);
- contact_uncallable: no further attempt on any address of this contact in this job;
- address_uncallable: this address is useless; move to the next one;
- human_contact: a person was reached;
- counts_as_abandon: counts toward the nuisance (abandoned call) rate.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

CODE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED = frozenset({"default"})


@dataclass(frozen=True)
class CompletionCode:
    name: str
    final: bool = False
    contact_uncallable: bool = False
    address_uncallable: bool = False
    human_contact: bool = False
    counts_as_abandon: bool = False
    system: bool = True
    enabled: bool = True        # a disabled custom code is not offered to agents nor settable


def _codes(*codes: CompletionCode) -> dict[str, CompletionCode]:
    return {c.name: c for c in codes}


SYSTEM_CODES: dict[str, CompletionCode] = _codes(
    # outcomes of a voice attempt
    CompletionCode("answer_human", final=True, human_contact=True),
    CompletionCode("answer_machine"),
    CompletionCode("busy"),
    CompletionCode("no_answer"),
    CompletionCode("fax", address_uncallable=True),
    CompletionCode("invalid_number", address_uncallable=True),
    CompletionCode("network_refusal"),
    CompletionCode("call_failed"),
    # a live answer not connected to an agent in time (agent-based campaigns)
    CompletionCode("abandoned", counts_as_abandon=True),
    # a preview card the agent passed on: the contact was not dialled
    CompletionCode("skipped"),
    # outcomes of SMS, e-mail and webhook attempts
    CompletionCode("delivered", final=True),
    CompletionCode("bounced", address_uncallable=True),
    CompletionCode("sms_failed"),
    CompletionCode("webhook_failed"),
    CompletionCode("timeout"),
    # restrictions decided before an attempt leaves (rule engine, strategy)
    CompletionCode("dnc_restricted", address_uncallable=True),
    CompletionCode("window_restricted"),
    CompletionCode("max_attempts_restricted", address_uncallable=True),
    CompletionCode("nuisance_restricted"),
    CompletionCode("channel_restricted"),
    CompletionCode("last_code_restricted", final=True, contact_uncallable=True),
    CompletionCode("no_address"),
    # operator and recovery outcomes
    CompletionCode("cancelled", final=True, contact_uncallable=True),
    # an order whose fate is unknowable after a crash: held for review, never redialled
    CompletionCode("in_doubt", final=True, contact_uncallable=True),
)


FLAGS = ("final", "contact_uncallable", "address_uncallable", "human_contact", "counts_as_abandon")


class CodeError(ValueError):
    """A custom code refused, with the field at fault (a 422 at the gateway)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def name_fault(name: str) -> str | None:
    """Why `name` cannot be a custom code's: its form, a reserved word or a system code."""
    if name in SYSTEM_CODES:
        return f"custom code {name!r} clashes with a system code"
    if name in RESERVED or not CODE_NAME.match(name):
        return f"custom code name {name!r} must match {CODE_NAME.pattern} and not be one of {sorted(RESERVED)}"
    return None


def custom_code(name: str, **flags: bool) -> CompletionCode:
    """A campaign's custom code made through the API (CodeError at `name` or at a flag)."""
    if (fault := name_fault(name)) is not None:
        raise CodeError("name", fault)
    for flag, value in flags.items():
        if flag not in FLAGS or not isinstance(value, bool):
            raise CodeError(flag, f"{flag!r} is not a flag of a code (one of {', '.join(FLAGS)}), true or false")
    return CompletionCode(name, system=False, **flags)


class CodeBook:
    """The system codes plus one campaign's custom codes."""

    def __init__(self, custom: Iterable[CompletionCode] = ()):
        self._codes = dict(SYSTEM_CODES)
        for code in custom:
            self.add(code)

    def add(self, code: CompletionCode) -> None:
        """One more custom code; ValueError (the book unchanged) for a clash or a bad name."""
        if code.name in self._codes and code.name not in SYSTEM_CODES:
            raise ValueError(f"custom code {code.name!r} is defined twice")
        if (fault := name_fault(code.name)) is not None:
            raise ValueError(fault)
        self._codes[code.name] = replace(code, system=False)

    def __contains__(self, name: object) -> bool:
        return name in self._codes

    def __getitem__(self, name: str) -> CompletionCode:
        try:
            return self._codes[name]
        except KeyError:
            raise KeyError(f"unknown completion code {name!r}") from None

    def __iter__(self) -> Iterator[CompletionCode]:
        return iter(self._codes.values())

    def names(self) -> list[str]:
        return list(self._codes)
