"""What a chaos run over the wire is made of besides the seed: the server (:class:`WireTarget`),
the run's settings (:class:`WireChaosConfig`), the contracts and their start prices, and the
faults armed through the gateway's control API (see :mod:`orderguard.chaos.wire`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.workload import (
    CLIENT_CONTRACT,
    POSITION_CONTRACT,
    RESTING_CONTRACT,
    USER_CONTRACT,
)

CONTRACTS = (POSITION_CONTRACT, CLIENT_CONTRACT, USER_CONTRACT, RESTING_CONTRACT)
START_PRICES = {
    POSITION_CONTRACT: Decimal("21000.00"),
    CLIENT_CONTRACT: Decimal("6000.00"),
    USER_CONTRACT: Decimal("21000.00"),
    RESTING_CONTRACT: Decimal("6000.00"),
}

# Faults armed through the control API: (target, kind, extra body). "mild" is a subset.
MILD_FAULTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Order/place", "ambiguous", {}),
    ("Order/place", "server_error", {}),
    ("Order/place", "pending", {}),
    ("hub:user", "duplicate", {"count": 3}),
    ("hub:user", "reorder", {"count": 2}),
)
ALL_FAULTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    *MILD_FAULTS,
    ("Order/place", "unknown_code", {}),
    ("Order/place", "rate_limited_after_send", {}),
    ("Order/place", "hold", {"seconds": 4}),
    ("Order/cancel", "ambiguous", {}),
    ("Order/modify", "server_error", {}),
    ("Position/closeContract", "ambiguous", {}),
    ("Order/searchOpen", "http_500", {"count": 2}),
    ("*", "rate_limited", {"count": 3}),
    ("hub:user", "drop", {"count": 2}),
    ("hub:user", "disconnect", {}),
    ("hub:user", "go_silent", {"seconds": 4}),
    ("hub:market", "disconnect", {}),
)
FAULTS = {"none": (), "mild": MILD_FAULTS, "all": ALL_FAULTS}


@dataclass(frozen=True, slots=True)
class WireTarget:
    """Which server: ``api_url`` None starts an embedded gateway simulator per seed on
    127.0.0.1. ``control_url`` is the server's control API if it has one (the embedded one
    always does). Credentials None: from the environment (``PROJECT_X_USERNAME``,
    ``PROJECT_X_API_KEY``), or the embedded gateway's."""

    api_url: str | None = None
    user_hub_url: str | None = None
    market_hub_url: str | None = None
    control_url: str | None = None
    username: str | None = None
    api_key: str | None = None
    account_id: int | None = None

    @property
    def embedded(self) -> bool:
        return self.api_url is None


@dataclass(frozen=True, slots=True)
class WireChaosConfig:
    """What decides a wire run besides the seed and the server."""

    chaos: ChaosConfig = field(default_factory=lambda: ChaosConfig(operations=6))
    journal: str = "sqlite"  # sqlite | memory (a memory journal needs the explicit opt-out)
    poll_interval: float = 0.1
    settle_limit: float = 20.0
    """Real seconds a quiet point waits for coverage mismatches and obligations to settle."""
    step_timeout: float = 60.0
    fault_every: tuple[float, float] = (0.5, 2.5)
    """Seconds between armed faults, drawn uniformly (``mild``/``all``, with a control API)."""

    def replay(self, seed: int, target: WireTarget) -> str:
        c = self.chaos
        text = (
            f"orderguard chaos --broker projectx --seeds 1 --seed-start {seed} "
            f"--operations {c.operations} --faults {c.faults} --outside-actor {c.outside_actor}"
        )
        if not target.embedded:
            text += f" --api-url {target.api_url}"
            if target.control_url:
                text += f" --control-url {target.control_url}"
        return text + "  (real time: the server decides; the workload and faults are the seed's)"


__all__ = [
    "ALL_FAULTS",
    "CONTRACTS",
    "FAULTS",
    "MILD_FAULTS",
    "START_PRICES",
    "WireChaosConfig",
    "WireTarget",
]
