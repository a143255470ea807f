"""10,000 agent desktops on one Agent Manager: logged in over real WebSockets, cycling through
ready, reserved, on call, wrap-up (and now and then a break), with answered calls arriving at
`--rate` a second. Measures the Agent Manager process's memory and the time from an answered
call's hand-off to the Agent Manager to the screen pop read by its agent's desktop.

    python bench/agents.py [--agents 10000] [--rate 100] [--seconds 60]

The system runs as `pom run` runs it (embedded PostgreSQL, Ray, the actors, the gateway served
by uvicorn in this process) with one running agent-based job whose contacts wait for a window
two days away, so that this script alone plays the part of the job's Campaign Manager: per
50 ms it hands the calls "answered, live" to the Agent Manager as the manager's bridge does
(`reserve` with their screens: the screen pops at once), connects them (`settle_calls`)
and hangs them up after their talk time. The desktops run in a child process (one asyncio
loop, `--agents` sockets, this same script with `--desktops`): they log in, go ready, read the
screen pop, dispose each call after its wrap-up time, and take a break after one call in 20.
`connect_p99_ms` is from just before `reserve` is sent to the desktop reading the `call`
frame (both on CLOCK_MONOTONIC, one machine).

The last line printed is one JSON object: agents, rss_mb, connect_p99_ms, ...
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH_S = 0.05            # the Campaign Manager's cycle: answered calls handed over per batch
TALK_S = (1.0, 5.0)       # talk time of a call (uniform, real seconds)
WRAP_S = (0.5, 2.0)       # wrap-up before the desktop disposes
BREAK_SHARE = 0.05        # calls after which the agent takes a break
BREAK_S = (1.0, 3.0)
CONNECTS_AT_ONCE = 200    # desktops connecting at the same time while logging in


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the desktops (child process) ------------------------------------------------------------
async def desktops(url: str, logins: list[str], out: str) -> None:
    """Every desktop until a line arrives on stdin; then the arrival times of the screen pops
    go to `out`."""
    import websockets

    arrivals: dict[str, float] = {}
    counts = {"ready": 0, "calls": 0, "disposed": 0, "breaks": 0, "errors": 0, "closed": 0}
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    rng = random.Random(11)

    async def desk(login: str) -> None:
        async with gate:
            ws = await websockets.connect(url, ping_interval=None, compression=None, max_queue=None,
                                          open_timeout=60)
            await ws.send(json.dumps({"type": "login", "agent": login}))
        codes: list[str] = []
        first_ready = True

        async def later(delay: float, msg: dict) -> None:
            await asyncio.sleep(delay)
            await ws.send(json.dumps(msg))

        try:
            async for text in ws:
                frame = json.loads(text)
                kind = frame["type"]
                if kind == "call":
                    arrivals[frame["call_id"]] = time.monotonic()
                    codes = frame.get("codes") or ["answer_human"]
                    counts["calls"] += 1
                elif kind == "error":
                    counts["errors"] += 1
                elif kind == "state":
                    event, state = frame["event"], frame["state"]
                    if event == "login":
                        await ws.send(json.dumps({"type": "ready"}))
                    elif state == "ready" and first_ready:
                        first_ready = False
                        counts["ready"] += 1
                    elif state == "wrap_up":
                        asyncio.ensure_future(later(rng.uniform(*WRAP_S), {"type": "dispose", "code": codes[0]}))
                    elif event == "dispose":
                        counts["disposed"] += 1
                        if rng.random() < BREAK_SHARE:
                            counts["breaks"] += 1
                            await ws.send(json.dumps({"type": "not_ready", "reason": "break"}))
                            asyncio.ensure_future(later(rng.uniform(*BREAK_S), {"type": "ready"}))
        except websockets.ConnectionClosed:
            pass
        counts["closed"] += 1

    tasks = [asyncio.ensure_future(desk(login)) for login in logins]
    reported = False
    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    while not stop.done():
        await asyncio.sleep(0.2)
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed:
            raise failed[0].exception()
        if not reported and counts["ready"] == len(logins):
            gc.collect()        # 10,000 desktops in one process (not one each): their sockets out of
            gc.freeze()         # every collection, whose pauses would be counted as latency
            print("READY", flush=True)
            reported = True
    Path(out).write_text(json.dumps({"arrivals": arrivals, **counts}))
    print("DONE", flush=True)
    os._exit(0)                 # 10,000 closing handshakes would only slow the end


# -- the system and the calls (this process) --------------------------------------------------
def window_days_away(days: int) -> list[str]:
    return [("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(timezone.utc) + timedelta(days=days)).weekday()]]


STRATEGY = {"name": "bench-agents", "initial": "call", "custom_codes": ["sale"],
            "handlers": {"call": {
                "type": "call", "addresses": ["phone1"],
                "window": {"days": window_days_away(2), "start": "09:00", "end": "10:00"},
                "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}},
                "agents": {"wrap_up": "5m"},
                "script": {"text": "Hello {first_name}, this is about your {segment} account."},
                "results": {"window_restricted": "wait_window", "default": "done"}}}}


def agent_manager_process():
    """The Agent Manager's process (found once: sampling it then costs one /proc read)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if " ".join(proc.info["cmdline"] or []).startswith("ray::AgentManager"):
            return proc
    raise RuntimeError("no Agent Manager process")


