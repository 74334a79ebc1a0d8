"""Contract resolution by id or symbol, cached.

Contracts do not change during a session, so a resolved contract is cached for the manager's life.
Misses are not cached: a contract the broker did not know a minute ago may be listed now.
"""

from __future__ import annotations

from orderguard.broker.base import Broker
from orderguard.errors import UnknownContractError
from orderguard.models import Contract


class ContractResolver:
    """Maps what a caller types (``CON.F.US.MNQ.Z26``, ``MNQZ6``, ``MNQ``) to a Contract."""

    __slots__ = ("_broker", "_cache")

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._cache: dict[str, Contract] = {}

    def cached(self, key: str) -> Contract | None:
        return self._cache.get(key)

    async def resolve(self, key: object) -> Contract:
        """The contract for ``key`` or UnknownContractError; broker query errors propagate."""
        if not isinstance(key, str) or not key.strip():
            raise UnknownContractError(f"contract must be a non-empty string, got {key!r}")
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        contract = await self._broker.get_contract(key)
        if contract is None:
            contract = _pick(key, await self._broker.search_contracts(key))
        if contract is None:
            raise UnknownContractError(f"no contract matches {key!r}")
        self._cache[key] = contract
        self._cache[contract.id] = contract
        return contract


def _pick(key: str, candidates: list[Contract]) -> Contract | None:
    """Exact matches only (contract search is fuzzy, §8.14); the active contract first."""
    wanted = key.strip().upper()
    exact = [
        c
        for c in candidates
        if wanted in (c.id.upper(), c.name.upper(), c.symbol_id.upper())
        or c.symbol_id.upper().endswith("." + wanted)
    ]
    exact.sort(key=lambda c: not c.active)  # stable: keeps the broker's order within each group
    return exact[0] if exact else None


__all__ = ["ContractResolver"]
