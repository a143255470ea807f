"""Warm start: a new job's predictive pacer started from its campaign's recent statistics
(core/pacing/window.py `warm_settings`, and the campaign's rule window carried over) against
one started cold (the strategy's priors, an empty window: one dial per ready agent until the
abandon budget is earned), on `core/pacing/sim.py`.

    .venv/bin/python bench/warm_start.py                 # agents 5, 10, 20; 1-hour shifts; 8 seeds

Per team size: a previous job of the same campaign is simulated first (cold); its dials, live
answers and abandons, with the campaign's answer and talk times, are what the warm pacer
starts from (priors and window). Both then run the same next shift (same seeds). The last
line printed is one JSON object: per team size the mean occupancy and abandon rate, cold and
warm, and the gain in occupancy points.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pom_actors.core.pacing import RuleCounters, make_pacer  # noqa: E402
from pom_actors.core.pacing.sim import CallCentre, run_shift  # noqa: E402
from pom_actors.core.pacing.window import Tally, warm_settings  # noqa: E402

SETTINGS = {"target": 0.03}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--hit-rate", type=float, default=0.25)
    ap.add_argument("--talk", type=float, default=90.0)
    args = ap.parse_args()
    out = {}
    for n in args.agents:
        centre = CallCentre(agents=n, hit_rate=args.hit_rate, talk_mean=args.talk, shift_s=args.hours * 3600,
                            drop_factor=1.0)
        cold, warm = [], []
        for seed in range(args.seeds):
            before = run_shift(centre, make_pacer({"mode": "predictive", **SETTINGS}), 1000 + seed)
            recent = Tally(dials=before.dials, live=before.live, abandoned=before.abandoned,
                           answer_s=centre.ring_mean * before.live, talk_s=centre.talk_mean * before.live,
                           talked=before.live)
            history = RuleCounters(before.live, before.abandoned)
            cold.append(run_shift(centre, make_pacer({"mode": "predictive", **SETTINGS}), seed))
            warm.append(run_shift(centre, make_pacer({"mode": "predictive",
                                                      **warm_settings("predictive", SETTINGS, recent)}),
                                  seed, history))
        row = {"cold_occupancy": float(np.mean([r.occupancy for r in cold])),
               "warm_occupancy": float(np.mean([r.occupancy for r in warm])),
               "cold_abandon": float(np.mean([r.abandon for r in cold])),
               "warm_abandon": float(np.mean([r.abandon for r in warm]))}
        row["gain_points"] = round(100 * (row["warm_occupancy"] - row["cold_occupancy"]), 2)
        out[str(n)] = {k: round(v, 4) if k != "gain_points" else v for k, v in row.items()}
        print(f"{n} agents: {out[str(n)]}", file=sys.stderr)
    print(json.dumps({"hours": args.hours, "seeds": args.seeds, "hit_rate": args.hit_rate, "talk_s": args.talk,
                      "agents": out}))


if __name__ == "__main__":
    main()
