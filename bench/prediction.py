"""Benchmark: wait-time predictors on a simulated M/M/s+M queue, and the simulator's speed (issue 5).

10 agents, 190 arrivals per hour (load 0.95), exponential handle time of 180 s and patience of 300 s,
200,000 arrivals by default (``--arrivals`` for a quick run). Every predictor is scored on the same
callers of the same run: those who waited and were answered. Progress goes to stderr; the last line
of stdout is one JSON object with each predictor's figures, the queue measures beside Erlang A, the
speed, and each target with a pass/fail boolean:

* ``qla`` relative RMSE at most 0.58;
* ``qla`` mean squared error at least 45 % below ``asterisk`` (``qla_mse_reduction_vs_asterisk``);
* ``qla`` p80 coverage between 0.77 and 0.83;
* ``qla`` |bias| under 8 % of the mean wait of the scored callers;
* 200,000 arrivals simulated in under 30 s on one core (shorter runs are scaled to 200,000).

Run from a checkout: ``callcenter bench prediction --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from callcenter.capacity.predictors import PredictorName
from callcenter.capacity.simulate import DurationLaw, LoadProfile, SimulationConfig, simulate
from callcenter.cli_simulate import result_json

AGENTS = 10
RATE_PER_HOUR = 190.0
AHT_S = 180.0
PATIENCE_S = 300.0
FULL_RUN_ARRIVALS = 200_000

TARGET_QLA_REL_RMSE_MAX = 0.58
TARGET_MSE_REDUCTION_MIN = 0.45
TARGET_P80_COVERAGE = (0.77, 0.83)
TARGET_BIAS_SHARE_MAX = 0.08
TARGET_SECONDS_PER_FULL_RUN = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench prediction", description=__doc__)
    parser.add_argument("--arrivals", type=int, default=FULL_RUN_ARRIVALS, help="arrivals to simulate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warm-up", type=int, default=None, help="arrivals not scored (default 1000, or 5 %%)"
    )
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the last line is JSON anyway"
    )
    args = parser.parse_args(argv)
    if args.arrivals < 100:
        parser.error("--arrivals must be at least 100")
    warm_up = args.warm_up if args.warm_up is not None else min(1000, args.arrivals // 20)
    config = SimulationConfig(
        profile=LoadProfile.flat(rate_per_hour=RATE_PER_HOUR, agents=AGENTS),
        handle=DurationLaw.exponential(AHT_S),
        patience=DurationLaw.exponential(PATIENCE_S),
        arrivals=args.arrivals,
        seed=args.seed,
        warm_up=warm_up,
    )
    print(
        f"prediction: M/M/{AGENTS}+M, {RATE_PER_HOUR:g}/h, AHT {AHT_S:g} s, patience {PATIENCE_S:g} s, "
        f"{args.arrivals:,} arrivals (warm-up {warm_up}), seed {args.seed}",
        file=sys.stderr,
    )

    def progress(arrived: int) -> None:
        if arrived % 50_000 == 0:
            print(f"  {arrived:,} arrivals simulated", file=sys.stderr)

    started_wall, started_cpu = time.perf_counter(), time.process_time()
    result = simulate(config, on_progress=progress)
    elapsed_s, cpu_s = time.perf_counter() - started_wall, time.process_time() - started_cpu

    qla = result.predictor(PredictorName.QLA)
    asterisk = result.predictor(PredictorName.ASTERISK)
    assert qla.rmse_s is not None and asterisk.rmse_s is not None and qla.bias_s is not None
    assert qla.rel_rmse is not None and qla.p80_coverage is not None and qla.mean_actual_s is not None
    mse_reduction = 1.0 - (qla.rmse_s / asterisk.rmse_s) ** 2
    bias_share = abs(qla.bias_s) / qla.mean_actual_s
    seconds_per_full_run = elapsed_s * FULL_RUN_ARRIVALS / args.arrivals
    low, high = TARGET_P80_COVERAGE
    targets = {
        "qla_rel_rmse": _target(
            qla.rel_rmse, qla.rel_rmse <= TARGET_QLA_REL_RMSE_MAX, f"<= {TARGET_QLA_REL_RMSE_MAX}"
        ),
        "qla_mse_reduction_vs_asterisk": _target(
            mse_reduction, mse_reduction >= TARGET_MSE_REDUCTION_MIN, f">= {TARGET_MSE_REDUCTION_MIN}"
        ),
        "qla_p80_coverage": _target(qla.p80_coverage, low <= qla.p80_coverage <= high, f"in [{low}, {high}]"),
        "qla_abs_bias_share_of_mean_wait": _target(
            bias_share, bias_share < TARGET_BIAS_SHARE_MAX, f"< {TARGET_BIAS_SHARE_MAX}"
        ),
        "elapsed_s_per_200k_arrivals": _target(
            seconds_per_full_run,
            seconds_per_full_run < TARGET_SECONDS_PER_FULL_RUN,
            f"< {TARGET_SECONDS_PER_FULL_RUN}",
        ),
    }
    simulated = result_json(config, result)
    report = {
        "benchmark": "prediction",
        "scenario": {
            "agents": AGENTS,
            "arrival_rate_per_hour": RATE_PER_HOUR,
            "aht_s": AHT_S,
            "patience_s": PATIENCE_S,
            "arrivals": args.arrivals,
            "warm_up": warm_up,
            "seed": args.seed,
        },
        "predictors": simulated["predictors"],
        "qla_mse_reduction_vs_asterisk": mse_reduction,
        "simulated": {key: value for key, value in simulated.items() if key not in ("predictors", "inputs")},
        "elapsed_s": elapsed_s,
        "cpu_s": cpu_s,
        "arrivals_per_s": args.arrivals / elapsed_s,
        "targets": targets,
        "pass": all(bool(t["pass"]) for t in targets.values()),
    }
    for name, target in targets.items():
        verdict = "pass" if target["pass"] else "FAIL"
        print(f"  {name}: {target['value']:.4g} (target {target['target']}) {verdict}", file=sys.stderr)
    print(f"  {elapsed_s:.1f} s elapsed, {cpu_s:.1f} s CPU", file=sys.stderr)
    print(json.dumps(report, allow_nan=False))
    return 0


def _target(value: float, passed: bool, target: str) -> dict[str, object]:
    return {"value": value, "target": target, "pass": passed}


if __name__ == "__main__":
    sys.exit(main())
