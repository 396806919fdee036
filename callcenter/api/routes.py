"""The route table of ``/api/v1``: one line per route, with its role and OpenAPI description (edge).

Adding a route is adding a line here; ``openapi.json`` and the role tests follow from the table.
"""

from __future__ import annotations

from typing import Final

from callcenter.api import health, openapi, tokens
from callcenter.api.routing import Route
from callcenter.model.vocabulary import Role

ROUTES: Final[tuple[Route, ...]] = (
    Route(
        method="GET",
        path="/health",
        handler=health.get_health,
        role=None,
        summary="Health of the store, Redis and ARI (200 ok/degraded, 503 when the store or Redis fails)",
        tags=("system",),
        response="Health",
    ),
    Route(
        method="GET",
        path="/openapi.json",
        handler=openapi.get_openapi,
        role=None,
        summary="This OpenAPI 3.1 document",
        tags=("system",),
        response="OpenApiDocument",
    ),
    Route(
        method="GET",
        path="/me",
        handler=tokens.get_me,
        role=Role.AGENT,
        summary="The caller's own token: id, role and bound agent",
        tags=("auth",),
        response="Principal",
    ),
    Route(
        method="GET",
        path="/tokens",
        handler=tokens.list_tokens,
        role=Role.ADMIN,
        summary="API tokens, newest first (never their secrets)",
        tags=("auth",),
        response="Token",
        paginated=True,
    ),
    Route(
        method="POST",
        path="/tokens",
        handler=tokens.create_token,
        role=Role.ADMIN,
        summary="Create a token; the answer holds its secret, shown this once",
        tags=("auth",),
        body="TokenCreate",
        response="TokenCreated",
        status=201,
        audited_by_service=True,
    ),
    Route(
        method="DELETE",
        path="/tokens/{token_id}",
        handler=tokens.revoke_token,
        role=Role.ADMIN,
        summary="Revoke a token (revoking twice is harmless)",
        tags=("auth",),
        response="Token",
        audited_by_service=True,
    ),
    Route(
        method="GET",
        path="/audit",
        handler=tokens.list_audit,
        role=Role.ADMIN,
        summary="The audit log of writes by supervisors, admins and the CLI, newest first",
        tags=("auth",),
        response="AuditEntry",
        paginated=True,
    ),
)
