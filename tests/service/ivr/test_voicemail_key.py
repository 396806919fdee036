"""The voicemail key in the waiting caller's announcements, over a scripted channel (issue 8).

The real callback service behind the flow: "to leave a message instead, press 9" is said every round
(with the offer's menu when there is one), and 9 in the announcements' pause or in the offer menu
ends the flow with ``voicemail``; inside the later-time and number menus keys keep their meaning.
"""

from __future__ import annotations

from ivr.flows.callback_offer import FlowOutcome, FlowSettings
from tests.fakes.voice import ScriptedVoiceChannel
from tests.service.ivr.conftest import Offer

KEY = FlowSettings(voicemail_key="9")
OPTION = ["leave-message", "*9"]


async def test_the_offer_menu_names_the_voicemail_key_and_9_leaves_a_message(offer: Offer) -> None:
    channel = ScriptedVoiceChannel(["9"])
    outcome = await offer.flow(channel, settings=KEY).offer_once()

    assert outcome is FlowOutcome.VOICEMAIL
    spoken = channel.spoken()
    assert spoken[-3:] == [*OPTION, "offer-stay"], "after the callback choices, before 'stay on the line'"
    assert spoken.count("leave-message") == 1, "said once a round"
    assert offer.repo.callbacks == {} and offer.accepted == []


async def test_without_an_offer_the_option_follows_the_wait_and_9_in_the_pause_leaves_a_message(
    offer: Offer,
) -> None:
    offer.estimator.waits = [(1, 20.0, 40.0, 50.0)]  # short: nothing offered
    channel = ScriptedVoiceChannel(["", "9"])
    outcome = await offer.flow(channel, settings=KEY).run(every_s=30.0, rounds=3)

    assert outcome is FlowOutcome.VOICEMAIL
    assert channel.spoken() == ["you-are-next", "wait-less-than", "#2", "minutes", *OPTION] * 2
    assert [timeout for _, timeout in channel.asked] == [30.0, 30.0]


async def test_without_an_estimate_only_the_voicemail_option_is_said(offer: Offer) -> None:
    offer.estimator.fail = True
    channel = ScriptedVoiceChannel(["9"])
    outcome = await offer.flow(channel, settings=KEY).run(every_s=30.0, rounds=2)

    assert outcome is FlowOutcome.VOICEMAIL
    assert channel.spoken() == OPTION


async def test_9_in_the_later_time_menu_is_no_voicemail(offer: Offer) -> None:
    channel = ScriptedVoiceChannel(["2", "9", "9"])
    outcome = await offer.flow(channel, settings=KEY).offer_once()

    assert outcome is FlowOutcome.STAYED
    assert channel.sounds().count("not-understood") == 1 and channel.sounds()[-1] == "keep-waiting"


async def test_without_a_voicemail_key_nothing_is_said_and_9_means_nothing(offer: Offer) -> None:
    offer.estimator.waits = [(1, 20.0, 40.0, 50.0)]
    channel = ScriptedVoiceChannel(["9"])
    outcome = await offer.flow(channel).run(every_s=30.0, rounds=2)

    assert outcome is FlowOutcome.STAYED
    assert "leave-message" not in channel.sounds()
