"""``callcenter simulate``: options, load-profile files and printing for the queue simulation (edge).

Profile files (``--profile FILE``) give the arrival rate, and optionally the agents staffed, per
interval of ``--interval-min`` minutes (default 15); the profile repeats until ``--arrivals``
callers have come. Rates are calls per hour *during* the interval, whatever its length.

* CSV (``.csv``, or any file not starting with ``[`` or ``{``): a header row naming a
  ``rate_per_hour`` column and optionally an ``agents`` column; other columns (a ``start`` label,
  say) are ignored, as are empty lines and lines starting with ``#``::

      start,rate_per_hour,agents
      08:00,120,8
      08:15,190,10

* JSON (``.json``, or text starting with ``[`` or ``{``): a list of rates per hour, or a list of
  objects ``{"rate_per_hour": 120, "agents": 8}``, or an object ``{"interval_min": 15,
  "intervals": [...]}`` holding such a list.

An interval without its own ``agents`` is staffed with ``--agents``. Bad input of any kind ends with
a message on stderr naming the option, and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from callcenter.callbacks.simulate import CallbackPolicy as CallbackSimPolicy
from callcenter.callbacks.simulate import CallbackSimConfig, Variant, simulate_callbacks
from callcenter.callbacks.slots import SlotSettings
from callcenter.capacity.erlang import MAX_AGENTS, QueueModel
from callcenter.capacity.simulate import (
    MAX_ARRIVALS,
    MAX_CV,
    MAX_INTERVALS,
    MAX_RATE_PER_HOUR,
    CallbackPolicy,
    DurationKind,
    DurationLaw,
    Interval,
    LoadProfile,
    SimulationConfig,
    SimulationResult,
    simulate,
)
from callcenter.errors import CallCenterError, ValidationError

#: Profile files larger than this are refused before reading.
MAX_PROFILE_BYTES = 4_000_000
DEFAULT_INTERVAL_MIN = 15.0

_PROG = "callcenter simulate"


class ProfileError(ValidationError):
    """A load-profile file that cannot be read or understood."""


# --- argument types (argparse turns ArgumentTypeError into "argument --x: ..." and exit 2) ---------


def _number(text: str, *, allow_inf: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        raise argparse.ArgumentTypeError(
            f"must be a finite number{' or inf' if allow_inf else ''}, not {text!r}"
        )
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text!r}")
    return value


def _patience(text: str) -> float:
    value = _number(text, allow_inf=True)
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be above 0 (or inf for callers who never hang up), not {text!r}"
        )
    return value


def _rate(text: str) -> float:
    value = _positive(text)
    if value > MAX_RATE_PER_HOUR:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_RATE_PER_HOUR:g} calls per hour, not {text!r}"
        )
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {text!r}")
    return value


def _whole(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum}, not {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _interval_min(text: str) -> float:
    value = _positive(text)
    if value > 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"must be at most a week (10080 minutes), not {text!r}")
    return value


def parse_distribution(text: str) -> tuple[DurationKind, float]:
    """``exponential``, ``deterministic``, ``lognormal[:cv]`` or ``gamma[:cv]`` (cv defaults to 1)."""
    name, _, cv_text = text.strip().lower().partition(":")
    try:
        kind = DurationKind(name)
    except ValueError:
        choices = ", ".join(f"{k.value}{'[:cv]' if _takes_cv(k) else ''}" for k in DurationKind)
        raise argparse.ArgumentTypeError(f"unknown distribution {text!r}; use one of {choices}") from None
    if not _takes_cv(kind):
        if cv_text:
            raise argparse.ArgumentTypeError(f"{kind.value} takes no coefficient of variation, not {text!r}")
        return kind, 1.0 if kind is DurationKind.EXPONENTIAL else 0.0
    if not cv_text:
        return kind, 1.0
    cv = _number(cv_text)
    if not 0.0 < cv <= MAX_CV:
        raise argparse.ArgumentTypeError(
            f"the cv of {kind.value} must be above 0 and at most {MAX_CV:g}, not {cv_text!r}"
        )
    return kind, cv


def _takes_cv(kind: DurationKind) -> bool:
    return kind in (DurationKind.LOGNORMAL, DurationKind.GAMMA)


# --- the subcommand -------------------------------------------------------------------------------


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``callcenter`` subcommands."""
    parser = sub.add_parser(
        "simulate",
        help="simulate one queue in virtual time: service level, abandons, wait-predictor accuracy",
        description=(
            "Discrete-event simulation of one FCFS queue (Poisson arrivals, s agents, callers who hang "
            "up when their patience runs out), scoring the wait-time predictors, beside Erlang A/C."
        ),
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=_whole(1, MAX_AGENTS), help=f"agents staffed (1 to {MAX_AGENTS})")
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--arrival-rate", type=_rate, metavar="PER_HOUR", help="Poisson arrivals per hour")
    rate.add_argument(
        "--profile", type=Path, metavar="FILE", help="rates (and agents) per interval: CSV or JSON"
    )
    parser.add_argument(
        "--interval-min",
        type=_interval_min,
        default=None,
        help=f"length of a profile interval in minutes (default {DEFAULT_INTERVAL_MIN:g}, or the file's)",
    )
    parser.add_argument(
        "--aht", type=_positive, default=180.0, metavar="S", help="mean handle time (default 180)"
    )
    parser.add_argument(
        "--aht-dist",
        type=parse_distribution,
        default=(DurationKind.EXPONENTIAL, 1.0),
        metavar="DIST",
        help="exponential (default), lognormal[:cv], gamma[:cv] or deterministic",
    )
    parser.add_argument(
        "--patience",
        type=_patience,
        default=math.inf,
        metavar="S",
        help="mean patience of waiting callers; inf (default) for callers who never hang up",
    )
    parser.add_argument(
        "--patience-dist",
        type=parse_distribution,
        default=(DurationKind.EXPONENTIAL, 1.0),
        metavar="DIST",
        help="exponential (default), lognormal[:cv], gamma[:cv] or deterministic",
    )
    parser.add_argument(
        "--arrivals",
        type=_whole(1, MAX_ARRIVALS),
        default=100_000,
        help="callers to simulate (default 100000)",
    )
    parser.add_argument(
        "--warm-up",
        type=_whole(0, MAX_ARRIVALS - 1),
        default=0,
        metavar="N",
        help="first arrivals simulated but not counted (default 0)",
    )
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--callback-policy",
        choices=[p.value for p in CallbackPolicy],
        default=CallbackPolicy.NONE.value,
        help="none (default); keep-place or slots also simulate 09:00-17:00 days of callback offers "
        "(our policy against a naive baseline): offers, acceptances and promises kept",
    )
    parser.add_argument(
        "--service-level-s",
        type=_non_negative,
        default=20.0,
        metavar="S",
        help="service-level threshold: answered within this many seconds (default 20)",
    )
    parser.add_argument(
        "--no-predictors", action="store_true", help="skip scoring the wait predictors (faster)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on the last line of stdout"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``callcenter simulate`` from parsed arguments; return the exit status."""
    try:
        config = config_from_args(args)
        result = simulate(config)
        callbacks = _simulate_callbacks(args)
    except CallCenterError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        body = result_json(config, result)
        if callbacks is not None:
            body["callbacks"] = callbacks
            inputs = body["inputs"]
            assert isinstance(inputs, dict)
            inputs["callback_policy"] = args.callback_policy
        print(json.dumps(body, allow_nan=False))
    else:
        table = render_table(config, result)
        if callbacks is not None:
            # The queue ran without callbacks; their own simulation reports below.
            table = "\n".join(line for line in table.splitlines() if not line.startswith("callbacks: policy"))
            table += "\n" + _callback_lines(callbacks)
        print(table)
    return 0


# --- callback policies ------------------------------------------------------------------------------


def _callback_config(args: argparse.Namespace, policy: CallbackPolicy) -> CallbackSimConfig:
    """The callback day matching the options: flat rate, 09:00-17:00, as many days as the arrivals fill.

    :raises ValidationError: for a profile or an infinite patience (the day needs both flat and finite).
    """
    if args.profile is not None or args.arrival_rate is None or args.agents is None:
        raise ValidationError(
            f"--callback-policy {policy.value}: needs --agents and --arrival-rate (no profile)"
        )
    if not math.isfinite(args.patience):
        raise ValidationError(f"--callback-policy {policy.value}: needs a finite --patience")
    days = max(1, min(60, math.ceil(args.arrivals / max(1.0, args.arrival_rate * 8.0))))
    return CallbackSimConfig(
        agents=args.agents,
        rate_per_hour=args.arrival_rate,
        surge=(0.0, 0.0, 1.0),
        aht_s=args.aht,
        patience_s=args.patience,
        callback_handle_s=args.aht,
        policy=CallbackSimPolicy(policy.value),
        slots=SlotSettings(callback_handle_s=args.aht),
        answer_within_s=args.service_level_s,
        days=days,
        seed=args.seed,
    )


def _simulate_callbacks(args: argparse.Namespace) -> dict[str, object] | None:
    """Offers, acceptances and promises kept by our policy (and the naive baseline) on 09:00-17:00 days."""
    policy = CallbackPolicy(args.callback_policy)
    if policy is CallbackPolicy.NONE:
        return None
    config = _callback_config(args, policy)
    results = simulate_callbacks(config)
    ours = results[Variant.OURS].as_json()
    return {
        "policy": policy.value,
        "days": config.days,
        "offered": ours["offers"],
        "accepted": ours["accepted"],
        "kept": results[Variant.OURS].kept,
        "kept_rate": ours["kept_rate"],
        "ours": ours,
        "naive": results[Variant.NAIVE].as_json(),
    }


def _callback_lines(callbacks: dict[str, object]) -> str:
    ours, naive = callbacks["ours"], callbacks["naive"]
    assert isinstance(ours, dict) and isinstance(naive, dict)
    rows = [("offer rate", "offer_rate"), ("acceptance", "acceptance_rate"), ("promises kept", "kept_rate")]
    lines = [
        f"callbacks ({callbacks['policy']}, {callbacks['days']} days of 09:00-17:00):",
        f"{'':26}{'ours':>12}{'naive':>12}",
    ]
    for label, key in rows:
        lines.append(f"{label:26}{_share(ours.get(key)):>12}{_share(naive.get(key)):>12}")
    return "\n".join(lines)


def _share(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def main(argv: Sequence[str] | None = None) -> int:
    """``callcenter simulate`` on its own (``python -m callcenter.cli_simulate``)."""
    parser = argparse.ArgumentParser(prog=_PROG, description=__doc__)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The simulation the options describe.

    :raises ValidationError: naming the option, for combinations the parser cannot check alone.
    """
    policy = CallbackPolicy(args.callback_policy)
    if policy is not CallbackPolicy.NONE:
        # The callback day is its own simulation (callcenter.callbacks.simulate); this one runs without.
        _callback_config(args, policy)
        policy = CallbackPolicy.NONE
    if args.profile is not None:
        profile = read_profile(args.profile, agents=args.agents, interval_min=args.interval_min)
    else:
        if args.agents is None:
            raise ValidationError("--agents is required with --arrival-rate")
        if args.interval_min is not None:
            raise ValidationError("--interval-min applies to --profile only")
        profile = LoadProfile.flat(rate_per_hour=args.arrival_rate, agents=args.agents)
    if args.warm_up >= args.arrivals:
        raise ValidationError(f"--warm-up must be below --arrivals ({args.arrivals}), not {args.warm_up}")
    aht_kind, aht_cv = args.aht_dist
    patience_kind, patience_cv = args.patience_dist
    return SimulationConfig(
        profile=profile,
        handle=DurationLaw(kind=aht_kind, mean_s=args.aht, cv=aht_cv),
        patience=DurationLaw(kind=patience_kind, mean_s=args.patience, cv=patience_cv),
        arrivals=args.arrivals,
        seed=args.seed,
        answer_within_s=args.service_level_s,
        warm_up=args.warm_up,
        callback_policy=policy,
        score_predictors=not args.no_predictors,
    )


# --- profile files --------------------------------------------------------------------------------


def read_profile(path: Path, *, agents: int | None, interval_min: float | None) -> LoadProfile:
    """Read a CSV or JSON profile file (formats in the module docstring).

    :raises ProfileError: naming ``--profile`` and the file, for anything unreadable or invalid.
    """
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"--profile {path}: larger than {MAX_PROFILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"--profile {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    try:
        return parse_profile(text, json_format=_is_json(path, text), agents=agents, interval_min=interval_min)
    except ValidationError as exc:
        raise ProfileError(f"--profile {path}: {exc}") from None


def _is_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    return text.lstrip()[:1] in ("[", "{")


def parse_profile(
    text: str, *, json_format: bool, agents: int | None, interval_min: float | None = None
) -> LoadProfile:
    """A profile from the text of a file; rows without agents get ``agents``.

    :raises ValidationError: with the row at fault.
    """
    rows, file_interval_min = _json_rows(text) if json_format else (_csv_rows(text), None)
    if interval_min is not None and file_interval_min is not None and interval_min != file_interval_min:
        raise ValidationError(
            f"the file says interval_min {file_interval_min:g} and --interval-min says {interval_min:g}"
        )
    minutes = interval_min or file_interval_min or DEFAULT_INTERVAL_MIN
    if not rows:
        raise ValidationError("no intervals found")
    if len(rows) > MAX_INTERVALS:
        raise ValidationError(f"at most {MAX_INTERVALS} intervals, not {len(rows)}")
    intervals = []
    for number, (rate, row_agents) in enumerate(rows, start=1):
        staffed = row_agents if row_agents is not None else agents
        if staffed is None:
            raise ValidationError(f"interval {number} has no agents: give --agents or an agents column")
        try:
            intervals.append(Interval(rate_per_hour=rate, agents=staffed))
        except ValidationError as exc:
            raise ValidationError(f"interval {number}: {exc}") from None
    return LoadProfile(interval_s=minutes * 60.0, intervals=tuple(intervals))


_Row = tuple[float, int | None]


def _csv_rows(text: str) -> list[_Row]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [name.strip().lower() for name in next(reader, [])]
    if "rate_per_hour" not in header:
        raise ValidationError("the CSV header needs a rate_per_hour column (and optionally agents)")
    rate_at = header.index("rate_per_hour")
    agents_at = header.index("agents") if "agents" in header else None
    rows: list[_Row] = []
    for number, cells in enumerate(reader, start=1):
        if len(cells) != len(header):
            raise ValidationError(f"interval {number}: {len(cells)} cells for {len(header)} columns")
        agents_cell = cells[agents_at].strip() if agents_at is not None else ""
        rows.append(
            (
                _cell_number(cells[rate_at], "rate_per_hour", number),
                _cell_whole(agents_cell, number) if agents_cell else None,
            )
        )
    return rows


def _json_rows(text: str) -> tuple[list[_Row], float | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON ({exc})") from None
    interval_min: float | None = None
    if isinstance(data, dict):
        unknown = set(data) - {"interval_min", "intervals"}
        if unknown or "intervals" not in data:
            raise ValidationError('a JSON object needs "intervals" (and optionally "interval_min") only')
        if "interval_min" in data:
            interval_min = _json_number(data["interval_min"], "interval_min", None)
            if interval_min <= 0 or interval_min > 7 * 24 * 60:
                raise ValidationError(f"interval_min must be above 0 and at most 10080, not {interval_min!r}")
        data = data["intervals"]
    if not isinstance(data, list):
        raise ValidationError("expected a list of intervals")
    rows: list[_Row] = []
    for number, item in enumerate(data, start=1):
        if isinstance(item, dict):
            if "rate_per_hour" not in item or set(item) - {"rate_per_hour", "agents"}:
                raise ValidationError(f'interval {number}: expected {{"rate_per_hour": ..., "agents": ...}}')
            agents = item.get("agents")
            if agents is not None and (isinstance(agents, bool) or not isinstance(agents, int)):
                raise ValidationError(f"interval {number}: agents must be a whole number, not {agents!r}")
            rows.append((_json_number(item["rate_per_hour"], "rate_per_hour", number), agents))
        else:
            rows.append((_json_number(item, "rate_per_hour", number), None))
    return rows, interval_min


def _json_number(value: object, name: str, number: int | None) -> float:
    where = f"interval {number}: " if number is not None else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{where}{name} must be a number, not {value!r}")
    return float(value)


def _cell_number(cell: str, name: str, number: int) -> float:
    try:
        return float(cell.strip())
    except ValueError:
        raise ValidationError(f"interval {number}: {name} must be a number, not {cell.strip()!r}") from None


def _cell_whole(cell: str, number: int) -> int:
    try:
        return int(cell)
    except ValueError:
        raise ValidationError(f"interval {number}: agents must be a whole number, not {cell!r}") from None


# --- output ---------------------------------------------------------------------------------------


def result_json(config: SimulationConfig, result: SimulationResult) -> dict[str, object]:
    """The JSON object of one run (infinite or undefined figures are ``null``)."""
    profile = config.profile
    flat = len(profile.intervals) == 1
    inputs: dict[str, object] = {
        "agents": profile.intervals[0].agents if flat else None,
        "arrival_rate_per_hour": profile.intervals[0].rate_per_hour if flat else None,
        "profile_intervals": None if flat else len(profile.intervals),
        "interval_s": None if flat else profile.interval_s,
        "aht_s": config.handle.mean_s,
        "aht_dist": config.handle.kind.value,
        "aht_cv": config.handle.cv,
        "patience_s": _finite(config.patience.mean_s),
        "patience_dist": config.patience.kind.value,
        "patience_cv": config.patience.cv,
        "arrivals": config.arrivals,
        "warm_up": config.warm_up,
        "seed": config.seed,
        "callback_policy": config.callback_policy.value,
    }
    erlang = result.erlang
    return {
        "arrivals": result.arrivals,
        "answered": result.answered,
        "abandoned": result.abandoned,
        "service_level": result.service_level,
        "service_level_answered": result.service_level_answered,
        "service_level_s": result.answer_within_s,
        "p_wait": result.p_wait,
        "abandon_rate": result.abandon_rate,
        "asa_s": result.asa_s,
        "mean_wait_s": result.mean_wait_s,
        "occupancy": result.occupancy,
        "duration_s": result.duration_s,
        "callbacks": {
            "policy": config.callback_policy.value,
            "offered": result.callbacks.offered,
            "accepted": result.callbacks.accepted,
            "kept": result.callbacks.kept,
            "kept_rate": result.callbacks.kept_rate,
        },
        "predictors": {
            score.predictor.value: {
                "rel_rmse": score.rel_rmse,
                "rmse_s": score.rmse_s,
                "bias_s": score.bias_s,
                "p80_coverage": score.p80_coverage,
                "p90_coverage": score.p90_coverage,
                "scored": score.scored,
                "mean_actual_s": score.mean_actual_s,
            }
            for score in result.predictors
        },
        "erlang": {
            "model": erlang.model.value,
            "exact": erlang.exact,
            "stable": erlang.stable,
            "service_level": erlang.service_level,
            "service_level_answered": erlang.service_level_answered,
            "p_wait": erlang.p_wait,
            "abandon_rate": erlang.abandon_rate,
            "asa_s": _finite(erlang.asa_s),
            "mean_wait_s": _finite(erlang.mean_wait_s),
            "occupancy": erlang.occupancy,
        },
        "intervals": [
            {
                "index": i.index,
                "start_s": i.start_s,
                "rate_per_hour": i.rate_per_hour,
                "agents": i.agents,
                "arrivals": i.arrivals,
                "answered": i.answered,
                "abandoned": i.abandoned,
                "service_level": i.service_level,
                "abandon_rate": i.abandon_rate,
                "asa_s": i.asa_s,
            }
            for i in result.intervals
        ],
        "inputs": inputs,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def render_table(config: SimulationConfig, result: SimulationResult) -> str:
    """A readable summary of one run."""
    lines = [_headline(config, result), ""]
    erlang = result.erlang
    model = (
        f"{'Erlang A' if erlang.model is QueueModel.ERLANG_A else 'Erlang C'}{'' if erlang.exact else ' ~'}"
    )
    rows: list[tuple[str, str, str]] = [
        (
            f"service level (<={result.answer_within_s:g} s)",
            _pct(result.service_level),
            _pct(erlang.service_level),
        ),
        ("  over answered calls", _pct(result.service_level_answered), _pct(erlang.service_level_answered)),
        ("waited at all", _pct(result.p_wait), _pct(erlang.p_wait)),
        ("abandon rate", _pct(result.abandon_rate), _pct(erlang.abandon_rate)),
        ("ASA", _sec(result.asa_s), _sec(erlang.asa_s)),
        ("mean wait (all callers)", _sec(result.mean_wait_s), _sec(erlang.mean_wait_s)),
        ("occupancy", _pct(result.occupancy), _pct(erlang.occupancy)),
    ]
    lines.append(f"{'':26}{'simulated':>12}{model:>12}")
    lines.extend(f"{label:26}{ours:>12}{theirs:>12}" for label, ours, theirs in rows)
    lines.append(
        f"answered {result.answered:,}, abandoned {result.abandoned:,} of {result.arrivals:,} counted"
    )
    if not erlang.stable:
        lines.append(
            "note: Erlang C has no steady state here (load >= agents): the queue grows without bound"
        )
    lines.append(f"callbacks: policy {config.callback_policy.value}, offered {result.callbacks.offered}")
    scored = result.predictors[0]
    if scored.scored:
        mean_wait = _sec(scored.mean_actual_s)
        lines.append("")
        lines.append(
            f"wait predictors, {scored.scored:,} callers who waited and were answered (mean wait {mean_wait}):"
        )
        lines.append(f"{'predictor':12}{'rel RMSE':>10}{'bias':>10}{'p80 cover':>11}{'p90 cover':>11}")
        for score in result.predictors:
            lines.append(
                f"{score.predictor.value:12}{_num(score.rel_rmse):>10}{_sec(score.bias_s, signed=True):>10}"
                f"{_pct(score.p80_coverage):>11}{_pct(score.p90_coverage):>11}"
            )
    if result.intervals:
        lines += [
            "",
            f"{'interval':>8}{'start':>8}{'rate/h':>9}{'agents':>8}{'arrivals':>10}{'SL':>8}{'aband.':>8}{'ASA':>9}",
        ]
        for i in result.intervals:
            start = f"{int(i.start_s // 3600):02d}:{int(i.start_s % 3600 // 60):02d}"
            lines.append(
                f"{i.index:>8}{start:>8}{i.rate_per_hour:>9g}{i.agents:>8}{i.arrivals:>10,}"
                f"{_pct(i.service_level):>8}{_pct(i.abandon_rate):>8}{_sec(i.asa_s):>9}"
            )
    return "\n".join(lines)


def _headline(config: SimulationConfig, result: SimulationResult) -> str:
    profile = config.profile
    if len(profile.intervals) == 1:
        load = f"{profile.intervals[0].agents} agents, {profile.intervals[0].rate_per_hour:g} calls/h"
    else:
        load = f"profile of {len(profile.intervals)} x {profile.interval_s / 60:g} min"
    patience = "never hang up" if math.isinf(config.patience.mean_s) else f"{config.patience.mean_s:g} s"
    return (
        f"{result.arrivals:,} arrivals counted (seed {config.seed}, warm-up {config.warm_up}): {load}; "
        f"handle {config.handle.mean_s:g} s {_law(config.handle)}; patience {patience} {_law(config.patience)}"
    )


def _law(law: DurationLaw) -> str:
    return f"{law.kind.value}:{law.cv:g}" if _takes_cv(law.kind) else law.kind.value


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _sec(value: float | None, *, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None else "inf"
    return f"{value:+.1f} s" if signed else f"{value:.1f} s"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
