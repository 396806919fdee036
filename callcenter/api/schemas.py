"""JSON Schemas of the API's bodies and the serialisers that produce them, side by side (edge).

Each serialiser sits next to the schema it must satisfy; the service tests validate real responses
against these schemas, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Final

from callcenter.api.jsonio import iso
from callcenter.api.routing import JsonObject
from callcenter.auth.tokens import Principal
from callcenter.model.records import ApiToken, AuditEntry
from callcenter.model.vocabulary import Role

_ROLES: Final = [role.value for role in Role]
_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}


def _object(properties: JsonObject, *, required: list[str] | None = None, closed: bool = True) -> JsonObject:
    schema: JsonObject = {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


ERROR: Final = _object(
    {
        "error": {"type": "string", "description": "stable machine-readable code, e.g. not_found"},
        "message": {"type": "string", "description": "what went wrong, for people"},
    }
)

HEALTH: Final = _object(
    {
        "status": {"enum": ["ok", "degraded", "fail"]},
        "checks": {
            "type": "object",
            "required": ["db", "redis", "ari"],
            "additionalProperties": {"enum": ["ok", "fail", "disabled"]},
        },
    }
)

PRINCIPAL: Final = _object(
    {
        "token_id": {"type": "string"},
        "role": {"enum": _ROLES},
        "agent_id": _TEXT_OR_NULL,
        "label": {"type": "string"},
    }
)

TOKEN: Final = _object(
    {
        "id": {"type": "string"},
        "role": {"enum": _ROLES},
        "agent_id": _TEXT_OR_NULL,
        "label": {"type": "string"},
        "created_at": _TIME,
        "expires_at": _TIME_OR_NULL,
        "revoked_at": _TIME_OR_NULL,
        "last_used_at": _TIME_OR_NULL,
    }
)

TOKEN_CREATE: Final = _object(
    {
        "role": {"enum": _ROLES},
        "agent_id": {**_TEXT_OR_NULL, "description": "required for agent tokens, refused for others"},
        "label": {"type": "string", "maxLength": 200},
        "expires_at": {**_TIME_OR_NULL, "description": "ISO 8601 with offset; null never expires"},
    },
    required=["role"],
)

TOKEN_CREATED: Final = _object(
    {
        "token": {"$ref": "#/components/schemas/Token"},
        "secret": {
            "type": "string",
            "pattern": "^cc_[A-Za-z0-9_-]{43}$",
            "description": "the bearer secret; shown this once and never again",
        },
    }
)

AUDIT_ENTRY: Final = _object(
    {
        "id": {"type": "integer"},
        "at": _TIME,
        "actor": {"type": "string"},
        "role": {"enum": [*_ROLES, None]},
        "action": {"type": "string", "description": "token.create, or METHOD /path-template"},
        "target": {"type": "string"},
        "detail": {"type": "object"},
    }
)

OPENAPI_DOCUMENT: Final[JsonObject] = {"type": "object", "description": "this document (OpenAPI 3.1)"}

#: Named schemas; routes refer to them by name and ``/api/v1/openapi.json`` publishes them all.
COMPONENTS: Final[dict[str, JsonObject]] = {
    "Error": ERROR,
    "Health": HEALTH,
    "Principal": PRINCIPAL,
    "Token": TOKEN,
    "TokenCreate": TOKEN_CREATE,
    "TokenCreated": TOKEN_CREATED,
    "AuditEntry": AUDIT_ENTRY,
    "OpenApiDocument": OPENAPI_DOCUMENT,
}


def principal_json(principal: Principal) -> JsonObject:
    return {
        "token_id": principal.token_id,
        "role": principal.role.value,
        "agent_id": principal.agent_id,
        "label": principal.label,
    }


def token_json(token: ApiToken) -> JsonObject:
    """A token as the API shows it: never its secret, nor the secret's hash."""
    return {
        "id": token.id,
        "role": token.role.value,
        "agent_id": token.agent_id,
        "label": token.label,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }


def audit_json(entry: AuditEntry) -> JsonObject:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "role": entry.role.value if entry.role is not None else None,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
    }
