"""``/api/v1/agents``: create, list, read, log in/out, pause, queues; an agent token acts for itself only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pytest_aiohttp import AiohttpClient

from callcenter.model.events import AgentStateChanged
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import AGENT_ID, assert_schema
from tests.service.api.queue_api import OTHER_AGENT, QueueApi, build_queue_api

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, clock: FakeClock) -> QueueApi:
    return await build_queue_api(aiohttp_client, clock)


async def test_a_supervisor_creates_an_agent_logged_out_and_the_write_is_audited(api: QueueApi) -> None:
    body = {"id": "a3", "name": "Carol", "endpoint": "PJSIP/1003", "queues": ["sales"]}

    status, agent = await api.call("POST", "/agents", body=body)

    assert status == 201, agent
    assert_schema("Agent", agent)
    assert (agent["id"], agent["state"], agent["queues"], agent["misses"]) == (
        "a3",
        "logged_out",
        ["sales"],
        0,
    )
    [entry] = api.audit.entries
    assert (entry.action, entry.detail) == ("POST /api/v1/agents", {"id": "a3", "endpoint": "PJSIP/1003"})


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id": "a1", "name": "Again", "endpoint": "PJSIP/1"}, 409, "conflict"),
        ({"id": "a3", "name": "Carol", "endpoint": "1003"}, 400, "invalid_request"),
        ({"id": "a 3", "name": "Carol", "endpoint": "PJSIP/1003"}, 400, "invalid_request"),
        (
            {"id": "a3", "name": "Carol", "endpoint": "PJSIP/1003", "queues": ["ghost"]},
            400,
            "invalid_request",
        ),
        ({"id": "a3", "name": "Carol", "endpoint": "PJSIP/1003", "queues": "sales"}, 400, "invalid_request"),
        ({"id": "a3", "name": "Carol", "endpoint": "PJSIP/1003", "role": "boss"}, 400, "invalid_request"),
        ({"id": "a3", "endpoint": "PJSIP/1003"}, 400, "invalid_request"),
    ],
)
async def test_creating_an_agent_refuses_bad_input(
    api: QueueApi, body: object, status: int, code: str
) -> None:
    got, answer = await api.call("POST", "/agents", body=body)

    assert (got, answer["error"]) == (status, code), answer
    assert_schema("Error", answer)


async def test_agents_are_listed_by_id_in_pages_with_their_live_state(api: QueueApi) -> None:
    await api.service.login(AGENT_ID, actor="test")

    status, first = await api.call("GET", "/agents?limit=1")
    _, second = await api.call("GET", f"/agents?limit=1&cursor={first['next']}")

    assert status == 200
    assert [a["id"] for a in first["items"]] == [AGENT_ID] and first["next"]
    assert [a["id"] for a in second["items"]] == [OTHER_AGENT] and second["next"] is None
    assert first["items"][0]["state"] == "available"
    for item in first["items"] + second["items"]:
        assert_schema("Agent", item)


async def test_an_agent_token_logs_its_own_agent_in_pauses_and_out(api: QueueApi) -> None:
    status, agent = await api.call("POST", f"/agents/{AGENT_ID}/login", role=Role.AGENT)
    assert (status, agent["state"]) == (200, "available")

    status, agent = await api.call(
        "POST", f"/agents/{AGENT_ID}/pause", role=Role.AGENT, body={"reason": "lunch"}
    )
    assert (status, agent["state"]) == (200, "paused")
    status, agent = await api.call("POST", f"/agents/{AGENT_ID}/unpause", role=Role.AGENT, raw=b"")
    assert (status, agent["state"]) == (200, "available")
    status, agent = await api.call("POST", f"/agents/{AGENT_ID}/logout", role=Role.AGENT, body={})
    assert (status, agent["state"]) == (200, "logged_out")
    assert_schema("Agent", agent)

    reasons = [e.reason for e in api.bus.published if isinstance(e, AgentStateChanged)]
    assert reasons[1].startswith("lunch by token:") and "agent test token" in reasons[1]
    assert api.audit.entries == [], "an agent's own changes are not supervisor writes"


@pytest.mark.parametrize("action", ["login", "logout", "pause", "unpause"])
async def test_an_agent_token_may_not_act_for_another_agent(api: QueueApi, action: str) -> None:
    status, answer = await api.call("POST", f"/agents/{OTHER_AGENT}/{action}", role=Role.AGENT)

    assert (status, answer["error"]) == (403, "forbidden")


async def test_an_agent_token_reads_only_its_own_agent(api: QueueApi) -> None:
    status, own = await api.call("GET", f"/agents/{AGENT_ID}", role=Role.AGENT)
    assert (status, own["id"], own["endpoint"]) == (200, AGENT_ID, f"PJSIP/{AGENT_ID}")
    status, answer = await api.call("GET", f"/agents/{OTHER_AGENT}", role=Role.AGENT)
    assert (status, answer["error"]) == (403, "forbidden")
    status, other = await api.call("GET", f"/agents/{OTHER_AGENT}", role=Role.SUPERVISOR)
    assert (status, other["id"]) == (200, OTHER_AGENT)


async def test_a_supervisor_logs_an_agent_in_with_queues(api: QueueApi) -> None:
    await api.call("PUT", "/queues/support", body={})

    status, agent = await api.call(
        "POST", f"/agents/{OTHER_AGENT}/login", body={"queues": ["support", "sales"]}
    )

    assert (status, agent["state"], agent["queues"]) == (200, "available", ["sales", "support"])


async def test_pausing_a_logged_out_agent_conflicts(api: QueueApi) -> None:
    status, answer = await api.call("POST", f"/agents/{AGENT_ID}/pause", role=Role.AGENT)

    assert (status, answer["error"]) == (409, "conflict")
    assert "log in" in answer["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/agents/{AGENT_ID}/pause", {"why": "x"}),
        (f"/agents/{AGENT_ID}/logout", {"now": True}),
        (f"/agents/{AGENT_ID}/login", {"queues": [1]}),
        (f"/agents/{AGENT_ID}/pause", {"reason": "x" * 201}),
    ],
)
async def test_agent_actions_refuse_bodies_they_do_not_take(api: QueueApi, path: str, body: object) -> None:
    status, answer = await api.call("POST", path, role=Role.AGENT, body=body)

    assert (status, answer["error"]) == (400, "invalid_request")


async def test_a_malformed_body_is_refused(api: QueueApi) -> None:
    status, answer = await api.call("POST", f"/agents/{AGENT_ID}/login", role=Role.AGENT, raw=b"{nope")

    assert (status, answer["error"]) == (400, "invalid_json")


async def test_a_supervisor_replaces_an_agents_queues(api: QueueApi) -> None:
    await api.call("PUT", "/queues/support", body={})

    status, agent = await api.call("PUT", f"/agents/{AGENT_ID}/queues", body={"queues": ["support"]})

    assert (status, agent["queues"]) == (200, ["support"])
    assert api.audit.entries[-1].detail == {"queues": ["support"]}
    status, answer = await api.call("PUT", f"/agents/{AGENT_ID}/queues", body={})
    assert (status, answer["error"]) == (400, "invalid_request")
    status, answer = await api.call("PUT", f"/agents/{AGENT_ID}/queues", body={"queues": ["ghost"]})
    assert (status, answer["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/agents/ghost"),
        ("POST", "/agents/ghost/login"),
        ("POST", "/agents/ghost/logout"),
        ("POST", "/agents/ghost/pause"),
        ("POST", "/agents/ghost/unpause"),
        ("PUT", "/agents/ghost/queues"),
    ],
)
async def test_unknown_agents_are_404(api: QueueApi, method: str, path: str) -> None:
    status, answer = await api.call(method, path, body={"queues": []} if method == "PUT" else None)

    assert (status, answer["error"]) == (404, "not_found")
