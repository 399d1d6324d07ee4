"""JSON logs that carry the correlation id of the request or event being handled."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

import orjson

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"


def current_correlation_id() -> str | None:
    """Return the correlation id of the work in progress, if any."""
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> contextvars.Token:
    """Bind a correlation id (a new one when None) to the current context."""
    return _correlation_id.set(value or str(uuid.uuid4()))


def reset_correlation_id(token: contextvars.Token) -> None:
    """Restore the correlation id that was bound before `set_correlation_id`."""
    _correlation_id.reset(token)


# PostgreSQL's DETAIL line names the stored values a statement clashed with ("Key (phone)=(138…) already exists");
# asyncpg puts it in every error's text. Bound parameters are hidden by the engine (`make_engine`).
_VALUE_DETAIL = re.compile(r"^DETAIL:.*$", re.M)


def without_stored_values(text: str) -> str:
    """`text` with PostgreSQL's DETAIL lines (which quote stored values) replaced by a placeholder."""
    return _VALUE_DETAIL.sub("DETAIL: (hidden: it quotes stored values)", text) if "DETAIL:" in text else text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object a line, with service and correlation id (database values left out)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": without_stored_values(record.getMessage()),
        }
        if cid := _correlation_id.get():
            entry["correlation_id"] = cid
        for key, value in getattr(record, "extra_fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = without_stored_values(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's output as JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_fields(**fields: object) -> dict:
    """Structured fields for a log call: `log.info("x", extra=log_fields(a=1))`."""
    return {"extra_fields": fields}
