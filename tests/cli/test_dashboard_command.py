"""``orderguard dashboard``: its usage errors and a port in use are one line and an exit code.

(The served page itself is tested in tests/dashboard/.)"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from typer.testing import CliRunner

from orderguard.cli.app import app
from orderguard.cli.exit_codes import USAGE
from orderguard.journal.sqlite import SqliteJournal


def test_needs_exactly_one_of_demo_or_journal(tmp_path: Path) -> None:
    """Neither, or both: exit 2 with one line saying so."""
    runner = CliRunner()
    for args in ([], ["--demo", "--journal", str(tmp_path / "j.db")]):
        result = runner.invoke(app, ["dashboard", *args])
        assert result.exit_code == USAGE
        assert "exactly one of --demo or --journal" in result.output


def test_a_missing_journal_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--journal", str(tmp_path / "none.db")])
    assert result.exit_code == USAGE
    assert "no journal file at" in result.output and "Traceback" not in result.output


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """Another process holds the port: exit 2 and one line, no traceback."""
    path = tmp_path / "j.db"

    async def create() -> None:
        async with SqliteJournal(path):
            pass

    asyncio.run(create())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--journal", str(path), "--port", str(port)])
    assert result.exit_code == USAGE
    assert "cannot listen on 127.0.0.1" in result.output and "Traceback" not in result.output


def test_demo_serves_prints_the_token_url_and_stops_on_ctrl_c() -> None:
    """`dashboard --demo --port 0`: one URL line with the token in its fragment, the state is
    served (without the token in it), and SIGINT ends it with status 0 and no traceback."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "orderguard"), "dashboard", "--demo", "--port", "0",
         "--every", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server is up (bounded by the timeout)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/#token=([\w-]{20,})", line)
        assert match, line
        url, token = match.groups()
        deadline = time.monotonic() + 20
        operations: list[object] = []
        while not operations and time.monotonic() < deadline:
            state = httpx2.get(f"{url}/api/state", timeout=5.0)
            assert state.status_code == 200 and token not in state.text
            operations = state.json()["operations"]
            time.sleep(0.1)  # real time: a real process on loopback
        assert operations
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
