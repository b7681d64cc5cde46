"""What agents decide, behind one small interface.

A `Policy` answers the questions the main job asks an agent: should the founder spin up a rollup
given what L1 payments cost, should an operator take a bounty from this poster, which service a
consumer calls next. `RulePolicy` answers with plain thresholds and a seeded random generator,
so that a run is reproducible; an LLM-backed policy would implement the same three methods.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel


class L1Costs(BaseModel):
    """What the founder measured of x402 payments on L1."""

    payments: int
    gas_per_payment: float
    latency_p50_ms: float
    payments_per_second: float


class PosterStanding(BaseModel):
    """A bounty poster's ERC-8004 reputation, from the raters an operator trusts."""

    agent_id: int
    ratings: int
    mean: Decimal


@dataclass(frozen=True)
class Decision:
    yes: bool
    reason: str


class Policy(Protocol):
    def spin_up_rollup(self, costs: L1Costs) -> Decision:
        """The founder: is L1 too dear or too slow for these payments?"""
        ...

    def take_bounty(self, standing: PosterStanding, pay: int, stake: int) -> Decision:
        """An operator: work for this poster, for `pay`, staking `stake`?"""
        ...

    def pick(self, options: list[str]) -> str:
        """A consumer: which of these services to call next."""
        ...


@dataclass
class RulePolicy:
    """Deterministic rules (the defaults of `ape run bootstrap`), seeded for the choices."""

    seed: int = 7
    max_gas_per_payment: int = 30_000  # above this an L1 payment costs more than the rollup's
    max_latency_ms: float = 250.0  # above this a payment is too slow for a request
    min_rating: Decimal = Decimal(60)  # out of 100
    min_ratings: int = 1
    min_pay_per_stake: Decimal = Decimal("0.01")  # what a bounty must pay per unit staked

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def spin_up_rollup(self, costs: L1Costs) -> Decision:
        if costs.payments == 0:
            return Decision(False, "nothing measured yet")
        if costs.gas_per_payment > self.max_gas_per_payment:
            return Decision(
                True, f"{costs.gas_per_payment:,.0f} gas per payment is above {self.max_gas_per_payment:,}"
            )
        if costs.latency_p50_ms > self.max_latency_ms:
            return Decision(
                True, f"p50 latency {costs.latency_p50_ms:.0f} ms is above {self.max_latency_ms:.0f}"
            )
        return Decision(False, "L1 is cheap and fast enough for these payments")

    def take_bounty(self, standing: PosterStanding, pay: int, stake: int) -> Decision:
        if standing.ratings < self.min_ratings:
            return Decision(False, f"the poster has {standing.ratings} ratings from raters we trust")
        if standing.mean < self.min_rating:
            return Decision(False, f"the poster's mean rating {standing.mean} is below {self.min_rating}")
        if stake and Decimal(pay) / Decimal(stake) < self.min_pay_per_stake:
            return Decision(False, f"it pays {pay} for a stake of {stake}")
        return Decision(True, f"poster rated {standing.mean} by {standing.ratings}; pays {pay}")

    def pick(self, options: list[str]) -> str:
        return self._rng.choice(options)
