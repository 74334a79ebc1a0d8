"""Settings of the ProjectX adapter, under the names project-x-py users already have.

Credentials and account selection read project-x-py's variables: ``PROJECT_X_API_KEY``,
``PROJECT_X_USERNAME`` and ``PROJECT_X_ACCOUNT_NAME`` (the account's *name*, matched without
regard to case, as project-x-py's ``ProjectX.from_env`` does). Endpoints read
``PROJECTX_API_URL``, ``PROJECTX_USER_HUB_URL``, ``PROJECTX_MARKET_HUB_URL`` (and
``PROJECTX_REALTIME_URL``, the hubs' base), or come from ``firm`` (TopstepX by default). Every
other key is ``PROJECTX_<KEY>`` in the environment.

A file (``.toml`` with the keys at top level or under ``[projectx]``, or ``.json``) may hold the
same keys; environment variables and keyword overrides win over it. A file holding an API key is
refused when anyone but its owner may read or write it (``chmod 600``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# TopstepX is the default; the demo is the docs' environment; every other ProjectX-powered firm
# lives at api.<firm>.projectx.com / rtc.<firm>.projectx.com (spec §1; slugs from Lumibot,
# UNCONFIRMED per firm apart from thefuturesdesk).
_NAMED_FIRMS: dict[str, tuple[str, str]] = {
    "topstepx": ("https://api.topstepx.com", "https://rtc.topstepx.com"),
    "demo": (
        "https://gateway-api-demo.s2f.projectx.com",
        "https://gateway-rtc-demo.s2f.projectx.com",
    ),
}
PROJECTX_FIRMS = frozenset(
    {
        "alphaticks",
        "aquafutures",
        "blueguardianfutures",
        "blusky",
        "bulenox",
        "daytraders",
        "e8",
        "fundingfutures",
        "futureselite",
        "fxifyfutures",
        "goatfundedfutures",
        "holaprime",
        "nexgen",
        "thefuturesdesk",
        "tickticktrader",
        "toponefutures",
        "tx3funding",
    }
)
_FIRM_ALIASES = {"topstep": "topstepx", "e8x": "e8", "tfd": "thefuturesdesk"}

_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("_projectx_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _FILE_VALUES.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        # Keyed as the other sources key them: by alias where a field has one, so that the
        # environment's value for the same field replaces the file's instead of clashing.
        out: dict[str, Any] = {}
        for name, value in (_FILE_VALUES.get() or {}).items():
            field = self.settings_cls.model_fields.get(name)
            alias = field.validation_alias if field is not None else None
            if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
                out[alias.choices[0]] = value
            else:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the adapter talks to: the REST base (without ``/api``) and the two hub URLs."""

    api_base: str
    user_hub: str
    market_hub: str


def firm_endpoints(firm: str) -> tuple[str, str]:
    """(REST base, realtime base) of a firm by name."""
    slug = firm.strip().lower().replace(" ", "").replace("-", "")
    slug = _FIRM_ALIASES.get(slug, slug)
    if slug in _NAMED_FIRMS:
        return _NAMED_FIRMS[slug]
    if slug in PROJECTX_FIRMS:
        return f"https://api.{slug}.projectx.com", f"https://rtc.{slug}.projectx.com"
    known = ", ".join(sorted({*_NAMED_FIRMS, *PROJECTX_FIRMS}))
    raise ValueError(f"unknown firm {firm!r}: use one of {known}, or give the URLs explicitly")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(url: str, *, allow_insecure: bool, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"{what} must be an http(s) or ws(s) URL, got {url!r}")
    if parts.scheme in ("http", "ws") and not allow_insecure and not _is_loopback(parts.hostname):
        # The API key and tokens would cross the network in clear text.
        raise ValueError(
            f"{what} uses plain {parts.scheme}:// to a non-loopback host; "
            "use https, or set allow_insecure_http"
        )
    return url


