"""Every branch of the callback offer over a scripted channel, with the real callback service."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.callbacks.ports import SlotFullError
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from ivr.flows.callback_offer import FlowOutcome
from tests.fakes.voice import ScriptedVoiceChannel
from tests.service.callbacks.conftest import SALES
from tests.service.ivr.conftest import Offer

MENU_BOTH = ["offer-keep-place", "#10", "#15", "am", "press-1", "offer-later", "offer-stay"]
ANNOUNCED = ["there-are", "#5", "callers-ahead", "wait-between", "#6", "and", "#14", "minutes"]


async def test_given_a_short_wait_then_position_and_wait_are_announced_and_nothing_offered(
    offer: Offer,
) -> None:
    offer.estimator.waits = [(1, 20.0, 40.0, 50.0)]
    outcome, channel = await offer.run_once([])
    assert outcome is FlowOutcome.STAYED
    assert channel.spoken() == ["you-are-next", "wait-less-than", "#2", "minutes"]
    assert channel.asked == []


async def test_given_no_estimate_then_nothing_is_announced_that_could_be_wrong(offer: Offer) -> None:
    offer.estimator.fail = True
    outcome, channel = await offer.run_once(["1"])
    assert outcome is FlowOutcome.STAYED
    assert channel.played == [] and channel.asked == []
    assert offer.repo.callbacks == {}


async def test_given_a_long_wait_when_caller_keeps_their_place_then_callback_requested_by_the_announced_time(
    offer: Offer,
) -> None:
    outcome, channel = await offer.run_once(["1", "1"])
    assert outcome is FlowOutcome.CALLBACK
    spoken = channel.spoken()
    assert spoken[: len(ANNOUNCED)] == ANNOUNCED
    assert spoken[len(ANNOUNCED) : len(ANNOUNCED) + len(MENU_BOTH)] == MENU_BOTH
    assert spoken[-8:] == [
        "we-will-call",
        "*14155550100",
        "confirm-or-change",
        "confirm-by",
        "#10",
        "#15",
        "am",
        "goodbye",
    ]
    (callback,) = offer.repo.callbacks.values()
    assert (callback.kind, callback.state, callback.number) == (
        CallbackKind.KEEP_PLACE,
        CallbackState.REQUESTED,
        "+14155550100",
    )
    assert callback.enqueued_at == offer.clock.now() - timedelta(minutes=3)
    assert callback.window.end == datetime(2026, 11, 23, 10, 17, tzinfo=UTC)  # by 10:15, plus the grace
    assert offer.accepted == [callback]
    assert offer.repo.log[callback.id][0].actor.kind is ActorKind.CUSTOMER


async def test_given_a_long_wait_when_caller_picks_a_later_time_then_the_slot_is_booked(offer: Offer) -> None:
    outcome, channel = await offer.run_once(["2", "2", "1"])
    assert outcome is FlowOutcome.CALLBACK
    spoken = channel.spoken()
    menu_at = spoken.index("choose-time")
    assert spoken[menu_at : menu_at + 6] == ["choose-time", "for", "#10", "#15", "am", "press"]
    assert spoken[-9:] == ["confirm-between", "#10", "#30", "am", "and", "#10", "#45", "am", "goodbye"]
    (callback,) = offer.repo.callbacks.values()
    assert (callback.kind, callback.state) == (CallbackKind.SCHEDULED, CallbackState.SCHEDULED)
    assert callback.window.start == datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert offer.accepted == [callback]


async def test_invalid_then_silence_keeps_the_caller_waiting_never_dropped(offer: Offer) -> None:
    outcome, channel = await offer.run_once(["9", ""])
    assert outcome is FlowOutcome.STAYED
    assert channel.sounds()[-1] == "keep-waiting" and "not-understood" in channel.sounds()
    assert channel.sounds().count("offer-stay") == 2
    assert not channel.hung_up and offer.repo.callbacks == {}


async def test_one_wrong_key_is_forgiven(offer: Offer) -> None:
    outcome, _ = await offer.run_once(["7", "1", "1"])
    assert outcome is FlowOutcome.CALLBACK


async def test_withheld_caller_id_must_key_a_number(offer: Offer) -> None:
    channel = ScriptedVoiceChannel(["1", "4155550123"])
    outcome = await offer.flow(channel, caller="anonymous").offer_once()
    assert outcome is FlowOutcome.CALLBACK
    assert "enter-number" in channel.sounds() and "confirm-or-change" not in channel.sounds()
    assert (16, 8.0) in channel.asked
    (callback,) = offer.repo.callbacks.values()
    assert callback.number == "+14155550123"


async def test_invalid_and_premium_keyed_numbers_are_refused_clearly_and_the_caller_keeps_waiting(
    offer: Offer,
) -> None:
    channel = ScriptedVoiceChannel(["1", "123", "19005550123"])
    outcome = await offer.flow(channel, caller="").offer_once()
    assert outcome is FlowOutcome.STAYED
    sounds = channel.sounds()
    assert sounds.index("number-invalid") < sounds.index("number-premium") < sounds.index("keep-waiting")
    assert offer.repo.callbacks == {}


async def test_an_empty_then_very_long_entry_is_refused(offer: Offer) -> None:
    channel = ScriptedVoiceChannel(["1", "", "9" * 16])
    outcome = await offer.flow(channel, caller="").offer_once()
    assert outcome is FlowOutcome.STAYED
    assert channel.sounds().count("enter-number") == 2 and "number-invalid" in channel.sounds()


async def test_caller_may_key_another_number_instead_of_the_caller_id(offer: Offer) -> None:
    outcome, channel = await offer.run_once(["1", "2", "4155550177"])
    assert outcome is FlowOutcome.CALLBACK
    (callback,) = offer.repo.callbacks.values()
    assert callback.number == "+14155550177"


async def test_a_hang_up_in_the_menu_is_an_abandon_with_nothing_stored(offer: Offer) -> None:
    outcome, _ = await offer.run_once(["1", "1"], hang_up_after=2)
    assert outcome is FlowOutcome.HUNG_UP
    assert offer.repo.callbacks == {} and offer.accepted == []


async def test_a_hang_up_during_the_goodbye_keeps_the_callback_already_accepted(offer: Offer) -> None:
    outcome, channel = await offer.run_once(["1", "1"], hang_up_after=5)
    assert outcome is FlowOutcome.HUNG_UP
    assert len(offer.accepted) == 1 and len(offer.repo.callbacks) == 1


async def test_closing_soon_offers_only_a_later_time(offer: Offer) -> None:
    hours = {"mon": ("09:00-10:10",), "tue": ("09:00-17:00",)}
    await offer.queues.put(dataclasses.replace(SALES, business_hours=hours))
    outcome, channel = await offer.run_once([""])
    assert "offer-keep-place" not in channel.sounds() and "offer-later" in channel.sounds()
    assert outcome is FlowOutcome.STAYED


async def test_no_free_slot_means_no_second_choice(offer: Offer) -> None:
    offer.planner.staffed = 1
    outcome, channel = await offer.run_once(["2", "2"])
    assert outcome is FlowOutcome.STAYED
    assert "offer-later" not in channel.sounds() and "offer-keep-place" in channel.sounds()


async def test_a_slot_taken_while_the_caller_chooses_is_said_and_the_next_ones_offered(offer: Offer) -> None:
    first = (await offer.service.next_slots("sales", count=1))[0]
    real_book = offer.service.book
    calls = {"n": 0}

    async def racing_book(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise SlotFullError("taken meanwhile")
        return await real_book(*args, **kwargs)  # type: ignore[arg-type]

    offer.service.book = racing_book  # type: ignore[method-assign]
    outcome, channel = await offer.run_once(["2", "1", "1", "2"])
    assert outcome is FlowOutcome.CALLBACK
    assert "time-taken" in channel.sounds()
    assert channel.sounds().count("choose-time") == 2
    (callback,) = offer.repo.callbacks.values()
    assert callback.window.start > first.start


async def test_repeat_caller_keeps_the_open_callback_and_leaves(offer: Offer) -> None:
    first, _ = await offer.run_once(["1", "1"])
    assert first is FlowOutcome.CALLBACK
    offer.accepted.clear()
    outcome, channel = await offer.run_once(["1"])
    assert outcome is FlowOutcome.CALLBACK
    assert channel.sounds()[0] == "have-callback" and "callback-kept" in channel.sounds()
    assert len(offer.accepted) == 1 and len(offer.repo.callbacks) == 1


async def test_repeat_caller_cancels_and_waits_in_line(offer: Offer) -> None:
    await offer.run_once(["1", "1"])
    outcome, channel = await offer.run_once(["2", ""])
    (callback,) = offer.repo.callbacks.values()
    assert callback.state is CallbackState.CANCELLED
    assert offer.repo.log[callback.id][-1].actor.kind is ActorKind.CUSTOMER
    assert "callback-cancelled" in channel.sounds()
    assert outcome is FlowOutcome.STAYED  # then the round: offered again, no answer


async def test_periodic_rounds_re_estimate_every_time(offer: Offer) -> None:
    offer.estimator.waits = [(3, 30.0, 50.0, 60.0), (2, 20.0, 40.0, 50.0)]
    channel = ScriptedVoiceChannel([])
    outcome = await offer.flow(channel).run(every_s=30.0, rounds=2)
    assert outcome is FlowOutcome.STAYED
    assert offer.estimator.asked == 2
    assert channel.spoken() == [
        "there-are", "#2", "callers-ahead", "wait-less-than", "#2", "minutes",
        "there-are", "#1", "callers-ahead", "wait-less-than", "#2", "minutes",
    ]  # fmt: skip
    assert (1, 30.0) in channel.asked


async def test_closing_time_sweep_offers_a_short_wait_that_would_run_past_closing(offer: Offer) -> None:
    """Predictive closing-time sweep: a wait under the offer threshold is offered when it ends too
    close to closing; a caller far from closing is asked again when the sweep would reach them."""
    offer.estimator.waits = [(2, 60.0, 100.0, 110.0)]  # under the 120 s threshold
    hours = {"mon": ("09:00-10:03",), "tue": ("09:00-17:00",)}
    await offer.queues.put(dataclasses.replace(SALES, business_hours=hours))
    outcome, channel = await offer.run_once([""])
    assert outcome is FlowOutcome.STAYED
    assert "offer-later" in channel.sounds()  # swept: offered although under the threshold
    assert "offer-keep-place" not in channel.sounds()  # 10:05 plus grace is after closing

    await offer.queues.put(dataclasses.replace(SALES, business_hours={"mon": ("09:00-10:30",)}))
    result = await offer.service.offer("sales", "call-1")
    assert not result.decision.offer
    assert result.recheck_in_s == pytest.approx(30 * 60 - 100 - 120)
    channel = ScriptedVoiceChannel([])
    await offer.flow(channel).run(every_s=3600.0, rounds=2)
    assert (1, pytest.approx(30 * 60 - 100 - 120)) in channel.asked
