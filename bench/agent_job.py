"""A predictive agent-based job of 50 simulated agents over real WebSockets on the voice
simulator in scaled time, end to end through the actors, against what `core/pacing/sim.py`
predicts for the same call centre.

    python bench/agent_job.py [--agents 50] [--minutes 40] [--scale 10]

The system runs as `pom run` runs it (embedded PostgreSQL, Ray, the director, the Campaign
Managers, the Agent Manager, the media gateway's voice simulator; the gateway app served by
uvicorn in this process) on a clock `--scale` times real time. The agents are
`pom_actors.sim_agents` desktops logged in over the Agent SDK; the job paces its dials by
their live state (core/pacing/live.py) and bridges each answered call onto one within the
rule's 2 business seconds (POM_VOICE_BRIDGE_WAIT_S unset) or abandons it. The scale must
leave those 2 s longer than a manager's cycle (about 50-100 real ms here): at 10x they are
200 real ms; at the integration tests' 600x they would be 3 ms, less than one cycle.

One call centre, expressed in both: the voice profile (POM_VOICE_PROFILE) and a `CallCentre`
with the same live-answer rate, outcome shares, ring, talk and wrap-up distributions, no
answering-machine detection errors and no drop of the hit rate; its shift is the measured
window. `occupancy`: the agents' on-call plus wrap-up time over their logged-in time in the
window, from `agent_events`; `abandon`: abandoned over live answered calls in the ledger.

The last line printed is one JSON object: occupancy, abandon, sim_occupancy, sim_abandon, ...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.agents import connect_figures  # noqa: E402
from pom_actors.core.clock import ScaledClock, clock_from_spec  # noqa: E402
from pom_actors.core.pacing import make_pacer  # noqa: E402
from pom_actors.media.voice_sim import answered_at  # noqa: E402
from pom_actors.core.pacing.sim import CallCentre, run_shift  # noqa: E402

CLOCK_START = datetime(2026, 11, 25, 14, 30, tzinfo=timezone.utc)   # a Wednesday, 09:30 in New York
HIT, MACHINE, BUSY, INVALID = 0.30, 0.30, 0.10, 0.05   # live share; shares of the other dials
RING_MEAN, RING_SD, RING_TIMEOUT = 8.0, 5.0, 25.0
TALK_MEAN, TALK_SIGMA = 60.0, 0.7       # lognormal, business seconds
WRAP_MEAN, WRAP_SIGMA = 10.0, 0.6       # lognormal (the sim agents' draw)
AMD_S, SETUP_S = 3.0, 3.0               # a machine's detection; a busy or invalid number's result
PACING = {"mode": "predictive", "settings": {"target": 0.03, "rule": "us_30d"}, "max_concurrent": 200}


def centre(agents: int, shift_s: float, tick_s: float) -> CallCentre:
    return CallCentre(agents=agents, hit_rate=HIT, talk_mean=TALK_MEAN, talk_sigma=TALK_SIGMA,
                      wrap_mean=WRAP_MEAN, wrap_dist="lognormal", wrap_sigma=WRAP_SIGMA, shift_s=shift_s,
                      drop_factor=1.0, machine_share=MACHINE, busy_share=BUSY, invalid_share=INVALID,
                      ring_mean=RING_MEAN, ring_sd=RING_SD, ring_timeout=RING_TIMEOUT, busy_s=SETUP_S,
                      invalid_s=SETUP_S, amd_delay_mean=AMD_S, amd_false_negative=0.0,
                      amd_false_positive=0.0, tick_s=tick_s)


def voice_profile() -> dict:
    """The same call centre as the voice simulator's profile (its lognormals take a median)."""
    rest = 1.0 - HIT
    s2 = math.log(1.0 + (RING_SD / RING_MEAN) ** 2)
    return {"answer_human": HIT, "answer_machine": rest * MACHINE, "busy": rest * BUSY,
            "invalid_number": rest * INVALID, "no_answer": rest * (1.0 - MACHINE - BUSY - INVALID),
            "fax": 0.0, "network_refusal": 0.0,
            "ring_s": {"dist": "lognormal", "median": RING_MEAN * math.exp(-s2 / 2), "sigma": math.sqrt(s2)},
            "talk_s": {"dist": "lognormal", "median": TALK_MEAN * math.exp(-TALK_SIGMA ** 2 / 2),
                       "sigma": TALK_SIGMA},
            "machine_s": {"dist": "exponential", "mean": AMD_S},
            "setup_s": {"dist": "fixed", "value": SETUP_S}, "seed": 3}


