"""The README's quick-start example runs exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its quick-start block"
    return match.group(1)


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The quick-start block executes without error and prints what it promises."""
    script = tmp_path / "quickstart.py"
    script.write_text(_quickstart(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "filled: True" in done.stdout


def test_readme_names_both_setup_commands() -> None:
    """The README keeps its two set-up commands, and CI runs the test one verbatim."""
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    demo_cmd = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/orderguard demo"
    test_cmd = (
        "python3 -m venv .venv-test && .venv-test/bin/pip install -q -e '.[dev]' "
        "&& .venv-test/bin/pytest"
    )
    assert demo_cmd in text
    assert test_cmd in text
    assert test_cmd in ci
