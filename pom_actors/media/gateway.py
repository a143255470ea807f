"""Everything a MediaGateway actor does, as a plain asyncio class (the actor only delegates).

One gateway per POM server: it records every order (the `OrderBook`, which also fences
stale epochs), hands accepted orders to the channel drivers and queues their outcomes per
manager (`reply_to`) until that manager polls. Voice goes to the simulator's heap and
completes as business time passes; e-mail, SMS and webhooks run as background tasks with
bounded concurrency. A driver that fails still yields an outcome with a failure code, so
an accepted order is always either pending or completed in the record, never lost; orders
cut off by `close()` stay pending, which the reconciler reads as "fate unknown".
A call of an agent-based handler answered by a person is also queued as a notice (`ANSWERED`,
not a completion: the order stays pending) until the manager has it `bridge`d onto an agent
or the simulator abandons it (media/voice_sim.py, core/agents/bridge.py). A manager learns of
those notices the moment they are due through `answers`, a long poll (a real media server
pushes its "answered, live"), instead of at its next cycle's `poll`.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections import Counter, deque
from typing import Awaitable, Callable, Mapping

import pydantic

from pom_actors.config import Settings
from pom_actors.core.agents.bridge import ANSWERED
from pom_actors.core.clock import Clock
from pom_actors.core.codes import SYSTEM_CODES
from pom_actors.core.orders import CHANNELS, Order, OrderRecord, Outcome, Refusal, outcome_for
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.media.orderbook import OrderBook
from pom_actors.media.sms_http import SmsDriver
from pom_actors.media.smtp import SmtpDriver
from pom_actors.media.voice_sim import VoiceProfile, VoiceSimulator
from pom_actors.media.webhook import WebhookDriver
from pom_actors.wakeup import Wakeup

# The code an order gets when its driver itself breaks (a bug, an unusable order).
FAILURE_CODES = {"call": "call_failed", "sms": "sms_failed", "email": "network_refusal",
                 "custom": "webhook_failed"}

_ENV = {"POM_SMTP_HOST": "smtp_host", "POM_SMTP_PORT": "smtp_port",
        "POM_SMTP_USER": "smtp_user", "POM_SMTP_PASSWORD": "smtp_password",
        "POM_SMTP_STARTTLS": "smtp_starttls", "POM_SMTP_CA_FILE": "smtp_ca_file",
        "POM_SMTP_SENDER": "smtp_sender",
        "POM_SMS_URL": "sms_url", "POM_SMS_TOKEN": "sms_token", "POM_SMS_USER": "sms_user",
        "POM_SMS_PASSWORD": "sms_password", "POM_OUTBOUND_ALLOW": "outbound_allow"}


class GatewayConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str
    voice: VoiceProfile = VoiceProfile()
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ca_file: str | None = None  # CA bundle to verify the STARTTLS certificate against
    smtp_sender: str = "pom@localhost"  # From when an order names no sender
    smtp_timeout_s: float = pydantic.Field(30.0, gt=0)
    smtp_batch_size: int = pydantic.Field(100, ge=1)  # messages per SMTP session
    smtp_max_connections: int = pydantic.Field(4, ge=1)
    sms_url: str | None = None
    sms_token: str | None = None
    sms_user: str | None = None
    sms_password: str | None = None
    sms_timeout_s: float = pydantic.Field(10.0, gt=0)
    sms_retries: int = pydantic.Field(2, ge=0, le=10)
    http_max_concurrency: int = pydantic.Field(50, ge=1)  # SMS + webhook requests at once
    http_backoff_s: float = pydantic.Field(0.5, ge=0)
    http_backoff_max_s: float = pydantic.Field(8.0, ge=0)
    custom_codes: list[str] = []  # codes a webhook may answer besides the system codes
    outbound_allow: str = ""      # networks a webhook may reach besides public addresses (core/outbound.py)

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str] | None = None,
                 defaults: Mapping[str, object] | None = None, **overrides) -> "GatewayConfig":
        """Configuration from POM_SMTP_*, POM_SMS_* and POM_VOICE_PROFILE (a JSON object of
        VoiceProfile keys) over `defaults`; `overrides` win over the environment."""
        env = os.environ if env is None else env
        values: dict = {field: env[var] for var, field in _ENV.items() if env.get(var)}
        if env.get("POM_VOICE_PROFILE"):
            values["voice"] = json.loads(env["POM_VOICE_PROFILE"])
        return cls(name=name, **{**(defaults or {}), **values, **overrides})


def gateway_config(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """The gateway's own environment (POM_SMTP_*, POM_SMS_*, POM_VOICE_PROFILE: see
    docs/media.md) over the server's settings: each POM server of a cluster may set its own
    mail relay or SMS gateway; what it leaves unset comes from the process that started the
    director. A relay set in that environment that the outbound policy refuses (a loopback,
    private or link-local address not in POM_OUTBOUND_ALLOW) stops the gateway from starting
    (ValueError saying which)."""
    given = {"smtp_host": settings.smtp_host, "smtp_port": settings.smtp_port,
             "smtp_user": settings.smtp_user, "smtp_password": settings.smtp_password,
             "smtp_starttls": settings.smtp_starttls, "sms_url": settings.sms_url,
             "sms_token": settings.sms_token, "outbound_allow": settings.outbound_allow}
    config = GatewayConfig.from_env(name, env, defaults={k: v for k, v in given.items() if v is not None})
    faults = OutboundPolicy.from_setting(config.outbound_allow).relay_faults(os.environ if env is None else env)
    if faults:
        raise ValueError("; ".join(faults))
    voice = config.voice.model_copy(update={"instant": settings.voice_instant or config.voice.instant,
                                            "seed": settings.voice_seed or config.voice.seed,
                                            "bridge_wait_s": settings.voice_bridge_wait_s
                                            or config.voice.bridge_wait_s})
    return config.model_copy(update={"voice": voice})


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Clock):
        self.config, self._clock = config, clock
        self._book = OrderBook()
        self._voice = VoiceSimulator(config.voice, clock, config.name)
        self._smtp = SmtpDriver(clock, config.smtp_host, config.smtp_port,
                                user=config.smtp_user, password=config.smtp_password,
                                starttls=config.smtp_starttls, ca_file=config.smtp_ca_file,
                                default_sender=config.smtp_sender,
                                timeout=config.smtp_timeout_s)
        self._sms = SmsDriver(clock, config.sms_url, token=config.sms_token,
                              user=config.sms_user, password=config.sms_password,
                              timeout=config.sms_timeout_s, retries=config.sms_retries,
                              backoff_s=config.http_backoff_s,
                              backoff_max_s=config.http_backoff_max_s,
                              max_connections=config.http_max_concurrency
                              ) if config.sms_url else None
        self._webhook = WebhookDriver(clock, set(SYSTEM_CODES) | set(config.custom_codes),
                                      backoff_s=config.http_backoff_s,
                                      backoff_max_s=config.http_backoff_max_s,
                                      max_connections=config.http_max_concurrency,
                                      policy=OutboundPolicy.from_setting(config.outbound_allow))
        self._http_slots = asyncio.Semaphore(config.http_max_concurrency)
        self._smtp_slots = asyncio.Semaphore(config.smtp_max_connections)
        self._routes: dict[str, str] = {}  # attempt id -> reply_to, while pending
        self._queues: dict[str, deque[Outcome]] = {}
        self._notices: Counter[str] = Counter()   # reply_to -> answered-call notices in its queue
        self._news = Wakeup()                     # rung when `answers` should look again
        self._tasks: set[asyncio.Task] = set()
        self._submitted: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()  # driver orders handed out, not finished

    async def submit(self, orders: list[Order]) -> list[Refusal]:
        """Record the orders and start them; return the refused ones at once.

        Refused (never sent): a repeated attempt id, a stale epoch, an unknown channel."""
        refused = [Refusal(o.attempt_id, f"unknown channel {o.channel!r}")
                   for o in orders if o.channel not in CHANNELS]
        if refused:
            orders = [o for o in orders if o.channel in CHANNELS]
        accepted, stale = self._book.accept(orders)
        refused.extend(stale)
        by_channel: dict[str, list[Order]] = {channel: [] for channel in CHANNELS}
        routes = self._routes
        for order in accepted:
            routes[order.attempt_id] = order.reply_to
            by_channel[order.channel].append(order)
        for channel, batch in by_channel.items():
            self._submitted[channel] += len(batch)
        if by_channel["call"]:
            self._voice.place(by_channel["call"], self._clock.now())
            self._news.ring()                     # a new call may fall due before those waited for
        emails, size = by_channel["email"], self.config.smtp_batch_size
        for start in range(0, len(emails), size):
            self._spawn(self._email_batch(emails[start:start + size]))
        if by_channel["sms"]:
            self._spawn(self._http_batch("sms", by_channel["sms"], self._sms_one))
        if by_channel["custom"]:
            self._spawn(self._http_batch("custom", by_channel["custom"], self._webhook.deliver))
        return refused

    async def poll(self, reply_to: str, max_items: int = 10000) -> list[Outcome]:
        """Outcomes complete by now for `reply_to`, oldest first; each is returned once."""
        due = self._voice.due(self._clock.now())
        if due:
            self._finish(due)
        queue = self._queues.get(reply_to)
        if not queue:
            return []
        if len(queue) <= max_items:
            taken = list(queue)
            queue.clear()
            self._notices.pop(reply_to, None)
            return taken
        taken = [queue.popleft() for _ in range(max_items)]
        self._notices[reply_to] -= sum(1 for o in taken if o.code == ANSWERED)
        return taken

    async def answers(self, reply_to: str, wait_s: float, max_items: int = 10000) -> list[Outcome]:
        """A long `poll`: the outcomes for `reply_to` as soon as an answered call's notice is
        among them (the voice simulator's answers fall due in business time: this waits for
        the next one due, or for a new call placed); [] after `wait_s` real seconds without."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait_s
        while True:
            due = self._voice.due(self._clock.now())
            if due:
                self._finish(due)
            if self._notices.get(reply_to, 0) > 0:
                return await self.poll(reply_to, max_items)
            left = end - loop.time()
            if left <= 0:
                return []
            nxt = self._voice.next_due()
            if nxt is not None:        # at least a millisecond: a ManualClock's due never comes
                left = min(left, max(0.001, self._clock.real_seconds((nxt - self._clock.now()).total_seconds())))
            await self._news.wait(left)

    async def nail(self, sessions: dict[str, int]) -> dict[str, int]:
        """Hold exactly these nailed agent sessions (session id -> agent id): the Agent
        Manager's list (VoiceSimulator.hold); the legs' counts."""
        return self._voice.hold(sessions)

    async def nail_changes(self, added: dict[str, int], released: list[str]) -> dict[str, int]:
        """The Agent Manager's list told as its changes since this gateway last took it."""
        return self._voice.hold_changes(added, released)

    async def bridge(self, calls: dict[str, int]) -> list[str]:
        """Bridge answered calls (call -> agent id) onto the agents' sessions; the calls refused
        (no longer waiting: abandoned at their deadline, or not this gateway's)."""
        return self._voice.bridge(calls, self._clock.now())

    async def lookup(self, attempt_ids: list[str]) -> dict[str, OrderRecord]:
        """The record of each attempt id this gateway received (see OrderBook.lookup);
        an id absent from the answer never reached this gateway."""
        due = self._voice.due(self._clock.now())
        if due:
            self._finish(due)
        return self._book.lookup(attempt_ids)

    async def fence(self, job_id: int, epochs: dict[int, int]) -> None:
        """Refuse from now on any order of these shards older than `epochs` (OrderBook.fence)."""
        self._book.fence(job_id, epochs)

    async def order_ids(self) -> list[str]:
        return self._book.order_ids()

    async def stats(self) -> dict:
        pending_voice = len(self._voice)
        next_due = self._voice.next_due()
        book = self._book.stats()
        return {
            "name": self.config.name,
            "channels": {channel: {"submitted": self._submitted[channel],
                                   "in_flight": (pending_voice if channel == "call"
                                                 else self._in_flight[channel])}
                         for channel in CHANNELS},
            "pending": book["pending"],
            "queued": {reply_to: len(q) for reply_to, q in self._queues.items() if q},
            "next_voice_due": next_due.isoformat() if next_due else None,
            "agent_legs": self._voice.agent_legs(),
            "orderbook": book,
        }

    async def close(self) -> None:
        """Stop the background sends and release the HTTP clients. Orders cut off stay
        pending in the record: their fate is unknown, which is what lookups then say."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._webhook.close()
        if self._sms is not None:
            await self._sms.close()

    def _finish(self, outcomes: list[Outcome]) -> None:
        """Record outcomes and queue each for the manager that sent its order (a notice is
        queued only: its order stays pending)."""
        complete, routes, queues = self._book.complete, self._routes, self._queues
        noticed = False
        for outcome in outcomes:
            if outcome.code == ANSWERED:
                reply_to = routes[outcome.attempt_id]
                self._notices[reply_to] += 1
                noticed = True
            else:
                complete(outcome)
                reply_to = routes.pop(outcome.attempt_id)
            queue = queues.get(reply_to)
            if queue is None:
                queue = queues[reply_to] = deque()
            queue.append(outcome)
        if noticed:
            self._news.ring()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _failed(self, orders: list[Order], exc: Exception) -> list[Outcome]:
        """A driver bug or an unusable order must not lose the orders: they fail instead."""
        now, error = self._clock.now(), f"{type(exc).__name__}: {exc}"
        return [outcome_for(o, FAILURE_CODES[o.channel], now, {"error": error}) for o in orders]

    def _done(self, channel: str, outcomes: list[Outcome]) -> None:
        self._in_flight[channel] -= len(outcomes)
        for outcome in outcomes:
            outcome.details.setdefault("gateway", self.config.name)
        self._finish(outcomes)

    async def _email_batch(self, orders: list[Order]) -> None:
        self._in_flight["email"] += len(orders)
        async with self._smtp_slots:
            try:
                outcomes = await self._smtp.deliver(orders)
            except Exception as exc:
                outcomes = self._failed(orders, exc)
        self._done("email", outcomes)

    async def _http_batch(self, channel: str, orders: list[Order],
                          deliver: Callable[[Order], Awaitable[Outcome]]) -> None:
        """One request per order, at most http_max_concurrency at once across the gateway;
        each outcome is queued as soon as its own exchange ends."""
        async def one(order: Order) -> None:
            async with self._http_slots:
                try:
                    outcome = await deliver(order)
                except Exception as exc:
                    outcome = self._failed([order], exc)[0]
            self._done(channel, [outcome])

        self._in_flight[channel] += len(orders)
        await asyncio.gather(*(one(order) for order in orders))

    async def _sms_one(self, order: Order) -> Outcome:
        if self._sms is None:
            return outcome_for(order, "sms_failed", self._clock.now(),
                               {"error": "no SMS gateway configured (POM_SMS_URL)"})
        return await self._sms.deliver(order)
