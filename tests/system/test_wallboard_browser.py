"""A headless Debian chromium opens the wallboard of the whole app on the simulated Asterisk, signs in,
and sees the waiting count go up when a call arrives and down when it is answered (browser).

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``: ``.ci/run`` installs them);
nothing downloads a browser. The screenshot is left in ``test-artifacts/wallboard.png``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from callcenter.model.events import CallbackPromiseAtRisk, CallbackStateChanged, VoicemailRecorded
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from callcenter.simulator import SimulatedAsterisk
from tests.system.conftest import QUEUE, RunningApp

pytestmark = [pytest.mark.system, pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER: Final = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1920,1080",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks: run it off the event loop the app under test runs on."""
    return await asyncio.to_thread(fn, *args)


async def shown(driver: Any, tile: str, value: str, *, timeout_s: float = 10.0) -> None:
    """Wait until the wallboard's tile shows ``value`` (its ``data-value``).

    Right after the sign-in form is sent the browser may still be on the old page or between the two:
    a tile not there yet (or replaced while read) is "not shown yet", as it would be to a person.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen = None
    while loop.time() < deadline:
        try:
            seen = await in_thread(
                lambda: driver.find_element("id", f"tile-{tile}").get_attribute("data-value")
            )
        except (NoSuchElementException, StaleElementReferenceException):
            seen = None
        if seen == value:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the wallboard's {tile} showed {seen!r}, not {value!r}, within {timeout_s}s")


async def test_the_wallboard_in_chromium_follows_a_call_arriving_and_answered(
    sim: SimulatedAsterisk, system: RunningApp, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    await system.put_queue(QueueRecord(name=QUEUE, ring_timeout_s=10, wrap_up_s=1, max_wait_s=60))
    # Alice answers 3 s after her phone starts ringing: long enough to see the caller waiting.
    sim.set_endpoint(await system.add_agent("alice"), answer_after_s=3.0)
    base = str(system.http.make_url("/")).rstrip("/")

    await in_thread(browser.get, f"{base}/wallboard")
    assert "/signin" in await in_thread(lambda: browser.current_url)
    await in_thread(lambda: browser.find_element(By.ID, "token").send_keys(system.token))
    await in_thread(lambda: browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click())
    await shown(browser, "calls_waiting", "0")
    assert await in_thread(lambda: browser.find_element(By.ID, "status").text) == "live"
    cookie = await in_thread(lambda: browser.get_cookie("cc_session"))
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    caller = sim.incoming_call("+14155550142", app_args=[QUEUE])
    await shown(browser, "calls_waiting", "1")
    waiting_rows = await in_thread(lambda: browser.find_elements(By.CSS_SELECTOR, "#waiting tbody tr"))
    assert len(waiting_rows) == 1
    ARTIFACTS.mkdir(exist_ok=True)
    await in_thread(browser.save_screenshot, str(ARTIFACTS / "wallboard-waiting.png"))

    await shown(browser, "calls_waiting", "0")  # answered
    sim.hangup(caller)
    await shown(browser, "calls_offered", "1")
    await in_thread(browser.save_screenshot, str(ARTIFACTS / "wallboard.png"))
    assert (ARTIFACTS / "wallboard.png").stat().st_size > 10_000

    # A laptop screen: the board fits its width (no sideways scrolling) and the figures stay in view.
    await in_thread(browser.set_window_size, 1366, 768)
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    assert await in_thread(browser.execute_script, overflow) <= 0
    assert await in_thread(lambda: browser.find_element(By.ID, "tile-calls_waiting").is_displayed())
    await in_thread(browser.save_screenshot, str(ARTIFACTS / "wallboard-laptop.png"))
    await in_thread(browser.set_window_size, 1920, 1080)

    # Follow-ups published on the bus as the callback and voicemail services publish them.
    now = datetime.now(UTC)
    await shown(browser, "callbacks_pending", "0")
    await system.services.bus.publish(
        CallbackStateChanged(
            event_id="callback:cb-browser:requested:0",
            occurred_at=now,
            callback_id="cb-browser",
            queue=QUEUE,
            number="+14155550143",
            kind=CallbackKind.KEEP_PLACE,
            state=CallbackState.REQUESTED,
            window_start=now,
            window_end=now + timedelta(minutes=10),
            actor_kind=ActorKind.CUSTOMER,
        )
    )
    await system.services.bus.publish(
        VoicemailRecorded(
            event_id="voicemail:vm-browser:1", occurred_at=now, voicemail_id="vm-browser", queue=QUEUE
        )
    )
    await shown(browser, "callbacks_pending", "1")
    await shown(browser, "voicemails_untranscribed", "1")
    due = await in_thread(lambda: browser.find_element(By.ID, "callbacks-due").text)
    assert due.startswith("due 15 min 1 · 60 min 1")
    await in_thread(browser.save_screenshot, str(ARTIFACTS / "wallboard-followups.png"))

    # A promise about to be broken (its window ends within the 2-minute alert lead), nobody dialled:
    # the alert panel appears, with when the dispatcher now expects to call.
    assert not await in_thread(lambda: browser.find_element(By.ID, "at-risk-panel").is_displayed())
    ends = now + timedelta(minutes=1)
    await system.services.bus.publish(
        CallbackStateChanged(
            event_id="callback:cb-late:requested:0",
            occurred_at=now,
            callback_id="cb-late",
            queue=QUEUE,
            number="+14155550144",
            kind=CallbackKind.KEEP_PLACE,
            state=CallbackState.REQUESTED,
            window_start=now - timedelta(minutes=9),
            window_end=ends,
            actor_kind=ActorKind.CUSTOMER,
        )
    )
    await system.services.bus.publish(
        CallbackPromiseAtRisk(
            event_id="callback-late:cb-late",
            occurred_at=now,
            callback_id="cb-late",
            queue=QUEUE,
            number="+14155550144",
            window_end=ends,
            state=CallbackState.REQUESTED,
            expected_by=now + timedelta(minutes=20),
        )
    )
    await shown(browser, "callbacks_pending", "2")

    def first_row() -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#at-risk tbody tr")
        return [cell.text for cell in rows[0].find_elements(By.TAG_NAME, "td")] if rows else []

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    cells: list[str] = []
    # The row shows first with the callback alone ("no estimate"); the late promise's time follows.
    while loop.time() < deadline and cells[3:4] in ([], ["no estimate"]):
        cells = await in_thread(first_row)
        await asyncio.sleep(0.05)
    assert await in_thread(lambda: browser.find_element(By.ID, "at-risk-panel").is_displayed())
    assert cells[:2] == ["+14155550144", QUEUE] and cells[3] != "no estimate", cells
    await in_thread(browser.save_screenshot, str(ARTIFACTS / "wallboard-at-risk.png"))
