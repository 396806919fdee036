"""The claim event on the bus: an agent's claim with its end, or its release (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcenter.model.events import CallbackClaimChanged, decode_event, encode_event

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def test_a_claim_and_its_release_survive_the_wire() -> None:
    claimed = CallbackClaimChanged(
        event_id="callback-claim:cb-1:alice:1",
        occurred_at=T0,
        callback_id="cb-1",
        queue="sales",
        agent_id="alice",
        until=T0 + timedelta(minutes=5),
    )
    released = CallbackClaimChanged(
        event_id="callback-claim:cb-1:alice:released",
        occurred_at=T0,
        callback_id="cb-1",
        queue="sales",
        agent_id="alice",
    )
    assert decode_event(encode_event(claimed)) == claimed
    assert decode_event(encode_event(released)) == released
    assert released.until is None
