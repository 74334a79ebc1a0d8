"""Records and the deterministic JSON helper."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from orderguard.errors import JournalError
from orderguard.journal import IntentKind, OutcomeKind, dumps, loads
from orderguard.journal.testing import RecordFactory
from orderguard.models import OrderRequest, OrderSide, OrderType


def test_dumps_sorts_keys_and_drops_whitespace() -> None:
    """Equal payloads serialise to identical text whatever their key order."""
    assert dumps({"b": 1, "a": [1, 2]}) == dumps({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'


def test_dumps_writes_decimals_as_exact_strings() -> None:
    """Decimals keep every digit (as strings), never go through float."""
    assert loads(dumps({"p": Decimal("21000.25")})) == {"p": "21000.25"}


def test_dumps_writes_times_in_utc() -> None:
    """Aware datetimes are written as fixed-width UTC ISO-8601."""
    at = datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert dumps(at) == '"2026-01-05T14:30:00.000000+00:00"'


def test_dumps_writes_enums_sets_uuids_and_dataclasses() -> None:
    """Enums become values, sets sorted lists, UUIDs strings, dataclasses dicts."""
    req = OrderRequest(1, "CON", OrderType.LIMIT, OrderSide.SELL, 2, limit_price=Decimal("1.5"))
    text = dumps({"req": req, "tags": {"b", "a"}, "id": UUID(int=1), "kind": IntentKind.PLACE})
    got = loads(text)
    assert got["req"]["type"] == 1 and got["req"]["side"] == 1
    assert got["req"]["limit_price"] == "1.5"
    assert got["tags"] == ["a", "b"]
    assert got["id"] == "00000000-0000-0000-0000-000000000001"
    assert got["kind"] == "place"


def test_dumps_refuses_nan_and_unknown_types() -> None:
    """NaN and unsupported objects raise JournalError before anything is written."""
    with pytest.raises(JournalError):
        dumps({"x": float("nan")})
    with pytest.raises(JournalError):
        dumps({"x": object()})


def test_naive_times_are_refused(make: RecordFactory) -> None:
    """A record with a naive datetime cannot be built."""
    with pytest.raises(ValueError, match="timezone-aware"):
        make.op(created_at=datetime(2026, 1, 5))


def test_kinds_are_coerced_and_checked(make: RecordFactory) -> None:
    """String kinds become enum members; unknown kinds are refused."""
    intent = make.intent("op-1", kind="cancel")
    assert intent.kind is IntentKind.CANCEL
    assert make.outcome(intent, "unknown").kind is OutcomeKind.UNKNOWN
    with pytest.raises(ValueError):
        make.intent("op-1", kind="explode")


def test_records_are_frozen(make: RecordFactory) -> None:
    """Records cannot be changed in place."""
    op = make.op()
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.state = "failed"  # type: ignore[misc]
    assert op.created_at.tzinfo is not None and op.created_at.utcoffset() == UTC.utcoffset(None)
