"""Everything the gateway simulator can be told, with the defaults it starts with.

Where the wire protocol is not pinned down (``projectx-api.md`` marks it UNCONFIRMED or CONFLICT)
the behaviour is a named switch here, and its default says which reading we chose and why. The
switches are plain data: the REST layer, the hubs and the control API read them; nothing in here
does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

DEFAULT_TOKEN_LIFETIME: Final = 24 * 3600.0  # DOC: "Session tokens are only valid for 24 hours"


class UserEventShape(StrEnum):
    """How user-hub events carry their entity (§6.3 CONFLICT)."""

    ACTION = "action"  # {"action": n, "data": {...}}: field reports (PXP, BOT); our default
    BARE = "bare"  # the bare entity object, as the official docs print it


class RateLimitScope(StrEnum):
    """What one rate-limit window counts (§5: per token, user or IP is UNCONFIRMED)."""

    USER = "user"  # all tokens of one userName share a window: re-login does not reset it
    TOKEN = "token"
    GLOBAL = "global"


class ExpiredValidate(StrEnum):
    """What ``Auth/validate`` does with an expired token (§3.1 UNCONFIRMED)."""

    REJECT = "reject"  # 200, success false, errorCode 3 ExpiredToken (the enum has the code)
    RENEW = "renew"  # a new token, within ``validate_grace`` seconds after expiry (Admin API)
    UNAUTHORIZED = "unauthorized"  # HTTP 401, like every other endpoint


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One simulated account: ``--accounts 1:SIM-1:50000,2:PA-2:150000:position``."""

    id: int
    name: str
    balance: Decimal = Decimal("50000")
    native_brackets: bool = True  # False: TopstepX's legacy "Position Brackets" mode

    @classmethod
    def parse(cls, text: str) -> AccountSpec:
        """``ID[:NAME[:BALANCE[:auto|position]]]``."""
        parts = [p.strip() for p in text.split(":")]
        try:
            account_id = int(parts[0])
            name = parts[1] if len(parts) > 1 and parts[1] else f"SIM-{account_id}"
            balance = Decimal(parts[2]) if len(parts) > 2 and parts[2] else Decimal("50000")
        except (ValueError, InvalidOperation) as exc:
            raise ValueError(f"bad account {text!r}: expected ID[:NAME[:BALANCE[:MODE]]]") from exc
        mode = parts[3].lower() if len(parts) > 3 and parts[3] else "auto"
        if mode not in ("auto", "position"):
            raise ValueError(f"bad bracket mode {mode!r} in {text!r}: auto or position")
        if account_id <= 0 or not balance.is_finite():
            raise ValueError(f"bad account {text!r}: id must be positive, balance finite")
        return cls(account_id, name, balance, native_brackets=mode == "auto")


def parse_accounts(text: str) -> tuple[AccountSpec, ...]:
    specs = tuple(AccountSpec.parse(item) for item in text.split(",") if item.strip())
    if not specs:
        raise ValueError("at least one account is needed")
    if len({s.id for s in specs}) != len(specs):
        raise ValueError("account ids must be unique")
    return specs


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` in any rolling ``window`` seconds."""

    requests: int
    window: float

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= 0:
            raise ValueError("a rate limit needs requests >= 1 and window > 0")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The simulator's settings. Every UNCONFIRMED wire fact is a field with a reasoned default."""

    user_name: str = "orderguard"
    api_key: str | None = None  # None: a random key per state file (printed at start)
    accounts: tuple[AccountSpec, ...] = (AccountSpec(1, "SIM-1"),)
    seed: int = 0
    # -- auth ---------------------------------------------------------------------------------
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    expired_validate: ExpiredValidate = ExpiredValidate.REJECT
    validate_grace: float = 7 * 24 * 3600.0  # Admin-API docs: re-validate up to 7 days after
    validate_revokes_old: bool = False  # UNCONFIRMED: keep the old token until its own exp
    # -- rate limits (§5) ---------------------------------------------------------------------
    rate_limits: bool = True
    # CONFLICT 50 vs 30 per 30 s: the current docs page says 30; the stricter one is the safe
    # default (a client that lives under 30 also lives under 50).
    bars_limit: RateLimit = RateLimit(30, 30.0)
    general_limit: RateLimit = RateLimit(200, 60.0)
    rate_limit_scope: RateLimitScope = RateLimitScope.USER
    retry_after: bool = False  # UNCONFIRMED whether the server sends Retry-After: off
    # -- REST shapes --------------------------------------------------------------------------
    order_extras: bool = True  # add RS-observed trailPrice / parentOrderId to OrderModel
    tick_bar_unit: bool = False  # RS-only unit 7 (Tick); off: UnitInvalid like the swagger
    contract_search_limit: int = 20
    max_bars: int = 20_000
    # -- realtime -----------------------------------------------------------------------------
    user_event_shape: UserEventShape = UserEventShape.ACTION
    keep_alive_interval: float = 15.0  # ASP.NET defaults (UNCONFIRMED for ProjectX)
    client_timeout: float = 30.0
    hub_close_on_token_expiry: bool = False  # ASP.NET keeps a connection open past exp
    negotiate_ttl: float = 30.0  # a negotiated id not connected by then is forgotten
    # -- market -------------------------------------------------------------------------------
    tick_interval: float = 0.25  # seconds between price steps on the clock
    history_days: float = 3.0  # seeded minute bars generated before the start
    depth_levels: int = 5
    start_prices: dict[str, Decimal] = field(default_factory=dict)
    liquidity: int | None = None  # contracts per order per price step (None: unlimited)


__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "AccountSpec",
    "ExpiredValidate",
    "GatewayConfig",
    "RateLimit",
    "RateLimitScope",
    "UserEventShape",
    "parse_accounts",
]
