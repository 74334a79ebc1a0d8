"""``orderguard gateway`` on the command line: loopback only unless told, bad input, URLs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from orderguard.cli.app import app


def test_refuses_a_non_loopback_host() -> None:
    """--host 0.0.0.0 without --allow-remote exits 2 before binding anything."""
    result = CliRunner().invoke(app, ["gateway", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.output


def test_bad_accounts_are_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["gateway", "--accounts", "x:y"])
    assert result.exit_code == 2 and "bad account" in result.output


def test_prints_urls_and_credentials(tmp_path: Path) -> None:
    """The real command, port 0: it prints where it serves and the credentials to use."""
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from orderguard.cli.app import main; main()",
                "gateway",
                "--port",
                "0",
                "--api-key",
                "k1",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while "PROJECT_X_API_KEY" not in out.read_text():
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(10)
    text = out.read_text()
    assert "http://127.0.0.1:" in text and "/hubs/user" in text and "apiKey       k1" in text
