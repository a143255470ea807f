"""Pacing benchmark: every policy on a grid of simulated call centres.

    nice .venv/bin/python bench/pacing.py                 # the full grid (see docs/benchmarks.md)
    .venv/bin/python bench/pacing.py --quick              # seconds: a small grid, for tests

Grid: agents × live-answer rate × mean talk time; per cell `--reps` replications of a
`--hours` shift for ours, `--baseline-reps` for each baseline and `--oracle-reps` for the oracle
at their default settings, plus `--sweep-reps` replications at each other setting of their
aggressiveness (the sweep), so policies are compared at equal abandon rate: in each cell
the reference is ours' mean abandon rate at its default, and every policy's occupancy there is
read off its abandon→occupancy frontier (linear between sweep points; if a policy cannot get
down to the reference, its lowest-abandon point is used, which flatters it). Results stream to
a JSON-lines file so an interrupted run can `--resume`. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pacing_sim.baselines import OraclePacer, PIPacer, VicidialAdaptPacer  # noqa: E402
from pom_actors.core.pacing import make_pacer  # noqa: E402
from pom_actors.core.pacing.sim import CallCentre, run_shift  # noqa: E402

# name -> (aggressiveness settings, index of the default, builder(centre, setting)).
# Progressive sweeps its ratio in units of 1/hit rate (a ratio an administrator would tune per
# list); VICIdial its drop-rate limit (max level 10 rather than the default 3, which would
# starve it at low hit rates); PI its setpoint; the oracle its loss share α. Ours is the
# reference of the comparison and runs at its default only.
POLICIES = {
    "ours": ([0.03], 0, lambda c, x: make_pacer({"mode": "predictive", "target": x})),
    "progressive": ([1.0, 0.6, 0.8, 1.0], 0, lambda c, x: make_pacer({"mode": "progressive", "ratio": x})),
    "vicidial_hard_limit": ([3.0, 1.0, 5.0, 8.0], 0,
                            lambda c, x: VicidialAdaptPacer("ADAPT_HARD_LIMIT", drop_limit_pct=x, max_level=10.0)),
    "vicidial_tapered": ([3.0, 1.0, 5.0, 8.0], 0,
                         lambda c, x: VicidialAdaptPacer("ADAPT_TAPERED", drop_limit_pct=x, max_level=10.0)),
    "vicidial_average": ([3.0, 1.0, 5.0, 8.0], 0,
                         lambda c, x: VicidialAdaptPacer("ADAPT_AVERAGE", drop_limit_pct=x, max_level=10.0)),
    "pi": ([0.028, 0.01, 0.02, 0.045], 0, lambda c, x: PIPacer(setpoint=x)),
    "oracle": ([0.006, 0.002, 0.004, 0.012], 0, lambda c, x: OraclePacer(c, alpha=x)),
}
REPS = {"ours": "reps", "oracle": "oracle_reps"}   # the others use --baseline-reps at their default


def _pacer(policy: str, centre: CallCentre, level: int):
    settings, default, build = POLICIES[policy]
    x = settings[level]
    if policy == "progressive" and level != default:
        x = x / centre.hit_rate
    return build(centre, x)


FULL = {"agents": [5, 10, 20, 50, 100], "hit": [0.10, 0.20, 0.35], "talk": [90.0, 180.0]}
QUICK = {"agents": [5, 20], "hit": [0.20], "talk": [90.0]}


def _job(args: tuple) -> dict:
    agents, hit, talk, hours, policy, level, rep = args
    centre = CallCentre(agents=agents, hit_rate=hit, talk_mean=talk, shift_s=hours * 3600.0)
    t0 = time.process_time()
    r = run_shift(centre, _pacer(policy, centre, level), seed=1000 * rep + 17)
    return {"agents": agents, "hit": hit, "talk": talk, "hours": hours, "policy": policy,
            "level": level, "rep": rep, "cpu_s": time.process_time() - t0, **asdict(r)}


def _jobs(grid: dict, hours: float, reps: dict[str, int], sweep_reps: int) -> list[tuple]:
    out = []
    for agents in grid["agents"]:
        for hit in grid["hit"]:
            for talk in grid["talk"]:
                for policy, (settings, default, _) in POLICIES.items():
                    for level in range(len(settings)):
                        n = reps[policy] if level == default else sweep_reps
                        out += [(agents, hit, talk, hours, policy, level, rep) for rep in range(n)]
    # Replication by replication (an interrupted run leaves every cell equally covered), and
    # within one, biggest cells first so the pool does not end on a long straggler.
    return sorted(out, key=lambda j: (j[6], -j[0] / j[1], j[4], j[5]))


def frontier_at(points: list[tuple[float, float]], target: float) -> float:
    """Occupancy a policy reaches at abandon rate `target`, from its (abandon, occupancy) points:
    the upper envelope of the points, linear between them; below the lowest abandon rate the
    lowest point's occupancy, above the highest the best occupancy."""
    pts = sorted(points)
    env: list[tuple[float, float]] = []
    for a, o in pts:  # keep points that improve occupancy as abandon grows
        if not env or o > env[-1][1]:
            env.append((a, o))
    if target <= env[0][0]:
        return env[0][1]
    for (a0, o0), (a1, o1) in zip(env, env[1:]):
        if a0 <= target <= a1:
            return o0 + (o1 - o0) * (target - a0) / (a1 - a0) if a1 > a0 else max(o0, o1)
    return env[-1][1]


