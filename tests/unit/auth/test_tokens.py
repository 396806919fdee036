"""Token values: secret shape, hashing, the Authorization header, roles and agent binding."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from callcenter.auth.tokens import (
    SECRET_BYTES,
    SECRET_PREFIX,
    Principal,
    hash_secret,
    looks_like_secret,
    parse_bearer,
    require_agent_access,
    require_role,
)
from callcenter.errors import AuthenticationError, PermissionDeniedError
from callcenter.model.vocabulary import Role

SECRET = "cc_" + "A" * 43


def test_a_generated_secret_has_the_documented_shape() -> None:
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    assert looks_like_secret(secret)
    assert len(secret) == 3 + 43


@pytest.mark.parametrize(
    "text",
    ["", "cc_", "cc_" + "A" * 42, "cc_" + "A" * 44, "xx_" + "A" * 43, "cc_" + "A" * 42 + "!", " " + SECRET],
)
def test_text_that_is_not_one_of_our_secrets_is_recognised(text: str) -> None:
    assert not looks_like_secret(text)


def test_the_store_keeps_the_sha256_hex_of_the_secret_not_the_secret() -> None:
    digest = hash_secret(SECRET)
    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()
    assert SECRET not in digest and len(digest) == 64


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {SECRET}", SECRET),
        (f"bearer {SECRET}", SECRET),
        (f"BEARER   {SECRET}  ", SECRET),
    ],
)
def test_bearer_header_yields_its_token(header: str, token: str) -> None:
    assert parse_bearer(header) == token


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "unsupported authorization scheme"),
        (SECRET, "unsupported authorization scheme"),
        ("Bearer", "malformed bearer token"),
        ("Bearer a b", "malformed bearer token"),
    ],
)
def test_a_bad_authorization_header_is_refused_with_its_reason(header: str | None, reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        parse_bearer(header)


def test_the_audit_names_a_caller_by_token_id_and_label() -> None:
    assert (
        Principal(token_id="tok_1", role=Role.ADMIN, label="ops laptop").actor == "token:tok_1 (ops laptop)"
    )
    assert Principal(token_id="tok_2", role=Role.ADMIN).actor == "token:tok_2"


@pytest.mark.parametrize("held", list(Role))
@pytest.mark.parametrize("required", list(Role))
def test_roles_nest_admin_over_supervisor_over_agent(held: Role, required: Role) -> None:
    principal = Principal(token_id="t", role=held, agent_id="a1" if held is Role.AGENT else None)
    if held.rank >= required.rank:
        require_role(principal, required)
    else:
        with pytest.raises(PermissionDeniedError, match=f"needs a {required.value} token"):
            require_role(principal, required)


def test_an_agent_token_acts_only_for_its_own_agent() -> None:
    agent = Principal(token_id="t", role=Role.AGENT, agent_id="a1")
    require_agent_access(agent, "a1")
    with pytest.raises(PermissionDeniedError, match="its own agent"):
        require_agent_access(agent, "a2")


def test_an_agent_token_bound_to_no_agent_acts_for_none() -> None:
    with pytest.raises(PermissionDeniedError):
        require_agent_access(Principal(token_id="t", role=Role.AGENT), "a1")


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
def test_supervisors_and_admins_act_for_any_agent(role: Role) -> None:
    require_agent_access(Principal(token_id="t", role=role), "a1")
