"""E-mail over real SMTP: smtplib in a worker thread, one connection per batch.

smtplib is blocking and well proven; a thread per batch (not per message) keeps the event
loop free while one SMTP session carries many messages, which is what mail servers like.
The SMTP server's reply is the result: accepted -> delivered. The mapping:

| SMTP event                                              | code            |
|---------------------------------------------------------|-----------------|
| message accepted (250)                                  | delivered       |
| recipient or message refused with 5xx                   | bounced         |
| recipient or message refused with 4xx, sender refused   | network_refusal |
| connect / STARTTLS / login failed, connection dropped   | network_refusal |
| socket timeout                                          | timeout         |
"""
from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Sequence

from pom_actors.core.clock import Clock
from pom_actors.core.orders import Order, Outcome, outcome_for


def _by_reply(code: int, error: str) -> tuple[str, dict]:
    """A refusal with an SMTP reply code: permanent (5xx) bounces, anything else may pass."""
    return ("bounced" if 500 <= code < 600 else "network_refusal"), {"smtp_code": code,
                                                                     "error": error}


def _failure(exc: BaseException) -> tuple[str, dict]:
    """A failure of the session itself, which no message of the batch survives."""
    code = "timeout" if isinstance(exc, TimeoutError) else "network_refusal"
    return code, {"error": f"{type(exc).__name__}: {exc}"}


class SmtpDriver:
    def __init__(self, clock: Clock, host: str, port: int, *, user: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 ca_file: str | None = None, default_sender: str = "pom@localhost",
                 timeout: float = 30.0):
        """STARTTLS verifies the server's certificate against the system CAs, or against
        `ca_file` (a private mail relay's CA) when given."""
        self._clock = clock
        self._host, self._port, self._timeout = host, port, timeout
        self._user, self._password, self._starttls = user, password, starttls
        self._ca_file = ca_file
        self._default_sender = default_sender

    async def deliver(self, orders: Sequence[Order]) -> list[Outcome]:
        """Send the batch in one SMTP session; one outcome per order, never an exception."""
        return await asyncio.to_thread(self._send_batch, orders)

    def _message(self, order: Order) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = order.sender or self._default_sender
        msg["To"] = order.address
        msg["Subject"] = order.subject
        msg["Message-ID"] = make_msgid(domain="pom.invalid")
        msg["X-POM-Attempt"] = order.attempt_id
        msg.set_content(order.message)
        return msg

    def _send_batch(self, orders: Sequence[Order]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self._ca_file))
                if self._user:
                    smtp.login(self._user, self._password or "")
                for order in orders:
                    outcomes.append(self._send_one(smtp, order))
        except (OSError, smtplib.SMTPException) as exc:
            code, details = _failure(exc)
            outcomes.extend(outcome_for(order, code, self._clock.now(), dict(details))
                            for order in orders[len(outcomes):])
        return outcomes

    def _send_one(self, smtp: smtplib.SMTP, order: Order) -> Outcome:
        """Refusals that leave the session usable become this order's outcome; a broken
        session propagates and fails the rest of the batch."""
        msg = self._message(order)
        try:
            smtp.send_message(msg, from_addr=msg["From"], to_addrs=[order.address])
            code, details = "delivered", {"message_id": msg["Message-ID"]}
        except smtplib.SMTPRecipientsRefused as exc:
            reply, text = next(iter(exc.recipients.values()))
            code, details = _by_reply(reply, text.decode(errors="replace"))
        except smtplib.SMTPSenderRefused as exc:
            code, details = "network_refusal", {"smtp_code": exc.smtp_code,
                                                "error": exc.smtp_error.decode(errors="replace")}
        except smtplib.SMTPDataError as exc:
            code, details = _by_reply(exc.smtp_code, exc.smtp_error.decode(errors="replace"))
        return outcome_for(order, code, self._clock.now(), details)
