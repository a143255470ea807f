"""10,000 agent desktops on one Agent Manager: logged in over real WebSockets, cycling through
ready, reserved, on call, wrap-up (and now and then a break), taking calls answered at
`--rate` a second through the whole path. Measures the Agent Manager process's memory and the
time from the media gateway's "answered, live" to the screen pop read by the agent's desktop.

    python bench/agents.py [--agents 10000] [--rate 100] [--seconds 60]

The system runs as `pom run` runs it (embedded PostgreSQL, Ray, the director, the Campaign
Manager, the Agent Manager, the media gateway's voice simulator; the gateway app served by
uvicorn in this process) on a clock at real speed. One progressive agent-based job (ratio 1,
`attempts_per_second` = `--rate`) dials `rate x seconds` contacts; the voice simulator answers
every call with a person after `RING_S` and the call talks 1-5 s once bridged. Each answered
call takes the product's path: the gateway's notice to the job's Campaign Manager, which
reserves an agent at the Agent Manager (the screen pop goes out on the change feed to the
gateway's hub and the agent's socket) and bridges the call onto the agent's nailed session;
the call's end reaches the Agent Manager through the manager too. The desktops run in a child
process (one asyncio loop, `--agents` sockets, this same script with `--desktops`): they log
in, go ready, read the screen pop, dispose each call after its wrap-up time, and take a break
after one call in 20.

`connect_p99_ms`: from the moment the voice simulator answers a call (its business time, from
the ledger: the call's completion less its talk and its wait for the agent, mapped back to
the wall clock the system's clock runs on) to its desktop reading the `call` frame
(`time.time()` in the child process), over the calls connected to an agent.

`cpu`: the shares of all cores busy and stolen by the virtual machine's host while the calls
ran (/proc/stat): runs with different `steal` are not comparable.

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
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RING_S = 0.5              # a call rings this long before the person answers (real seconds)
TALK_S = (1.0, 5.0)       # talk time of a call once bridged (uniform, real seconds)
WRAP_S = (0.5, 2.0)       # wrap-up before the desktop disposes
BREAK_SHARE = 0.05        # calls after which the agent takes a break
BREAK_S = (1.0, 3.0)
CONNECTS_AT_ONCE = 200    # desktops connecting at the same time while logging in


def connect_figures(latencies_s: list[float]) -> dict:
    """connect_p50_ms, connect_p99_ms, connect_max_ms and how many over 50 ms, of latencies in
    real seconds."""
    ms = sorted(round(1000 * x, 2) for x in latencies_s)
    return {"connect_p50_ms": round(statistics.median(ms), 2) if ms else None,
            "connect_p99_ms": ms[int(0.99 * (len(ms) - 1))] if ms else None,
            "connect_max_ms": ms[-1] if ms else None, "over_50ms": sum(x > 50 for x in ms)}


def cpu_ticks() -> tuple[int, int, int]:
    """This machine's CPU time so far (all cores, /proc/stat ticks): busy, idle, and stolen by
    the virtual machine's host. The host's share during a run says how far its figures can be
    compared with another's (docs/benchmarks.md)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, steal = fields[3] + fields[4], fields[7]
    return sum(fields[:8]) - idle - steal, idle, steal


