"""Load generator of ``bench/events.py``: the simulated Asterisk with a traffic model whose rate can change.

:class:`SimHost` runs a realtime :class:`~callcenter.simulator.SimulatedAsterisk` (counting, and on
request capturing, every event frame it sends) with a :class:`~callcenter.simulator.traffic.TrafficDriver`
whose arrival rate can be changed while it runs. The benchmark drives it either in its own process
(:class:`InlineSim`) or in a child process (:class:`ChildSim`, the default: the simulator then uses
the machine's other core, as a real Asterisk would, instead of the event loop of the app under test).

Child protocol: the child prints ``{"url": ...}`` once serving, then answers one JSON line on stdout
for each JSON request line ``{"id": n, "op": ..., "args": {...}}`` read on stdin. Logs go to stderr.

Run as ``python bench/_load.py --child --user U --password P [--seed N]`` (``ChildSim`` does this).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from callcenter.simulator import EndpointBehaviour, SimulatedAsterisk
from callcenter.simulator.traffic import (
    Arrival,
    HandleDistribution,
    TrafficDriver,
    TrafficModel,
    TrafficProfile,
    TrafficStats,
)

_SCRIPT = Path(__file__).resolve()
_HANGUP_REQUEST = '"type":"ChannelHangupRequest"'
_CHANNEL_ID = '"channel":{"id":"'
_AGENT_LEG_PREFIX = "agent-"  # QueueService names the legs it originates agent-<hex>


@dataclass(frozen=True, slots=True)
class CallProfile:
    """The callers of the benchmark (one queue)."""

    queue: str = "bench"
    handle_mean_s: float = 9.0
    handle_sigma: float = 0.5
    patience_mean_s: float = 120.0
    agent_answer_mean_s: float = 1.0
    agent_no_answer_rate: float = 0.0
    agent_hangs_up_share: float = 0.5


class BenchAsterisk(SimulatedAsterisk):
    """The simulated Asterisk, counting every event frame it hands to a WebSocket (and capturing some)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames_sent = 0
        #: (caller channel id, time.monotonic()) of each ChannelHangupRequest sent for an inbound channel.
        self.caller_hangups: list[tuple[str, float]] = []
        self.capture_max = 0
        self.captured: list[str] = []
        self._wrapped: dict[Callable[[str], None], Callable[[str], None]] = {}

    def register_app(self, name: str, sink: Callable[[str], None]) -> None:
        def counting(text: str) -> None:
            self.frames_sent += 1
            if _HANGUP_REQUEST in text[:64]:
                start = text.find(_CHANNEL_ID) + len(_CHANNEL_ID)
                channel_id = text[start : text.find('"', start)]
                if not channel_id.startswith(_AGENT_LEG_PREFIX):
                    self.caller_hangups.append((channel_id, time.monotonic()))
            if len(self.captured) < self.capture_max:
                self.captured.append(text)
            sink(text)

        self._wrapped[sink] = counting
        super().register_app(name, counting)

    def unregister_app(self, name: str, sink: Callable[[str], None] | None = None) -> None:
        super().unregister_app(name, self._wrapped.pop(sink, sink) if sink is not None else None)

    def outbox(self) -> int:
        """Frames queued in the simulator's WebSocket writers, not yet written to TCP."""
        return self._pushed_marker()


class AdjustableTraffic(TrafficModel):
    """A Poisson arrival stream at :attr:`rate_per_s`, which may change while the driver runs."""

    def __init__(self, profile: TrafficProfile, *, seed: int, rate_per_s: float) -> None:
        super().__init__(profile, seed=seed)
        self.rate_per_s = rate_per_s
        self._gaps = random.Random(f"{seed}:gaps")
        self._n = 0

    def arrivals(self, start: datetime) -> Iterator[Arrival]:
        queue = self.profile.queues[0][0]
        t = 0.0
        while True:
            t += self._gaps.expovariate(self.rate_per_s)
            self._n += 1
            yield Arrival(
                offset_s=t,
                caller=f"{self.profile.caller_prefix}{self._n % 10_000:04d}",
                queue=queue,
                patience_s=self.patience_s(),
                handle_s=self.handle_s(),
                agent_ends=self._gaps.random() < self.profile.agent_hangs_up_share,
            )


