"""What an agent's desktop is shown and may answer: the agent script rendered for a contact,
the screen pop of a call, the preview card, and the disposition codes a call may end with.

Pure: the Agent Manager pushes what these build (the `call` and `preview` frames of the Agent
SDK, docs/agent-sdk.md); whoever bridges a call onto an agent builds the screen with
`screen_pop` and hands it to `AgentManagerService.connect(call_id, screen)`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..codes import CodeBook
from ..strategy import MAX_DELAY_S, Handler, Script, Strategy
from ..templates import render

# System codes an agent may end a call with; a campaign's custom codes are always allowed.
AGENT_SYSTEM_CODES = ("answer_human", "answer_machine", "fax", "invalid_number")
CONTACT_FIELDS = ("external_id", "first_name", "last_name", "phone1", "phone2", "email")


class DispositionError(ValueError):
    """A disposition refused: `field` names the field at fault (`code`, `callback_at`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # crosses Ray calls with its field
        return DispositionError, (self.field, str(self))


class _Lenient(dict):
    """A contact mapping in which an attribute it lacks renders empty (a screen pop never
    fails for a missing attribute; strategies are checked against their list when saved)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> None:
        return None


def contact_attributes(contact: Mapping[str, Any]) -> dict[str, Any]:
    """The contact as the desktop and the templates see it: the standard fields and the
    list's own attributes, flat (a standard field wins over a same-named attribute)."""
    attrs = dict(contact.get("attributes") or {})
    attrs.update({k: contact.get(k) for k in CONTACT_FIELDS if k in contact})
    return attrs


def render_script(script: Script | Mapping[str, Any] | None, contact: Mapping[str, Any]) -> dict[str, str] | None:
    """`{"text": ...}` with the contact's attributes substituted, or `{"url": ...}` with each
    value URL-encoded; None without a script."""
    if script is None:
        return None
    if isinstance(script, Mapping):
        script = Script.model_validate(script)
    attrs = contact_attributes(contact)
    if script.text is not None:
        return {"text": render(script.text, _Lenient(attrs))}
    encoded = _Lenient({k: None if v is None else quote(str(v), safe="") for k, v in attrs.items()})
    return {"url": render(script.url or "", encoded)}


def disposition_codes(book: CodeBook, disabled: frozenset[str] = frozenset()) -> list[str]:
    """The codes an agent may choose for a call of a campaign: the agent-settable system codes,
    then the campaign's custom codes not `disabled`."""
    custom = [c.name for c in book if not c.system and c.name not in disabled]
    return [*AGENT_SYSTEM_CODES, *custom]


def screen_pop(call_id: str, job_id: int, contact: Mapping[str, Any], strategy: Strategy,
               handler: str | None = None) -> dict[str, Any]:
    """The screen of a call bridged onto an agent: the contact's attributes, the handler's
    script rendered for it, and the codes the agent may dispose it with."""
    h: Handler | None = strategy.handlers.get(handler) if handler else None
    return {"call_id": call_id, "job_id": job_id, "handler": handler,
            "contact": contact_attributes(contact),
            "script": render_script(h.script if h else None, contact),
            "codes": disposition_codes(strategy.codebook(), strategy.disabled_codes())}


def preview_card(card_id: str, job_id: int, contact: Mapping[str, Any], timeout_s: float | None,
                 script: Script | None = None) -> dict[str, Any]:
    """What a preview offer shows: the contact before the call is placed."""
    return {"card_id": card_id, "job_id": job_id, "contact": contact_attributes(contact),
            "script": render_script(script, contact), "timeout_s": timeout_s}


def check_disposition(code: str, allowed: Iterable[str] | None, callback_at: datetime | None,
                      now: datetime) -> None:
    """Raise DispositionError unless `code` is among `allowed` (None: any code) and a
    call-back time, if given, is aware, in the future and within 30 days."""
    if allowed is not None:
        allowed = list(allowed)
        if code not in allowed:
            raise DispositionError("code", f"unknown disposition code {code!r}; allowed: {', '.join(allowed)}")
    if callback_at is not None:
        if callback_at.tzinfo is None:
            raise DispositionError("callback_at", "a call-back time needs a time zone (e.g. 2026-11-25T18:00:00Z)")
        if callback_at <= now:
            raise DispositionError("callback_at", f"call-back time {callback_at.isoformat()} is not in the future")
        if callback_at > now + timedelta(seconds=MAX_DELAY_S):
            raise DispositionError("callback_at", "a call-back must be within 30 days")
