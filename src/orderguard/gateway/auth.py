"""Session tokens: real HS256 JWTs with ``exp``, on the injected clock, and their revocation.

A login opens a *session*; ``Auth/validate`` issues a new token in the same session; ``logout``
(or the control API) ends the session, after which every token of it is refused with 401. A
token's ``exp`` is checked against the injected clock, not the wall clock, so tests can expire a
token by moving time instead of sleeping. The signing secret is random per state file, so tokens
survive a restart of a server that keeps its state, as real ones survive a server deploy.

Secrets never leave this module in a log line or a ``repr``: :class:`TokenClaims` holds ids only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

import jwt

from orderguard.clock import Clock

_ALGORITHM = "HS256"
_ISSUER = "orderguard-gateway"


class TokenProblem(StrEnum):
    MISSING = "missing"
    MALFORMED = "malformed"  # not a JWT of ours (bad signature, bad claims)
    EXPIRED = "expired"
    REVOKED = "revoked"  # the session was logged out or revoked


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: who, which session, and until when (seconds since epoch)."""

    user_name: str
    session_id: str
    token_id: str
    expires_at: float
    issued_at: float
    serial: int = 0  # the issuer's running count: "expire all" cuts by serial, not by time


@dataclass(frozen=True, slots=True)
class TokenCheck:
    claims: TokenClaims | None
    problem: TokenProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class TokenIssuer:
    """Issues and checks tokens of one user; ``lifetime`` seconds each (24 h by default)."""

    def __init__(self, clock: Clock, secret: str, lifetime: float) -> None:
        if lifetime <= 0:
            raise ValueError("token lifetime must be positive")
        self._clock = clock
        self._secret = secret
        self.lifetime = lifetime
        self._ended_sessions: set[str] = set()
        self._revoked_tokens: set[str] = set()
        self._expired_through = 0  # tokens with a serial up to this count as expired
        self._revoked_through = 0
        self.issued = 0

    def __repr__(self) -> str:  # the secret stays out of every repr
        return f"TokenIssuer(lifetime={self.lifetime}, issued={self.issued})"

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def issue(self, user_name: str, session_id: str | None = None) -> tuple[str, TokenClaims]:
        """A new token, in ``session_id`` (a new session when None)."""
        now = self._now()
        self.issued += 1
        claims = TokenClaims(
            user_name=user_name,
            session_id=session_id or secrets.token_hex(8),
            token_id=secrets.token_hex(8),
            expires_at=now + self.lifetime,
            issued_at=now,
            serial=self.issued,
        )
        payload = {
            "sub": claims.user_name,
            "sid": claims.session_id,
            "jti": claims.token_id,
            "iat": int(claims.issued_at),
            "nbf": int(claims.issued_at) - 1,
            # A whole-second exp as a JWT wants; never earlier than the true expiry.
            "exp": int(claims.expires_at + 0.999999),
            "iss": _ISSUER,
            "n": claims.serial,
        }
        return jwt.encode(payload, self._secret, algorithm=_ALGORITHM), claims

    def check(self, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck(None, TokenProblem.MISSING)
        try:
            # exp is checked below on the injected clock, not by PyJWT on the wall clock.
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
            claims = TokenClaims(
                user_name=str(payload["sub"]),
                session_id=str(payload["sid"]),
                token_id=str(payload["jti"]),
                expires_at=float(payload["exp"]),
                issued_at=float(payload["iat"]),
                serial=int(payload["n"]),
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return TokenCheck(None, TokenProblem.MALFORMED)
        if self._revoked(claims):
            return TokenCheck(claims, TokenProblem.REVOKED)
        if self._expired(claims):
            return TokenCheck(claims, TokenProblem.EXPIRED)
        return TokenCheck(claims)

    def _revoked(self, claims: TokenClaims) -> bool:
        return (
            claims.session_id in self._ended_sessions
            or claims.token_id in self._revoked_tokens
            or claims.serial <= self._revoked_through
        )

    def _expired(self, claims: TokenClaims) -> bool:
        return self._now() >= claims.expires_at or claims.serial <= self._expired_through

    def still_valid(self, claims: TokenClaims) -> bool:
        """A token checked earlier (a hub connection's) is neither revoked nor expired now."""
        return not self._revoked(claims) and not self._expired(claims)

    def expire_all(self) -> None:
        """Every token issued so far now counts as expired (as if its ``exp`` had passed)."""
        self._expired_through = self.issued

    def end_session(self, session_id: str) -> None:
        self._ended_sessions.add(session_id)

    def revoke_token(self, token_id: str) -> None:
        self._revoked_tokens.add(token_id)

    def revoke_all(self) -> None:
        """Every token issued so far is revoked (401 everywhere, SessionNotFound on validate)."""
        self._revoked_through = self.issued

    @property
    def secret(self) -> str:
        """For the state file only."""
        return self._secret


def same_key(given: str, expected: str) -> bool:
    """Constant-time comparison of API keys."""
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


__all__ = [
    "TokenCheck",
    "TokenClaims",
    "TokenIssuer",
    "TokenProblem",
    "bearer_token",
    "same_key",
]
