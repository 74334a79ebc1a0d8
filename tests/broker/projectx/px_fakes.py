"""Fakes for the ProjectX adapter's unit tests: a REST gateway as a plain function for
``httpx2.MockTransport``, JWTs with chosen expiry, settings that point nowhere real."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2

from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.clock import Clock

API_KEY = "px-test-API-KEY-0123456789abcdef"
USERNAME = "tester"
ACCOUNT_ID = 7001
MNQ = "CON.F.US.MNQ.Z26"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def make_jwt(exp: datetime, iat: datetime | None = None, serial: int = 0) -> str:
    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims: dict[str, Any] = {"exp": int(exp.timestamp()), "sub": USERNAME, "jti": f"j{serial}"}
    if iat is not None:
        claims["iat"] = int(iat.timestamp())
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLXNpZy0{serial:04d}"


def respond(
    body: Any = None, status: int = 200, headers: dict[str, str] | None = None
) -> httpx2.Response:
    content = b"" if body is None else json.dumps(body, default=str).encode()
    return httpx2.Response(status, content=content, headers=headers or {})


def ok(**payload: Any) -> dict[str, Any]:
    return {"success": True, "errorCode": 0, "errorMessage": None, **payload}


def fail(code: int, message: str | None = None, **payload: Any) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "errorMessage": message, **payload}


def order_json(order_id: int = 1, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": order_id,
        "accountId": ACCOUNT_ID,
        "contractId": MNQ,
        "symbolId": "F.US.MNQ",
        "creationTimestamp": "2026-01-05T14:30:00.123456+00:00",
        "updateTimestamp": None,
        "status": 1,
        "type": 1,
        "side": 0,
        "size": 2,
        "limitPrice": Decimal("21000.250000000"),
        "stopPrice": None,
        "fillVolume": 0,
        "filledPrice": None,
        "customTag": f"tag-{order_id}",
    }
    base.update(over)
    return base


Handler = Callable[[dict[str, Any], httpx2.Request], Any]


@dataclass
class Call:
    path: str
    body: Any
    token: str | None


@dataclass
class FakeRest:
    """A tiny ProjectX REST gateway. ``routes`` maps a lowercase path to a handler returning a
    Response, a dict (sent as JSON 200) or raising an httpx2 exception."""

    clock: Clock | None = None
    token_ttl: timedelta = timedelta(hours=24)
    routes: dict[str, Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    issued: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.routes.setdefault("/api/auth/loginkey", self._login)
        self.routes.setdefault("/api/auth/validate", self._validate)
        self.routes.setdefault(
            "/api/account/search",
            lambda body, req: ok(
                accounts=[
                    {
                        "id": ACCOUNT_ID,
                        "name": "PRAC-7001",
                        "balance": 50000,
                        "canTrade": True,
                        "isVisible": True,
                        "simulated": True,
                    },
                    {
                        "id": 7002,
                        "name": "EVAL-7002",
                        "balance": 150000,
                        "canTrade": True,
                        "isVisible": True,
                        "simulated": True,
                    },
                ]
            ),
        )

    def now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def new_token(self) -> str:
        now = self.now()
        token = make_jwt(now + self.token_ttl, now, next(self.serial))
        self.issued.append(token)
        self.valid_tokens.add(token)
        return token

    def _login(self, body: dict[str, Any], req: httpx2.Request) -> Any:
        if body.get("apiKey") != API_KEY:
            return fail(3, "InvalidCredentials", token=None)
        return ok(token=self.new_token())

    def _validate(self, body: dict[str, Any], req: httpx2.Request) -> Any:
        if self.token_of(req) not in self.valid_tokens:
            return respond(status=401)
        return ok(newToken=self.new_token())

    @staticmethod
    def token_of(req: httpx2.Request) -> str | None:
        auth = req.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def revoke_all(self) -> None:
        self.valid_tokens.clear()

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def bodies(self, path: str) -> list[Any]:
        return [c.body for c in self.calls if c.path == path.lower()]

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.lower()
        body = json.loads(request.content) if request.content else {}
        token = self.token_of(request)
        self.calls.append(Call(path, body, token))
        handler = self.routes.get(path)
        if handler is None:
            return respond(status=404)
        if not path.startswith("/api/auth/") and token not in self.valid_tokens:
            return respond(status=401)
        result = handler(body, request)
        return result if isinstance(result, httpx2.Response) else respond(result)


def settings(**over: Any) -> ProjectXSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "username": USERNAME,
        "api_url": "http://127.0.0.1:9",
        "first_connect_wait": 0.0,
        "quote_wait": 0.0,
    }
    values.update(over)
    return ProjectXSettings(**values)


def rest_broker(fake: FakeRest, clock: Clock | None = None, **over: Any) -> ProjectXBroker:
    """A broker on ``fake`` with the hubs off."""
    return ProjectXBroker(
        settings(**over), clock=clock, transport=httpx2.MockTransport(fake), realtime=False
    )
