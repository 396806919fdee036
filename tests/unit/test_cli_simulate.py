"""``callcenter simulate``: bad input exits 2 with the option named, JSON on the last line, profiles."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from callcenter.capacity.simulate import DurationKind, Interval, LoadProfile
from callcenter.cli_simulate import add_subcommand, main, parse_distribution, parse_profile, run
from callcenter.errors import ValidationError

QUICK = ["--agents", "3", "--arrival-rate", "150", "--aht", "60", "--arrivals", "400"]


def _exit_status(argv: list[str]) -> int:
    """The status of ``callcenter simulate argv``, whether argparse or the command refused it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agents", "0", "--arrival-rate", "100"], "argument --agents: must be from 1 to 2000, not '0'"),
        (["--agents", "2001", "--arrival-rate", "100"], "argument --agents: must be from 1 to 2000"),
        (["--agents", "2.5", "--arrival-rate", "100"], "argument --agents: must be a whole number"),
        (["--agents", "3", "--arrival-rate", "0"], "argument --arrival-rate: must be above 0"),
        (["--agents", "3", "--arrival-rate", "-10"], "argument --arrival-rate: must be above 0"),
        (["--agents", "3", "--arrival-rate", "nan"], "argument --arrival-rate: must be a finite number"),
        (["--agents", "3", "--arrival-rate", "inf"], "argument --arrival-rate: must be a finite number"),
        (["--agents", "3", "--arrival-rate", "1e9"], "argument --arrival-rate: must be at most"),
        (["--agents", "3", "--arrival-rate", "100", "--aht", "0"], "argument --aht: must be above 0"),
        (["--agents", "3", "--arrival-rate", "100", "--aht", "-60"], "argument --aht: must be above 0"),
        (
            ["--agents", "3", "--arrival-rate", "100", "--aht", "NaN"],
            "argument --aht: must be a finite number",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--aht", "inf"],
            "argument --aht: must be a finite number",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--patience", "0"],
            "argument --patience: must be above 0",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--patience", "nan"],
            "argument --patience: must be a finite",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--patience=-inf"],
            "argument --patience: must be a finite",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--aht-dist", "weibull"],
            "argument --aht-dist: unknown distribution",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--patience-dist", "lognormal:0"],
            "argument --patience-dist: the cv",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--patience-dist", "lognormal:x"],
            "argument --patience-dist: must be a number",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--aht-dist", "exponential:2"],
            "argument --aht-dist: exponential takes no",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--arrivals", "0"],
            "argument --arrivals: must be from 1",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--arrivals", "many"],
            "argument --arrivals: must be a whole number",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--seed", "x"],
            "argument --seed: must be a whole number",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--service-level-s", "-1"],
            "argument --service-level-s: must be at least 0",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--callback-policy", "later"],
            "argument --callback-policy: invalid choice",
        ),
        (["--agents", "3"], "one of the arguments --arrival-rate --profile is required"),
        (["--agents", "3", "--arrival-rate", "100", "--profile", "p.csv"], "not allowed with argument"),
        (["--arrival-rate", "100"], "--agents is required with --arrival-rate"),
        (
            ["--agents", "3", "--arrival-rate", "100", "--interval-min", "15"],
            "--interval-min applies to --profile only",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--arrivals", "10", "--warm-up", "10"],
            "--warm-up must be below --arrivals",
        ),
        (
            ["--agents", "3", "--arrival-rate", "100", "--callback-policy", "keep-place"],
            "--callback-policy keep-place: needs a finite --patience",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_status(argv) == 2

    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.csv", None, "--profile {path}: cannot read it"),
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.json", '{"rates": [1, 2]}', '"intervals"'),
        ("bad.json", '[120, "lots"]', "interval 2: rate_per_hour must be a number, not 'lots'"),
        ("bad.json", '[{"rate_per_hour": 120, "agents": 2.5}]', "interval 1: agents must be a whole number"),
        ("neg.csv", "rate_per_hour\n120\n-5\n", "interval 2: rate_per_hour must be at least 0"),
        ("nan.csv", "rate_per_hour\nnan\n", "interval 1: rate_per_hour must be a finite number"),
        ("zero.csv", "rate_per_hour\n0\n0\n", "at least one interval with a rate above 0"),
        ("header.csv", "start,calls\n08:00,120\n", "needs a rate_per_hour column"),
        ("short.csv", "rate_per_hour,agents\n120\n", "interval 1: 1 cells for 2 columns"),
        ("empty.csv", "", "needs a rate_per_hour column"),
        (
            "noagents.csv",
            "rate_per_hour\n120\n",
            "interval 1 has no agents: give --agents or an agents column",
        ),
        ("many.csv", "rate_per_hour,agents\n120,2001\n", "interval 1: agents must be between 1 and 2000"),
        (
            "interval.json",
            '{"interval_min": 30, "intervals": [120]}',
            "interval_min 30 and --interval-min says 15",
        ),
    ],
)
def test_an_unusable_profile_exits_2_naming_the_file(
    tmp_path: Path, name: str, text: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    argv = ["--profile", str(path), "--arrivals", "100"]
    if name != "noagents.csv":
        argv += ["--agents", "2"]
    if name == "interval.json":
        argv += ["--interval-min", "15"]

    assert _exit_status(argv) == 2

    err = capsys.readouterr().err
    assert f"--profile {path}: " in err
    assert message.format(path=path) in err
    assert "Traceback" not in err


def test_json_output_is_one_object_on_the_last_line_with_the_issue_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*QUICK, "--patience", "90", "--json"]) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    for key in ("service_level", "service_level_answered", "p_wait", "abandon_rate", "asa_s", "mean_wait_s"):
        assert 0.0 <= report[key] <= (1.0 if "_s" not in key else math.inf), key
    assert report["arrivals"] == 400 and report["answered"] + report["abandoned"] == 400
    assert report["callbacks"] == {
        "policy": "none",
        "offered": 0,
        "accepted": 0,
        "kept": 0,
        "kept_rate": None,
    }
    assert list(report["predictors"]) == ["qla", "asterisk", "hol", "les"]
    for figures in report["predictors"].values():
        assert {"rel_rmse", "bias_s", "p80_coverage", "p90_coverage", "scored"} <= set(figures)
        assert figures["scored"] > 0
    assert report["erlang"]["model"] == "erlang_a" and report["erlang"]["exact"] is True
    assert report["inputs"]["patience_s"] == 90.0


