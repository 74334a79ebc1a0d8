"""Helpers for testing code that writes a journal: valid records in one line."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from orderguard.clock import DEFAULT_EPOCH
from orderguard.journal.base import (
    EventRecord,
    IntentKind,
    IntentRecord,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
)


class RecordFactory:
    """Builds valid journal records with unique ids; keyword arguments override any field.

    Times start at ``start`` (the virtual clock's epoch by default) and grow one second per record.
    """

    def __init__(self, start: datetime = DEFAULT_EPOCH) -> None:
        self._n = itertools.count(1)
        self.t0 = start

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def op(self, operation_id: str | None = None, **kw: Any) -> OperationRecord:
        n = next(self._n)
        fields: dict[str, Any] = {
            "operation_id": operation_id or f"op-{n}",
            "type": "bracket_order",
            "state": "pending",
            "created_at": self.at(n),
            "updated_at": self.at(n),
            "account_id": 1001,
            "contract_id": "CON.F.US.MNQ.Z26",
            "data": {"size": 2},
        }
        fields.update(kw)
        return OperationRecord(**fields)

    def intent(self, operation_id: str | None, leg: str = "entry", **kw: Any) -> IntentRecord:
        n = next(self._n)
        fields: dict[str, Any] = {
            "intent_id": f"intent-{n}",
            "operation_id": operation_id,
            "leg": leg,
            "generation": 0,
            "custom_tag": f"og-{operation_id}-{leg}-{n}",
            "account_id": 1001,
            "contract_id": "CON.F.US.MNQ.Z26",
            "kind": IntentKind.PLACE,
            "request": {"type": 1, "side": 0, "size": 2},
            "created_at": self.at(n),
            "correlation_id": f"corr-{operation_id}",
        }
        fields.update(kw)
        return IntentRecord(**fields)

    def outcome(self, intent: IntentRecord, kind: str = "confirmed", **kw: Any) -> OutcomeRecord:
        fields: dict[str, Any] = {
            "intent_id": intent.intent_id,
            "custom_tag": intent.custom_tag,
            "kind": OutcomeKind(kind),
            "order_id": 9000 + next(self._n),
            "code": None,
            "message": "",
            "recorded_at": self.at(next(self._n)),
        }
        fields.update(kw)
        return OutcomeRecord(**fields)

    def event(
        self, key: str, operation_id: str | None = None, payload: Mapping[str, Any] | None = None
    ) -> EventRecord:
        return EventRecord(
            operation_id, "trade", key, payload or {"fillVolume": 1}, self.at(next(self._n))
        )


__all__ = ["RecordFactory"]
