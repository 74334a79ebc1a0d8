"""The session token: login with the API key, refresh well before expiry, re-login on a 401.

A token is a JWT valid for about 24 h (spec §3.1). We read its ``exp`` (and ``iat``) without
verifying the signature — we only schedule by it — and refresh when 3/4 of its life has passed or
``refresh_margin`` before ``exp``, whichever comes first, through ``Auth/validate`` (its
``newToken`` replaces ours) with ``Auth/loginKey`` as the fallback. A token whose ``exp`` cannot
be read is refreshed after ``fallback_lifetime``.

A 401 means the gateway no longer accepts the token, whatever its ``exp`` says (a revoked or
replaced session, spec §9.1): :meth:`TokenManager.after_rejection` logs in again, once for all the
requests that met the same rejected token.

Every token issued is registered with the :class:`~.redact.SecretRegistry` before anyone can log
it. Listeners hear of each new token (the hubs reconnect with it, FAILURES F10).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from orderguard.clock import Clock
from orderguard.errors import AuthenticationError, ConnectionFailedError, RateLimitedError

from . import wire
from .codes import LOGIN_CODES, VALIDATE_CODES
from .http import HttpAnswer, HttpSeam, NoAnswerError, NotSentError
from .redact import SecretRegistry

log = logging.getLogger("orderguard.projectx")


def _claims(token: str) -> dict[str, object]:
    """The JWT payload, unverified; {} when it does not decode."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _claim_time(claims: dict[str, object], key: str) -> datetime | None:
    value = claims.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT, unverified; None when unreadable."""
    return _claim_time(_claims(token), "exp")


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A token and its schedule. The value never appears in the repr."""

    value: str = field(repr=False)
    received_at: datetime
    expires_at: datetime
    refresh_at: datetime


def schedule(
    token: str, now: datetime, *, refresh_margin: float, fallback_lifetime: float
) -> SessionToken:
    """When ``token`` expires and when to refresh it (see module docstring)."""
    claims = _claims(token)
    expires = _claim_time(claims, "exp")
    if expires is None:
        expires = now + timedelta(seconds=fallback_lifetime)
        return SessionToken(token, now, expires, expires)
    issued = _claim_time(claims, "iat") or _claim_time(claims, "nbf") or now
    issued = min(issued, now)
    three_quarters = issued + (expires - issued) * 0.75
    refresh = min(expires - timedelta(seconds=refresh_margin), three_quarters)
    if refresh <= now:  # a short-lived token: refresh at 3/4 of what is left
        refresh = now + max(expires - now, timedelta(0)) * 0.75
    return SessionToken(token, now, expires, refresh)


TokenListener = Callable[[], None]


