"""A loopback Kannel with its fake SMSC, for the Kannel tests and ``bench/sms.py`` (edge).

Starts ``bearerbox``, ``smsbox`` and ``fakesmsc`` (Debian ``kannel`` and ``kannel-extras``) on free
127.0.0.1 ports with a generated ``kannel.conf``. The fake SMSC serves one client at a time, so one
``fakesmsc`` process is both the phone network's sink (every text Kannel sends shows up in
:attr:`KannelLab.received`) and, restarted per message, its source (:meth:`KannelLab.inject`: a text
from a phone to us). The catch-all ``sms-service`` has ``max-messages = 0``: otherwise Kannel sends
the get-url's answer back as a text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import unquote_to_bytes

BEARERBOX: Final = "/usr/sbin/bearerbox"
SMSBOX: Final = "/usr/sbin/smsbox"
FAKESMSC: Final = "/usr/lib/kannel/test/fakesmsc"
USERNAME: Final = "callcenter"
PASSWORD: Final = "lab-password"
# fakesmsc prints "Got message N: <from to type data>" for each text the SMSC delivers to a phone.
_GOT: Final = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def missing_binaries() -> list[str]:
    """The Kannel programs this machine lacks (install Debian ``kannel`` and ``kannel-extras``)."""
    return [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not (os.path.exists(p) and os.access(p, os.X_OK))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class PhoneText:
    """A text the fake SMSC delivered to a phone, with when we saw it (monotonic seconds)."""

    sender: str
    to: str
    text: str
    seen_at: float


@dataclass
class KannelLab:
    """A running Kannel; see the module docstring. Build it with :func:`kannel_lab`."""

    directory: Path
    sendsms_url: str
    smsc_port: int
    received: list[PhoneText] = field(default_factory=list)
    _boxes: list[asyncio.subprocess.Process] = field(default_factory=list)
    _phone: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def inject(self, sender: str, to: str, text: str) -> None:
        """A phone texts ``text`` to ``to`` (plain GSM text; the fake SMSC's ``text`` type)."""
        await self._start_phone(["-m", "1", f"{sender} {to} text {text}"])

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[PhoneText]:
        """Wait until at least ``count`` texts reached phones; returns them all."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.received)

    def to(self, number: str) -> list[PhoneText]:
        return [t for t in self.received if t.to == number]

    async def _start_phone(self, args: list[str]) -> None:
        await self._stop_phone()
        # -m 0 would be fakesmsc's interactive mode: it then waits on stdin, which we keep open.
        # fakesmsc writes to a pipe in blocks; stdbuf makes each received text show up at once.
        line_buffered = ["stdbuf", "-oL", "-eL"] if shutil.which("stdbuf") else []
        self._phone = await asyncio.create_subprocess_exec(
            *line_buffered, FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self._phone))
        await self._wait_connected()

    async def _wait_connected(self) -> None:
        # bearerbox logs the fakesmsc client; polling its log is the only sign it took the connection.
        log = self.directory / "bearerbox.log"
        deadline = time.monotonic() + 10
        before = self._connections
        while time.monotonic() < deadline:
            if _count(log, "Fakesmsc client connected") > before:
                self._connections += 1
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("fakesmsc did not connect to bearerbox")

    _connections: int = 0

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            match = _GOT.search(raw.decode(errors="replace").rstrip())
            if match is None:
                continue
            sender, to, kind, data = match.groups()
            self.received.append(PhoneText(sender, to, _decode(kind, data), time.monotonic()))
            self._arrived.set()

    async def _stop_phone(self) -> None:
        if self._phone is not None:
            with contextlib.suppress(ProcessLookupError):
                self._phone.terminate()
            await self._phone.wait()
            self._phone = None
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def close(self) -> None:
        await self._stop_phone()
        for box in reversed(self._boxes):
            with contextlib.suppress(ProcessLookupError):
                box.terminate()
            try:
                async with asyncio.timeout(5):
                    await box.wait()
            except TimeoutError:
                box.kill()
                await box.wait()


def _count(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except FileNotFoundError:
        return 0


def _decode(kind: str, data: str) -> str:
    if kind == "ucs-2":
        return unquote_to_bytes(data.replace("+", "%20")).decode("utf-16-be", errors="replace")
    if kind in ("data", "text") and "%" in data:
        return unquote_to_bytes(data).decode("utf-8", errors="replace").replace("+", " ")
    return data.replace("+", " ") if kind == "data" else data


def kannel_conf(directory: Path, ports: dict[str, int], get_url: str) -> str:
    """The configuration of a loopback Kannel (everything bound to 127.0.0.1)."""
    return f"""
group = core
admin-port = {ports["admin"]}
admin-interface = 127.0.0.1
admin-password = {PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {ports["smsbox"]}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = {directory / "bearerbox.log"}
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {ports["smsc"]}
connect-allow-ip = 127.0.0.1
our-host = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports["smsbox"]}
sendsms-port = {ports["sendsms"]}
sendsms-interface = 127.0.0.1
log-file = {directory / "smsbox.log"}
log-level = 1

group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "{get_url}"
"""


@contextlib.asynccontextmanager
async def kannel_lab(directory: Path, get_url: str) -> AsyncIterator[KannelLab]:
    """Run Kannel for the block; ``get_url`` is the ``sms-service`` get-url (our inbound webhook).

    :raises FileNotFoundError: when the Kannel programs are not installed (see :func:`missing_binaries`).
    """
    missing = missing_binaries()
    if missing:
        raise FileNotFoundError(f"Kannel is not installed: {', '.join(missing)}")
    ports, conf = _prepare(directory, get_url)
    lab = KannelLab(
        directory=directory,
        sendsms_url=f"http://127.0.0.1:{ports['sendsms']}/cgi-bin/sendsms",
        smsc_port=ports["smsc"],
    )
    try:
        for program, ready in ((BEARERBOX, ports["smsbox"]), (SMSBOX, ports["sendsms"])):
            # Both boxes write their own log files (log-file in kannel.conf).
            lab._boxes.append(
                await asyncio.create_subprocess_exec(
                    program, str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
                )
            )
            await _wait_listening(ready)
        await lab._start_phone(["-m", "0"])
        yield lab
    finally:
        await lab.close()


def _prepare(directory: Path, get_url: str) -> tuple[dict[str, int], Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("admin", "smsbox", "smsc", "sendsms")}
    conf = directory / "kannel.conf"
    conf.write_text(kannel_conf(directory, ports, get_url.replace('"', "%22")))
    return ports, conf


async def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
