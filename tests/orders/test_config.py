"""OrderManagerConfig: seed keys, env prefix, TOML/JSON files, precedence."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from orderguard.config import OrderManagerConfig
from orderguard.errors import ConfigurationError
from orderguard.orders.send.backoff import status_check_delays


def test_seed_defaults() -> None:
    """The project-x-py seed keys keep their defaults."""
    c = OrderManagerConfig()
    assert (
        c.status_check_max_attempts,
        c.status_check_initial_delay,
        c.status_check_backoff_factor,
        c.status_check_max_delay,
        c.status_check_circuit_breaker_threshold,
        c.status_check_circuit_breaker_reset_time,
    ) == (5, 0.5, 2.0, 30.0, 10, 300.0)


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """ORDERGUARD_* environment variables set keys."""
    monkeypatch.setenv("ORDERGUARD_MAX_ORDER_SIZE", "7")
    assert OrderManagerConfig().max_order_size == 7


def test_from_toml(tmp_path: Path) -> None:
    """A TOML file with an [orderguard] table is loaded."""
    path = tmp_path / "og.toml"
    path.write_text('[orderguard]\ntag_prefix = "abc"\nstatus_check_max_attempts = 3\n')
    c = OrderManagerConfig.from_file(path)
    assert (c.tag_prefix, c.status_check_max_attempts) == ("abc", 3)


def test_from_json(tmp_path: Path) -> None:
    """A JSON file at top level is loaded."""
    path = tmp_path / "og.json"
    path.write_text(json.dumps({"unknown_resolution_window_hours": 2}))
    assert OrderManagerConfig.from_file(path).unknown_resolution_window_hours == 2


def test_env_beats_file_and_keywords_beat_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Precedence: keywords > environment > file > defaults."""
    path = tmp_path / "og.toml"
    path.write_text("max_order_size = 3\nplacement_connect_retries = 4\n")
    monkeypatch.setenv("ORDERGUARD_MAX_ORDER_SIZE", "5")
    c = OrderManagerConfig.from_file(path, placement_connect_retries=1)
    assert (c.max_order_size, c.placement_connect_retries) == (5, 1)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    """A typo in a config file is an error, not silently ignored."""
    path = tmp_path / "og.toml"
    path.write_text("max_ordr_size = 3\n")
    with pytest.raises(ConfigurationError):
        OrderManagerConfig.from_file(path)


def test_unsupported_file_type(tmp_path: Path) -> None:
    """Only .toml and .json files are accepted."""
    path = tmp_path / "og.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(ValueError):
        OrderManagerConfig.from_file(path)


def test_invalid_values_refused() -> None:
    """Non-sensical values are refused."""
    with pytest.raises(ConfigurationError):
        OrderManagerConfig(status_check_max_attempts=0)


def test_status_check_delays_are_capped_and_bounded() -> None:
    """The schedule has max_attempts entries, starts at 0 and never exceeds max_delay."""
    c = OrderManagerConfig(status_check_max_attempts=8, status_check_max_delay=3.0)
    delays = list(status_check_delays(c, random.Random(1)))
    assert len(delays) == 8 and delays[0] == 0.0
    assert all(0 < d <= 3.0 for d in delays[1:])


def test_resilience_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter, breaker and query-retry keys load from ORDERGUARD_* variables."""
    monkeypatch.setenv("ORDERGUARD_RATE_LIMIT_REQUESTS", "50")
    monkeypatch.setenv("ORDERGUARD_RATE_LIMIT_WINDOW", "30")
    monkeypatch.setenv("ORDERGUARD_RATE_LIMIT_RESERVED", "5")
    monkeypatch.setenv("ORDERGUARD_QUERY_RETRY_MAX_TOTAL", "4.5")
    monkeypatch.setenv("ORDERGUARD_STATUS_CHECK_CIRCUIT_BREAKER_THRESHOLD", "3")
    c = OrderManagerConfig()
    assert (c.rate_limit_requests, c.rate_limit_window, c.rate_limit_reserved) == (50, 30.0, 5)
    assert (c.query_retry_max_total, c.status_check_circuit_breaker_threshold) == (4.5, 3)


def test_resilience_keys_from_file(tmp_path: Path) -> None:
    """The same keys load from a TOML file."""
    path = tmp_path / "og.toml"
    path.write_text(
        "[orderguard]\nrate_limit_requests = 20\nrate_limit_reserved = 2\n"
        "status_check_circuit_breaker_reset_time = 12.5\n"
    )
    c = OrderManagerConfig.from_file(path)
    assert (c.rate_limit_requests, c.rate_limit_reserved) == (20, 2)
    assert c.status_check_circuit_breaker_reset_time == 12.5


def test_reserved_slots_must_leave_room_for_entries() -> None:
    """rate_limit_reserved must be below rate_limit_requests."""
    with pytest.raises(ConfigurationError):
        OrderManagerConfig(rate_limit_requests=5, rate_limit_reserved=5)
