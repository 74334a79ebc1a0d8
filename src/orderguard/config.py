"""OrderManager settings.

Values come, highest precedence first, from constructor keywords, ``ORDERGUARD_*`` environment
variables, a TOML or JSON file given to :meth:`OrderManagerConfig.from_file`, and the defaults
below. The six ``status_check_*`` keys are project-x-py's seed keys, kept by name. Every key is read
by code (and a test shows each one changing behaviour); a key that nothing reads is a lie to the
operator, so none is added "for later" without a consumer.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from orderguard.errors import ConfigurationError

# The file's values for the one ``from_file`` call in progress. A context variable (not a class
# attribute) so concurrent loads in different tasks cannot see each other's file.
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "_orderguard_file_values", default=None
)


class _FileSource(PydanticBaseSettingsSource):
    """Settings source that serves the values of the file being loaded by ``from_file``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _FILE_VALUES.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


class OrderManagerConfig(BaseSettings):
    """Settings of :class:`~orderguard.orders.OrderManager` (env prefix ``ORDERGUARD_``)."""

    # allow_inf_nan=False: an infinite or NaN duration passes ``gt=0`` checks (inf > 0) and
    # would turn a wait or a deadline into "never"; every float here must be finite.
    model_config = SettingsConfigDict(
        env_prefix="ORDERGUARD_", extra="forbid", frozen=True, allow_inf_nan=False
    )

    def __init__(self, **values: Any) -> None:
        # Every refusal (unknown key, bad value, from keywords, environment or file) is one
        # typed error of ours, never pydantic's: callers catch orderguard's error tree only.
        try:
            super().__init__(**values)
        except PydanticValidationError as exc:
            raise ConfigurationError(_describe(exc)) from exc

    # -- resolving an Unknown outcome (project-x-py seed keys) ----------------------------------
    status_check_max_attempts: int = Field(default=5, ge=1)
    """Broker look-ups made to resolve an Unknown outcome before giving up (and latching)."""
    status_check_initial_delay: float = Field(default=0.5, ge=0.0)
    """Seconds before the second look-up; the first is made at once."""
    status_check_backoff_factor: float = Field(default=2.0, ge=1.0)
    status_check_max_delay: float = Field(default=30.0, gt=0.0)
    """Cap of one backoff step; also the period of the background re-check of a latched outcome."""

    # The four keys above also form the retry policy of plain queries (the seed reports them as
    # each breaker's ``retry_config``), capped in total time by ``query_retry_max_total``.
    query_retry_max_total: float = Field(default=30.0, ge=0.0)
    """Seconds a query may spend in retry waits before its last error is raised."""

    # -- circuit breakers (one per endpoint family: orders, positions, queries) -----------------
    status_check_circuit_breaker_threshold: int = Field(default=10, ge=1)
    """Consecutive infrastructure failures (never business rejections) that open a family."""
    status_check_circuit_breaker_reset_time: float = Field(default=300.0, gt=0.0)
    """Seconds an open breaker waits before it admits one query probe (half-open)."""
    breaker_bypass_interval: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    """While a family's breaker is open, the protective and flattening requests that go past it
    start at most one per this many seconds: the endpoint is probed, not hammered, and the rate
    budget outlives a long storm (spent in it, it held protection back after the storm)."""

    # -- rate limiter (the gateway allows 200 requests per rolling 60 s) -------------------------
    rate_limit_requests: int = Field(default=200, ge=1)
    """Most requests granted in any ``rate_limit_window`` seconds."""
    rate_limit_window: float = Field(default=60.0, gt=0.0)
    rate_limit_reserved: int = Field(default=10, ge=0)
    """Slots of every window kept for protective and flattening orders."""

    # -- validation ---------------------------------------------------------------------------
    max_order_size: int = Field(default=100, ge=1)
    """Largest size accepted for one order (the account's own limit applies too, if lower)."""
    validate_stop_against_market: bool = True
    """Refuse a buy stop at or below the last price, and a sell stop at or above it."""
    allow_stop_without_last_price: bool = False
    """When the last price is unknown: place the stop anyway (True) or refuse it (False)."""

    # -- placement ----------------------------------------------------------------------------
    tag_prefix: str = Field(default="og", min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    """First part of every generated customTag."""
    placement_connect_retries: int = Field(default=2, ge=0)
    """Re-sends (same customTag) after the broker says the request provably never left."""
    placement_connect_retry_delay: float = Field(default=0.25, ge=0.0)
    unknown_resolution_window_hours: float = Field(default=24.0, gt=0.0)
    """How far back ``Order/search`` looks when resolving an Unknown outcome or a missing order."""

    # -- position orders (orders/positions/) ---------------------------------------------------
    follow_position_orders: bool = True
    """Resize managed stops/targets when their position changes; cancel them when it is flat."""
    position_recheck_interval: float = Field(default=15.0, gt=0.0)
    """Seconds between REST re-checks of positions with managed exits (events can be lost)."""

    # -- continuous reconciliation (orders/feed/reconciler.py) -----------------------------------
    reconcile_interval: float = Field(default=2.0, gt=0.0)
    """Seconds between passes of the in-flight checker (Unknown outcomes, stuck operations)."""
    reconcile_threshold: float = Field(default=5.0, ge=0.0)
    """Age in seconds after which an unknown outcome, a working order or an unfinished operation
    is re-read from the broker (and an unconfirmed rollback retried)."""
    silence_threshold: float = Field(default=15.0, gt=0.0)
    """Seconds without any broker event after which the stream is presumed silently broken and
    a full resync (orders and positions) is made."""
    position_check_interval: float = Field(default=5.0, gt=0.0)
    """Seconds between periodic reads of every account's positions while anything is in flight
    or held: a position changed from outside whose event was lost is found within this (the
    exits of the operations holding it must follow within the protection window)."""

    # -- protection (recovery/protection.py) ----------------------------------------------------
    protection_deadline: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    """Seconds exposure may wait for protection before the executor's alert fires
    (``protection_overdue`` callbacks); it keeps trying after that, it never gives up."""
    protection_retry_max_delay: float = Field(default=2.0, gt=0.0, allow_inf_nan=False)
    """Longest pause between two attempts to flatten or protect (capped exponential backoff):
    an obligation ends within about this long after the broker answers again."""
    protection_read_timeout: float = Field(default=2.0, gt=0.0, allow_inf_nan=False)
    """Seconds a read that protective or flattening work waits on (the position before a
    flatten, the truth a rollback or start-up recovery plans from) may take before it is cut
    short and asked again: a hanging read must not hold a bare position for the transport's
    whole timeout."""
    position_event_grace: float = Field(default=0.1, ge=0.0, allow_inf_nan=False)
    """Seconds a protective or flattening order whose position the book does not show yet
    waits for the position event (a fill's order and position events arrive separately)
    before it reads the position from the broker instead."""
    read_hedge_after: float = Field(default=0.5, gt=0.0, allow_inf_nan=False)
    """Seconds an order or position read may be in flight before the next read of the same
    account starts beside it instead of waiting for it (at most two in flight; the first
    answer serves both): one slow answer costs this, not its whole delay."""
    in_flight_grace: float = Field(default=10.0, ge=0.0, allow_inf_nan=False)
    """Seconds after which a request that may still be in flight (sent by this process, or by a
    dead one before a restart) is taken as never executed when the broker has no trace of its
    tag. Protection never waits for it: a protective or flattening order in doubt is re-sent
    under its own tag at once (a duplicate is refused by the broker); only the conclusion that
    an *entry* never existed waits this long."""

    # -- risk limits (orders/send/risk.py) ---------------------------------------------------------
    # Checked before every request that would increase exposure, never before a protective or
    # flattening one. A position is counted at its worst case: as if every working order on the
    # request's side filled too. None (the default) switches a limit off.
    max_position_per_contract: int | None = Field(default=None, ge=1)
    """Largest net position, long or short, on any one contract."""
    position_limits: dict[str, int] = Field(default_factory=dict)
    """Per-contract overrides of ``max_position_per_contract``, keyed by contract id
    (``CON.F.US.MNQ.Z26``) or symbol id (``F.US.MNQ``); the contract id wins."""
    max_position_per_account: int | None = Field(default=None, ge=1)
    """Largest sum of the absolute net positions over all of an account's contracts."""
    daily_loss_limit: Decimal | None = Field(default=None, gt=0)
    """Money (account currency). Once the trading day's realized P&L net of fees is at or
    below minus this, new exposure is refused until the next trading day."""
    trading_day_start: str = Field(default="17:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Local time (``HH:MM`` in ``trading_day_timezone``) the daily loss limit resets at."""
    trading_day_timezone: str = "America/Chicago"
    """IANA zone of ``trading_day_start`` (CME's trading day starts 17:00 Chicago time)."""

    # -- memory ------------------------------------------------------------------------------
    tracked_finished_orders: int | None = Field(default=10_000, ge=0)
    """Finished orders the order tracker keeps in memory, oldest dropped first (``None``: all).
    Orders an unfinished operation still refers to are never dropped; a dropped order is read
    from the broker when asked for."""

    @model_validator(mode="after")
    def _reserved_below_budget(self) -> Self:
        if self.rate_limit_reserved >= self.rate_limit_requests:
            raise ValueError("rate_limit_reserved must be below rate_limit_requests")
        return self

    @model_validator(mode="after")
    def _risk_values(self) -> Self:
        bad = sorted(k for k, v in self.position_limits.items() if v < 1)
        if bad:
            raise ValueError(f"position_limits must be at least 1 (got {', '.join(bad)})")
        try:
            ZoneInfo(self.trading_day_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown trading_day_timezone {self.trading_day_timezone!r}") from exc
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file so an operator can override one key of a shared file.
        return (init_settings, env_settings, _FileSource(settings_cls), file_secret_settings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> OrderManagerConfig:
        """Build from a plain mapping (the seed's ``config={...}``); environment variables still
        fill the keys it leaves out.

        Raises :class:`~orderguard.errors.ConfigurationError` for an unknown key (a typo must not
        be silently ignored: the seed stored keys nothing read) or a value out of range.
        """
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"config must be a mapping, got {type(values).__name__}")
        unknown = sorted(str(k) for k in values if k not in cls.model_fields)
        if unknown:
            raise ConfigurationError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**{str(k): v for k, v in values.items()})

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> OrderManagerConfig:
        """Load from a ``.toml`` or ``.json`` file; env vars and ``overrides`` take precedence.

        A TOML file may keep the keys at top level or under an ``[orderguard]`` table.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".toml":
            data: Any = tomllib.loads(p.read_text(encoding="utf-8"))
        elif suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
        else:
            raise ValueError(f"unsupported config file type {suffix!r} (use .toml or .json)")
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a table/object at top level")
        section = data.get("orderguard", data)
        if not isinstance(section, dict):
            raise ValueError(f"[orderguard] in {p} must be a table")
        token = _FILE_VALUES.set(section)
        try:
            return cls(**overrides)
        finally:
            _FILE_VALUES.reset(token)


def _describe(exc: PydanticValidationError) -> str:
    """One line per refused key: ``key: reason``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )


__all__ = ["OrderManagerConfig"]
