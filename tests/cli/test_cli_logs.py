"""Structured logs of the command line (cli/logs.py): JSON lines, operation ids, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from orderguard.broker.projectx.redact import SecretRegistry
from orderguard.cli import logs

KEY = "k3y-SUPER-secret-0123456789"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvZyJ9.c2lnbmF0dXJl"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure(json_lines=True, level=logs.LogLevel.DEBUG, stream=out)
    yield out
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_are_json_with_operation_and_tag_from_the_message(stream: io.StringIO) -> None:
    """A leg's tag names its operation: both land in their own keys."""
    logging.getLogger("orderguard.orders").warning("stop og-0a1b2c3d4e5f-stop0-1 rejected")
    (record,) = _records(stream)
    assert record["operation_id"] == "0a1b2c3d4e5f"
    assert record["custom_tag"] == "og-0a1b2c3d4e5f-stop0-1"
    assert record["level"] == "warning" and record["logger"] == "orderguard.orders"


def test_extra_and_scope_give_the_operation_id(stream: io.StringIO) -> None:
    """``extra={'operation_id': ...}`` wins; inside operation_scope every record carries it."""
    log = logging.getLogger("orderguard.cli")
    log.info("placed", extra={"operation_id": "feedfacecafe"})
    with logs.operation_scope("0123456789ab"):
        log.info("working on it")
    log.info("a date 2026-12-09T00:05 is no tag")
    first, second, third = _records(stream)
    assert first["operation_id"] == "feedfacecafe"
    assert second["operation_id"] == "0123456789ab"
    assert third["operation_id"] is None and third["custom_tag"] is None


def test_secrets_never_reach_the_log(stream: io.StringIO) -> None:
    """The session's key and token are masked in messages, arguments and tracebacks, from any
    logger (the filter sits on the handler); bearer headers are masked without registration."""
    registry = SecretRegistry([KEY, TOKEN])
    logs.redact_with(registry)
    logging.getLogger("httpx2").debug("POST /api/Auth/loginKey apiKey=%s", KEY)
    logging.getLogger("some.library").warning("header Authorization: Bearer %s", TOKEN)
    try:
        raise RuntimeError(f"login failed for key {KEY}")
    except RuntimeError:
        logging.getLogger("orderguard").exception("failed with token %s", TOKEN)
    logging.getLogger("x").error("Authorization: Bearer abcdefghijklmnop")  # unregistered
    text = stream.getvalue()
    assert KEY not in text and TOKEN not in text and "abcdefghijklmnop" not in text
    assert text.count("***") >= 5
    assert any("exc" in r for r in _records(stream))


def test_plain_text_mode_masks_too() -> None:
    """Without --log-json the same filters apply to the text lines."""
    out = io.StringIO()
    logs.configure(json_lines=False, level=logs.LogLevel.INFO, stream=out)
    try:
        logs.redact_with(SecretRegistry([KEY]))
        logging.getLogger("orderguard").info("key %s", KEY)
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    assert out.getvalue() == "INFO orderguard: key ***\n"
