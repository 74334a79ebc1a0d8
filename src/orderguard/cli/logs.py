"""Logging of the command line: plain text or one JSON object a line, secrets masked.

``--log-json`` (or ``ORDERGUARD_LOG_JSON=1``) writes each record to stderr as JSON with its time,
level, logger, message and — when the record concerns one — the ``operation_id`` and
``custom_tag``. They come from the record's ``extra`` if the caller gave them, else from what the
command is working on (:func:`operation_scope`), else from the message itself (orderguard prints
operation ids as 12 hex digits and tags as ``<prefix>-<session or operation>-...``).

Every record passes the ProjectX adapter's redaction (:mod:`orderguard.broker.projectx.redact`)
before it is formatted: the API key and every session token the adapter has seen are masked,
and so is anything shaped like a bearer header or an ``access_token`` parameter. The handler
holds the filters (not the loggers), so records propagated from any library logger are masked
too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from orderguard.broker.projectx.redact import RedactingFilter, SecretRegistry

_OPERATION: ContextVar[str | None] = ContextVar("orderguard_cli_operation", default=None)
_OP_ID = re.compile(r"\b([0-9a-f]{12})\b")
# orderguard's tags (orders/tags.py): <prefix>-<operation>-<leg>-<generation> for an
# operation's legs, <prefix>-<session>-<n> or <prefix>-<session>-<kind><n> for the rest.
_TAG = re.compile(
    r"\b([A-Za-z0-9]{1,8}-(?:(?P<op>[0-9a-f]{12})-[A-Za-z0-9]+-\d+|[0-9a-z]{8}-[a-z]*\d+))\b"
)

HANDLER_NAME = "orderguard-cli"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (keys: ts, level, logger, message, operation_id, custom_tag,
    and exc when an exception is attached)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        tag = getattr(record, "custom_tag", None)
        tag_op = None
        if tag is None:
            match = _TAG.search(message)
            if match is not None:
                tag, tag_op = match.group(1), match.group("op")
        operation = getattr(record, "operation_id", None) or _OPERATION.get() or tag_op
        if operation is None:
            found = _OP_ID.search(message)
            operation = found.group(1) if found else None
        out["operation_id"] = operation
        out["custom_tag"] = tag
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


@contextlib.contextmanager
def operation_scope(operation_id: str) -> Iterator[None]:
    """Records logged inside (this task and tasks it starts) carry ``operation_id``."""
    token = _OPERATION.set(operation_id)
    try:
        yield
    finally:
        _OPERATION.reset(token)


def configure(
    *, json_lines: bool, level: LogLevel = LogLevel.WARNING, stream: TextIO | None = None
) -> logging.Handler:
    """Install the command line's one handler on the root logger (replacing an earlier one)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    # The generic shapes (bearer headers, access_token parameters) are masked from the start;
    # a ProjectX session adds its own secrets with redact_with.
    handler.addFilter(RedactingFilter(SecretRegistry()))
    root.addHandler(handler)
    root.setLevel(level.value.upper())
    return handler


def redact_with(registry: SecretRegistry) -> None:
    """Mask ``registry``'s secrets in everything the command line's handler writes."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME and not any(
            isinstance(f, RedactingFilter) and f.registry is registry for f in handler.filters
        ):
            handler.addFilter(RedactingFilter(registry))


__all__ = ["JsonFormatter", "LogLevel", "configure", "operation_scope", "redact_with"]