class SimHost:
    """The simulator and its traffic, controlled by plain method calls (in whichever process it runs)."""

    def __init__(self, *, users: dict[str, str], seed: int) -> None:
        self.sim = BenchAsterisk(realtime=True, users=users, seed=seed, max_recorded_requests=0)
        self._seed = seed
        self._driver: TrafficDriver | None = None
        self._model: AdjustableTraffic | None = None
        self._done = TrafficStats()

    async def start(self) -> str:
        return await self.sim.start("127.0.0.1", 0)

    async def stop(self) -> None:
        self.finish()
        await self.sim.stop()

    def endpoints(self, names: list[str]) -> int:
        for name in names:
            self.sim.set_endpoint(name, behaviour=EndpointBehaviour.ANSWER, answer_after_s=1.0)
        return len(self.sim.endpoints)

    def traffic(self, rate: float, profile: dict[str, Any]) -> None:
        """Start a new arrival stream (the previous one must have been drained)."""
        if self._driver is not None:
            raise RuntimeError("traffic already running: drain it first")
        calls = CallProfile(**profile)
        model_profile = TrafficProfile.flat(
            3600.0,  # unused: AdjustableTraffic draws its own arrivals
            patience_mean_s=calls.patience_mean_s,
            handle_mean_s=calls.handle_mean_s,
            handle_distribution=HandleDistribution.LOGNORMAL,
            handle_sigma=calls.handle_sigma,
            agent_answer_mean_s=calls.agent_answer_mean_s,
            agent_no_answer_rate=calls.agent_no_answer_rate,
            agent_hangs_up_share=calls.agent_hangs_up_share,
            queues=((calls.queue, 1.0),),
        )
        self._seed += 1
        self._model = AdjustableTraffic(model_profile, seed=self._seed, rate_per_s=rate)
        self._driver = TrafficDriver(self.sim, self._model)
        self._driver.start()

    def rate(self, rate: float, handle_mean_s: float | None = None) -> None:
        """Change the arrival rate (and the handle time of callers arriving from now on)."""
        if self._model is None:
            raise RuntimeError("no traffic running")
        self._model.rate_per_s = rate
        if handle_mean_s is not None:
            self._model.profile = dataclasses.replace(self._model.profile, handle_mean_s=handle_mean_s)

    def stop_arrivals(self) -> None:
        """No more callers; those in go on (patience, handle times) until :meth:`finish`."""
        if self._driver is not None:
            self._driver.stop_arrivals()

    def hangup_all(self) -> int:
        """Every channel hangs up from the far end (ends a run the app could not keep up with)."""
        channels = list(self.sim.channels)
        for channel_id in channels:
            if channel_id in self.sim.channels:
                self.sim.hangup(channel_id)
        return len(channels)

    def finish(self) -> None:
        """Drop the traffic driver (after :meth:`stop_arrivals`), keeping its counts."""
        driver = self._driver
        if driver is None:
            return
        driver.stop()
        for name, value in asdict(driver.stats).items():
            setattr(self._done, name, getattr(self._done, name) + value)
        self._driver = None
        self._model = None

    def hangups(self, since: int) -> list[tuple[str, float]]:
        """Caller hang-up requests sent from index ``since`` on: (channel id, ``time.monotonic()``)."""
        return self.sim.caller_hangups[since:]

    def capture(self, max_frames: int) -> None:
        """Keep the next ``max_frames`` frames sent (0 stops capturing; what was kept stays)."""
        self.sim.capture_max = len(self.sim.captured) + max_frames if max_frames else 0

    def dump(self, path: str) -> int:
        """Write the captured frames to ``path``, one a line (ARI JSON holds no raw newline)."""
        frames = self.sim.captured
        Path(path).write_text("".join(f"{frame}\n" for frame in frames), encoding="utf-8")
        self.sim.captured = []
        self.sim.capture_max = 0
        return len(frames)

    def stats(self) -> dict[str, Any]:
        traffic = asdict(self._done)
        if self._driver is not None:
            for name, value in asdict(self._driver.stats).items():
                traffic[name] += value
        return {
            "frames_sent": self.sim.frames_sent,
            "outbox": self.sim.outbox(),
            "channels": len(self.sim.channels),
            "traffic": traffic,
            "rate": self._model.rate_per_s if self._model is not None else 0.0,
            "idle": self._driver is None or self._driver.idle.is_set(),
            "cpu_s": time.process_time(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


class SimControl(Protocol):
    """What the benchmark asks of the load generator, wherever it runs."""

    url: str
    where: str

    async def endpoints(self, names: list[str]) -> int: ...
    async def traffic(self, rate: float, profile: dict[str, Any]) -> None: ...
    async def rate(self, rate: float, handle_mean_s: float | None = None) -> None: ...
    async def stop_arrivals(self) -> None: ...
    async def hangup_all(self) -> int: ...
    async def finish(self) -> None: ...
    async def hangups(self, since: int) -> list[tuple[str, float]]: ...
    async def capture(self, max_frames: int) -> None: ...
    async def dump(self, path: str) -> int: ...
    async def stats(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class InlineSim:
    """The load generator on the benchmark's own event loop."""

    where = "same process"

    def __init__(self, host: SimHost, url: str) -> None:
        self._host = host
        self.url = url

    @classmethod
    async def open(cls, *, users: dict[str, str], seed: int) -> InlineSim:
        host = SimHost(users=users, seed=seed)
        return cls(host, await host.start())

    async def endpoints(self, names: list[str]) -> int:
        return self._host.endpoints(names)

    async def traffic(self, rate: float, profile: dict[str, Any]) -> None:
        self._host.traffic(rate, profile)

    async def rate(self, rate: float, handle_mean_s: float | None = None) -> None:
        self._host.rate(rate, handle_mean_s)

    async def stop_arrivals(self) -> None:
        self._host.stop_arrivals()

    async def hangup_all(self) -> int:
        return self._host.hangup_all()

    async def finish(self) -> None:
        self._host.finish()

    async def hangups(self, since: int) -> list[tuple[str, float]]:
        return self._host.hangups(since)

    async def capture(self, max_frames: int) -> None:
        self._host.capture(max_frames)

    async def dump(self, path: str) -> int:
        return self._host.dump(path)

    async def stats(self) -> dict[str, Any]:
        return self._host.stats()

    async def close(self) -> None:
        await self._host.stop()


class ChildSim:
    """The load generator in a child process, driven over its stdin and stdout."""

    where = "child process"

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self._proc = proc
        self.url = url
        self._seq = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, *, users: dict[str, str], seed: int) -> ChildSim:
        [(user, password)] = users.items()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(_SCRIPT),
            "--child",
            # "=" form: a random password may start with "-", which argparse reads as an option.
            f"--user={user}",
            f"--password={password}",
            "--seed",
            str(seed),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        if not line:
            raise RuntimeError("the simulator child exited before serving")
        return cls(proc, json.loads(line)["url"])

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def _call(self, op: str, **args: Any) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        async with self._lock:
            self._seq += 1
            request = {"id": self._seq, "op": op, "args": args}
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            await self._proc.stdin.drain()
            while True:
                line = await self._proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the simulator child exited during {op}")
                reply = json.loads(line)
                # A caller cancelled while waiting (the monitor, at the end of a phase) left its reply
                # unread: skip it, or every later call would read the answer to the one before.
                if reply.get("id") == self._seq:
                    break
        if reply.get("error"):
            raise RuntimeError(f"simulator child: {op}: {reply['error']}")
        return reply.get("result")

    async def endpoints(self, names: list[str]) -> int:
        return int(await self._call("endpoints", names=names))

    async def traffic(self, rate: float, profile: dict[str, Any]) -> None:
        await self._call("traffic", rate=rate, profile=profile)

    async def rate(self, rate: float, handle_mean_s: float | None = None) -> None:
        await self._call("rate", rate=rate, handle_mean_s=handle_mean_s)

    async def stop_arrivals(self) -> None:
        await self._call("stop_arrivals")

    async def hangup_all(self) -> int:
        return int(await self._call("hangup_all"))

    async def finish(self) -> None:
        await self._call("finish")

    async def hangups(self, since: int) -> list[tuple[str, float]]:
        return [(str(c), float(t)) for c, t in await self._call("hangups", since=since)]

    async def capture(self, max_frames: int) -> None:
        await self._call("capture", max_frames=max_frames)

    async def dump(self, path: str) -> int:
        return int(await self._call("dump", path=path))

    async def stats(self) -> dict[str, Any]:
        result = await self._call("stats")
        assert isinstance(result, dict)
        return result

    async def close(self) -> None:
        if self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._call("quit"), timeout=10)
                await asyncio.wait_for(self._proc.wait(), timeout=10)
            except (TimeoutError, RuntimeError, ConnectionError):
                self._proc.kill()
                await self._proc.wait()


async def _child(user: str, password: str, seed: int) -> None:
    host = SimHost(users={user: password}, seed=seed)
    url = await host.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ops: dict[str, Callable[[dict[str, Any]], Any]] = {
        "endpoints": lambda a: host.endpoints(a["names"]),
        "traffic": lambda a: host.traffic(a["rate"], a["profile"]),
        "rate": lambda a: host.rate(a["rate"], a.get("handle_mean_s")),
        "stop_arrivals": lambda a: host.stop_arrivals(),
        "hangup_all": lambda a: host.hangup_all(),
        "finish": lambda a: host.finish(),
        "hangups": lambda a: host.hangups(a["since"]),
        "capture": lambda a: host.capture(a["max_frames"]),
        "dump": lambda a: host.dump(a["path"]),
        "stats": lambda a: host.stats(),
    }

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply({"url": url})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            op = request["op"]
            if op == "quit":
                reply({"id": request["id"], "result": None})
                return
            try:
                if op not in ops:
                    raise ValueError(f"unknown op {op!r}")
                reply({"id": request["id"], "result": ops[op](request.get("args", {}))})
            except Exception as exc:  # reported to the parent, which raises it there
                reply({"id": request["id"], "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="simulated Asterisk child of bench/events.py")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(_child(args.user, args.password, args.seed))


if __name__ == "__main__":
    main()
