"""Sentry error tracking (SENTRY_DSN): every event is scrubbed before it leaves the process.

Scrubbed everywhere in an event (message, exception values, frames' local variables, request
headers, breadcrumbs, extra): provider keys and webhook secrets, bearer and manage tokens,
passwords and URL credentials (the log scrubber's rules), e-mail addresses, and the values of
keys that name a secret (``authorization``, ``cookie``, ``token``, ``password``, ...).
"""

from __future__ import annotations

import re
from typing import Any

from entrypoints.logs import scrub

FILTERED = "[Filtered]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SECRET_KEY = re.compile(
    r"(?i)authorization|cookie|token|secret|password|passwd|api_?key|dsn|signature|session|csrf"
)


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return _EMAIL.sub("***@***", scrub(value))
    if isinstance(value, dict):
        return {
            key: FILTERED
            if isinstance(key, str) and _SECRET_KEY.search(key)
            else _clean(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        cleaned = [_clean(item, depth + 1) for item in value]
        # Sentry sends headers as [name, value] pairs too.
        if len(cleaned) == 2 and isinstance(cleaned[0], str) and _SECRET_KEY.search(cleaned[0]):
            cleaned[1] = FILTERED
        return cleaned
    return value


def scrub_event(event: Any, hint: Any = None) -> Any:
    """Sentry's ``before_send`` (and ``before_breadcrumb``): the event with secrets removed."""
    return _clean(event)


def init_sentry(dsn: str, *, environment: str, transport: Any = None) -> None:
    """Start the SDK (its default sends no personal data), no traces, every event scrubbed."""
    import sentry_sdk

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=0.0,
        before_send=scrub_event,
        before_breadcrumb=scrub_event,
        **options,
    )
