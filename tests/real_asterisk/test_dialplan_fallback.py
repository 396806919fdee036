"""The ARI-native entry of our dialplan when the service's Stasis application is not connected.

``Gosub(callcenter-queue,s,1(<queue>))`` enters ``Stasis(callcenter,<queue>)``; with nobody connected as
``callcenter`` Asterisk returns at once with ``STASISSTATUS=FAILED`` and the dialplan falls back to
``app_queue``'s queue of the same name, with the outcome hook. Here the app under test connects its
ARI link under another application name (so ``callcenter`` is absent) and still records the call
through its FastAGI server: the caller is served and nothing is lost.
"""

from __future__ import annotations

from typing import Final

import pytest

from tests.real_asterisk.conftest import APP_QUEUE_EXTENS, SKIP_REASON, AriObserver, Lab
from tests.system.conftest import eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(60),
]

#: The app's ARI application in this module: anything but the dialplan's ``callcenter``.
OTHER_APP: Final = "cc-test-not-callcenter"


@pytest.fixture
def app_overrides() -> dict[str, str]:
    return {"ari_app": OTHER_APP}


async def test_given_stasis_app_not_connected_when_caller_enters_ari_queue_then_app_queue_answers_and_hook_records(
    lab: Lab, observer: AriObserver
) -> None:
    first = lab.phones[0]
    phone = await lab.phone(first, ring_ms=1000)

    caller = await lab.call(hold_ms=5000, exten=APP_QUEUE_EXTENS["ari-entry"])

    assert await caller.finished() == "LOCAL_BYE"
    call_id = await lab.call_id(caller)
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["entry_point"], call["queue"]) == ("answered", "agi", "cc-lab")
    assert call["agent_id"] == first.agent_id and phone.count("ANSWERED") == 1
    assert observer.variable(call_id, "STASISSTATUS")[-1:] == ["FAILED"]
    runs = [app for app, _ in observer.apps_run(call_id)]
    assert runs.index("Stasis") < runs.index("Queue"), runs
    await eventually(
        lambda: observer.variable(call_id, "CC_OUTCOME") == ["answered"], what="CC_OUTCOME set by the hook"
    )
    assert [e.outcome for e in await lab.app.published(call_id)] == ["answered"]
