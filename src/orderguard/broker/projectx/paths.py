"""Where a real account's journal lives by default."""

from __future__ import annotations

import os
import re
from pathlib import Path


def state_dir() -> Path:
    """``$XDG_STATE_HOME/orderguard``, else ``~/.local/state/orderguard``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "orderguard"


def _safe(part: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", part.strip()).strip("._")
    return cleaned or "default"


def default_journal_path(firm: str, account: str | int, *, create: bool = True) -> Path:
    """``~/.local/state/orderguard/<firm>-<account>.db``: one durable journal per account.

    The directory is created owner-only (0700) unless ``create=False``; the journal records
    order intents and tags, which say what you trade.
    """
    directory = state_dir()
    if create:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / f"{_safe(firm)}-{_safe(str(account))}.db"


__all__ = ["default_journal_path", "state_dir"]
