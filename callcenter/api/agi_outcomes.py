"""``POST /api/v1/agi/call-outcome``: the classic AGI hook hands over what it read (edge).

The classic AGI program (``callcenter.agi.classic``) runs on the Asterisk host and cannot reach the
database; it posts the channel variables it read, keyed as in
:data:`callcenter.agi.outcome.READ_VARIABLES`. They are read by the same :func:`read_report` and
recorded by the same :class:`CallOutcomeRecorder` as the FastAGI script's: one outcome per call,
so a retried post answers the call as first recorded.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from callcenter.agi.outcome import CallOutcomeRecorder, read_report
from callcenter.api.jsonio import read_json_object, reject_unknown_fields
from callcenter.api.schemas import call_json
from callcenter.errors import DependencyError, ValidationError

#: The recorder of this process; the route answers 503 where it is not set.
AGI_OUTCOME_RECORDER: Final = web.AppKey("agi_outcome_recorder", CallOutcomeRecorder)


async def post_call_outcome(request: web.Request) -> web.Response:
    recorder = request.app.get(AGI_OUTCOME_RECORDER)
    if recorder is None:
        raise DependencyError("app_queue call outcomes are not recorded by this process")
    body = await read_json_object(request)
    reject_unknown_fields(body, ("variables",))
    variables = body.get("variables")
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValidationError("variables must be an object of strings")
    report = read_report(variables, received_at=recorder.now())
    record = await recorder.record(report)
    return web.json_response(call_json(record))
