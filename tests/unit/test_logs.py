"""Logs are readable or JSON, and never carry a full phone number at info level."""

from __future__ import annotations

import io
import json
import logging

from callcenter.config import LogSettings
from callcenter.logs import configure_logging


def test_json_logs_are_one_object_a_line_with_extras() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="json", level="INFO"), stream=out)

    logging.getLogger("callcenter.test").info("call ended", extra={"call_id": "c-1", "wait_s": 3.5})

    record = json.loads(out.getvalue().strip())
    assert record["message"] == "call ended"
    assert record["level"] == "info"
    assert record["call_id"] == "c-1" and record["wait_s"] == 3.5
    assert record["time"].endswith("+00:00")


def test_full_numbers_are_masked_at_info_but_kept_at_debug() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="text", level="DEBUG"), stream=out)
    log = logging.getLogger("callcenter.test")

    log.info("missed call from %s", "+14155550100")
    log.debug("raw caller id %s", "+14155550100")

    info_line, debug_line = out.getvalue().splitlines()
    assert "+14155550100" not in info_line and "+1********00" in info_line
    assert "+14155550100" in debug_line
