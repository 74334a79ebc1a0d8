"""Pure pieces of the gateway: wire numbers and times, bar buckets, binding, the fault board."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orderguard.gateway.bars import BarHistory, BarUnit, bucket_start
from orderguard.gateway.binding import BindingError, Body
from orderguard.gateway.config import AccountSpec, parse_accounts
from orderguard.gateway.faults import ArmedFault, FaultBoard, WireFault
from orderguard.gateway.wire import decimal_text, dumps, timestamp


def test_decimals_have_at_most_nine_places_and_no_exponent() -> None:
    assert decimal_text(Decimal("1575.750000000")) == "1575.750000000"
    assert decimal_text(Decimal("1.12345678912")) == "1.123456789"
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert dumps({"p": Decimal("0.25"), "n": None, "ok": True}) == '{"p":0.25,"n":null,"ok":true}'


def test_timestamps_are_utc_with_microseconds_and_offset() -> None:
    assert timestamp(datetime(2026, 1, 5, 14, 30, tzinfo=UTC)) == "2026-01-05T14:30:00.000000+00:00"


def test_week_and_month_buckets() -> None:
    wednesday = int(datetime(2026, 1, 7, 12, tzinfo=UTC).timestamp())
    sunday = datetime.fromtimestamp(bucket_start(wednesday, BarUnit.WEEK, 1), UTC)
    assert sunday == datetime(2026, 1, 4, tzinfo=UTC)
    month = datetime.fromtimestamp(bucket_start(wednesday, BarUnit.MONTH, 1), UTC)
    assert month == datetime(2026, 1, 1, tzinfo=UTC)


def test_backfill_is_seeded_and_ends_at_the_start_price() -> None:
    end = datetime(2026, 1, 5, tzinfo=UTC)
    a, b = BarHistory(), BarHistory()
    for history in (a, b):
        history.backfill("X", end=end, last_price=Decimal("100"), tick=Decimal("0.25"),
                         days=0.5, seed=4)  # fmt: skip
    assert [bar.close for bar in a.contract("X").minutes] == [
        bar.close for bar in b.contract("X").minutes
    ]
    assert a.contract("X").minutes[-1].close == Decimal("100")


def test_binding_collects_every_problem() -> None:
    body = Body({"accountid": "x", "size": 1.5})
    body.int32("accountId")
    body.int32("size")
    body.string("contractId")
    with pytest.raises(BindingError) as error:
        body.check()
    assert set(error.value.errors) == {"$.accountId", "$.size", "ContractId"}


def test_nested_objects_report_full_paths() -> None:
    body = Body({"stopLossBracket": {"ticks": "a"}})
    inner = body.object("stopLossBracket")
    assert inner is not None
    inner.int32("ticks")
    inner.int32("type")
    with pytest.raises(BindingError) as error:
        body.check()
    assert set(error.value.errors) == {"$.stopLossBracket.ticks", "$.stopLossBracket.Type"}


def test_fault_board_consumes_in_order() -> None:
    board = FaultBoard()
    board.arm(ArmedFault("order/place", WireFault.REJECT, count=2))
    board.arm(ArmedFault("*", WireFault.HTTP_500))
    assert board.take("order/cancel") is not None  # the wildcard
    assert board.take("order/place") is not None
    assert board.take("order/place") is not None
    assert board.take("order/place") is None
    assert board.fired == {"http_500": 1, "reject": 2}


def test_accounts_parse() -> None:
    assert parse_accounts("1,2:PA:100:position") == (
        AccountSpec(1, "SIM-1"),
        AccountSpec(2, "PA", Decimal(100), native_brackets=False),
    )
    with pytest.raises(ValueError, match="unique"):
        parse_accounts("1,1")
