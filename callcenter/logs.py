"""Logging set-up: readable text or one JSON object a line, with phone numbers masked (shared)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

from callcenter.config import LogSettings
from callcenter.model.phone import mask_number

# A safety net under the rule "log masked numbers": anything that looks like an E.164 number
# (a plus and 7-15 digits) is masked in every record at INFO and above.
_E164 = re.compile(r"\+\d{7,15}")

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


class MaskNumbersFilter(logging.Filter):
    """Mask E.164 numbers in messages at INFO and above; DEBUG keeps them for troubleshooting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            message = record.getMessage()
            masked = _E164.sub(lambda m: mask_number(m.group(0)), message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                body[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger, replacing any earlier one of ours."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(MaskNumbersFilter())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_callcenter", False)]:
        root.removeHandler(old)
    handler._callcenter = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.level)
    # aiohttp's access log repeats every request at INFO; keep it for DEBUG.
    logging.getLogger("aiohttp.access").setLevel(
        logging.WARNING if settings.level != "DEBUG" else logging.DEBUG
    )
