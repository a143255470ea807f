"""Agent scripts kept by name (`/api/v1/agent-scripts`): native text — a template over the
contact's attributes — or a URL template the agent desktop opens, named by a strategy's
handler (`script: {name: welcome}`) so that one script serves many strategies and changes
without a new strategy version.

A script is checked when saved: a name the strategies can refer to, a body within the same
bounds as an inline script's, placeholders that are bare attribute names (core/templates.py;
a contact lacking one renders it empty), and for a URL the scheme and a host the outbound
policy allows (core/outbound.py: a loopback, private or link-local address needs
POM_OUTBOUND_ALLOW). A job's managers read the scripts its strategy names when they start
(`Strategy.with_scripts`); a disabled or missing script shows no script."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .outbound import OutboundPolicy
from .templates import placeholders

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
SCRIPT_TEXT_MAX = 65536          # characters of a text script (inline in a strategy too)
SCRIPT_URL_MAX = 4096            # characters of a URL script
Kind = Literal["text", "url"]
KINDS = ("text", "url")


class ScriptError(ValueError):
    """A script refused, with the field at fault (a 422 at the gateway)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AgentScript:
    name: str
    kind: Kind
    body: str


def check_script(name: str, kind: str, body: str, policy: OutboundPolicy) -> AgentScript:
    """The script if it may be stored; ScriptError at `name`, `kind` or `body` otherwise."""
    if not NAME.match(name):
        raise ScriptError("name", f"script name {name!r} must match {NAME.pattern}")
    if kind not in KINDS:
        raise ScriptError("kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
    limit = SCRIPT_TEXT_MAX if kind == "text" else SCRIPT_URL_MAX
    if not 1 <= len(body) <= limit:
        raise ScriptError("body", f"a {kind} script has 1 to {limit} characters, not {len(body)}")
    try:
        placeholders(body)
    except ValueError as exc:
        raise ScriptError("body", str(exc)) from None
    if kind == "url" and (fault := policy.url_fault(body)) is not None:
        raise ScriptError("body", fault)
    return AgentScript(name, kind, body)
