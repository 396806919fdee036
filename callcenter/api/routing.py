"""One entry of the API route table: path, handler, minimum role and OpenAPI description (edge)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from aiohttp import web

from callcenter.config import HttpSettings
from callcenter.model.vocabulary import Role

API_PREFIX: Final = "/api/v1"
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_METHODS: Final = frozenset({"GET"}) | WRITE_METHODS
# aiohttp path variables are ``{name}`` or ``{name:regex}``; OpenAPI knows only ``{name}``.
_PATH_VAR: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}")

Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]
JsonObject: TypeAlias = dict[str, object]


@dataclass(frozen=True, kw_only=True, slots=True)
class Param:
    """A query parameter as OpenAPI describes it."""

    name: str
    description: str
    schema: JsonObject = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """One line of the route table; ``/api/v1/openapi.json`` is generated from these.

    :param path: below ``prefix``, in aiohttp syntax (``/tokens/{token_id}``).
    :param role: the lowest role allowed; ``None`` makes the route public (health, the OpenAPI
        document, provider webhooks, which then authenticate the provider their own way).
    :param body: name of the request body schema in ``api.schemas.COMPONENTS``.
    :param response: name of the success body schema; with ``paginated`` each item's schema.
    :param paginated: a list answering ``{"items": [...], "next": cursor}`` with ``?limit=&cursor=``.
    :param webhook: a provider webhook (documented as such; ``role`` must then be ``None``).
    :param audited_by_service: the service behind the handler writes its own audit entry (for
        example ``token.create``), so the audit middleware does not add a second one.
    :param prefix: ``/api/v1`` for the JSON API (documented in OpenAPI); ``""`` for the few routes
        outside it (``/metrics``), which speak another format and are left out of the document.
    """

    method: str
    path: str
    handler: Handler
    role: Role | None
    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    query: tuple[Param, ...] = ()
    body: str | None = None
    response: str | None = None
    status: int = 200
    paginated: bool = False
    webhook: bool = False
    audited_by_service: bool = False
    prefix: str = API_PREFIX

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"route {self.path}: method {self.method!r} is not one of {sorted(_METHODS)}")
        if not self.path.startswith("/"):
            raise ValueError(f"route {self.path!r}: the path must start with '/'")
        if self.webhook and self.role is not None:
            raise ValueError(f"route {self.path}: a provider webhook authenticates its own way (role=None)")
        if self.paginated and self.response is None:
            raise ValueError(f"route {self.path}: a paginated route names its item schema")

    @property
    def full_path(self) -> str:
        """The path as registered in aiohttp's router."""
        return self.prefix + self.path

    @property
    def openapi_path(self) -> str:
        """The full path with aiohttp's ``{name:regex}`` written as OpenAPI's ``{name}``."""
        return _PATH_VAR.sub(lambda m: "{" + m.group(1) + "}", self.full_path)

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(m.group(1) for m in _PATH_VAR.finditer(self.path))

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[^A-Za-z0-9]+", "_", _PATH_VAR.sub(lambda m: m.group(1), self.path)).strip("_")
        return f"{self.method.lower()}_{words}" if words else self.method.lower()

    @property
    def in_api(self) -> bool:
        """True for routes of the JSON API under ``/api/v1`` (those the OpenAPI document covers)."""
        return self.prefix == API_PREFIX

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


#: Every route's table entry, keyed by aiohttp's route object (the middlewares look requests up here).
ROUTE_SPECS: Final = web.AppKey[Mapping[web.AbstractRoute, Route]]("route_specs")
HTTP_SETTINGS: Final = web.AppKey("http_settings", HttpSettings)


def route_of(request: web.Request) -> Route | None:
    """The table entry of the matched route; ``None`` for unknown paths and disallowed methods."""
    return request.app[ROUTE_SPECS].get(request.match_info.route)
