"""The AGI wire protocol as typed values: the ``agi_*`` block, command lines and replies (edge, pure).

No sockets here: :mod:`callcenter.agi.server` moves the bytes, this module says what they mean. The
shapes follow ``res/res_agi.c`` of Asterisk 20 and a session recorded from a real Asterisk 20
(``tests/data/agi/agi_session.raw.txt``):

* The environment block is ``agi_<name>: <value>`` lines ended by LF (not CRLF) and closed by an
  empty line; values may be empty (``agi_accountcode: ``). ``AGI(agi://host/script,a,b)`` adds
  ``agi_arg_1: a`` .. lines.
* A reply is one line ``200 result=<r>[ (<data>)][ endpos=<n>]``; ``<r>`` may be empty
  (``200 result= (timeout)`` from GET DATA with no digit). Errors are ``510 Invalid or unknown
  command``, ``511 Command Not Permitted on a dead channel or intercept routine`` and ``520``, whose
  usage text spans lines (``520-Invalid command syntax.  Proper usage follows:`` .. ``520 End of
  proper usage.``).
* After the caller hangs up, Asterisk writes an unsolicited ``HANGUP`` line before the next reply.
  It never closes the socket itself: the server does.
* A command line is split by Asterisk's ``parse_args``: spaces separate words, ``"`` groups them and
  ``\\`` escapes the next character. There is no escape for a line break, which would end the
  command; :func:`quote` turns control characters into spaces so no value (a caller's name is chosen
  by the caller) can ever add a command.
* Asterisk reads at most 8191 bytes of a command line (``AGI_BUF_LEN``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from callcenter.errors import CallCenterError

#: Asterisk's ``AGI_BUF_LEN``: the longest command line it reads, newline included.
MAX_COMMAND_BYTES: Final = 8192
#: Limits on what we accept from a peer before the script runs.
MAX_LINE_BYTES: Final = 8192
MAX_ENV_LINES: Final = 256
MAX_ENV_BYTES: Final = 65_536
MAX_USAGE_LINES: Final = 200

#: The unsolicited line Asterisk sends once the channel hung up.
HANGUP_LINE: Final = "HANGUP"
#: Sent instead of a command: Asterisk stops the AGI with ``AGISTATUS=FAILURE`` and the dialplan
#: continues at the next priority (``run_agi`` checks a line starting with ``failure``).
FAILURE_LINE: Final = "FAILURE"

_ENV_KEY: Final = re.compile(r"agi_[a-z0-9_]+")
_REPLY: Final = re.compile(r"(?P<code>\d{3})(?P<sep>[ -])(?P<text>.*)")
_RESULT: Final = re.compile(r"result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?: endpos=(?P<endpos>-?\d+))?")
_VERB: Final = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# A variable or dialplan function we may read: no ``$``, braces or control characters, so the name
# itself can never smuggle an expression into GET FULL VARIABLE.
_READABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?:\([^${}\x00-\x1f\x7f]*\))?")
_SETTABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([^${}\x00-\x1f\x7f]*\))?")
# Prefixed to every value read through BASE64_ENCODE, which logs a warning for an empty argument.
_VALUE_MARK: Final = "v"
_VALUE_SEPARATOR: Final = "|"


class AgiProtocolError(CallCenterError):
    """The peer broke the AGI protocol: garbage, a block too large, or the connection ended mid-way."""


class AgiConnectionClosedError(AgiProtocolError):
    """The peer closed the connection (or never answered) while a reply was expected."""


class AgiCommandError(CallCenterError):
    """Asterisk refused a command (510 unknown, 520 usage) or answered what the command cannot give."""

    def __init__(self, message: str, reply: AgiReply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


# ---------------------------------------------------------------------------------------------
# The environment block
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The ``agi_*`` block Asterisk sends first, keys as sent (``agi_channel``)."""

    values: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def request(self) -> str:
        """``agi://127.0.0.1:4573/ivr`` for FastAGI, the script path for classic AGI."""
        return self.get("agi_request")

    @property
    def network(self) -> bool:
        return self.get("agi_network") == "yes"

    @property
    def script(self) -> str:
        """The script path without leading ``/`` or query: ``ivr`` for ``agi://host:4573/ivr?x=1``."""
        raw = self.values.get("agi_network_script")
        if raw is None:
            raw = urlsplit(self.request).path if "://" in self.request else self.request
        return raw.split("?", 1)[0].strip("/")

    @property
    def query(self) -> Mapping[str, str]:
        """Parameters of the script path (``agi://host/call-outcome?queue=support``)."""
        raw = self.values.get("agi_network_script")
        query = raw.partition("?")[2] if raw is not None else urlsplit(self.request).query
        return dict(parse_qsl(query))

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` .. in order (``AGI(agi://host/script,a,b)``)."""
        found: list[str] = []
        while (value := self.values.get(f"agi_arg_{len(found) + 1}")) is not None:
            found.append(value)
        return tuple(found)

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def callerid(self) -> str:
        return self.get("agi_callerid")

    @property
    def calleridname(self) -> str:
        return self.get("agi_calleridname")

    @property
    def context(self) -> str:
        return self.get("agi_context")

    @property
    def extension(self) -> str:
        return self.get("agi_extension")


def decode_line(raw: bytes) -> str:
    """One line off the wire without its LF (and a stray CR); bytes that are not UTF-8 are replaced."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def parse_env_line(line: str) -> tuple[str, str]:
    """``agi_key: value`` -> ``("agi_key", "value")``. :raises AgiProtocolError: for anything else."""
    key, colon, value = line.partition(":")
    if not colon or not _ENV_KEY.fullmatch(key):
        raise AgiProtocolError(f"not an agi_* environment line: {line[:40]!r}")
    # Asterisk writes "agi_key: value": exactly one space, then the value (which may be empty).
    return key, value[1:] if value.startswith(" ") else value


class EnvironmentReader:
    """Collects environment lines until the empty line, within :data:`MAX_ENV_LINES` / ``_BYTES``."""

    def __init__(self, *, max_lines: int = MAX_ENV_LINES, max_bytes: int = MAX_ENV_BYTES) -> None:
        self._values: dict[str, str] = {}
        self._lines = 0
        self._bytes = 0
        self._max_lines = max_lines
        self._max_bytes = max_bytes

    def feed(self, raw: bytes) -> AgiEnvironment | None:
        """Take one raw line (with its LF); the environment once the empty line came, else ``None``.

        :raises AgiProtocolError: for a line that is not ``agi_*``, a line without LF (the peer
            stopped mid-line), a repeated key, or a block over the limits.
        """
        self._lines += 1
        self._bytes += len(raw)
        if self._lines > self._max_lines or self._bytes > self._max_bytes:
            raise AgiProtocolError(
                f"environment block over {self._max_lines} lines or {self._max_bytes} bytes"
            )
        if not raw.endswith(b"\n"):
            raise AgiProtocolError("connection ended inside the environment block")
        line = decode_line(raw)
        if line == "":
            if not self._values:
                raise AgiProtocolError("empty environment block")
            return AgiEnvironment(dict(self._values))
        key, value = parse_env_line(line)
        if key in self._values:
            raise AgiProtocolError(f"environment key {key} sent twice")
        self._values[key] = value
        return None


def parse_environment(text: str) -> AgiEnvironment:
    """A whole block (lines ended by LF, then an empty line). :raises AgiProtocolError:"""
    reader = EnvironmentReader()
    for line in text.splitlines(keepends=True):
        env = reader.feed(line.encode("utf-8"))
        if env is not None:
            return env
    raise AgiProtocolError("environment block without its closing empty line")


# ---------------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply of Asterisk to a command.

    For ``200``: ``result`` is the text after ``result=`` (``""`` for ``200 result= (timeout)``),
    ``data`` what the parentheses hold, ``endpos`` the sample offset of playback and recording
    commands. For other codes ``message`` is the text, and a ``520`` carries its ``usage`` lines.
    """

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    message: str = ""
    usage: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        """``result`` as a number (``None`` when empty or not a number)."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"

    @property
    def dead_channel(self) -> bool:
        """``511``: the command needs a live channel and the caller has hung up."""
        return self.code == 511


def parse_reply_line(line: str) -> AgiReply:
    """A one-line reply (``200 ...``, ``510 ...``, ``511 ...``, ``520 ...``).

    :raises AgiProtocolError: for anything else, including ``520-`` which opens a usage block
        (:class:`ReplyReader` handles that) and the unsolicited ``HANGUP``.
    """
    match = _REPLY.fullmatch(line)
    if match is None or match["sep"] != " ":
        raise AgiProtocolError(f"not an AGI reply: {line[:120]!r}")
    code, text = int(match["code"]), match["text"]
    if code != 200:
        return AgiReply(code=code, message=text)
    result = _RESULT.fullmatch(text)
    if result is None:
        raise AgiProtocolError(f"a 200 reply without result=: {line[:120]!r}")
    endpos = result["endpos"]
    return AgiReply(
        code=200,
        result=result["result"],
        data=result["data"],
        endpos=int(endpos) if endpos is not None else None,
    )


class ReplyReader:
    """Turns the lines Asterisk sends after a command into one :class:`AgiReply`.

    ``HANGUP`` lines are absorbed (``hangup_seen`` is set), a ``520-`` usage block is gathered to its
    closing ``520 `` line, within :data:`MAX_USAGE_LINES`.
    """

    def __init__(self) -> None:
        self.hangup_seen = False
        self._usage: list[str] | None = None
        self._usage_head = ""

    def feed(self, line: str) -> AgiReply | None:
        """One decoded line; the reply once complete, else ``None``. :raises AgiProtocolError:"""
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = tuple(self._usage), None
                return AgiReply(code=520, message=self._usage_head, usage=usage)
            if len(self._usage) >= MAX_USAGE_LINES:
                raise AgiProtocolError(f"520 usage text over {MAX_USAGE_LINES} lines")
            self._usage.append(line)
            return None
        if line == HANGUP_LINE:
            self.hangup_seen = True
            return None
        if line.startswith("520-"):
            self._usage, self._usage_head = [], line[4:]
            return None
        return parse_reply_line(line)


def parse_replies(text: str) -> list[AgiReply]:
    """Every reply of a transcript of Asterisk's side after the environment block (tests, tools)."""
    reader, replies = ReplyReader(), []
    for line in text.splitlines():
        reply = reader.feed(line)
        if reply is not None:
            replies.append(reply)
    return replies


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def quote(value: str) -> str:
    """``value`` as one argument of a command line: quoted, ``"`` and ``\\`` escaped.

    Control characters (a line break above all: it would end the command and start another one)
    become spaces, since Asterisk's ``parse_args`` has no escape for them.
    """
    cleaned = _CONTROL.sub(" ", value)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(verb: str, *args: str | int) -> bytes:
    """The wire form of one command: ``verb`` then each argument (strings quoted), then LF.

    :raises ValueError: for a verb that is not upper-case words, or a line Asterisk would cut.
    """
    if not _VERB.fullmatch(verb):
        raise ValueError(f"not an AGI command verb: {verb!r}")
    words = [verb, *(str(a) if isinstance(a, int) else quote(a) for a in args)]
    line = (" ".join(words) + "\n").encode("utf-8")
    if len(line) > MAX_COMMAND_BYTES - 1:
        raise ValueError(f"AGI command of {len(line)} bytes; Asterisk reads at most {MAX_COMMAND_BYTES - 1}")
    return line


def check_readable(name: str) -> str:
    """``name`` if it is a variable or function we may read (``QUEUESTATUS``, ``CALLERID(num)``).

    :raises ValueError:
    """
    if not _READABLE.fullmatch(name):
        raise ValueError(f"not a channel variable or dialplan function name: {name!r}")
    return name


def check_settable(name: str) -> str:
    """``name`` if it is a variable or function we may set. :raises ValueError:"""
    if not _SETTABLE.fullmatch(name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return name


def new_nonce() -> str:
    """A random word for :func:`read_expression`, new for every read."""
    return secrets.token_hex(8)


def read_expression(names: Sequence[str], nonce: str) -> str:
    """The GET FULL VARIABLE expression that reads every one of ``names`` in one reply.

    Each value comes back base64-encoded, so no value (a caller's name with a line break or a
    ``)`` in it) can spoil the reply line or pass for the next reply. The reply ends with
    ``nonce`` (from :func:`new_nonce`): a reply forged ahead of time, say by a caller id holding
    line breaks in the ``agi_*`` block (Asterisk writes it unescaped), cannot know it.
    :func:`decode_read` checks it and undoes the encoding.
    """
    if not names:
        raise ValueError("nothing to read")
    if not nonce.isalnum():
        raise ValueError("the nonce must be letters and digits")
    reads = ["${BASE64_ENCODE(" + _VALUE_MARK + "${" + check_readable(n) + "})}" for n in names]
    return _VALUE_SEPARATOR.join([*reads, nonce])


def decode_read(data: str | None, names: Sequence[str], nonce: str) -> dict[str, str]:
    """The values of ``names`` from the reply to :func:`read_expression`. :raises AgiProtocolError:"""
    parts = (data or "").split(_VALUE_SEPARATOR)
    if not parts or parts.pop() != nonce:
        raise AgiProtocolError("the reply to a read does not end with its nonce: not the answer to our read")
    if len(parts) != len(names):
        raise AgiProtocolError(f"expected {len(names)} values, got {len(parts)} (is func_base64 loaded?)")
    values: dict[str, str] = {}
    for name, part in zip(names, parts, strict=True):
        try:
            text = base64.b64decode(part, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            raise AgiProtocolError(f"value of {name} is not base64: {part[:40]!r}") from None
        if not text.startswith(_VALUE_MARK):
            raise AgiProtocolError(f"value of {name} lacks its marker")
        values[name] = text[len(_VALUE_MARK) :]
    return values


def answer() -> bytes:
    return command("ANSWER")


def noop() -> bytes:
    return command("NOOP")


def channel_status() -> bytes:
    return command("CHANNEL STATUS")


def hangup() -> bytes:
    return command("HANGUP")


def verbose(message: str, level: int = 1) -> bytes:
    return command("VERBOSE", message, level)


def stream_file(name: str, escape_digits: str = "") -> bytes:
    """``200 result=0 endpos=<n>``; ``result=<digit code>`` when a key stopped it; ``-1``: failed."""
    return command("STREAM FILE", name, escape_digits)


def say_digits(digits: str, escape_digits: str = "") -> bytes:
    if not digits.isdigit():
        raise ValueError(f"SAY DIGITS takes digits, not {digits!r}")
    return command("SAY DIGITS", digits, escape_digits)


def say_number(number: int, escape_digits: str = "") -> bytes:
    return command("SAY NUMBER", number, escape_digits)


def wait_for_digit(timeout_ms: int) -> bytes:
    """``200 result=<digit code>``, ``result=0`` on timeout, ``-1`` on hang-up."""
    return command("WAIT FOR DIGIT", timeout_ms)


def get_data(file: str, timeout_ms: int, max_digits: int) -> bytes:
    """``200 result=<digits>``, ``200 result=<digits> (timeout)``, ``-1`` on hang-up."""
    return command("GET DATA", file, timeout_ms, max_digits)


def record_file(
    name: str, fmt: str, escape_digits: str, timeout_ms: int, *, beep: bool, silence_s: int
) -> bytes:
    """``RECORD FILE name fmt escape timeout [BEEP] [s=silence]``; ``timeout_ms`` -1 has no limit.

    Replies: ``(dtmf)`` with the key's code, ``(timeout)`` for the time limit and silence alike,
    ``(hangup)`` with ``result=-1``, each with ``endpos``; ``(randomerror)`` / ``(writefile)`` fail.
    """
    args: list[str | int] = [name, fmt, escape_digits, timeout_ms]
    if beep:
        args.append("BEEP")
    if silence_s > 0:
        args.append(f"s={silence_s}")
    return command("RECORD FILE", *args)


def set_variable(name: str, value: str) -> bytes:
    """``200 result=1``. The value is taken as is: Asterisk does not expand ``${...}`` in it."""
    return command("SET VARIABLE", check_settable(name), value)


def get_variable(name: str) -> bytes:
    """``200 result=1 (<value>)`` or ``200 result=0`` when unset; multi-line values break the reply."""
    return command("GET VARIABLE", check_readable(name))


def get_full_variable(expression: str) -> bytes:
    """``200 result=1 (<expression expanded>)``. Never pass caller-controlled text as ``expression``."""
    return command("GET FULL VARIABLE", expression)
