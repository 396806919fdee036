"""The live board starts from the stored callbacks and voicemails, and then agrees with a board that
saw every event (service, SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.callbacks.service import CallbackDetail, state_event
from callcenter.config import DatabaseSettings
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.events import DomainEvent, VoicemailRecorded, VoicemailTranscribed
from callcenter.model.paging import Page
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, VoicemailStatus
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.followups import FOLLOW_UP_NAMES
from callcenter.stats.live import LiveStats
from callcenter.stats.service import StatsService
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_callbacks import SqlCallbackRepository
from callcenter.store.sql_stats import SqlStatsRepository
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.records import Voicemail
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
S = CallbackState
CUSTOMER, SYSTEM = Actor(ActorKind.CUSTOMER, "ivr"), Actor(ActorKind.SYSTEM, "dispatcher")


class StoredCallbacks:
    """The two reads the board needs, over the callbacks' SQL repository (as CallbackService does)."""

    def __init__(self, repo: SqlCallbackRepository) -> None:
        self._repo = repo

    async def list_callbacks(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        return await self._repo.list(queue=queue, state=state, cursor=cursor, limit=limit)

    async def get(self, callback_id: str) -> CallbackDetail:
        return CallbackDetail(
            callback=await self._repo.get(callback_id), changes=await self._repo.changes(callback_id)
        )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def test_a_restarted_board_shows_the_same_follow_ups_as_one_that_saw_every_event(
    engine: AsyncEngine,
) -> None:
    repo = SqlCallbackRepository(engine)
    events: list[DomainEvent] = []

    async def story(
        cid: str,
        number: str,
        window: tuple[float, float],
        kind: CallbackKind,
        moves: list[tuple[CallbackState, float, Actor]],
    ) -> None:
        start, end = NOW + timedelta(minutes=window[0]), NOW + timedelta(minutes=window[1])
        callback, change = new_callback(
            callback_id=cid,
            queue="sales",
            number=number,
            kind=kind,
            window=keep_place_window(start, end, grace_s=0)
            if kind is CallbackKind.KEEP_PLACE
            else slot_window(start, end),
            at=start - timedelta(minutes=1) if kind is CallbackKind.SCHEDULED else start,
            actor=CUSTOMER,
            enqueued_at=start - timedelta(minutes=2),
        )
        await repo.add(callback, (change,))
        events.append(state_event(callback, change))
        for state, minutes, actor in moves:
            callback, change = move(callback, state, at=NOW + timedelta(minutes=minutes), actor=actor)
            await repo.move(callback, change)
            events.append(state_event(callback, change))

    await story(
        "k1",
        "+14155550100",
        (-60, -30),
        CallbackKind.KEEP_PLACE,
        [(S.SCHEDULED, -50, SYSTEM), (S.DIALING, -40, SYSTEM)],
    )
    await story("k2", "+14155550101", (-60, -20), CallbackKind.KEEP_PLACE, [])  # overdue
    await story("k3", "+14155550102", (-90, -70), CallbackKind.KEEP_PLACE, [(S.CANCELLED, -80, CUSTOMER)])
    await story("k4", "+14155550103", (-90, -70), CallbackKind.KEEP_PLACE, [(S.CANCELLED, -80, SYSTEM)])
    await story("s1", "+14155550104", (10, 40), CallbackKind.SCHEDULED, [(S.SCHEDULED, -5, SYSTEM)])
    voicemails = SqlVoicemailRepository(engine)
    for index, status in enumerate(
        (VoicemailStatus.RECORDED, VoicemailStatus.TRANSCRIBED, VoicemailStatus.FAILED)
    ):
        recorded = NOW - timedelta(minutes=30 - index)
        await voicemails.add(
            Voicemail(
                id=f"v{index}",
                call_id=None,
                queue="sales",
                caller=f"+1415555010{index}",
                recorded_at=recorded,
                media_path=None,
                checksum="",
                size_bytes=0,
                duration_s=4.0,
                status=status,
                updated_at=recorded,
            )
        )
        events.append(
            VoicemailRecorded(
                event_id=f"voicemail:v{index}:1",
                occurred_at=recorded,
                voicemail_id=f"v{index}",
                queue="sales",
                caller=f"+1415555010{index}",
            )
        )
    events.append(
        VoicemailTranscribed(
            event_id="voicemail-transcribed:v1:1",
            occurred_at=NOW - timedelta(minutes=20),
            voicemail_id="v1",
            queue="sales",
            caller="+14155550101",
        )
    )

    restarted = StatsService(SqlStatsRepository(engine), FakeClock(NOW), StatsConfig())
    assert await restarted.load_callbacks(StoredCallbacks(repo)) == 5
    assert await restarted.load_voicemails(voicemails) == 3
    witness = LiveStats(config=StatsConfig())
    for event in sorted(events, key=lambda e: e.occurred_at):
        witness.apply(event)

    after_restart = restarted.snapshot().queues["sales"]
    seen_all = witness.snapshot(NOW).queues["sales"]

    assert {n: after_restart[n] for n in FOLLOW_UP_NAMES} == {n: seen_all[n] for n in FOLLOW_UP_NAMES}
    assert (after_restart["callbacks_pending"], after_restart["callbacks_overdue"]) == (3, 1)
    # k1 dialled in its window: kept; k2 never dialled and k4 cancelled by us: broken; k3 the customer's.
    assert (after_restart["promises_counted"], after_restart["promises_kept"]) == (3, 1)
    # v0 waits; v2 failed for good, counted on both sides; v1 transcribed.
    assert after_restart["voicemails_untranscribed"] == 2
