"""Reconciliation: what the ledger records for an attempt whose outcome never arrived.

A manager that adopts shards, or loses touch with a gateway, looks its attempts up by id in
the order record of the gateway that took them (principle 2: never blindly redialled). The
gateway's answer decides:

| the gateway                         | the ledger records                                   |
|-------------------------------------|------------------------------------------------------|
| answered, completed with a code     | that outcome, at the gateway's time, its details     |
| answered, still pending             | nothing yet: keep watching                           |
| answered, has no record of the id   | `cancelled`, not sent: the item is due again         |
| is gone                             | `in_doubt`: whether it dialled is unknowable         |
| did not answer in time              | nothing yet: asked again once it is no longer suspect |
"""
from __future__ import annotations

from datetime import datetime

from .orders import COMPLETED, PENDING, OrderRecord, Outcome

NOT_SENT, IN_DOUBT = "cancelled", "in_doubt"


class GatewayUnreachable(Exception):
    """A gateway that is gone: raised by calls to it, and the answer a lookup of its attempts
    gets."""

    def __init__(self, gateway: str):
        super().__init__(f"gateway {gateway} unreachable")
        self.gateway = gateway


class GatewaySlow(Exception):
    """A gateway that did not answer in time: it may be gone (its server lost, not yet
    declared dead) or only busy. Nothing is decided on it; its attempts are asked again."""

    def __init__(self, gateway: str):
        super().__init__(f"gateway {gateway} did not answer in time")
        self.gateway = gateway


def reconcile(attempt_id: str, answer: OrderRecord | GatewayUnreachable | None, now: datetime) -> Outcome | None:
    """The outcome to settle for `attempt_id` given its gateway's `answer` (None: the gateway
    answered and holds no record of it); None while the attempt is still pending."""
    if isinstance(answer, GatewayUnreachable):
        return Outcome(attempt_id, IN_DOUBT, now, {"reason": str(answer)})
    if answer is None:
        return Outcome(attempt_id, NOT_SENT, now, {"not_sent": True, "reason": "order never reached a gateway"})
    if answer.state == PENDING:
        return None
    if answer.state == COMPLETED:
        # with the gateway's details: a bridged call's agent_id, which frees that agent
        return Outcome(attempt_id, answer.code, answer.at, {**answer.details, "adopted": True})
    raise ValueError(f"unknown order record state {answer.state!r}")


def not_sent(outcome: Outcome) -> bool:
    """Whether an outcome says the order never left (only the reconciler says so; a gateway's
    own `cancelled` is a result like any other)."""
    return bool(outcome.details.get("not_sent"))