def test_patience_inf_is_erlang_c_and_reported_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "--patience", "inf", "--json"]) == 0

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["abandoned"] == 0 and report["erlang"]["model"] == "erlang_c"
    assert report["inputs"]["patience_s"] is None and report["inputs"]["patience_dist"] == "exponential"


def test_an_unstable_queue_reports_null_waits_for_erlang_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--agents", "1", "--arrival-rate", "90", "--aht", "60", "--arrivals", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["erlang"]["stable"] is False and report["erlang"]["asa_s"] is None

    assert main(["--agents", "1", "--arrival-rate", "90", "--aht", "60", "--arrivals", "200"]) == 0
    assert "no steady state" in capsys.readouterr().out


def test_the_table_compares_simulated_with_erlang_and_ranks_the_predictors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*QUICK, "--patience", "120", "--aht-dist", "lognormal:0.6", "--patience-dist", "gamma:2"]
    assert main(argv) == 0

    out = capsys.readouterr().out
    assert "service level (<=20 s)" in out and "Erlang A ~" in out  # non-exponential: an approximation
    assert "handle 60 s lognormal:0.6; patience 120 s gamma:2" in out
    for name in ("qla", "asterisk", "hol", "les"):
        assert f"\n{name} " in out
    assert out.isascii()


def test_the_same_seed_prints_the_same_json(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for seed in ("5", "5", "6"):
        assert main([*QUICK, "--patience", "90", "--seed", seed, "--json"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]


def test_a_csv_profile_with_staffing_reports_each_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "day.csv"
    path.write_text("# a morning\nstart,rate_per_hour,agents\n08:00,60,2\n\n08:30,240,\n09:00,0,1\n")

    argv = [
        "--profile",
        str(path),
        "--agents",
        "5",
        "--interval-min",
        "30",
        "--aht",
        "60",
        "--patience",
        "120",
    ]
    assert main([*argv, "--arrivals", "1000", "--json"]) == 0

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(i["start_s"], i["rate_per_hour"], i["agents"]) for i in report["intervals"]] == [
        (0.0, 60.0, 2),
        (1800.0, 240.0, 5),
        (3600.0, 0.0, 1),
    ]
    assert report["intervals"][2]["arrivals"] == 0 and report["intervals"][2]["service_level"] is None
    assert report["inputs"]["profile_intervals"] == 3 and report["inputs"]["interval_s"] == 1800.0
    assert report["erlang"]["exact"] is False


@pytest.mark.parametrize(
    ("text", "json_format"),
    [
        ("rate_per_hour,agents\n120,4\n180,\n", False),
        ("RATE_PER_HOUR , Agents\n120 , 4\n180,\n", False),
        ('[{"rate_per_hour": 120, "agents": 4}, {"rate_per_hour": 180}]', True),
        ('{"interval_min": 15, "intervals": [{"rate_per_hour": 120, "agents": 4}, 180]}', True),
    ],
)
def test_csv_and_json_profiles_read_alike(text: str, json_format: bool) -> None:
    expected = LoadProfile(
        interval_s=900.0,
        intervals=(Interval(rate_per_hour=120.0, agents=4), Interval(rate_per_hour=180.0, agents=6)),
    )
    assert parse_profile(text, json_format=json_format, agents=6) == expected


def test_a_profile_interval_longer_than_a_week_is_refused() -> None:
    with pytest.raises(ValidationError, match="interval_min"):
        parse_profile('{"interval_min": 20000, "intervals": [1]}', json_format=True, agents=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exponential", (DurationKind.EXPONENTIAL, 1.0)),
        ("Deterministic", (DurationKind.DETERMINISTIC, 0.0)),
        ("lognormal", (DurationKind.LOGNORMAL, 1.0)),
        ("lognormal:0.6", (DurationKind.LOGNORMAL, 0.6)),
        ("gamma:2", (DurationKind.GAMMA, 2.0)),
    ],
)
def test_distributions_parse_with_an_optional_cv(text: str, expected: tuple[DurationKind, float]) -> None:
    assert parse_distribution(text) == expected