def strategy(skill: str) -> dict:
    return {"name": skill, "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "ring_timeout": f"{RING_TIMEOUT:g}s",
                                  "pacing": PACING, "agents": {"skills": [skill], "wrap_up": "300s"},
                                  "script": {"text": "Hello {first_name}"},
                                  "results": {"default": "done"}}}}


def occupancy(rows, t0: datetime, t1: datetime) -> tuple[float, float]:
    """(on call + wrap-up, logged in) seconds in [t0, t1] from agent transitions
    (agent, at, to_state) ordered by agent and id."""
    from pom_actors.core.agents.state import LOGGED_IN, AgentState

    busy = logged = 0.0
    last: dict[int, tuple[datetime, str]] = {}

    def span(agent: int, until: datetime) -> None:
        nonlocal busy, logged
        if agent not in last:
            return
        since, state = last[agent]
        seconds = max(0.0, (min(until, t1) - max(since, t0)).total_seconds())
        if state in LOGGED_IN:
            logged += seconds
        if state in (AgentState.ON_CALL, AgentState.WRAP_UP):
            busy += seconds

    for agent, at, state in rows:
        span(agent, at)
        last[agent] = (at, state)
    for agent in last:
        span(agent, t1)
    return busy, logged


def connect_latencies(clock: ScaledClock, connected, arrivals: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Call -> (real seconds from the voice simulator's answer to its agent's desktop reading
    the `call` frame, real seconds from the answer to the call joining the agent's leg at the
    gateway) for the connected calls that ended, from their ledger rows (call id, completed at,
    details) and the desktops' arrival times (time.time(), the wall clock the ScaledClock runs on)."""
    out = {}
    for call, completed, details in connected:
        if call in arrivals:
            answered = answered_at(completed, details)
            out[call] = (arrivals[call] - clock.wall(answered), details["wait_s"] / clock.scale)
    return out


async def work(url: str, logins: list[str], token: str, scale: float, run, seconds: float) -> dict:
    from pom_actors.sim_agents import SimConfig, SimFloor

    floor = SimFloor(url, logins, SimConfig(wrap_mean_s=WRAP_MEAN, sigma=WRAP_SIGMA, time_scale=scale),
                     token=token)
    await floor.start()
    try:
        deadline = time.monotonic() + 60
        while {a.state for a in floor.agents} != {"ready"} and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if {a.state for a in floor.agents} != {"ready"}:
            raise RuntimeError(f"the agents did not all get ready: {floor.summary()}")
        job = await asyncio.to_thread(run)
        await asyncio.sleep(seconds)
        return {"job": job, **floor.summary(),
                "arrivals": {call: at for a in floor.agents for call, at in a.stats.call_arrivals}}
    finally:
        await floor.close()


def main() -> dict:
    import ray

    from pom_actors import names
    from pom_actors.config import Settings
    from pom_actors.core.tokens import Role
    from pom_actors.runtime import Runtime
    from pom_actors.store import auth as authstore
    from pom_actors.store import catalog

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=40.0, help="business minutes measured")
    ap.add_argument("--scale", type=float, default=10.0, help="business seconds per real second")
    ap.add_argument("--seeds", type=int, default=8, help="shifts of the simulator averaged")
    args = ap.parse_args()
    shift_s = args.minutes * 60
    os.environ["POM_VOICE_PROFILE"] = json.dumps(voice_profile())
    settings = Settings.from_env().replace(data_dir=tempfile.mkdtemp(prefix="pom-bench-"), demo=False, kafka=False,
                                           clock_scale=args.scale, clock_start=CLOCK_START.isoformat())
    rt = Runtime.start(settings)
    try:
        from api.app import create_app

        from bench.agents import serve_gateway
        server, gateway, port = serve_gateway(create_app(rt.settings))
        tag = time.monotonic_ns() % 10**6
        skill = f"bench-job-{tag}"
        logins = [f"{skill}-{i}" for i in range(args.agents)]
        am = names.actor(names.AGENT_MANAGER)
        ray.get([am.add_agent.remote(login, login, [skill]) for login in logins])
        contacts = int(4 * args.agents * shift_s / 60)               # more than the job can dial
        with rt.connect() as conn:
            token = authstore.create_token(conn, "bench admin", Role.ADMIN)[1]
            with conn.transaction():
                list_id = catalog.create_list(conn, skill, attributes=["segment"])
                catalog.add_contacts(conn, list_id, [
                    {"external_id": f"c{i}", "first_name": f"F{i}", "phone1": f"+1212{3_000_000 + i:07d}",
                     "attributes": {"segment": "gold"}} for i in range(contacts)])
                sid, _ = catalog.save_strategy(conn, strategy(skill))
                campaign = catalog.create_campaign(conn, skill, sid, list_id)
        began = {}

        def start() -> int:
            began["real"] = time.monotonic()
            return ray.get(rt.director.create_job.remote(campaign))

        real_s = shift_s / args.scale
        floor = asyncio.run(work(f"ws://127.0.0.1:{port}/api/v1/agents/ws", logins, token, args.scale,
                                 start, real_s + 5))
        job = floor["job"]
        with rt.connect() as conn:
            t0 = conn.execute("SELECT min(at) FROM agent_events WHERE job_id = %s AND event = 'reserve'",
                              (job,)).fetchone()[0]
            t1 = t0 + timedelta(seconds=shift_s)
            rows = conn.execute(
                "SELECT e.agent_id, e.at, e.to_state FROM agent_events e JOIN agents a ON a.id = e.agent_id "
                "WHERE a.login = ANY(%s) ORDER BY e.agent_id, e.id", (logins,)).fetchall()
            codes = dict(conn.execute(
                "SELECT code, count(*) FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
                "AND code IS NOT NULL GROUP BY code", (job,)).fetchall())
            dials = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND verdict = 'allowed'",
                                 (job,)).fetchone()[0]
            connected = conn.execute(
                "SELECT work_item_id || '.' || attempt_no, completed_at, details FROM attempts "
                "WHERE job_id = %s AND code = 'answer_human' AND details ? 'agent_id'", (job,)).fetchall()
            # when the agent each call was reserved for had become ready (its transition before the reserve)
            ready_at = dict(conn.execute(
                "SELECT call_id, before FROM (SELECT call_id, event, lag(at) OVER (PARTITION BY agent_id ORDER BY id) "
                "AS before FROM agent_events WHERE agent_id IN (SELECT id FROM agents WHERE login = ANY(%s))) e "
                "WHERE event = 'reserve' AND call_id IS NOT NULL", (logins,)).fetchall())
        busy, logged = occupancy(rows, t0, t1)
        connect = connect_latencies(clock_from_spec(rt.settings.clock), connected, floor["arrivals"])
        # a call answered while no agent of the job was ready waits for one (the pacer's bet lost,
        # within the 2 s rule): counted apart from those an agent was ready for
        waited = {call for call, done, details in connected
                  if call in ready_at and ready_at[call] > answered_at(done, details)}
        server.should_exit = True
        gateway.join(60)       # its last Ray calls before Ray stops
    except BaseException:
        traceback.print_exc()         # before Ray goes down with the gateway's thread still in it
        raise
    finally:
        rt.stop(drain_s=1)
    live = codes.get("answer_human", 0) + codes.get("abandoned", 0)
    sims = [run_shift(centre(args.agents, shift_s, 1.0), make_pacer({"mode": "predictive", **PACING["settings"]}), seed) for seed in range(args.seeds)]
    return {"agents": args.agents, "scale": args.scale, "business_minutes": args.minutes,
            "bridge_wait_real_ms": round(2000 / args.scale),
            "occupancy": round(busy / logged, 4) if logged else None,
            "abandon": round(codes.get("abandoned", 0) / live, 4) if live else None,
            "sim_occupancy": round(sum(r.occupancy for r in sims) / len(sims), 4),
            "sim_abandon": round(sum(r.abandon for r in sims) / len(sims), 4),
            "dials": dials, "live": live, "abandoned": codes.get("abandoned", 0), "codes": codes,
            "sim_dials": round(sum(r.dials for r in sims) / len(sims)),
            "sim_live": round(sum(r.live for r in sims) / len(sims)),
            **connect_figures([total for total, _ in connect.values()]),
            "connected_paired": len(connect), "connected_ended": len(connected),
            "agent_ready_at_answer": {**connect_figures([t for c, (t, _) in connect.items() if c not in waited]),
                                      "calls": len(connect.keys() - waited)},
            "waited_for_an_agent": {**connect_figures([t for c, (t, _) in connect.items() if c in waited]),
                                    "calls": len(connect.keys() & waited)},
            "answer_to_bridge_p50_ms": round(1000 * statistics.median(b for _, b in connect.values()), 1)
            if connect else None,
            "desktops": {k: floor[k] for k in ("calls", "disposed", "errors")}}


if __name__ == "__main__":
    print(json.dumps(main()))
