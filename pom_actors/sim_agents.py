"""Simulated agents: N agent desktops over real WebSockets (the Agent SDK, docs/agent-sdk.md),
for the demo, the tests and the benchmarks.

Each `SimAgent` logs in, goes ready, accepts (or skips) preview cards, takes the calls put
through to it, and after each call's wrap-up time — drawn from a distribution, as the pacing
simulator (`core/pacing/sim.py`) draws them — disposes it with a code and is ready again. Talk
time belongs to the customer's leg (whoever bridges the call hangs it up); `talk_time()` draws
one for a harness that plays that part. Times are business seconds, divided by `time_scale`.

    python -m pom_actors.sim_agents --gateway http://127.0.0.1:8080 --agents 20 --skills sales

creates the agents (POST /api/v1/agents) if needed and runs them until Ctrl-C, printing their
states every few seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from .core.pacing.sim import _duration, _Stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    talk_mean_s: float = 60.0           # business seconds
    wrap_mean_s: float = 10.0
    distribution: str = "lognormal"     # or "exponential"
    sigma: float = 0.6                  # lognormal shape
    accept_share: float = 0.9           # preview cards accepted
    ignore_share: float = 0.0           # preview cards left unanswered (they time out); the rest skipped
    codes: tuple[str, ...] = ()         # disposition codes to choose from (default: the call's first)
    callback_share: float = 0.0         # dispositions that ask for a call-back
    callback_s: float = 3600.0          # business seconds from the disposition to the call-back
    time_scale: float = 1.0             # business seconds per real second
    seed: int = 7

    def __post_init__(self) -> None:
        if not (0 <= self.accept_share <= 1 and 0 <= self.ignore_share <= 1 - self.accept_share):
            raise ValueError("accept_share and ignore_share must be shares in [0, 1] adding up to at most 1")


@dataclass
class SimStats:
    frames: Counter = field(default_factory=Counter)
    states: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)
    calls: int = 0
    resent: int = 0                                       # screen pops of a call it had, sent again
    disposed: int = 0
    previews: int = 0
    accepted: int = 0
    skipped: int = 0
    cards: dict = field(default_factory=dict)             # card id -> accept | skip | ignore
    call_arrivals: list = field(default_factory=list)     # (call id, time.time() the screen popped: the wall
                                                          # clock a ScaledClock runs on)


class SimAgent:
    def __init__(self, url: str, login: str, config: SimConfig = SimConfig(), rng: np.random.Generator | None = None,
                 token: str | None = None):
        self.url = url + (f"?token={token}" if token else "")
        self.login, self.config = login, config
        rng = rng or np.random.default_rng(config.seed)
        self._rng = rng
        self._wrap = _Stream(rng, _duration(config.wrap_mean_s, config.distribution, config.sigma))
        self._talk = _Stream(rng, _duration(config.talk_mean_s, config.distribution, config.sigma))
        self.stats = SimStats()
        self.state: str | None = None
        self.job_id: int | None = None
        self.codes: dict[str, list[str]] = {}
        self.frames: asyncio.Queue[dict] = asyncio.Queue()
        self._ws: Any = None

    def talk_time(self) -> float:
        """A talk time (real seconds) for a harness that plays the customer's leg."""
        return self._talk() / self.config.time_scale

    async def send(self, **msg: Any) -> None:
        await self._ws.send(json.dumps(msg, default=str))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, log in, go ready and work until `stop` is set; then log out."""
        import websockets

        async with websockets.connect(self.url, max_size=2**20) as ws:
            self._ws = ws
            await self.send(type="login", agent=self.login)
            await self.send(type="ready")
            reader = asyncio.create_task(self._read(ws))
            await stop.wait()
            try:
                await self.send(type="logout")
                await asyncio.sleep(0.05)
            finally:
                reader.cancel()

    async def _read(self, ws: Any) -> None:
        async for text in ws:
            frame = json.loads(text)
            kind = frame.get("type")
            self.stats.frames[kind] += 1
            self.frames.put_nowait(frame)
            if kind == "state":
                self.state, self.job_id = frame["state"], frame.get("job_id")
                self.stats.states[frame["state"]] += 1
                if frame["state"] == "wrap_up" and frame.get("event") == "hangup":
                    asyncio.create_task(self._wrap_up(frame.get("call_id"), frame.get("at")))
            elif kind == "call":
                if frame.get("resent") and frame["call_id"] in self.codes:
                    self.stats.resent += 1               # a call it has, sent again with a resync
                    continue
                self.stats.calls += 1
                self.stats.call_arrivals.append((frame["call_id"], time.time()))
                self.codes[frame["call_id"]] = frame.get("codes") or []
            elif kind == "preview":
                await self._preview(frame)
            elif kind == "error":
                self.stats.errors.append(frame)

    async def _preview(self, frame: dict[str, Any]) -> None:
        """Accept, skip (with one of the card's skip codes) or leave a preview card unanswered,
        by `accept_share` and `ignore_share`."""
        self.stats.previews += 1
        draw = self._rng.random()
        cfg, card = self.config, frame["card_id"]
        if draw < cfg.accept_share:
            self.stats.accepted += 1
            self.stats.cards[card] = "accept"
            await self.send(type="accept", card_id=card)
        elif draw < cfg.accept_share + cfg.ignore_share:
            self.stats.cards[card] = "ignore"
        else:
            self.stats.skipped += 1
            self.stats.cards[card] = "skip"
            codes = frame.get("skip_codes") or [None]
            code = codes[int(self._rng.integers(len(codes)))]
            await self.send(type="skip", card_id=card, **({"code": code} if code else {}))

    async def _wrap_up(self, call_id: str | None, hangup_at: str | None) -> None:
        wrap_s = self._wrap()
        await asyncio.sleep(wrap_s / self.config.time_scale)
        offered = self.codes.pop(call_id, []) if call_id else []
        choices = [c for c in self.config.codes if not offered or c in offered] or offered[:1] or ["answer_human"]
        msg: dict[str, Any] = {"type": "dispose", "code": choices[int(self._rng.integers(len(choices)))]}
        if self._rng.random() < self.config.callback_share:        # from the hangup's business time
            start = datetime.fromisoformat(hangup_at) if hangup_at else datetime.now(timezone.utc)
            msg["callback_at"] = (start + timedelta(seconds=wrap_s + self.config.callback_s)).isoformat()
        await self.send(**msg)
        self.stats.disposed += 1


class SimFloor:
    """N simulated agents `<prefix>-<i>` against one gateway WebSocket URL."""

    def __init__(self, url: str, logins: list[str], config: SimConfig = SimConfig(), token: str | None = None):
        rng = np.random.default_rng(config.seed)
        self.agents = [SimAgent(url, login, config, np.random.default_rng(rng.integers(2**63)), token)
                       for login in logins]
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(a.run(self.stop)) for a in self.agents]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        states = Counter(a.state for a in self.agents)
        return {"agents": len(self.agents), "states": dict(states),
                "calls": sum(a.stats.calls for a in self.agents),
                "disposed": sum(a.stats.disposed for a in self.agents),
                "previews": sum(a.stats.previews for a in self.agents),
                "accepted": sum(a.stats.accepted for a in self.agents),
                "skipped": sum(a.stats.skipped for a in self.agents),
                "errors": sum(len(a.stats.errors) for a in self.agents)}


def create_agents(gateway: str, logins: list[str], skills: list[str], token: str | None = None) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as http:
        for login in logins:
            http.post("/api/v1/agents", json={"login": login, "name": login, "skills": skills}).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pom_actors.sim_agents", description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway", default="http://127.0.0.1:8080")
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--prefix", default="sim")
    p.add_argument("--skills", nargs="*", default=[])
    p.add_argument("--wrap", type=float, default=10.0, help="mean wrap-up time, business seconds")
    p.add_argument("--scale", type=float, default=1.0, help="business seconds per real second")
    p.add_argument("--accept", type=float, default=0.9, help="share of preview cards accepted")
    p.add_argument("--ignore", type=float, default=0.0, help="share of preview cards left to time out")
    p.add_argument("--token", default=None)
    args = p.parse_args(argv)
    logins = [f"{args.prefix}-{i}" for i in range(args.agents)]
    create_agents(args.gateway, logins, args.skills, args.token)
    url = args.gateway.replace("http", "ws", 1).rstrip("/") + "/api/v1/agents/ws"
    try:
        config = SimConfig(wrap_mean_s=args.wrap, time_scale=args.scale, accept_share=args.accept,
                           ignore_share=args.ignore)
    except ValueError as exc:
        p.error(str(exc))

    async def go() -> None:
        floor = SimFloor(url, logins, config, args.token)
        await floor.start()
        try:
            while True:
                await asyncio.sleep(5)
                print(json.dumps(floor.summary()), flush=True)
        finally:
            await floor.close()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