class ProjectXSettings(BaseSettings):
    """Everything the adapter needs; see the module docstring for the names."""

    model_config = SettingsConfigDict(
        env_prefix="PROJECTX_", extra="forbid", frozen=True, populate_by_name=True
    )

    # -- credentials and account (project-x-py's names) ----------------------------------------
    api_key: SecretStr = Field(validation_alias=AliasChoices("PROJECT_X_API_KEY"))
    username: str = Field(validation_alias=AliasChoices("PROJECT_X_USERNAME"))
    account_name: str | None = Field(
        default=None, validation_alias=AliasChoices("PROJECT_X_ACCOUNT_NAME")
    )
    """The account to trade, by name (project-x-py's selection variable)."""
    account_id: int | None = None
    """The account to trade, by id (``PROJECTX_ACCOUNT_ID``); wins over ``account_name``."""

    # -- endpoints -----------------------------------------------------------------------------
    firm: str = "topstepx"
    api_url: str | None = Field(default=None, validation_alias=AliasChoices("PROJECTX_API_URL"))
    """REST base; project-x-py's form with a trailing ``/api`` is accepted too. Given without
    hub URLs, the hubs are looked for on the same server."""
    realtime_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROJECTX_REALTIME_URL")
    )
    user_hub_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROJECTX_USER_HUB_URL")
    )
    market_hub_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROJECTX_MARKET_HUB_URL")
    )
    allow_insecure_http: bool = False
    """Allow plain http/ws to a non-loopback host (never needed for a real firm)."""

    # -- HTTP timeouts (seconds) -----------------------------------------------------------------
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    """A mutation whose answer takes longer becomes Unknown (resolved by its customTag)."""
    write_timeout: float = Field(default=10.0, gt=0)
    pool_timeout: float = Field(default=5.0, gt=0)
    retry_after_cap: float = Field(default=60.0, ge=0)
    """Longest ``Retry-After`` honoured; longer advice is cut to this."""

    # -- realtime hubs ---------------------------------------------------------------------------
    skip_negotiation: bool = True
    """Connect the WebSocket directly (the official example); False negotiates first."""
    keepalive_interval: float = Field(default=10.0, gt=0)
    silence_timeout: float = Field(default=30.0, gt=0)
    """No message for this long: the hub is reported SILENT and reconnected."""
    handshake_timeout: float = Field(default=10.0, gt=0)
    invoke_timeout: float = Field(default=10.0, gt=0)
    reconnect_initial_delay: float = Field(default=0.5, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    first_connect_wait: float = Field(default=10.0, ge=0)
    """How long the first request waits for the hubs before going on without them."""
    quote_wait: float = Field(default=1.5, ge=0)
    """How long ``get_last_price`` waits for a first quote before asking History/retrieveBars."""

    # -- session token ---------------------------------------------------------------------------
    refresh_margin: float = Field(default=1800.0, gt=0)
    """Refresh the token this many seconds before its ``exp`` (or at 3/4 of its life if sooner)."""
    fallback_token_lifetime: float = Field(default=3600.0, gt=0)
    """Assumed lifetime of a token whose ``exp`` cannot be read."""

    # -- trading behaviour -------------------------------------------------------------------------
    native_brackets: bool | None = None
    """The account's "Auto OCO Brackets" setting, which the API cannot read. None: assume on
    and learn from the "Position Brackets" rejection; True/False: trust this value."""
    bracket_ticks_signed: bool = True
    """Send native bracket ticks signed (long stop negative). UNCONFIRMED officially (spec §9)."""
    max_order_size: int | None = Field(default=None, ge=1)
    """The account's contract limit, if you know it (the API does not say)."""
    live: bool = False
    """The ``live`` flag of contract and bar requests (False for sim/evaluation accounts)."""
    only_active_accounts: bool = True
    order_lookup_hours: float = Field(default=48.0, gt=0)
    """Window of the ``Order/search`` fallback of ``get_order`` when ``Order/searchById`` is
    missing."""

    @field_validator("account_name")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> Self:
        """Load a ``.toml``/``.json`` file readable by its owner only; env and overrides win."""
        p = Path(path)
        check_private(p)
        suffix = p.suffix.lower()
        text = p.read_text(encoding="utf-8")
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
            if isinstance(data.get("projectx"), dict):
                data = data["projectx"]
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"unsupported config file type {suffix!r} (use .toml or .json)")
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a table/object at top level")
        token = _FILE_VALUES.set(data)
        try:
            return cls(**overrides)
        finally:
            _FILE_VALUES.reset(token)

    def endpoints(self) -> Endpoints:
        """The REST base and hub URLs: explicit URLs first, else the firm's."""
        firm_api, firm_rtc = firm_endpoints(self.firm)
        api = (self.api_url or firm_api).rstrip("/")
        if api.lower().endswith("/api"):
            api = api[: -len("/api")]  # project-x-py's PROJECTX_API_URL includes it
        # A custom REST server without realtime URLs serves its hubs too: never mix a local
        # REST server with a firm's real hubs.
        rtc = (self.realtime_url or (api if self.api_url else firm_rtc)).rstrip("/")
        if rtc.lower().endswith("/hubs"):
            rtc = rtc[: -len("/hubs")]
        user = self.user_hub_url or f"{rtc}/hubs/user"
        market = self.market_hub_url or f"{rtc}/hubs/market"
        insecure = self.allow_insecure_http
        return Endpoints(
            api_base=_check_url(api, allow_insecure=insecure, what="api_url"),
            user_hub=_check_url(user.rstrip("/"), allow_insecure=insecure, what="user hub URL"),
            market_hub=_check_url(
                market.rstrip("/"), allow_insecure=insecure, what="market hub URL"
            ),
        )

    @property
    def firm_slug(self) -> str:
        """A file-name-safe name of where we trade (the firm, or the API host for custom URLs)."""
        if self.api_url:
            host = urlsplit(self.endpoints().api_base).hostname or "custom"
            port = urlsplit(self.endpoints().api_base).port
            return f"{host}-{port}" if port else host
        slug = self.firm.strip().lower().replace(" ", "").replace("-", "")
        return _FIRM_ALIASES.get(slug, slug)


def check_private(path: Path) -> None:
    """Refuse a secrets file that anyone but its owner may read or write."""
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"{path} is accessible to group or others (mode {stat.filemode(mode)}); it may hold "
            f"an API key: run `chmod 600 {path}`"
        )


__all__ = ["PROJECTX_FIRMS", "Endpoints", "ProjectXSettings", "check_private", "firm_endpoints"]
