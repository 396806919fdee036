"""`callcenter demo`: one command shows a newcomer answered and abandoned calls within a minute."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

pytestmark = [pytest.mark.system, pytest.mark.timeout(150)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_prints_url_and_token_and_shows_answered_and_abandoned_calls_within_a_minute(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {**os.environ, "CALLCENTER_DATA_DIR": str(tmp_path / "data")}
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "demo", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert demo.stdout is not None
    try:
        async with asyncio.timeout(60):
            first = (await demo.stdout.readline()).decode()
            token_line = (await demo.stdout.readline()).decode()
        assert f"http://127.0.0.1:{port}" in first
        assert token_line.startswith("token: cc_")
        headers = {"Authorization": f"Bearer {token_line.split()[1]}"}

        outcomes: set[str] = set()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with aiohttp.ClientSession(headers=headers) as http:
            while not {"answered", "abandoned"} <= outcomes:
                assert loop.time() - started < 90, f"after 90 s only {outcomes or 'no outcomes'}"
                async with http.get(f"http://127.0.0.1:{port}/api/v1/calls?limit=500") as response:
                    assert response.status == 200
                    outcomes = {c["outcome"] for c in (await response.json())["items"] if c["outcome"]}
                await asyncio.sleep(1)  # polling a live demo: the condition, not the sleep, ends the loop
            async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as response:
                health = await response.json()
        assert health["checks"]["ari"] == "ok"
    finally:
        with contextlib.suppress(ProcessLookupError):
            demo.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            status = await demo.wait()
    assert status == 0