def test_the_subcommand_plugs_into_the_callcenter_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """What ``callcenter.cli`` does with it: ``add_subcommand(sub)``, then ``run(args)``."""
    parser = argparse.ArgumentParser(prog="callcenter")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommand(sub)

    args = parser.parse_args(["simulate", *QUICK, "--no-predictors", "--json"])

    assert args.command == "simulate" and run(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["predictors"]["qla"]["scored"] == 0 and report["predictors"]["qla"]["rel_rmse"] is None


@pytest.mark.parametrize("policy", ["keep-place", "slots"])
def test_callback_policy_reports_offers_acceptances_and_promises_kept_against_a_naive_baseline(
    policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A flat day: long waits need a busy queue, slots need agents to spare; 14 agents give both a little.
    agents = "12" if policy == "keep-place" else "14"
    argv = [
        "--agents",
        agents,
        "--arrival-rate",
        "110",
        "--aht",
        "300",
        "--patience",
        "600",
        "--arrivals",
        "900",
    ]
    assert main([*argv, "--no-predictors", "--callback-policy", policy, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    callbacks = report["callbacks"]
    assert report["inputs"]["callback_policy"] == policy
    assert callbacks["policy"] == policy and callbacks["days"] == 2
    ours, naive = callbacks["ours"], callbacks["naive"]
    assert ours["arrivals"] == naive["arrivals"] > 0  # the same callers for both
    assert callbacks["offered"] == ours["offers"] > 0
    assert 0 < callbacks["accepted"] <= callbacks["offered"]
    assert 0.0 <= callbacks["kept_rate"] <= 1.0
    assert ours["callbacks"] == callbacks["accepted"]
    other = "slots" if policy == "keep-place" else "keep_place"
    assert ours[other] == 0


def test_callback_policy_table_compares_ours_and_naive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--agents",
        "12",
        "--arrival-rate",
        "110",
        "--aht",
        "300",
        "--patience",
        "600",
        "--arrivals",
        "900",
    ]
    assert main([*argv, "--no-predictors", "--callback-policy", "keep-place"]) == 0
    out = capsys.readouterr().out
    assert "callbacks (keep-place, 2 days of 09:00-17:00)" in out and "promises kept" in out
    assert "callbacks: policy none" not in out
