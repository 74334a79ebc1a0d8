"""The error recovery example runs end to end on the embedded exchange and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "99_error_recovery_demo.py"


@pytest.mark.slow
def test_error_recovery_demo_exits_cleanly() -> None:
    """`python examples/99_error_recovery_demo.py` ends SAFE with exit status 0."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SAFE: flat, no working order" in done.stdout
    assert "cancel_position_orders" in done.stdout