def summarise(rows: list[dict]) -> tuple[dict, list[dict]]:
    cells: dict[tuple, dict[str, dict[int, list[dict]]]] = {}
    for r in rows:
        cells.setdefault((r["agents"], r["hit"], r["talk"]), {}).setdefault(r["policy"], {}) \
             .setdefault(r["level"], []).append(r)
    table = []
    for key in sorted(cells):
        by_policy = cells[key]
        ref = float(np.mean([r["abandon"] for r in by_policy["ours"][POLICIES["ours"][1]]]))
        eq = {}
        for policy, levels in by_policy.items():
            pts = [(float(np.mean([r["abandon"] for r in rs])), float(np.mean([r["occupancy"] for r in rs])))
                   for rs in levels.values()]
            eq[policy] = frontier_at(pts, ref)
        for policy, levels in by_policy.items():
            rs = levels[POLICIES[policy][1]]
            table.append({
                "agents": key[0], "hit": key[1], "talk": key[2], "policy": policy, "reps": len(rs),
                "occupancy": float(np.mean([r["occupancy"] for r in rs])),
                "occupancy_eq": eq[policy],
                "oracle_ratio": eq[policy] / eq["oracle"] if eq.get("oracle") else float("nan"),
                "idle_gap_mean": float(np.mean([r["idle_gap_mean"] for r in rs])),
                "idle_gap_p95": float(np.mean([r["idle_gap_p95"] for r in rs])),
                "abandon": float(np.mean([r["abandon"] for r in rs])),
                "abandon_uk": float(np.mean([r["abandon_uk"] for r in rs])),
                "worst_hour": float(np.mean([r["worst_hour"] for r in rs])),
                "over_3pct_share": float(np.mean([r["abandon"] > 0.03 for r in rs])),
                "dials_per_agent_hour": float(np.mean([r["dials_per_agent_hour"] for r in rs])),
                "ref_abandon": ref,
            })
    overall = {}
    for policy in POLICIES:
        ps = [t for t in table if t["policy"] == policy]
        if ps:
            overall[policy] = {
                "occupancy": round(float(np.mean([t["occupancy_eq"] for t in ps])), 4),
                "abandon": round(float(np.mean([t["abandon"] for t in ps])), 4),
                "over_3pct_share": round(float(np.mean([t["over_3pct_share"] for t in ps])), 4),
                "oracle_ratio": round(float(np.mean([t["oracle_ratio"] for t in ps])), 4),
            }
    return {"policies": overall}, table


def markdown(table: list[dict]) -> str:
    head = ("| agents | hit | talk | policy | reps | occ. default | occ. @equal abandon | /oracle | idle gap mean / p95 s "
            "| abandon | worst hour | >3% share | dials/agent-h |\n|" + "---|" * 13)
    lines = [head]
    for t in table:
        lines.append(
            f"| {t['agents']} | {t['hit']:.2f} | {t['talk']:.0f} | {t['policy']} | {t['reps']} | {t['occupancy']:.3f} "
            f"| {t['occupancy_eq']:.3f} | {t['oracle_ratio']:.3f} | {t['idle_gap_mean']:.1f} / {t['idle_gap_p95']:.1f} "
            f"| {t['abandon']:.2%} | {t['worst_hour']:.2%} | {t['over_3pct_share']:.0%} | {t['dials_per_agent_hour']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small grid, 1 h shifts, 2 replications")
    ap.add_argument("--reps", type=int, default=20, help="replications of ours")
    ap.add_argument("--baseline-reps", type=int, default=20, help="replications of a baseline at its default")
    ap.add_argument("--oracle-reps", type=int, default=20, help="replications of the oracle at its default")
    ap.add_argument("--sweep-reps", type=int, default=2, help="replications at the other sweep settings")
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=1, help="processes (at most 2 on a shared machine)")
    ap.add_argument("--out", default=None, help="per-replication results (JSON lines); default "
                    "bench/results/pacing.jsonl, or pacing_quick.jsonl with --quick")
    ap.add_argument("--resume", action="store_true", help="keep the replications already in --out")
    ap.add_argument("--policies", default=",".join(POLICIES), help="comma-separated policies to run")
    args = ap.parse_args(argv)
    grid = QUICK if args.quick else FULL
    if args.quick:
        hours, sweep, reps = 1.0, 1, {p: 2 for p in POLICIES}
    else:
        hours, sweep = args.hours, args.sweep_reps
        reps = {p: getattr(args, REPS.get(p, "baseline_reps")) for p in POLICIES}
    out = Path(args.out or f"bench/results/pacing{'_quick' if args.quick else ''}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if args.resume and out.exists():
        rows = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    done = {(r["agents"], r["hit"], r["talk"], r["hours"], r["policy"], r["level"], r["rep"]) for r in rows}
    wanted = set(args.policies.split(","))
    todo = [j for j in _jobs(grid, hours, reps, sweep) if j not in done and j[4] in wanted]
    t0 = time.time()
    with out.open("a" if args.resume else "w") as fh:
        if args.workers > 1:
            with Pool(args.workers) as pool:
                results = pool.imap_unordered(_job, todo, chunksize=1)
                for i, r in enumerate(results, 1):
                    rows.append(r)
                    fh.write(json.dumps(r) + "\n")
                    fh.flush()
                    if i % 50 == 0:
                        print(f"{i}/{len(todo)} replications, {time.time() - t0:.0f} s", file=sys.stderr)
        else:
            for i, j in enumerate(todo, 1):
                r = _job(j)
                rows.append(r)
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                if i % 50 == 0:
                    print(f"{i}/{len(todo)} replications, {time.time() - t0:.0f} s", file=sys.stderr)
    result, table = summarise(rows)
    md = out.with_suffix(".md")
    md.write_text(markdown(table) + "\n")
    print(markdown(table))
    print(f"# {len(rows)} replications, {time.time() - t0:.0f} s wall, "
          f"{sum(r['cpu_s'] for r in rows):.0f} s CPU in simulation; table also in {md}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
