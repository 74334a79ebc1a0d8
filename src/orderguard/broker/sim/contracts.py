"""Contracts the simulated exchange lists, and how people name them.

ProjectX ids look like ``CON.F.US.<ROOT>.<MonthCode><YY>`` with ``symbolId`` ``F.US.<ROOT>``. The
E-mini roots differ from the CME tickers (NQ is ``ENQ``, ES is ``EP``), and users type either, so
:class:`ContractBook` resolves an id, a symbol id, a root, a CME ticker or a ``name``
(case-insensitive) to one contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from orderguard.models import Contract

# CME ticker -> ProjectX root, where they differ.
CME_ALIASES: dict[str, str] = {"NQ": "ENQ", "ES": "EP"}


def _contract(root: str, name: str, description: str, tick: str, value: str) -> Contract:
    return Contract(
        id=f"CON.F.US.{root}.Z26",
        name=name,
        description=description,
        tick_size=Decimal(tick),
        tick_value=Decimal(value),
        symbol_id=f"F.US.{root}",
        active=True,
    )


def default_contracts() -> tuple[Contract, ...]:
    """The December-2026 equity-index futures the simulator lists by default (CME tick values)."""
    return (
        _contract("MNQ", "MNQZ6", "Micro E-mini Nasdaq-100: December 2026", "0.25", "0.5"),
        _contract("MES", "MESZ6", "Micro E-mini S&P 500: December 2026", "0.25", "1.25"),
        _contract("ENQ", "NQZ6", "E-mini Nasdaq-100: December 2026", "0.25", "5"),
        _contract("EP", "ESZ6", "E-mini S&P 500: December 2026", "0.25", "12.5"),
    )


def root_of(contract: Contract) -> str:
    """``CON.F.US.MNQ.Z26`` -> ``MNQ`` (falls back to the symbol id's last part)."""
    parts = contract.id.split(".")
    if len(parts) >= 5:
        return parts[3]
    return contract.symbol_id.rsplit(".", 1)[-1]


class ContractBook:
    """Contracts by every name a user might type. Later contracts never shadow earlier ids."""

    def __init__(self, contracts: Iterable[Contract]) -> None:
        self._by_id: dict[str, Contract] = {}
        self._by_key: dict[str, Contract] = {}
        for contract in contracts:
            if contract.id in self._by_id:
                raise ValueError(f"duplicate contract id {contract.id}")
            self._by_id[contract.id] = contract
        # Exact ids first so that no alias can shadow an id; then the looser names.
        for contract in self._by_id.values():
            self._by_key.setdefault(contract.id.upper(), contract)
        for contract in self._by_id.values():
            root = root_of(contract)
            for key in (contract.symbol_id, root, contract.name):
                self._by_key.setdefault(key.upper(), contract)
        for ticker, root in CME_ALIASES.items():
            target = self._by_key.get(root)
            if target is not None:
                self._by_key.setdefault(ticker, target)

    def all(self) -> list[Contract]:
        return list(self._by_id.values())

    def get_exact(self, contract_id: str) -> Contract | None:
        """By exact contract id only, as the gateway's order and position endpoints take it."""
        return self._by_id.get(contract_id)

    def get(self, key: str) -> Contract | None:
        """The contract for an id, symbol id, root, CME ticker or name; None if unknown."""
        found = self._by_id.get(key)
        if found is not None:
            return found
        return self._by_key.get(key.strip().upper())

    def search(self, text: str, limit: int = 20) -> list[Contract]:
        """Fuzzy search like ``Contract/search``: substring of id, name, symbol or description.

        An exact hit (by :meth:`get`) comes first; at most ``limit`` results (ProjectX caps at 20).
        """
        needle = text.strip().upper()
        exact = self.get(text) if needle else None
        found: list[Contract] = [exact] if exact is not None else []
        for contract in self._by_id.values():
            if contract is exact:
                continue
            haystack = (contract.id, contract.name, contract.symbol_id, contract.description)
            if any(needle in field.upper() for field in haystack):
                found.append(contract)
        return found[:limit]


__all__ = ["CME_ALIASES", "ContractBook", "default_contracts", "root_of"]
