"""The wallboard feed: one rendering per publication for every client, slow clients dropped (service)."""

from __future__ import annotations

import asyncio

from callcenter.stats.feed import SnapshotFeed


class Renderer:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return f"snapshot {self.calls}".encode()


async def test_a_publication_is_rendered_once_for_every_client() -> None:
    render = Renderer()
    feed = SnapshotFeed(render, buffer=4)
    subs = [feed.subscribe() for _ in range(200)]
    rendered_for_subscribing = render.calls

    feed.publish()

    assert render.calls == rendered_for_subscribing + 1
    assert rendered_for_subscribing == 1  # the first client made the first snapshot, the rest reuse it
    for sub in subs:
        assert await sub.next() == b"snapshot 1"
        assert await sub.next() == b"snapshot 2"


async def test_a_client_that_does_not_read_is_dropped_and_the_others_keep_going() -> None:
    feed = SnapshotFeed(Renderer(), buffer=3)
    reader, sleeper = feed.subscribe(), feed.subscribe()

    for _ in range(5):
        feed.publish()
        while (await reader.next()) is not None and reader._items:  # the reader keeps up
            pass

    assert sleeper.dropped and await sleeper.next() is None
    assert not reader.dropped
    assert feed.subscribers == 1 and feed.dropped == 1


async def test_changes_are_coalesced_to_at_most_one_publication_per_interval() -> None:
    feed = SnapshotFeed(Renderer(), min_interval_s=0.2, refresh_s=10)
    task = asyncio.create_task(feed.run())
    sub = feed.subscribe()
    await sub.next()
    for _ in range(50):
        feed.changed()
        await asyncio.sleep(0)
    await sub.next()  # the first publication
    published = feed.published
    for _ in range(50):
        feed.changed()
        await asyncio.sleep(0)

    assert published == 1
    assert feed.published == 1  # the next one waits for the interval
    assert await sub.next() is not None
    assert feed.published == 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_closing_the_feed_ends_every_reader() -> None:
    feed = SnapshotFeed(Renderer())
    sub = feed.subscribe()
    await sub.next()
    reader = asyncio.create_task(sub.next())
    await asyncio.sleep(0)

    feed.close()

    assert await asyncio.wait_for(reader, 1) is None
    assert feed.subscribers == 0