def serve_gateway(app) -> tuple[object, threading.Thread, int]:
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           backlog=4096))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread, port


async def answered_calls(am, job_id: int, screen, rate: float, seconds: float) -> dict:
    """Hand calls over at `rate` a second for `seconds`, as the job's Campaign Manager does;
    connect each, hang it up after its talk time. When each hand-off was sent, by call."""
    rng = random.Random(5)
    sent: dict[str, float] = {}
    reserved: dict[str, int | None] = {}
    pending: set[asyncio.Task] = set()
    rss: list[float] = []
    process = agent_manager_process()

    async def call_life(ids: list[str]) -> None:
        got = await am.reserve.remote(job_id, ids, {c: screen(c) for c in ids})
        reserved.update(got)
        taken = [c for c, a in got.items() if a is not None]
        if not taken:
            return
        await am.settle_calls.remote(taken, [], [])
        await asyncio.sleep(rng.uniform(*TALK_S))
        await am.settle_calls.remote([], [], taken)

    pauses: list[float] = []                  # this process's (the gateway's) garbage collections
    gc_began = [0.0]

    def gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            gc_began[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - gc_began[0])

    gc.callbacks.append(gc_timer)
    began, n = time.monotonic(), 0
    next_rss = began
    while (now := time.monotonic()) - began < seconds:
        k = int(rate * (now - began + BATCH_S)) - n       # on schedule whatever the loop's delays
        ids = [f"b{n + i}" for i in range(k)]
        n += k
        t0 = time.monotonic()
        sent.update((c, t0) for c in ids)
        task = asyncio.ensure_future(call_life(ids))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if now >= next_rss:
            rss.append(process.memory_info().rss / 2**20)
            next_rss = now + 2
        await asyncio.sleep(max(0.0, BATCH_S - (time.monotonic() - now)))
    elapsed = time.monotonic() - began
    await asyncio.gather(*pending)
    rss.append(process.memory_info().rss / 2**20)
    gc.callbacks.remove(gc_timer)
    return {"gc_pauses": pauses, "sent": sent, "reserved": reserved, "elapsed": elapsed, "rss": rss, "began": began}


