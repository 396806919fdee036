"""The API with a running queue service over the in-memory store, for the call, agent and queue routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.queues import QUEUE_SERVICE
from callcenter.auth.service import AuthService
from callcenter.config import HttpSettings
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import Role
from callcenter.queue.service import QueueService
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.store import InMemoryAuditLog, InMemoryStore, InMemoryTokenRepository
from tests.fakes.telephony import RecordingCallControl
from tests.service.api.conftest import AGENT_ID, healthy

if TYPE_CHECKING:
    from tests.conftest import FakeClock

#: Another agent than the one the agent token is bound to.
OTHER_AGENT = "a2"


@dataclass
class QueueApi:
    """The API under test, the queue service behind it and its fakes."""

    client: TestClient[web.Request, web.Application]
    service: QueueService
    store: InMemoryStore
    audit: InMemoryAuditLog
    control: RecordingCallControl
    bus: InMemoryEventBus
    clock: FakeClock
    secrets: dict[Role, str] = field(default_factory=dict)

    def as_role(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: Role = Role.SUPERVISOR,
        body: object = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """Send a request as ``role``; return the status and the decoded JSON body."""
        kwargs: dict[str, Any] = {"headers": self.as_role(role)}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, "/api/v1" + path, **kwargs)
        return response.status, await response.json()


async def build_queue_api(aiohttp_client: AiohttpClient, clock: FakeClock) -> QueueApi:
    """Queue ``sales``, agents ``a1`` (the agent token's) and ``a2``, logged out; the service started."""
    store = InMemoryStore.create()
    await store.queues.put(QueueRecord(name="sales", title="Sales"))
    for agent_id in (AGENT_ID, OTHER_AGENT):
        await store.agents.add(
            AgentRecord(id=agent_id, name=agent_id.upper(), endpoint=f"PJSIP/{agent_id}", queues=("sales",))
        )
    control, bus, audit = RecordingCallControl(), InMemoryEventBus(), InMemoryAuditLog()
    service = QueueService(control, store.calls, store.agents, store.queues, bus, clock)
    await service.start()
    auth = AuthService(InMemoryTokenRepository(), audit, clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    app[QUEUE_SERVICE] = service
    api = QueueApi(await aiohttp_client(app), service, store, audit, control, bus, clock)
    for role in Role:
        _, api.secrets[role] = await auth.create_token(
            role=role,
            agent_id=AGENT_ID if role is Role.AGENT else None,
            label=f"{role.value} test token",
            expires_at=None,
            actor="test-setup",
        )
    audit.entries.clear()
    return api
