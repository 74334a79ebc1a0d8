"""A killed process's tasks end with ProcessKilled: no "exception never retrieved" traceback.

Only that exception is swallowed; any other unretrieved task error still reaches the default
handler (a real bug must stay visible).
"""

from __future__ import annotations

import asyncio
from typing import Any

from orderguard.chaos.process import ProcessKilled
from orderguard.chaos.runner import _quiet_about_the_dead


class _Loop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.reported: list[dict[str, Any]] = []

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.reported.append(context)


def test_process_killed_is_quiet_and_other_errors_are_reported() -> None:
    loop = _Loop()
    try:
        _quiet_about_the_dead(
            loop, {"message": "never retrieved", "exception": ProcessKilled("p1")}
        )
        assert loop.reported == []
        boom = {"message": "never retrieved", "exception": RuntimeError("a real bug")}
        _quiet_about_the_dead(loop, boom)
        assert loop.reported == [boom]
    finally:
        loop.close()
