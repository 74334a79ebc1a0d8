"""Configuration: project-x-py's variable names, firms, URLs, private config files, journal path,
and the OrderManager's refusal to trade a real broker on a memory journal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from px_fakes import API_KEY, FakeRest, rest_broker

from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings, default_journal_path
from orderguard.broker.projectx.config import firm_endpoints
from orderguard.broker.sim import SimBroker
from orderguard.clock import SystemClock
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager


@pytest.fixture
def px_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("PROJECT_X_", "PROJECTX_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PROJECT_X_API_KEY", API_KEY)
    monkeypatch.setenv("PROJECT_X_USERNAME", "trader")
    return monkeypatch


def test_project_x_py_variable_names(px_env: pytest.MonkeyPatch) -> None:
    """The names project-x-py users already export are read as they are."""
    px_env.setenv("PROJECT_X_ACCOUNT_NAME", "PRACTICEJUL2415232717")
    px_env.setenv("PROJECTX_READ_TIMEOUT", "3.5")
    s = ProjectXSettings()  # type: ignore[call-arg]
    assert s.api_key.get_secret_value() == API_KEY and s.username == "trader"
    assert s.account_name == "PRACTICEJUL2415232717" and s.read_timeout == 3.5
    assert s.endpoints().api_base == "https://api.topstepx.com"
    assert s.endpoints().user_hub == "https://rtc.topstepx.com/hubs/user"
    assert API_KEY not in repr(s) and API_KEY not in str(s)


def test_a_generic_api_key_variable_is_not_read(px_env: pytest.MonkeyPatch) -> None:
    px_env.delenv("PROJECT_X_API_KEY")
    px_env.setenv("API_KEY", "something-else-entirely")
    with pytest.raises(ValueError, match="PROJECT_X_API_KEY"):
        ProjectXSettings()  # type: ignore[call-arg]


def test_urls_from_project_x_py_variables(px_env: pytest.MonkeyPatch) -> None:
    """project-x-py's PROJECTX_API_URL ends in /api: accepted; hubs are taken as given."""
    px_env.setenv("PROJECTX_API_URL", "https://gateway.example.com/api")
    px_env.setenv("PROJECTX_USER_HUB_URL", "https://rtc.example.com/hubs/user")
    px_env.setenv("PROJECTX_MARKET_HUB_URL", "https://rtc.example.com/hubs/market")
    e = ProjectXSettings().endpoints()  # type: ignore[call-arg]
    assert e.api_base == "https://gateway.example.com"
    assert e.market_hub == "https://rtc.example.com/hubs/market"


def test_a_local_api_url_brings_its_own_hubs() -> None:
    """A loopback REST server without hub URLs never pairs with a firm's real hubs."""
    s = ProjectXSettings(api_key=API_KEY, username="u", api_url="http://127.0.0.1:8123")
    assert s.endpoints().user_hub == "http://127.0.0.1:8123/hubs/user"
    assert s.firm_slug == "127.0.0.1-8123"


@pytest.mark.parametrize(
    ("firm", "api"),
    [
        ("topstepx", "https://api.topstepx.com"),
        ("thefuturesdesk", "https://api.thefuturesdesk.projectx.com"),
        ("E8X", "https://api.e8.projectx.com"),
        ("demo", "https://gateway-api-demo.s2f.projectx.com"),
    ],
)
def test_firms_by_name(firm: str, api: str) -> None:
    assert firm_endpoints(firm)[0] == api


def test_unknown_firm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown firm"):
        ProjectXSettings(api_key=API_KEY, username="u", firm="nosuchfirm").endpoints()


def test_plain_http_to_a_remote_host_is_refused() -> None:
    """Credentials never cross a network in clear text unless explicitly allowed."""
    s = ProjectXSettings(api_key=API_KEY, username="u", api_url="http://gateway.example.com")
    with pytest.raises(ValueError, match="plain http"):
        s.endpoints()
    allowed = ProjectXSettings(
        api_key=API_KEY,
        username="u",
        api_url="http://gateway.example.com",
        allow_insecure_http=True,
    )
    assert allowed.endpoints().api_base == "http://gateway.example.com"


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_private_config_file_loads(tmp_path: Path, suffix: str, px_env: pytest.MonkeyPatch) -> None:
    px_env.delenv("PROJECT_X_API_KEY")
    path = tmp_path / f"projectx{suffix}"
    if suffix == ".toml":
        path.write_text(
            f'[projectx]\napi_key = "{API_KEY}"\nusername = "filed"\nfirm = "thefuturesdesk"\n'
        )
    else:
        path.write_text(
            json.dumps({"api_key": API_KEY, "username": "filed", "firm": "thefuturesdesk"})
        )
    path.chmod(0o600)
    s = ProjectXSettings.from_file(path)
    assert s.api_key.get_secret_value() == API_KEY
    assert s.username == "trader"  # the environment wins over the file
    assert s.endpoints().api_base == "https://api.thefuturesdesk.projectx.com"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_config_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "projectx.toml"
    path.write_text(f'api_key = "{API_KEY}"\nusername = "u"\n')
    path.chmod(mode)
    with pytest.raises(PermissionError, match="chmod 600") as info:
        ProjectXSettings.from_file(path)
    assert API_KEY not in str(info.value)


def test_default_journal_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = default_journal_path("topstepx", "PRAC/7001 x")
    assert path == tmp_path / "orderguard" / "topstepx-PRAC_7001_x.db"
    assert (tmp_path / "orderguard").stat().st_mode & 0o077 == 0


async def test_manager_refuses_a_real_broker_on_a_memory_journal(tmp_path: Path) -> None:
    """A real broker needs a durable journal, or an explicit opt-out."""
    broker = rest_broker(FakeRest())
    assert isinstance(broker, ProjectXBroker)
    with pytest.raises(ValueError, match="allow_memory_journal"):
        OrderManager(broker)
    with pytest.raises(ValueError, match="allow_memory_journal"):
        OrderManager(broker, journal=MemoryJournal())
    OrderManager(broker, allow_memory_journal=True)
    OrderManager(broker, journal=SqliteJournal(tmp_path / "j.db"))
    OrderManager(SimBroker.create())  # simulated: fine as before
    wrapped = FaultyBroker(broker, SystemClock(), FaultPlan(), seed=1)
    with pytest.raises(ValueError, match="allow_memory_journal"):
        OrderManager(wrapped)  # found through the wrapper's ``inner``
    await broker.aclose()
