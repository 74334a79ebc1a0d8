"""Contract listing and lookup by id, symbol, root and CME ticker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.sim import ContractBook, SimExchange, default_contracts
from orderguard.models import Contract, OrderRequest, OrderSide, OrderType


def test_default_contracts_carry_projectx_ids_and_tick_economics() -> None:
    """MNQ, MES, ENQ and EP are listed with the tick size and value of §7."""
    table = {c.id: (c.symbol_id, c.tick_size, c.tick_value) for c in default_contracts()}
    assert table == {
        "CON.F.US.MNQ.Z26": ("F.US.MNQ", Decimal("0.25"), Decimal("0.5")),
        "CON.F.US.MES.Z26": ("F.US.MES", Decimal("0.25"), Decimal("1.25")),
        "CON.F.US.ENQ.Z26": ("F.US.ENQ", Decimal("0.25"), Decimal("5")),
        "CON.F.US.EP.Z26": ("F.US.EP", Decimal("0.25"), Decimal("12.5")),
    }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("CON.F.US.MNQ.Z26", "CON.F.US.MNQ.Z26"),
        ("F.US.MNQ", "CON.F.US.MNQ.Z26"),
        ("MNQ", "CON.F.US.MNQ.Z26"),
        ("mnq", "CON.F.US.MNQ.Z26"),
        ("NQ", "CON.F.US.ENQ.Z26"),
        ("ENQ", "CON.F.US.ENQ.Z26"),
        ("ES", "CON.F.US.EP.Z26"),
        ("EP", "CON.F.US.EP.Z26"),
        ("F.US.EP", "CON.F.US.EP.Z26"),
        ("MESZ6", "CON.F.US.MES.Z26"),
    ],
)
def test_lookup_resolves_every_name_a_user_types(
    exchange: SimExchange, key: str, expected: str
) -> None:
    """Ids, symbol ids, roots, CME tickers and names all resolve to the listed contract."""
    found = exchange.contract(key)
    assert found is not None
    assert found.id == expected


def test_lookup_of_an_unknown_name_is_none(exchange: SimExchange) -> None:
    """An unlisted symbol resolves to nothing rather than to a guess."""
    assert exchange.contract("CL") is None


def test_search_is_fuzzy_and_puts_the_exact_hit_first() -> None:
    """Searching "NQ" finds E-mini and Micro Nasdaq, with the exact (ENQ) match first."""
    found = [c.id for c in ContractBook(default_contracts()).search("NQ")]
    assert found[0] == "CON.F.US.ENQ.Z26"
    assert "CON.F.US.MNQ.Z26" in found


def test_search_is_capped() -> None:
    """Like Contract/search, at most ``limit`` contracts come back."""
    assert len(ContractBook(default_contracts()).search("CON", limit=2)) == 2


def test_duplicate_contract_ids_are_refused() -> None:
    """Two contracts with one id is a configuration error."""
    mnq = default_contracts()[0]
    with pytest.raises(ValueError, match="duplicate"):
        ContractBook([mnq, mnq])


def test_place_takes_exact_contract_ids_only(market: SimExchange) -> None:
    """Order/place with an alias instead of the id is ContractNotFound (8), as on the gateway."""
    result = market.place(OrderRequest(1, "MNQ", OrderType.MARKET, OrderSide.BUY, 1))
    assert (result.error_code, result.order_id) == (8, None)


def test_inactive_contract_is_rejected_with_code_9(clock: object) -> None:
    """Orders on a contract that is not active answer ContractNotActive (9)."""
    old = Contract("CON.F.US.MNQ.H26", "MNQH6", "expired", Decimal("0.25"), Decimal("0.5"),
                   "F.US.MNQ", active=False)  # fmt: skip
    ex = SimExchange(clock, contracts=[*default_contracts(), old])  # type: ignore[arg-type]
    ex.open_account()
    result = ex.place(OrderRequest(1, old.id, OrderType.LIMIT, OrderSide.BUY, 1, Decimal("1")))
    assert result.error_code == 9
