"""Every error answers the same envelope, with a stable code, and never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from callcenter.api.errors import ERROR_TABLE, InvalidJsonError
from callcenter.api.routing import Route
from callcenter.callbacks.ports import CallbackExistsError, SlotFullError
from callcenter.config import HttpSettings
from callcenter.errors import (
    AsteriskUnavailableError,
    AuthenticationError,
    CallCenterError,
    ConfigError,
    ConflictError,
    DependencyError,
    InvalidPhoneNumberError,
    LeaseLostError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
    ValidationError,
)
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import MakeApi, assert_error

#: Exception raised by a handler -> (status, code), for every kind the table knows and a few subclasses.
EXPECTED: dict[Exception, tuple[int, str]] = {
    InvalidJsonError("bad"): (400, "invalid_json"),
    ValidationError("bad"): (400, "invalid_request"),
    InvalidPhoneNumberError("bad"): (400, "invalid_phone_number"),
    AuthenticationError("bad"): (401, "unauthenticated"),
    PermissionDeniedError("bad"): (403, "forbidden"),
    NotFoundError("bad"): (404, "not_found"),
    ConflictError("bad"): (409, "conflict"),
    SlotFullError("bad"): (409, "slot_full"),
    CallbackExistsError("bad", existing_id="cb-1"): (409, "callback_exists"),
    DependencyError("bad"): (503, "unavailable"),
    StoreUnavailableError("bad"): (503, "unavailable"),
    AsteriskUnavailableError("bad"): (503, "unavailable"),
    LeaseLostError("bad"): (503, "unavailable"),
    SlotFullError("bad"): (409, "slot_full"),
    CallbackExistsError("bad", "cb-1"): (409, "callback_exists"),
}


def test_every_kind_in_the_table_is_exercised_below() -> None:
    assert {type(exc) for exc in EXPECTED} >= set(ERROR_TABLE) - {CallCenterError}


def _raising(exc: Exception) -> Route:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    return Route(method="GET", path="/test/raise", handler=handler, role=Role.AGENT, summary="test")


@pytest.mark.parametrize("exc", list(EXPECTED), ids=lambda e: type(e).__name__)
async def test_each_domain_error_answers_its_status_and_code(make_api: MakeApi, exc: Exception) -> None:
    api = await make_api(routes=[_raising(exc)])
    response = await api.client.get("/api/v1/test/raise", headers=api.as_role(Role.AGENT))
    status, code = EXPECTED[exc]
    await assert_error(response, status, code, "bad")
    assert (response.headers.get("WWW-Authenticate") == 'Bearer realm="callcenter"') == (status == 401)


@pytest.mark.parametrize(
    "exc", [RuntimeError("db password=hunter2"), KeyError("hunter2"), ConfigError("CALLCENTER_X: hunter2")]
)
async def test_an_unexpected_error_is_a_generic_500_and_logged_with_its_traceback(
    make_api: MakeApi, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    api = await make_api(routes=[_raising(exc)])
    with caplog.at_level(logging.ERROR, logger="callcenter.api.errors"):
        response = await api.client.get("/api/v1/test/raise", headers=api.as_role(Role.AGENT))
    body = await assert_error(response, 500, "internal_error")
    assert body["message"] == "internal server error"
    text = await response.text()
    assert "hunter2" not in text and "Traceback" not in text
    [record] = [r for r in caplog.records if r.name == "callcenter.api.errors"]
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert "/api/v1/test/raise" in record.getMessage()


async def test_an_unknown_route_is_not_found(make_api: MakeApi) -> None:
    api = await make_api()
    await assert_error(await api.client.get("/api/v1/nothing-here"), 404, "not_found", "no such route")
    await assert_error(await api.client.get("/elsewhere"), 404, "not_found")


async def test_a_wrong_method_is_refused_with_the_allowed_ones(make_api: MakeApi) -> None:
    api = await make_api()
    response = await api.client.put("/api/v1/tokens", headers=api.as_role(Role.ADMIN))
    await assert_error(response, 405, "method_not_allowed", "PUT is not allowed")
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"role": ', "malformed JSON"),
        (b"{'role': 'admin'}", "malformed JSON"),
        (b'{"role": NaN}', "NaN is not valid JSON"),
        (b'{"role": "\xff"}', "not UTF-8 text"),
        (b"", "it is empty"),
        (b"   ", "it is empty"),
        (b'["admin"]', "not an array"),
        (b'"admin"', "not a string"),
        (b"42", "not a number"),
        (b"null", "not null"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_invalid_json(
    make_api: MakeApi, body: bytes, message: str
) -> None:
    api = await make_api()
    before = await api.token_ids()
    response = await api.client.post(
        "/api/v1/tokens", data=body, headers={**api.as_role(Role.ADMIN), "Content-Type": "application/json"}
    )
    await assert_error(response, 400, "invalid_json", message)
    assert await api.token_ids() == before


async def test_an_oversized_body_is_refused_before_anything_is_written(make_api: MakeApi) -> None:
    api = await make_api(settings=HttpSettings(max_body_bytes=64))
    before = await api.token_ids()
    body = {"role": "supervisor", "label": "x" * 100}
    response = await api.client.post("/api/v1/tokens", json=body, headers=api.as_role(Role.ADMIN))
    await assert_error(response, 413, "payload_too_large", "larger than 64 bytes")
    assert await api.token_ids() == before


async def test_an_oversized_chunked_body_without_length_is_refused_too(make_api: MakeApi) -> None:
    api = await make_api(settings=HttpSettings(max_body_bytes=64))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"role": "supervisor", "label": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    response = await api.client.post("/api/v1/tokens", data=chunks(), headers=api.as_role(Role.ADMIN))
    assert "Content-Length" not in response.request_info.headers
    await assert_error(response, 413, "payload_too_large")


async def test_a_body_within_the_limit_is_accepted(make_api: MakeApi) -> None:
    api = await make_api(settings=HttpSettings(max_body_bytes=64))
    response = await api.client.post(
        "/api/v1/tokens", json={"role": "admin"}, headers=api.as_role(Role.ADMIN)
    )
    assert response.status == 201, await response.text()
