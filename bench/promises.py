"""Benchmark: callback promises kept, our policies against a naive baseline on the same simulated days.

A working day 09:00-17:00 with 12 agents, 90 calls an hour (5 minutes of handle time, 10 minutes of
mean patience) and an unforecast 2x surge from 11:00 to 12:00. Callers whose wait passes the offer
threshold are offered a callback and accept with ``--accept`` probability, half keeping their place and
half choosing a later slot (``--policy``). Both variants meet the same callers (same draws):

* ``ours``: kept places promised by the 90th percentile of QL-A rounded up to 5 minutes plus the
  2-minute grace; slots offered only where the plan leaves capacity (Erlang A, 20 % margin), and
  booked capacity protected when due;
* ``naive``: kept places promised by the mean predicted wait (to the minute); any slot in business
  hours offered, and a due callback joins the back of the line.

A promise is kept when the first dial starts inside its window. Target: ``ours.kept_rate`` >= 0.99.
Progress on stderr; the last line of stdout is one JSON object. Run: ``callcenter bench promises --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from callcenter.callbacks.simulate import (
    CallbackPolicy,
    CallbackSimConfig,
    Variant,
    figures_json,
    simulate_callbacks,
)

TARGET_KEPT_RATE = 0.99


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench promises", description=__doc__)
    parser.add_argument("--days", type=int, default=10, help="simulated working days (default 10)")
    parser.add_argument("--accept", type=float, default=0.5, help="probability an offer is accepted")
    parser.add_argument(
        "--policy", choices=[p.value for p in CallbackPolicy], default=CallbackPolicy.BOTH.value
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the last line is JSON anyway"
    )
    args = parser.parse_args(argv)
    config = CallbackSimConfig(
        days=args.days, accept_probability=args.accept, policy=CallbackPolicy(args.policy), seed=args.seed
    )
    print(f"simulating {args.days} days, both variants ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    results = simulate_callbacks(config)
    elapsed = time.perf_counter() - started
    body = figures_json(results)
    ours = results[Variant.OURS].as_json()["kept_rate"]
    naive = results[Variant.NAIVE].as_json()["kept_rate"]
    body["scenario"] = {
        "days": args.days,
        "agents": config.agents,
        "rate_per_hour": config.rate_per_hour,
        "surge": {"from_h": config.surge[0], "to_h": config.surge[1], "factor": config.surge[2]},
        "aht_s": config.aht_s,
        "patience_s": config.patience_s,
        "accept_probability": config.accept_probability,
        "policy": config.policy.value,
        "seed": args.seed,
    }
    body["target_kept_rate"] = TARGET_KEPT_RATE
    body["ours_meets_target"] = isinstance(ours, float) and ours >= TARGET_KEPT_RATE
    body["naive_meets_target"] = isinstance(naive, float) and naive >= TARGET_KEPT_RATE
    body["elapsed_s"] = round(elapsed, 2)
    print(json.dumps(body, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
