"""Agents work their callbacks in a headless Debian chromium: the whole app on the simulated Asterisk,
the page signed in with an agent's token (browser).

Alice signs in; a callback that becomes hers while the page is open appears without a reload, with a
sound alert; she claims it (Bob, in his own browser, sees it claimed by her and gets a clear error if he
tries to claim it), calls the customer from the page (her phone and the customer's answer on the
simulator, the customer presses 1), says "resolved", and the item leaves both lists. The alert switch
is remembered across a reload; a supervisor signed in with their own token looks at Alice's list. Screenshots go to ``test-artifacts/agent-*.png`` (laptop and phone sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState, AttemptResult, CallbackState, Role
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.pbx import PbxChange
from tests.system.conftest import QUEUE, Apps, RunningApp, eventually

pytestmark = [pytest.mark.system, pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER: Final = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
CUSTOMER: Final = "+14155550123"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1366,768",
)
#: Short dispatcher timings; a disposition may wait a minute after the call.
FAST: Final = {
    "dispatch_poll_s": "0.1",
    "dispatch_confirm_s": "3",
    "dispatch_agent_ring_s": "5",
    "dispatch_customer_ring_s": "5",
    "dispatch_dial_from": "00:00",
    "dispatch_dial_until": "23:59",
    "dispatch_whisper": "false",
    "dispatch_customer_endpoint": "PJSIP/{number}@trunk",
    "dispatch_personal_s": "0",
    "dispatch_disposition_wait_s": "60",
}


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
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


@pytest.fixture
def browsers() -> Iterator[tuple[Any, Any]]:
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    with chromium() as first, chromium() as second:
        yield first, second


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks: run it off the event loop the app under test runs on."""
    return await asyncio.to_thread(fn, *args)


