"""Fixtures for the recovery-engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from .rig import Rig, build_rig

RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig() -> AsyncIterator[RigFactory]:
    """Build rigs (keywords as ``build_rig``); every manager is cleaned up afterwards."""
    rigs: list[Rig] = []

    async def build(**kw: Any) -> Rig:
        rig = await build_rig(**kw)
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        await rig.manager.cleanup()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    """A fault-free rig."""
    return await make_rig()
