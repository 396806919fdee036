"""A scripted FastAGI client: Asterisk's side of ``AGI(agi://host:4573/<script>)`` (edge, simulator).

:class:`AgiPeer` connects to a FastAGI server, sends the ``agi_*`` block the way Asterisk 20 does
(``tests/data/agi/agi_session.raw.txt``) and answers the commands it receives from a small model of
the channel: variables (``GET FULL VARIABLE`` expands ``${...}`` with ``BASE64_ENCODE`` and
``STRFTIME``), keys the caller will press, sound files that exist, a recording's length, and a
caller who hangs up at a chosen command. Replies follow ``res/res_agi.c``: ``result=-1`` on the
command during which the caller hung up, the unsolicited ``HANGUP`` line before the next reply,
then ``511`` for commands that need a live channel. It records every command it received, and
whether the server ended the AGI with ``FAILURE`` and closed the connection itself (Asterisk never
closes it).

Commands are split with Asterisk's own rules (``parse_args``: quotes, backslash escapes), so a test
sees exactly the arguments Asterisk would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callcenter.simulator.pbx import wav_bytes

#: Commands Asterisk lets run on a hung-up channel (``res_agi.c``: the ``dead`` column).
DEAD_OK: Final = frozenset({"GET FULL VARIABLE", "GET VARIABLE", "SET VARIABLE", "NOOP", "VERBOSE", "EXEC"})
_USAGE: Final = (
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: {verb} ...",
    "520 End of proper usage.",
)
_INT: Final = re.compile(r"-?\d+")

#: A rule: a reply (lines, without LF) for a command line, or ``None`` to let the model answer.
Rule = Callable[[str, list[str]], Sequence[str] | None]


def parse_args(line: str) -> list[str]:
    """Split a command line as Asterisk's ``parse_args`` does (quotes group, ``\\`` escapes)."""
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and current is None:
                current = []
            continue
        if char in " \t" and not quoted and not escaped:
            if current is not None:
                words.append("".join(current))
                current = None
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if current is None:
            current = []
        current.append(char)
        escaped = False
    if current is not None:
        words.append("".join(current))
    return words


def _verb(argv: list[str]) -> str:
    """The command name: the longest known prefix of upper-cased words."""
    words = [w.upper() for w in argv]
    for length in (3, 2, 1):
        candidate = " ".join(words[:length])
        if candidate in _KNOWN_VERBS:
            return candidate
    return " ".join(words[:1])


_KNOWN_VERBS: Final = frozenset(
    {
        "ANSWER",
        "NOOP",
        "VERBOSE",
        "HANGUP",
        "CHANNEL STATUS",
        "SET VARIABLE",
        "GET VARIABLE",
        "GET FULL VARIABLE",
        "STREAM FILE",
        "SAY DIGITS",
        "SAY NUMBER",
        "WAIT FOR DIGIT",
        "GET DATA",
        "RECORD FILE",
        "EXEC",
    }
)


@dataclass
class AgiCallModel:
    """The simulated channel behind one session.

    :param variables: channel variables and dialplan functions by name (``CALLERID(num)``).
    :param digits: keys the caller presses, in order, whenever a command listens for one.
    :param hangup_on: the command (``STREAM FILE``) during which the caller hangs up.
    :param dead: the session starts on a hung-up channel (a hang-up handler).
    :param missing_sounds: sound files that do not exist.
    :param sound_samples: ``endpos`` of a prompt played to its end.
    :param record_samples: ``endpos`` of a recording (8 kHz samples: 16000 is 2 s).
    :param record_end: how a recording ends: ``timeout`` (limit or silence), ``dtmf`` or ``hangup``;
        ``writefile``: Asterisk cannot open the file (``result=-1 (writefile)``, nothing recorded).
    :param record_pcm: what the caller says (16-bit 8 kHz mono): ``RECORD FILE <path> wav`` then writes
        ``<path>.wav`` as Asterisk would (on this machine: the spool a shared volume would give), and
        ``endpos`` is its length; ``None`` writes nothing.
    :param now: Asterisk's clock for ``STRFTIME`` (Unix seconds).
    """

    variables: dict[str, str] = field(default_factory=dict)
    digits: deque[str] = field(default_factory=deque)
    hangup_on: str | None = None
    dead: bool = False
    missing_sounds: frozenset[str] = frozenset()
    sound_samples: int = 8000
    record_samples: int = 16000
    record_end: str = "timeout"
    record_pcm: bytes | None = None
    now: Callable[[], float] = time.time
    hangup_pending: bool = False

    def expand(self, template: str) -> str:
        """``${...}`` expressions expanded like Asterisk: innermost first, functions by last ``)``."""
        out: list[str] = []
        i = 0
        while i < len(template):
            if template.startswith("${", i):
                end = _closing_brace(template, i + 2)
                if end < 0:
                    out.append(template[i:])
                    break
                out.append(self._evaluate(self.expand(template[i + 2 : end])))
                i = end + 1
            else:
                out.append(template[i])
                i += 1
        return "".join(out)

    def _evaluate(self, name: str) -> str:
        if name.endswith(")") and "(" in name:
            function, args = name[: name.index("(")], name[name.index("(") + 1 : -1]
            if function == "BASE64_ENCODE":
                return base64.b64encode(args.encode()).decode() if args else ""
            if function == "STRFTIME":
                return f"{self.now():.3f}"  # what ${STRFTIME(,,%s.%3q)} gives
        return self.variables.get(name, "")


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


