"""Logging: one JSON object per line (or plain text), secrets scrubbed, the request id in each.

The web app sets ``REQUEST_ID`` for the duration of a request, so every line logged while it
runs (a use case's, an adapter's, the access line) carries the same ``request_id`` as the
problem body and the ``X-Request-ID`` header.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Things that must never reach a log line, whatever code logged them.
_SECRETS = [
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+"), r"\1_\2_***"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "whsec_***"),
    (re.compile(r"\bcal_(live_)?[A-Za-z0-9]{8,}"), "cal_***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (
        re.compile(r"(?i)((?:password|secret|token|api_?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&]+"),
        r"\1***",
    ),
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),  # user may be empty
]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def _with_request_id(record: logging.LogRecord) -> None:
    """Give the record the current request's id (formatting runs in the logging thread)."""
    if getattr(record, "request_id", None) is None:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id


def scrub(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``; exceptions as a scrubbed ``exc`` string."""

    def format(self, record: logging.LogRecord) -> str:
        _with_request_id(record)
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            body["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message``, scrubbed like the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        _with_request_id(record)
        request_id = getattr(record, "request_id", None)
        record.rid = f" [{request_id}]" if request_id else ""
        return scrub(super().format(record))


def configure_logging(level: str = "INFO", *, stream: Any = None, fmt: str = "json") -> None:
    """Route the root logger to one handler, JSON or ``text`` (idempotent: safe to call twice)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_booking_json", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    handler._booking_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO is noise at 3 a.m.; their warnings still come through.
    for noisy in ("werkzeug", "urllib3", "stripe", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
