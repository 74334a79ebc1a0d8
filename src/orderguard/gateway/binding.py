"""Request-body binding the way ASP.NET Core's model binding does it, as far as a client can see.

ProjectX runs on ASP.NET Core. Its JSON binding (``JsonSerializerDefaults.Web``) matches property
names case-insensitively, reads numbers from JSON numbers *or* numeric strings, ignores unknown
properties, and answers a body it cannot bind with HTTP 400 and a problem-details object whose
``errors`` maps a JSON path (``$.size``) or a field name to messages. The exact texts are
UNCONFIRMED (projectx-api.md §2, inferred from Lumibot); the shape is what clients react to.

:class:`Body` reads one field at a time and collects every problem, so one 400 lists them all,
and a request that binds badly changes nothing: handlers bind first and act after.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

_PROBLEM_TYPE: Final = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
_INT32_MAX: Final = 2**31 - 1
_INT64_MAX: Final = 2**63 - 1


class BindingError(Exception):
    """The body cannot be bound: the 400 answer in ``errors``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors

    def problem(self) -> dict[str, Any]:
        """The ASP.NET ValidationProblemDetails body."""
        return {
            "type": _PROBLEM_TYPE,
            "title": "One or more validation errors occurred.",
            "status": 400,
            "errors": self.errors,
            "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
        }


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def parse_json(raw: bytes) -> Any:
    """JSON text to values, decimals as ``Decimal`` (never through a float)."""
    if not raw.strip():
        raise BindingError({"": ["A non-empty request body is required."]})
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise BindingError(
            {
                "$": [f"The request body is not valid JSON: {exc}"],
                "request": ["The request field is required."],
            }
        ) from None


class Body:
    """Typed reads of one JSON object; problems collect in ``errors`` until :meth:`check`."""

    def __init__(self, value: Any, *, allow_empty: bool = False) -> None:
        self.errors: dict[str, list[str]] = {}
        if value is None and allow_empty:
            value = {}
        if not isinstance(value, dict):
            raise BindingError(
                {"$": ["The JSON value could not be converted to the request type. Path: $"]}
            )
        # ASP.NET matches property names case-insensitively; the first spelling wins.
        self._fields: dict[str, Any] = {}
        for key, item in value.items():
            self._fields.setdefault(str(key).lower(), item)

    @classmethod
    def from_bytes(cls, raw: bytes, *, allow_empty: bool = False) -> Body:
        if allow_empty and not raw.strip():
            return cls({})
        return cls(parse_json(raw), allow_empty=allow_empty)

    def has(self, name: str) -> bool:
        return self._fields.get(name.lower()) is not None

    def raw(self, name: str) -> Any:
        """The unconverted JSON value of a field (None when absent)."""
        return self._fields.get(name.lower())

    def _fail_convert(self, name: str, target: str) -> None:
        self.errors.setdefault(f"$.{name}", []).append(
            f"The JSON value could not be converted to {target}. Path: $.{name}"
        )

    def _missing(self, name: str, required: bool) -> bool:
        """True when the field is absent or null; records the error when it is required."""
        if self._fields.get(name.lower()) is not None:
            return False
        if required:
            field = _pascal(name)
            self.errors.setdefault(field, []).append(f"The {field} field is required.")
        return True

    def _number(self, name: str) -> Decimal | None:
        raw = self._fields.get(name.lower())
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int | Decimal):
            return Decimal(raw)
        if isinstance(raw, str):  # Web defaults: numbers may come quoted
            try:
                value = Decimal(raw.strip())
            except InvalidOperation:
                return None
            return value if value.is_finite() else None
        return None

    def _integer(self, name: str, required: bool, limit: int, target: str) -> int | None:
        if self._missing(name, required):
            return None
        value = self._number(name)
        if value is None or value != value.to_integral_value() or abs(value) > limit:
            self._fail_convert(name, target)
            return None
        return int(value)

    def int32(self, name: str, *, required: bool = True) -> int | None:
        return self._integer(name, required, _INT32_MAX, "System.Int32")

    def int64(self, name: str, *, required: bool = True) -> int | None:
        return self._integer(name, required, _INT64_MAX, "System.Int64")

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        if self._missing(name, required):
            return None
        value = self._number(name)
        if value is None:
            self._fail_convert(name, "System.Decimal")
        return value

    def string(self, name: str, *, required: bool = True) -> str | None:
        if self._missing(name, required):
            return None
        raw = self._fields[name.lower()]
        if not isinstance(raw, str):
            self._fail_convert(name, "System.String")
            return None
        return raw

    def boolean(self, name: str, *, required: bool = True) -> bool | None:
        if self._missing(name, required):
            return None
        raw = self._fields[name.lower()]
        if not isinstance(raw, bool):
            self._fail_convert(name, "System.Boolean")
            return None
        return raw

    def timestamp(self, name: str, *, required: bool = True) -> datetime | None:
        """ISO-8601; ``Z`` accepted; no offset is read as UTC (a .NET Unspecified kind)."""
        if self._missing(name, required):
            return None
        raw = self._fields[name.lower()]
        if not isinstance(raw, str):
            self._fail_convert(name, "System.DateTime")
            return None
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            self._fail_convert(name, "System.DateTime")
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def object(self, name: str) -> Body | None:
        """A nested object (optional); its problems are reported under ``$.name.field``."""
        if self._missing(name, False):
            return None
        raw = self._fields[name.lower()]
        if not isinstance(raw, dict):
            self._fail_convert(name, "an object")
            return None
        inner = Body(raw)
        inner.errors = _Prefixed(self.errors, name)
        return inner

    def int_list(self, name: str) -> list[int] | None:
        if self._missing(name, False):
            return None
        raw = self._fields[name.lower()]
        if not isinstance(raw, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw
        ):
            self._fail_convert(name, "System.Int32[]")
            return None
        return [int(v) for v in raw]

    def check(self) -> None:
        """Raise the collected problems as one :class:`BindingError`."""
        if self.errors:
            raise BindingError(dict(self.errors))


class _Prefixed(dict[str, list[str]]):
    """Errors of a nested object land in the parent's dict under ``$.parent.child`` paths."""

    def __init__(self, parent: dict[str, list[str]], prefix: str) -> None:
        super().__init__()
        self._parent = parent
        self._prefix = prefix

    def setdefault(self, key: str, default: list[str] | None = None) -> list[str]:
        path = (
            key.replace("$.", f"$.{self._prefix}.", 1)
            if key.startswith("$.")
            else (f"$.{self._prefix}.{key}")
        )
        return self._parent.setdefault(path, [] if default is None else default)


__all__ = ["BindingError", "Body", "parse_json"]