async def until(
    driver: Any, script: str, expected: Callable[[Any], bool], *, what: str, timeout_s: float = 20.0
) -> Any:
    """Poll a page expression until ``expected`` holds (the page changes by itself: no reload)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen = None
    while loop.time() < deadline:
        seen = await in_thread(driver.execute_script, script)
        if expected(seen):
            return seen
        await asyncio.sleep(0.05)
    pytest.fail(f"{what}: the page showed {seen!r} within {timeout_s}s")


async def sign_in(driver: Any, base: str, token: str, path: str = "/agent") -> None:
    from selenium.webdriver.common.by import By

    await in_thread(driver.get, f"{base}{path}")
    assert "/signin" in await in_thread(lambda: driver.current_url)
    await in_thread(lambda: driver.find_element(By.ID, "token").send_keys(token))
    await in_thread(lambda: driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click())
    await until(
        driver,
        "const s = document.getElementById('status'); return s ? s.textContent : null",
        lambda s: s == "live",
        what="feed",
    )


def item_script(callback_id: str, selector: str, prop: str = "textContent") -> str:
    return (
        f"const li = document.querySelector('li.item[data-id=\"{callback_id}\"]');"
        f"if (!li) return null; const el = {selector!r} ? li.querySelector({selector!r}) : li;"
        f"return el ? (el.hidden ? 'HIDDEN' : el.{prop}) : null;"
    )


async def click(driver: Any, callback_id: str, selector: str) -> None:
    await in_thread(
        driver.execute_script,
        f"document.querySelector('li.item[data-id=\"{callback_id}\"] {selector}').click()",
    )


def auto_answer(sim: SimulatedAsterisk) -> None:
    """The customer answers, presses 1 and stays on the line (until the test hangs up)."""
    loop = asyncio.get_running_loop()

    def press(channel_id: str) -> None:
        with contextlib.suppress(Exception):  # the channel may be gone already
            sim.press(channel_id, "1")

    def on_change(change: PbxChange) -> None:
        if change.kind == "answered" and change.channel_id.startswith("cbcu-"):
            loop.call_later(0.3, press, change.channel_id)

    sim.observe(on_change)


async def test_an_agent_works_a_callback_from_the_page(
    apps: Apps, sim: SimulatedAsterisk, browsers: tuple[Any, Any]
) -> None:
    alice_page, bob_page = browsers
    overrides: dict[str, Any] = dict(FAST)
    running: RunningApp = await apps.start("app1", **overrides)
    await running.put_queue(
        QueueRecord(name=QUEUE, ring_timeout_s=2, wrap_up_s=1, business_number="+14155550199")
    )
    sim.set_sound("callback-confirm", 0.3)
    dispatch = running.services.dispatch
    assert dispatch is not None and dispatch.link is not None
    await dispatch.link.wait_up(10.0)
    auto_answer(sim)
    sim.set_endpoint(f"PJSIP/{CUSTOMER}@trunk", answer_after_s=0.3)
    tokens: dict[str, str] = {}
    for agent in ("alice", "bob"):
        sim.set_endpoint(await running.add_agent(agent), answer_after_s=0.3)
        # Working the list, not taking queue calls: the dispatcher does not pick them by itself.
        await running.services.queue.pause(agent, actor="test", reason="working the list")
        _, tokens[agent] = await running.services.auth.create_token(
            role=Role.AGENT, agent_id=agent, label=agent, expires_at=None, actor="test"
        )
    base = str(running.http.make_url("/")).rstrip("/")

    await sign_in(alice_page, base, tokens["alice"])
    await sign_in(bob_page, base, tokens["bob"])
    cookie = await in_thread(lambda: alice_page.get_cookie("cc_session"))
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    count = "return document.body ? document.body.dataset.items : null"
    await until(alice_page, count, lambda n: n == "0", what="an empty list")
    assert await in_thread(alice_page.execute_script, "return document.body.dataset.beeps || '0'") == "0"

    # A supervisor's follow-up, theirs for three seconds, then the queue's: it appears by itself
    # (no bus event says so) and the alert sounds.
    now = running.services.clock.now()
    callback = (
        await dispatch.sources.follow_up(
            "carol", QUEUE, CUSTOMER, at=now + timedelta(seconds=3), note="asked about the refund"
        )
    ).callback
    await until(alice_page, count, lambda n: n == "1", what="the callback appearing")
    assert await in_thread(alice_page.execute_script, item_script(callback.id, "", "dataset.due")) == "true"
    assert "Follow-up" in await in_thread(alice_page.execute_script, item_script(callback.id, ".reason-tag"))
    assert "refund" in await in_thread(alice_page.execute_script, item_script(callback.id, ".why"))
    await until(alice_page, "return document.body.dataset.beeps", lambda b: b == "1", what="the alert")
    ARTIFACTS.mkdir(exist_ok=True)
    await in_thread(alice_page.save_screenshot, str(ARTIFACTS / "agent-due.png"))

    # Every control has a name a screen reader can say.
    unnamed = await in_thread(
        alice_page.execute_script,
        "return [...document.querySelectorAll('button, input, textarea, select')]"
        ".filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.textContent.trim()"
        " && !el.getAttribute('aria-label')).map(el => el.outerHTML)",
    )
    assert unnamed == []

    # Alice claims it from the keyboard; Bob's page shows it claimed by her, and his claim gets a
    # clear refusal.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    claim_button = await in_thread(
        lambda: alice_page.find_element(By.CSS_SELECTOR, f'li.item[data-id="{callback.id}"] .claim-btn')
    )
    await in_thread(claim_button.send_keys, Keys.ENTER)
    claimed = item_script(callback.id, ".claim")
    await until(
        alice_page, claimed, lambda t: bool(t) and t.startswith("claimed by you"), what="alice's claim"
    )
    await until(bob_page, claimed, lambda t: bool(t) and t.startswith("claimed by alice"), what="bob sees it")
    await click(bob_page, callback.id, ".claim-btn")
    refused = await until(
        bob_page, item_script(callback.id, ".item-error"), lambda t: bool(t) and t != "HIDDEN", what="refusal"
    )
    assert "claimed by agent alice" in refused
    stored = await dispatch.store.claim_of(callback.id, now=running.services.clock.now())
    assert stored is not None and stored.agent_id == "alice", "bob's refused claim changed nothing"

    # Alice calls now: her phone rings first, then the customer, who presses 1.
    await click(alice_page, callback.id, ".start-btn")
    await until(
        alice_page,
        item_script(callback.id, "form.dispose", "tagName"),
        lambda t: t == "FORM",
        what="the disposition form once connected",
    )
    [attempt] = await dispatch.store.attempts(callback.id)
    assert (attempt.agent_id, attempt.result) == ("alice", AttemptResult.CONNECTED)
    originates = [
        r.query.get("endpoint")
        for r in sim.requests
        if r.method == "POST" and r.path.rstrip("/") == "/ari/channels"
    ]
    assert originates[:2] == ["PJSIP/alice", f"PJSIP/{CUSTOMER}@trunk"], "agent first, then the customer"
    await in_thread(alice_page.save_screenshot, str(ARTIFACTS / "agent-connected.png"))

    await click(alice_page, callback.id, "input[value=resolved]")
    await in_thread(
        alice_page.execute_script,
        f"document.querySelector('li.item[data-id=\"{callback.id}\"] textarea').value = 'refund sent';",
    )
    await click(alice_page, callback.id, "form.dispose button[type=submit]")
    await until(alice_page, count, lambda n: n == "0", what="the item leaving alice's list")
    await until(bob_page, count, lambda n: n == "0", what="the item leaving bob's list")
    done = await dispatch.store.get(callback.id)
    assert done.state is CallbackState.COMPLETED
    assert (await dispatch.store.changes(callback.id))[-1].reason == "resolved: refund sent"

    # The alert switch is remembered by the browser.
    toggle = (
        "const t = document.getElementById('alert-toggle'); return t ? t.getAttribute('aria-pressed') : null"
    )
    assert await in_thread(alice_page.execute_script, toggle) == "true"
    await in_thread(alice_page.execute_script, "document.getElementById('alert-toggle').click()")
    await in_thread(alice_page.refresh)
    await until(alice_page, toggle, lambda v: v == "false", what="the alert still off after a reload")

    # The customer hangs up. Alice had paused to work her list before she started the callback: she
    # is given back paused (her own pause is kept), not put back in the line for live callers.
    queue = running.services.queue
    assert queue.held_for_callback("alice")  # on the callback
    sim.hangup(customer_channel_id(attempt.id))
    await eventually(lambda: not queue.held_for_callback("alice"), what="alice given back after the call")
    assert await running.agent_state("alice") is AgentState.PAUSED

    # Laptop and phone: no sideways scrolling.
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    second = await _screens(alice_page, running, overflow)

    # A supervisor looks at alice's list (in Bob's browser, signed out and in again).
    await in_thread(
        bob_page.execute_script, "document.querySelector('form[action=\"/session/logout\"]').submit()"
    )
    await until(bob_page, "return location.pathname", lambda p: p == "/signin", what="signed out")
    await sign_in(bob_page, base, running.token, "/agent?agent=alice")
    who = "const w = document.getElementById('who'); return w ? w.textContent : null"
    await until(
        bob_page, who, lambda t: t == "of alice (viewed by a supervisor)", what="the supervisor's view"
    )
    await until(bob_page, count, lambda n: n == "1", what="alice's list seen by the supervisor")
    assert await in_thread(bob_page.execute_script, item_script(second, ".number")) == "+14155550124"


async def _screens(driver: Any, running: RunningApp, overflow: str) -> str:
    """A second callback of alice's own, shown on a laptop and a phone; its id."""
    dispatch = running.services.dispatch
    assert dispatch is not None
    callback = (
        await dispatch.sources.follow_up("alice", QUEUE, "+14155550124", at=running.services.clock.now())
    ).callback
    await until(
        driver,
        "return document.body ? document.body.dataset.items : null",
        lambda n: n == "1",
        what="a second callback",
    )
    for name, size in (("laptop", (1366, 768)), ("phone", (390, 844))):
        await in_thread(driver.set_window_size, *size)
        await in_thread(
            driver.execute_script, "document.querySelectorAll('details').forEach(d => d.open = true)"
        )
        assert await in_thread(driver.execute_script, overflow) <= 0, f"no sideways scrolling on a {name}"
        assert (
            await in_thread(driver.execute_script, item_script(callback.id, ".start-btn", "tagName"))
            == "BUTTON"
        )
        await in_thread(driver.save_screenshot, str(ARTIFACTS / f"agent-{name}.png"))
    return callback.id