def cpu_shares(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict:
    """Busy and stolen shares of all cores between two `cpu_ticks`."""
    busy, idle, steal = (b - a for a, b in zip(before, after))
    total = (busy + idle + steal) or 1
    return {"busy": round(busy / total, 3), "steal": round(steal / total, 3)}


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
                    arrivals[frame["call_id"]] = time.time()
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
            gc.collect()        # 10,000 desktops in one process (not one each, as in production):
            gc.freeze()         # their sockets out of every collection, and no collection at all
            gc.disable()        # while the calls run (~60 s), whose pauses would count as latency
            print("READY", flush=True)
            reported = True
    Path(out).write_text(json.dumps({"arrivals": arrivals, **counts}))
    print("DONE", flush=True)
    os._exit(0)                 # 10,000 closing handshakes would only slow the end


# -- the system and the calls (this process) --------------------------------------------------
CLOCK_START = datetime(2026, 11, 25, 14, 30, tzinfo=timezone.utc)   # a Wednesday, 09:30 in New York


def voice_profile() -> dict:
    """Every call answered by a person after RING_S; its talk once bridged, TALK_S."""
    return {"answer_human": 1.0, "answer_machine": 0.0, "busy": 0.0, "no_answer": 0.0, "invalid_number": 0.0,
            "fax": 0.0, "network_refusal": 0.0, "ring_s": {"dist": "fixed", "value": RING_S},
            "talk_s": {"dist": "uniform", "low": TALK_S[0], "high": TALK_S[1]}, "seed": 5}


def strategy(name: str, rate: float) -> dict:
    return {"name": name, "initial": "call", "custom_codes": ["sale"],
            "handlers": {"call": {
                "type": "call", "addresses": ["phone1"], "ring_timeout": "25s",
                "pacing": {"mode": "progressive", "settings": {"ratio": 1.0}, "attempts_per_second": rate},
                "agents": {"wrap_up": "5m"},
                "script": {"text": "Hello {first_name}, this is about your {segment} account."},
                "results": {"default": "done"}}}}


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


def watch_job(rt, job_id: int, seconds: float) -> dict:
    """The Agent Manager's memory every 2 s until the job has ended (or `seconds` passed), and
    meanwhile the gateway process's (this one's) garbage collections, by generation, and the
    machine's busy and stolen CPU shares, and where the job's managers spend their time.

    The gateway serves the desktops from this process, so what this loop does holds its GIL:
    it keeps its database connection and the managers' actor handles. Making them anew every
    2 s stalled the gateway's loop long enough that the screen pops of those moments took over
    50 ms, every 2 s."""
    from pom_actors.core.lifecycle import TERMINAL

    process = agent_manager_process()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    gc_began = [0.0]

    def gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            gc_began[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - gc_began[0])

    gc.callbacks.append(gc_timer)
    ticks = cpu_ticks()
    rss, deadline, state = [], time.monotonic() + seconds, None
    handles: list = []
    managers: dict[str, dict] = {}                     # the job's managers' status, last read
    try:
        with rt.connect() as conn:
            while time.monotonic() < deadline:
                rss.append(process.memory_info().rss / 2**20)
                handles = handles or manager_handles(job_id)
                managers.update(manager_status(handles))
                state = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
                if state in TERMINAL:
                    break
                time.sleep(2)
    finally:
        gc.callbacks.remove(gc_timer)
    rss.append(process.memory_info().rss / 2**20)
    return {"rss": rss, "gc_pauses": pauses, "state": state, "managers": managers,
            "cpu": cpu_shares(ticks, cpu_ticks())}


def manager_handles(job_id: int) -> list:
    """The job's managers' actor handles (made once: making one is the costly part)."""
    from pom_actors import names

    handles = []
    for index in range(8):
        handle = names.actor(names.manager_name(job_id, index))
        if handle is None:
            break
        handles.append(handle)
    return handles


def manager_status(handles: list) -> dict[str, dict]:
    """Where each manager spends its cycles (seconds per phase, cumulative) and its mean
    business seconds from an answer to the call bridged onto an agent."""
    import ray

    out = {}
    for handle in handles:
        try:
            st = ray.get(handle.status.remote(), timeout=5)
        except Exception:
            continue
        waited = st["answer_to_agent"]
        out[st["name"]] = {"seconds": st["seconds"], "bridged": st.get("bridged", 0),
                           "bridged_at_answer": st.get("bridged_at_answer", 0),
                           "answer_to_agent_mean_ms": round(1000 * waited["sum"] / waited["count"], 1)
                           if waited["count"] else None}
    return out


def main() -> dict:
    import ray

    from pom_actors import names
    from pom_actors.config import Settings
    from pom_actors.core.clock import clock_from_spec
    from pom_actors.core.tokens import Role
    from pom_actors.media.voice_sim import answered_at
    from pom_actors.runtime import Runtime
    from pom_actors.store import auth as authstore
    from pom_actors.store import catalog

    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=100.0, help="calls dialled (all answered) a second")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    raise_fd_limit()
    os.environ["POM_VOICE_PROFILE"] = json.dumps(voice_profile())
    settings = Settings.from_env().replace(data_dir=tempfile.mkdtemp(prefix="pom-bench-"), demo=False, kafka=False,
                                           clock_scale=1.0, clock_start=CLOCK_START.isoformat())
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
        contacts = int(args.rate * args.seconds)
        with rt.connect() as conn:
            token = authstore.create_token(conn, "bench supervisor", Role.SUPERVISOR)[1]
            with conn.transaction():
                list_id = catalog.create_list(conn, f"bench-agents-{tag}", attributes=["segment"])
                catalog.add_contacts(conn, list_id, [
                    {"external_id": f"c{i}", "first_name": f"F{i}", "phone1": f"+1212{3_000_000 + i:07d}",
                     "attributes": {"segment": "gold"}} for i in range(contacts)])
                sid, _ = catalog.save_strategy(conn, strategy(f"bench-agents-{tag}", args.rate))
                campaign = catalog.create_campaign(conn, f"bench-agents-{tag}", sid, list_id)

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

        job_id = ray.get(rt.director.create_job.remote(campaign))
        run = watch_job(rt, job_id, 3 * args.seconds + 120)
        time.sleep(max(WRAP_S) + 1)                         # the last dispositions
        child.stdin.write("stop\n")
        child.stdin.flush()
        child.stdout.readline()
        child.wait(60)
        seen = json.loads(Path(out).read_text())
        Path(out).unlink()
        Path(f.name).unlink()
        stats = ray.get(am.status.remote())
        with rt.connect() as conn:
            codes = dict(conn.execute("SELECT code, count(*) FROM attempts WHERE job_id = %s GROUP BY code",
                                      (job_id,)).fetchall())
            connected = conn.execute(
                "SELECT work_item_id || '.' || attempt_no, completed_at, details FROM attempts "
                "WHERE job_id = %s AND code = 'answer_human' AND details ? 'agent_id'", (job_id,)).fetchall()
        clock = clock_from_spec(rt.settings.clock)
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
    answered = {call: clock.wall(answered_at(done, details)) for call, done, details in connected}
    latencies = [seen["arrivals"][c] - t for c, t in answered.items() if c in seen["arrivals"]]
    first = min(answered.values(), default=0.0)
    slow = sorted({round(t - first) for c, t in answered.items()
                   if c in seen["arrivals"] and seen["arrivals"][c] - t > 0.05})
    span = max(answered.values(), default=0.0) - first
    return {"agents": args.agents, "rss_mb": round(max(run["rss"]), 1), **connect_figures(latencies),
            "over_50ms_at_s": slow, "job_state": run["state"], "cpu": run["cpu"],
            "gateway_gc": {str(g): {"count": len(p), "total_ms": round(1000 * sum(p)),
                                    "max_ms": round(1000 * max(p, default=0), 1)} for g, p in run["gc_pauses"].items()},
            "dialled": sum(codes.values()), "connected": len(connected), "abandoned": codes.get("abandoned", 0),
            "codes": codes, "answered_per_s": round(len(connected) / span, 1) if span else None,
            "screen_pops_missing": len(connected) - len(latencies),
            "disposed": seen["disposed"], "breaks": seen["breaks"],
            "desktop_errors": seen["errors"], "create_agents_s": round(created_s, 1), "login_s": round(login_s, 1),
            "managers": run["managers"],
            "rss_mb_samples": [round(x) for x in run["rss"][::5]], "agent_manager": {
                k: stats[k] for k in ("agents", "by_state", "feed_polls", "reserved", "no_agent", "flushes", "written")}}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--desktops":
        raise_fd_limit()
        asyncio.run(desktops(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()), sys.argv[4]))
    else:
        print(json.dumps(main()))