class TokenManager:
    """Holds the session token; logs in, refreshes and re-logs in as needed (see module)."""

    def __init__(
        self,
        http: HttpSeam,
        username: str,
        api_key: SecretStr,
        clock: Clock,
        secrets: SecretRegistry,
        *,
        refresh_margin: float = 1800.0,
        fallback_lifetime: float = 3600.0,
    ) -> None:
        self._http = http
        self._username = username
        self._api_key = api_key
        self._clock = clock
        self._secrets = secrets
        self._refresh_margin = refresh_margin
        self._fallback_lifetime = fallback_lifetime
        self._current: SessionToken | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[TokenListener] = []
        self.stats: Counter[str] = Counter()
        secrets.add(api_key.get_secret_value())

    def __repr__(self) -> str:
        state = "none" if self._current is None else f"expires {self._current.expires_at:%H:%M:%S}"
        return f"TokenManager(user={self._username!r}, token: {state})"

    @property
    def current(self) -> SessionToken | None:
        return self._current

    def on_change(self, listener: TokenListener) -> None:
        self._listeners.append(listener)

    # -- getting a token --------------------------------------------------------------------------
    async def token(self) -> str:
        """A token to send now: logs in first if needed, refreshes when due.

        Raises :class:`ConnectionFailedError` or :class:`RateLimitedError` (``sent=False``) when
        no token could be had for a network reason — the caller's own request was not sent — and
        :class:`AuthenticationError` when the gateway refuses the credentials.
        """
        current = self._current
        if current is not None and self._clock.now() < current.refresh_at:
            return current.value
        return await self._renew(stale=current, prefer_validate=True)

    async def after_rejection(self, rejected: str) -> str:
        """A fresh token after the gateway answered 401 to ``rejected`` (re-login, once)."""
        self.stats["rejections"] += 1
        current = self._current
        if current is not None and current.value != rejected:
            return current.value  # someone else already replaced it
        return await self._renew(stale=current, prefer_validate=False)

    async def refresh_due(self) -> None:
        """Refresh now if due (the background refresher calls this on schedule)."""
        current = self._current
        if current is not None and self._clock.now() < current.refresh_at:
            return
        await self._renew(stale=current, prefer_validate=True)

    @property
    def seconds_to_refresh(self) -> float | None:
        current = self._current
        if current is None:
            return None
        return max(0.0, (current.refresh_at - self._clock.now()).total_seconds())

    async def _renew(self, *, stale: SessionToken | None, prefer_validate: bool) -> str:
        async with self._lock:
            current = self._current
            if current is not None and current is not stale:
                return current.value  # renewed while we waited for the lock
            fresh: str | None = None
            if prefer_validate and current is not None:
                fresh = await self._validate(current.value)
            if fresh is None:
                try:
                    fresh = await self._login()
                except (ConnectionFailedError, RateLimitedError):
                    # A refresh that failed while the old token still lives is not fatal.
                    now = self._clock.now()
                    # Only a token the gateway has not refused may be used on (not after a 401).
                    if prefer_validate and current is not None and now < current.expires_at:
                        log.warning("token refresh failed; the current token is still valid")
                        self.stats["refresh_failures"] += 1
                        # Try again later, sooner as expiry nears; never in a tight loop.
                        left = (current.expires_at - now).total_seconds()
                        retry = timedelta(seconds=min(60.0, max(1.0, left / 4)))
                        self._current = replace(current, refresh_at=now + retry)
                        return current.value
                    raise
            self._install(fresh)
            return fresh

    def _install(self, value: str) -> None:
        self._secrets.add(value)
        self._current = schedule(
            value,
            self._clock.now(),
            refresh_margin=self._refresh_margin,
            fallback_lifetime=self._fallback_lifetime,
        )
        log.info("session token renewed (expires %s)", self._current.expires_at.isoformat())
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("token listener failed")

    # -- the two calls ---------------------------------------------------------------------------
    async def _validate(self, token: str) -> str | None:
        """``Auth/validate``; the ``newToken`` or None (the caller falls back to a login)."""
        self.stats["validate_calls"] += 1
        try:
            answer = await self._http.post("/api/Auth/validate", None, token=token)
        except (NotSentError, NoAnswerError) as exc:
            log.warning("Auth/validate failed (%s); logging in again", exc)
            return None
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict):
            log.info("Auth/validate answered HTTP %s; logging in again", answer.status)
            return None
        try:
            env = wire.envelope(body)
        except wire.WireError:
            return None
        new = body.get("newToken")
        if not env.success or not isinstance(new, str) or not new:
            reason = VALIDATE_CODES.get(env.code, f"code {env.code}") if not env.success else ""
            log.info("Auth/validate gave no new token %s; logging in again", reason)
            return None
        self.stats["refreshes"] += 1
        return new

    async def _login(self) -> str:
        self.stats["logins"] += 1
        body = wire.dumps({"userName": self._username, "apiKey": self._api_key.get_secret_value()})
        try:
            answer = await self._http.post("/api/Auth/loginKey", body)
        except NotSentError as exc:
            raise ConnectionFailedError(f"login: {exc}") from None
        except NoAnswerError as exc:
            # Nothing of the caller's was sent; a token we never received costs nothing.
            raise ConnectionFailedError(f"login got no answer: {exc}") from None
        return self._login_token(answer)

    def _login_token(self, answer: HttpAnswer) -> str:
        if answer.status == 429:
            raise RateLimitedError("login rate limited", retry_after=answer.retry_after, sent=False)
        if answer.status >= 500:
            raise ConnectionFailedError(f"login: HTTP {answer.status}")
        if answer.status != 200:
            raise AuthenticationError(f"login refused: HTTP {answer.status}")
        try:
            env = wire.envelope(answer.body)
        except wire.WireError as exc:
            raise AuthenticationError(f"login answer unreadable: {exc}") from None
        token = answer.body.get("token") if isinstance(answer.body, dict) else None
        if not env.success or not isinstance(token, str) or not token:
            name = LOGIN_CODES.get(env.code, f"code {env.code}")
            raise AuthenticationError(f"login refused for {self._username!r}: {name}")
        return token

    async def logout(self) -> None:
        """``Auth/logout``, best effort (the session ends server-side)."""
        current = self._current
        if current is None:
            return
        self._current = None
        try:
            await self._http.post("/api/Auth/logout", None, token=current.value)
        except (NotSentError, NoAnswerError):
            log.info("logout got no answer")


class TokenRefresher:
    """Background task: sleep until the token is due, refresh it; retry failures every minute."""

    def __init__(self, tokens: TokenManager, clock: Clock, retry_every: float = 60.0) -> None:
        self._tokens = tokens
        self._clock = clock
        self._retry_every = retry_every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="projectx-token-refresh"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            wait = self._tokens.seconds_to_refresh
            await self._clock.sleep(self._retry_every if wait is None else wait)
            try:
                await self._tokens.refresh_due()
            except Exception as exc:
                log.warning("scheduled token refresh failed: %s", exc)
                await self._clock.sleep(self._retry_every)


__all__ = ["SessionToken", "TokenManager", "TokenRefresher", "schedule", "token_expiry"]
