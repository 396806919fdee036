"""The domain vocabulary: missed calls, open callbacks and nested roles."""

from __future__ import annotations

import pytest

from callcenter.model.vocabulary import CallbackState, CallOutcome, Role


def test_every_outcome_but_answered_is_a_missed_call() -> None:
    missed = {o for o in CallOutcome if o.is_missed}

    assert missed == set(CallOutcome) - {CallOutcome.ANSWERED}
    assert CallOutcome.CALLBACK_REQUESTED in missed


def test_open_callbacks_are_those_that_still_owe_a_call() -> None:
    closed = {s for s in CallbackState if not s.is_open}

    assert closed == {
        CallbackState.COMPLETED,
        CallbackState.FAILED,
        CallbackState.CANCELLED,
        CallbackState.EXPIRED,
        CallbackState.COMPLETED_INBOUND,
    }


@pytest.mark.parametrize(
    ("holder", "required", "allowed"),
    [
        (Role.ADMIN, Role.SUPERVISOR, True),
        (Role.ADMIN, Role.AGENT, True),
        (Role.SUPERVISOR, Role.AGENT, True),
        (Role.SUPERVISOR, Role.ADMIN, False),
        (Role.AGENT, Role.SUPERVISOR, False),
        (Role.AGENT, Role.AGENT, True),
    ],
)
def test_roles_nest_admin_over_supervisor_over_agent(holder: Role, required: Role, allowed: bool) -> None:
    assert holder.includes(required) is allowed