class AgiPeer:
    """Asterisk's side of one FastAGI session, answering from an :class:`AgiCallModel`.

    :param script: the script path (``call-outcome``), sent as ``agi_network_script``.
    :param env: environment values to add or replace (keys with their ``agi_`` prefix).
    :param args: ``agi_arg_1`` .. values.
    :param rules: tried first, in order, for each command (a reply, or ``None`` to go on).
    :param idle_timeout_s: how long to wait for the server's next line before giving up.
    """

    def __init__(
        self,
        script: str,
        *,
        model: AgiCallModel | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        rules: Sequence[Rule] = (),
        idle_timeout_s: float = 5.0,
    ) -> None:
        self.script = script
        self.model = model or AgiCallModel()
        self._env_overrides = dict(env or {})
        self._args = tuple(args)
        self._rules = tuple(rules)
        self._idle_timeout_s = idle_timeout_s
        #: Every command line received (decoded, without LF), and the same split into words.
        self.lines: list[str] = []
        self.commands: list[list[str]] = []
        #: The server ended the AGI with ``FAILURE`` (Asterisk sets ``AGISTATUS=FAILURE``).
        self.failure = False
        #: The server closed the connection (it must: Asterisk never does).
        self.closed_by_server = False
        #: We stopped waiting: the server sent nothing for ``idle_timeout_s``.
        self.timed_out = False

    def environment(self, host: str, port: int) -> dict[str, str]:
        """The ``agi_*`` block as Asterisk 20 sends it, in its order."""
        env = {
            "agi_network": "yes",
            "agi_network_script": self.script,
            "agi_request": f"agi://{host}:{port}/{self.script}",
            "agi_channel": "PJSIP/trunk-00000006",
            "agi_language": "en",
            "agi_type": "PJSIP",
            "agi_uniqueid": self.model.variables.get("UNIQUEID", "1795459766.10"),
            "agi_version": "20.20.1",
            "agi_callerid": self.model.variables.get("CALLERID(num)", "unknown") or "unknown",
            "agi_calleridname": self.model.variables.get("CALLERID(name)", "unknown") or "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": "300",
            "agi_rdnis": "unknown",
            "agi_context": "callcenter-outcome-hook",
            "agi_extension": "s",
            "agi_priority": "2",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": "139794518324928",
        }
        env.update(self._env_overrides)
        for number, value in enumerate(self._args, start=1):
            env[f"agi_arg_{number}"] = value
        return env

    async def run(self, host: str, port: int) -> AgiPeer:
        """Connect, send the block, answer commands until the server closes or fails the AGI."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            block = "".join(f"{k}: {v}\n" for k, v in self.environment(host, port).items()) + "\n"
            writer.write(block.encode())
            await writer.drain()
            await self._answer_commands(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        return self

    async def _answer_commands(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    raw = await reader.readline()
            except TimeoutError:
                self.timed_out = True
                return
            except ConnectionError:  # closed with our data unread: a reset instead of a FIN
                self.closed_by_server = True
                return
            if not raw:
                self.closed_by_server = True
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.lower().startswith("failure"):
                self.failure = True
                return  # Asterisk stops the AGI and closes the socket
            writer.write("".join(f"{r}\n" for r in self.answer(line)).encode())
            try:
                await writer.drain()
            except ConnectionError:
                self.closed_by_server = True
                return

    def answer(self, line: str) -> list[str]:
        """Record one command line (without LF) and return Asterisk's reply lines.

        The socket loop uses it; a classic AGI test drives a program's pipes with it.
        """
        self.lines.append(line)
        argv = parse_args(line)
        self.commands.append(argv)
        # A hang-up is announced before the reply to the command *after* the one it hit.
        announce, self.model.hangup_pending = self.model.hangup_pending, False
        reply = self._reply(line, argv)
        return ["HANGUP", *reply] if announce else reply

    def hang_up(self) -> None:
        """The caller hangs up now: the next reply is preceded by ``HANGUP``."""
        if not self.model.dead:
            self.model.dead = True
            self.model.hangup_pending = True

    def _reply(self, line: str, argv: list[str]) -> list[str]:
        for rule in self._rules:
            answer = rule(line, argv)
            if answer is not None:
                return list(answer)
        verb = _verb(argv)
        if verb not in _KNOWN_VERBS:
            return ["510 Invalid or unknown command"]
        if self.model.dead and verb not in DEAD_OK:
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        hangs_up = self.model.hangup_on is not None and verb == self.model.hangup_on
        if hangs_up:
            self.model.hangup_on = None
            self.hang_up()
        return self._model_reply(verb, argv[len(verb.split()) :], hung_up=hangs_up)

    def _model_reply(self, verb: str, args: list[str], *, hung_up: bool) -> list[str]:
        handlers: dict[str, Callable[[list[str], bool], list[str]]] = {
            "ANSWER": lambda a, h: ["200 result=0"],
            "NOOP": lambda a, h: ["200 result=0"],
            "VERBOSE": lambda a, h: ["200 result=1"],
            "CHANNEL STATUS": lambda a, h: ["200 result=6"],  # 6: Up
            "HANGUP": self._hangup,
            "SET VARIABLE": self._set_variable,
            "GET VARIABLE": self._get_variable,
            "GET FULL VARIABLE": self._get_full_variable,
            "STREAM FILE": self._stream_file,
            "SAY DIGITS": self._say,
            "SAY NUMBER": self._say,
            "WAIT FOR DIGIT": self._wait_for_digit,
            "GET DATA": self._get_data,
            "RECORD FILE": self._record,
        }
        handler = handlers.get(verb)
        if handler is None:
            return ["510 Invalid or unknown command"]
        return handler(args, hung_up)

    def _hangup(self, args: list[str], hung_up: bool) -> list[str]:
        self.hang_up()
        return ["200 result=1"]

    def _set_variable(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) != 2:
            return _usage("SET VARIABLE")
        self.model.variables[args[0]] = args[1]
        return ["200 result=1"]

    def _get_variable(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) != 1:
            return _usage("GET VARIABLE")
        value = self.model.variables.get(args[0])
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _get_full_variable(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) not in (1, 2):
            return _usage("GET FULL VARIABLE")
        return [f"200 result=1 ({self.model.expand(args[0])})"]

    def _stream_file(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) not in (2, 3):
            return _usage("STREAM FILE")
        samples = self.model.sound_samples
        if args[0] in self.model.missing_sounds:
            return ["200 result=-1 endpos=0"]
        if hung_up:
            return [f"200 result=-1 endpos={samples // 2}"]
        pressed = self._press(args[1])
        if pressed is not None:
            return [f"200 result={ord(pressed)} endpos={samples // 2}"]
        return [f"200 result=0 endpos={samples}"]

    def _say(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) not in (2, 3) or not _INT.fullmatch(args[0]):
            return _usage("SAY DIGITS")
        if hung_up:
            return ["200 result=-1"]
        pressed = self._press(args[1])
        return [f"200 result={ord(pressed) if pressed is not None else 0}"]

    def _wait_for_digit(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) != 1 or not _INT.fullmatch(args[0]):
            return _usage("WAIT FOR DIGIT")
        if hung_up:
            return ["200 result=-1"]
        pressed = self._press("0123456789*#")
        return [f"200 result={ord(pressed) if pressed is not None else 0}"]

    def _press(self, escape_digits: str) -> str | None:
        digits = self.model.digits
        if digits and digits[0] in escape_digits:
            return digits.popleft()
        return None

    def _get_data(self, args: list[str], hung_up: bool) -> list[str]:
        if not args:
            return _usage("GET DATA")
        if hung_up:
            return ["200 result=-1"]
        max_digits = int(args[2]) if len(args) > 2 and _INT.fullmatch(args[2]) else 1024
        typed = ""
        while len(typed) < max_digits and self.model.digits:
            digit = self.model.digits.popleft()
            if digit == "#":
                return [f"200 result={typed}"]
            typed += digit
        return [f"200 result={typed}"] if len(typed) == max_digits else [f"200 result={typed} (timeout)"]

    def _record(self, args: list[str], hung_up: bool) -> list[str]:
        if len(args) < 4 or not _INT.fullmatch(args[3]):
            return _usage("RECORD FILE")
        if self.model.record_end == "writefile" and not hung_up:
            return ["200 result=-1 (writefile)"]
        samples = self.model.record_samples
        if self.model.record_pcm is not None and not hung_up and args[1] in ("wav", "WAV"):
            Path(f"{args[0]}.{args[1]}").write_bytes(wav_bytes(self.model.record_pcm))
            samples = len(self.model.record_pcm) // 2
        if hung_up or self.model.record_end == "hangup":
            if not hung_up:
                self.hang_up()
            return [f"200 result=-1 (hangup) endpos={samples}"]
        if self.model.record_end == "dtmf":
            pressed = self._press(args[2]) or "#"
            return [f"200 result={ord(pressed)} (dtmf) endpos={samples}"]
        return [f"200 result=0 (timeout) endpos={samples}"]


def _usage(verb: str) -> list[str]:
    return [_USAGE[0], _USAGE[1].format(verb=verb), _USAGE[2]]
