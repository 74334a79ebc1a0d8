"""The one seam to httpx2: POST a JSON body, say whether the request left, parse the answer.

Everything above this module sees three results of a request:

* an :class:`HttpAnswer` (the server answered, with any status);
* :class:`NotSentError`: the request provably never reached the server (the connection could not
  be made, no pooled connection became free): re-sending it is safe;
* :class:`NoAnswerError`: it was (or may have been) written, and no answer came (read timeout,
  dropped connection, a write cut off half way): the server may have executed it.

Tests inject an ``httpx2.MockTransport`` with a plain function; production uses httpx2's own
transport with explicit connect/read/write/pool timeouts. Bodies are written by
:func:`orderguard.broker.projectx.wire.dumps` (Decimal prices as JSON numbers, never floats) and
read with Decimal for every non-integer number.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx2

from orderguard.broker.base import UnknownOrigin

log = logging.getLogger("orderguard.projectx")

# Failures that happen before a single byte of the request reached the server.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.ProxyError)
_TIMEOUT_AFTER_SEND = (httpx2.ReadTimeout, httpx2.WriteTimeout)


class NotSentError(Exception):
    """The request never reached the server; re-sending it is safe."""


class NoAnswerError(Exception):
    """The request may have reached the server, and no answer came back."""

    def __init__(self, message: str, origin: UnknownOrigin) -> None:
        super().__init__(message)
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    read: float = 10.0
    write: float = 10.0
    pool: float = 5.0


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What the server said. ``body`` is the parsed JSON (None if the body was not JSON)."""

    status: int
    body: Any
    text: str
    retry_after: float | None = None

    @property
    def is_json(self) -> bool:
        return self.body is not None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def loads(text: str) -> Any:
    """JSON with every non-integer number as a Decimal (prices are never floats)."""
    return json.loads(text, parse_float=Decimal)


class HttpSeam:
    """POSTs JSON to the gateway through one pooled httpx2 client (see module docstring)."""

    def __init__(
        self,
        base_url: str,
        timeouts: Timeouts | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        t = timeouts or Timeouts()
        self.base_url = base_url.rstrip("/")
        self.stats: Counter[str] = Counter()
        self._client = httpx2.AsyncClient(
            base_url=self.base_url,
            timeout=httpx2.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            transport=transport,
            # Environment proxies would route credentials through a host nobody configured here.
            trust_env=False,
            headers={"accept": "application/json"},
        )

    async def post(
        self,
        path: str,
        content: bytes | None,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
    ) -> HttpAnswer:
        """POST ``content`` (JSON bytes) to ``path`` (relative to the base, or absolute)."""
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return await self._send("POST", path, content, headers, params)

    async def get(self, path: str) -> HttpAnswer:
        return await self._send("GET", path, None, {}, None)

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str],
        params: dict[str, str] | None,
    ) -> HttpAnswer:
        self.stats["requests"] += 1
        try:
            response = await self._client.request(
                method, path, content=content, headers=headers, params=params
            )
        except _NOT_SENT as exc:
            self.stats["not_sent"] += 1
            raise NotSentError(f"{method} {_path_only(path)}: {type(exc).__name__}") from None
        except _TIMEOUT_AFTER_SEND as exc:
            self.stats["no_answer"] += 1
            raise NoAnswerError(
                f"{method} {_path_only(path)}: {type(exc).__name__}",
                UnknownOrigin.TIMEOUT_AFTER_SEND,
            ) from None
        except httpx2.TransportError as exc:
            # Read errors, a closed connection, protocol errors: the request may have arrived.
            self.stats["no_answer"] += 1
            raise NoAnswerError(
                f"{method} {_path_only(path)}: {type(exc).__name__}", UnknownOrigin.CONNECTION_LOST
            ) from None
        # ``from None`` above: httpx2's exceptions carry the request, whose URL may hold a token.
        text = response.text
        body: Any = None
        if text:
            try:
                body = loads(text)
            except ValueError:
                body = None
        return HttpAnswer(
            status=response.status_code,
            body=body,
            text=text[:500],
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpSeam({self.base_url!r})"


def _path_only(path: str) -> str:
    """A URL or path without its query (which may carry an access token)."""
    return path.split("?", 1)[0]


__all__ = [
    "HttpAnswer",
    "HttpSeam",
    "NoAnswerError",
    "NotSentError",
    "Timeouts",
    "loads",
    "parse_retry_after",
]
