"""Each decision of the default policy on its own: the founder's threshold, an operator's
check of the poster's reputation and pay, a consumer's seeded choice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from offchain.agents.policy import L1Costs, PosterStanding, RulePolicy


def _costs(gas: float = 70_000, p50: float = 100.0, payments: int = 10) -> L1Costs:
    return L1Costs(payments=payments, gas_per_payment=gas, latency_p50_ms=p50, payments_per_second=15.0)


@pytest.mark.parametrize(
    ("costs", "yes", "why"),
    [
        (_costs(gas=70_000), True, "above 30,000"),
        (_costs(gas=30_000), False, "cheap and fast"),  # at the threshold: not above it
        (_costs(gas=20_000, p50=400), True, "latency 400 ms is above 250"),
        (_costs(payments=0), False, "nothing measured"),
    ],
)
def test_the_founder__spins_up_a_rollup_only_past_its_threshold(costs, yes, why):
    decision = RulePolicy().spin_up_rollup(costs)
    assert decision.yes is yes and why in decision.reason


def _standing(ratings: int, mean: str) -> PosterStanding:
    return PosterStanding(agent_id=1, ratings=ratings, mean=Decimal(mean))


@pytest.mark.parametrize(
    ("standing", "pay", "yes", "why"),
    [
        (_standing(2, "90"), 50_000_000, True, "rated 90"),
        (_standing(0, "0"), 50_000_000, False, "0 ratings"),  # an unknown poster
        (_standing(3, "59.99"), 50_000_000, False, "below 60"),
        (_standing(3, "60"), 50_000_000, True, "rated 60"),
        (_standing(3, "95"), 999_999, False, "pays 999999 for a stake of 100000000"),  # < 1 % of the stake
    ],
)
def test_an_operator__takes_a_bounty_only_from_a_poster_in_good_standing_that_pays(standing, pay, yes, why):
    decision = RulePolicy().take_bounty(standing, pay, stake=100_000_000)
    assert decision.yes is yes and why in decision.reason


def test_a_consumer_s_choices__are_seeded():
    def picks(seed: int) -> list[str]:
        policy = RulePolicy(seed=seed)
        return [policy.pick(["a", "b", "c", "d"]) for _ in range(20)]

    assert picks(3) == picks(3) and picks(3) != picks(4)
