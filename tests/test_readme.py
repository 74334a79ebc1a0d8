"""The README's quick-start example runs exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"README.md lost its {marker} block"
    return match.group(1)


def _run(tmp_path: Path, marker: str) -> str:
    script = tmp_path / f"{marker}.py"
    script.write_text(_block(marker), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The quick-start block executes without error and prints what it promises."""
    assert "filled: True" in _run(tmp_path, "quickstart")


def test_readme_durable_journal_example_recovers_the_bracket(tmp_path: Path) -> None:
    """The durable-journal block: the next run resumes the protected bracket from the journal
    (not rolled back, not flattened), and the target closes the position."""
    out = _run(tmp_path, "durable")
    assert "first run: PROTECTED" in out
    assert "recovered: bracket_order in_progress -> in_progress saga restarted" in out
    assert "after the target: FLAT position 0" in out


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
