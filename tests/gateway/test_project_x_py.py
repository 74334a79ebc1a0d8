"""Fidelity with a client we did not write: project-x-py against ``orderguard gateway``.

project-x-py needs Python >= 3.12, so it runs in its own venv (``.venv-pxp/`` at the repository
root, created on first use with pip and then reused) as a subprocess, while the gateway serves
in this test's event loop on a free loopback port. The scenario (``pxp/scenario.py``) logs in,
finds a contract, reads bars, places, modifies and cancels an order, places a native bracket,
receives realtime order, position and trade events and sees its position close.

Skipped, with the reason, when no Python >= 3.12 is found (set ``ORDERGUARD_PXP_PYTHON`` to
point at one) or when project-x-py cannot be installed.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orderguard.clock import SystemClock
from orderguard.gateway import Gateway, GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-pxp"
SCENARIO = Path(__file__).with_name("pxp") / "scenario.py"
PXP_VERSION = "4.4.1"  # the version this scenario was written against
STEPS = ("login", "contract", "bars", "place", "modify", "cancel", "bracket", "events",
         "position_closed", "suite_events")  # fmt: skip


def _python_312() -> str | None:
    candidates = [os.environ.get("ORDERGUARD_PXP_PYTHON", "")]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in (12, 13, 14)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    if sys.version_info >= (3, 12):
        candidates.append(sys.executable)
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if probe.stdout.strip() == "True":
            return candidate
    return None


def _venv_python() -> Path:
    """The cached venv's interpreter, creating the venv if needed (skips when impossible)."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import project_x_py"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    base = _python_312()
    if base is None:
        pytest.skip("project-x-py needs Python >= 3.12 and none was found "
                    "(set ORDERGUARD_PXP_PYTHON)")  # fmt: skip
    made = subprocess.run([base, "-m", "venv", str(VENV)], capture_output=True, check=False)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"project-x-py=={PXP_VERSION}"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if made.returncode or install.returncode:
        pytest.skip(f"could not install project-x-py: {install.stderr.strip()[-300:]}")
    return python


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_project_x_py_trades_against_the_gateway() -> None:
    """project-x-py's TradingSuite logs in, trades a bracket and sees it close, over the wire."""
    python = await asyncio.to_thread(_venv_python)
    # The SDK stamps and checks tokens on the wall clock: the gateway runs on it too.
    gateway = Gateway(GatewayConfig(api_key="pxp-simulator-key-0123456789", seed=3),
                      clock=SystemClock())  # fmt: skip
    urls = await gateway.start()
    user, key = gateway.credentials
    env = {
        **os.environ,
        "PROJECTX_API_URL": urls.api,
        "PROJECTX_USER_HUB_URL": urls.user_hub,
        "PROJECTX_MARKET_HUB_URL": urls.market_hub,
        "PROJECTX_REALTIME_URL": urls.base,
        "PROJECT_X_USERNAME": user,
        "PROJECT_X_API_KEY": key,
        "ORDERGUARD_CONTROL_URL": urls.control,
    }
    try:
        process = await asyncio.create_subprocess_exec(
            str(python), str(SCENARIO), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    finally:
        await gateway.stop()
    text = output.decode(errors="replace")
    done = [line.split()[1] for line in text.splitlines() if line.startswith("STEP ")]
    failure = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert process.returncode == 0 and tuple(done) == STEPS, (done, failure, text[-3000:])