def main() -> dict:
    import ray

    from pom_actors import names
    from pom_actors.config import Settings
    from pom_actors.core.agents.desk import screen_pop
    from pom_actors.core.strategy import parse_strategy
    from pom_actors.core.tokens import Role
    from pom_actors.runtime import Runtime
    from pom_actors.store import auth as authstore
    from pom_actors.store import catalog

    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=100.0, help="answered calls a second")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    raise_fd_limit()
    settings = Settings.from_env().replace(data_dir=tempfile.mkdtemp(prefix="pom-bench-"), demo=False,
                                           voice_instant=True, kafka=False)
    rt = Runtime.start(settings)
    child = None
    try:
        from api.app import create_app

        server, gateway, port = serve_gateway(create_app(rt.settings))
        am = names.actor(names.AGENT_MANAGER)
        tag = time.monotonic_ns() % 10**6
        logins = [f"bench-{tag}-{i}" for i in range(args.agents)]
        began = time.monotonic()
        for i in range(0, len(logins), 500):
            ray.get([am.add_agent.remote(login, login, []) for login in logins[i:i + 500]])
        created_s = time.monotonic() - began
        with rt.connect() as conn:
            token = authstore.create_token(conn, "bench supervisor", Role.SUPERVISOR)[1]
            with conn.transaction():
                list_id = catalog.create_list(conn, f"bench-agents-{tag}", attributes=["segment"])
                catalog.add_contacts(conn, list_id, [{"external_id": "c1", "first_name": "Ann",
                                                      "phone1": "+12125550100", "attributes": {"segment": "gold"}}])
                sid, _ = catalog.save_strategy(conn, {**STRATEGY, "name": f"bench-agents-{tag}"})
                campaign = catalog.create_campaign(conn, f"bench-agents-{tag}", sid, list_id)
        job_id = ray.get(rt.director.create_job.remote(campaign))
        deadline = time.monotonic() + 60
        while job_id not in ray.get(am.jobs.remote()) and time.monotonic() < deadline:
            time.sleep(0.2)
        strategy = parse_strategy(STRATEGY)
        contact = {"first_name": "Ann", "phone1": "+12125550100", "attributes": {"segment": "gold"}}

        out = tempfile.mktemp(prefix="pom-bench-desktops-", suffix=".json")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(logins, f)
        child = subprocess.Popen([sys.executable, __file__, "--desktops", f"ws://127.0.0.1:{port}/api/v1/agents/ws?token={token}",
                                  f.name, out], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        began = time.monotonic()
        line = child.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"the desktops did not all log in: {line!r}")
        login_s = time.monotonic() - began
        print(f"{args.agents} desktops logged in and ready in {login_s:.1f} s", file=sys.stderr)
        deadline = time.monotonic() + 120                 # every agent attached to the job, ready
        while ray.get(am.jobs.remote())[job_id]["ready"] < args.agents and time.monotonic() < deadline:
            time.sleep(0.5)
        attached = ray.get(am.jobs.remote())[job_id]

        run = asyncio.run(answered_calls(am, job_id, lambda c: screen_pop(c, job_id, contact, strategy, "call"),
                                         args.rate, args.seconds))
        time.sleep(2)                                      # the last screen pops read
        child.stdin.write("stop\n")
        child.stdin.flush()
        child.stdout.readline()
        child.wait(60)
        seen = json.loads(Path(out).read_text())
        Path(out).unlink()
        Path(f.name).unlink()
        stats = ray.get(am.status.remote())
        server.should_exit = True
        gateway.join(60)       # its last Ray calls (10,000 desktops gone) before Ray stops: a Ray
                               # call after ray.shutdown() ends the process, result line unprinted
    except BaseException:
        traceback.print_exc()         # before Ray goes down with the gateway's thread still in it
        raise
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        rt.stop(drain_s=1)
    taken = [c for c, a in run["reserved"].items() if a is not None]
    latencies = sorted(seen["arrivals"][c] - run["sent"][c] for c in taken if c in seen["arrivals"])
    ms = [round(1000 * x, 2) for x in latencies]
    slow = sorted({round(run["sent"][c] - run["began"]) for c in taken
                   if c in seen["arrivals"] and seen["arrivals"][c] - run["sent"][c] > 0.05})
    return {"agents": args.agents, "rss_mb": round(max(run["rss"]), 1),
            "connect_p99_ms": ms[int(0.99 * (len(ms) - 1))] if ms else None,
            "connect_p50_ms": round(statistics.median(ms), 2) if ms else None,
            "connect_max_ms": ms[-1] if ms else None,
            "over_50ms": sum(x > 50 for x in ms), "over_50ms_at_s": slow,
            "gateway_full_gc": {"count": len(run["gc_pauses"]),
                                "max_ms": round(1000 * max(run["gc_pauses"], default=0), 1)},
            "answered": len(run["sent"]), "answered_per_s": round(len(run["sent"]) / run["elapsed"], 1),
            "connected": len(taken), "no_agent": len(run["sent"]) - len(taken),
            "screen_pops_missing": len(taken) - len(latencies),
            "attached_ready_at_start": attached["ready"], "disposed": seen["disposed"], "breaks": seen["breaks"],
            "desktop_errors": seen["errors"], "create_agents_s": round(created_s, 1), "login_s": round(login_s, 1),
            "rss_mb_samples": [round(x) for x in run["rss"][::5]], "agent_manager": {
                k: stats[k] for k in ("agents", "by_state", "feed_polls", "reserved", "no_agent", "flushes", "written")}}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--desktops":
        raise_fd_limit()
        asyncio.run(desktops(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()), sys.argv[4]))
    else:
        print(json.dumps(main()))
