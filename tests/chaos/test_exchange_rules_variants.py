"""Chaos runs a share of every batch of seeds under the harsh and random readings of the
exchange's unconfirmed rules (issue 15.2), and a replay says which."""

from __future__ import annotations

from collections import Counter

import pytest

from orderguard.broker.sim.rules import ExchangeRules
from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.runner import Variants, _SeedRun
from orderguard.clock import VirtualClock


def test_mixed_draws_default_harsh_and_random_mixes_per_seed() -> None:
    drawn = [Variants.of(seed, ChaosConfig()).exchange_rules for seed in range(400)]
    kinds = Counter(rule.partition(":")[0] for rule in drawn)
    assert set(kinds) == {"default", "harsh", "mixed"}
    assert 150 < kinds["default"] < 250 and kinds["harsh"] > 60 and kinds["mixed"] > 60
    assert drawn == [Variants.of(seed, ChaosConfig()).exchange_rules for seed in range(400)]


def test_a_forced_profile_is_every_seeds_and_the_replay_names_it() -> None:
    config = ChaosConfig(exchange_rules="harsh")
    assert {Variants.of(seed, config).exchange_rules for seed in range(20)} == {"harsh"}
    assert "--exchange-rules harsh" in config.replay(7)
    assert "--exchange-rules" not in ChaosConfig().replay(7)


def test_the_seeds_exchange_runs_the_drawn_rules() -> None:
    seed = next(s for s in range(50) if Variants.of(s, ChaosConfig()).exchange_rules == "harsh")
    run = _SeedRun(seed, ChaosConfig(), VirtualClock())
    assert run.exchange.rules == ExchangeRules.harsh()


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exchange rules profile"):
        ChaosConfig(exchange_rules="kind")
