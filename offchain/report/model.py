"""The figures of one run of the main job, each measured in that run (JSON-ready)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PathFigures(BaseModel):
    """x402 payments on one network, measured from the consumers' side."""

    network: str
    payments: int
    seconds: float  # wall time of the payment phase
    per_second: float
    latency_ms: dict[str, float]  # p50, p95, p99 of request-to-paid-response
    confirmation_ms: dict[str, float] = Field(
        default_factory=dict
    )  # p50, p95, p99 of the facilitator's settle
    l1_gas: int  # L1 gas the payments cost (settlements on L1; batches on the L2)
    gas_per_payment: float
    batches: int = 0  # L2 only: the batches that carried them


class Move(BaseModel):
    event: str  # GameOpened, RootsRevealed, PartPicked, StepProven, GameResolved
    by: str  # the agent that sent it
    gas: int
    block: int


class DisputeFigures(BaseModel):
    fault: str
    liar: str
    claim_index: int
    game_id: int
    outcome: str
    moves: list[Move]
    gas: int
    slashed: int  # the liar's stake units taken
    reproposed: int  # right roots claimed again by the watchtower


class ReputationPoint(BaseModel):
    phase: str
    ratings: int
    mean: float


class AgentLine(BaseModel):
    name: str
    role: str
    agent_id: int
    address: str
    earned: int  # AUSD units: escrow pay, services' income, watchtower's reward
    stake: dict[str, int] = Field(default_factory=dict)  # phase -> stake units in the sequencer set
    reputation: list[ReputationPoint] = Field(default_factory=list)


class Conservation(BaseModel):
    """Of the AUSD moved into the rollup: where it is (every figure read from L1 and the node)."""

    deposits: int
    l2_balances: int
    withdrawals: int

    @property
    def holds(self) -> bool:
        return self.deposits == self.l2_balances + self.withdrawals


class RunReport(BaseModel):
    options: dict[str, object]
    contracts: dict[str, str] = Field(default_factory=dict)  # name -> address on this run's L1
    seconds: float
    decision: str
    l1: PathFigures
    l2: PathFigures | None = None
    dispute: DisputeFigures | None = None
    agents: list[AgentLine] = Field(default_factory=list)
    conservation: Conservation | None = None
    payments_settled_once: bool = False  # each network's services earned price x payments, exactly
    extra_l2_payments: int = 0  # paid on the L2 while waiting for the liar's slot (not in `l2`)
    payments_resent: int = 0  # soft-confirmed, dropped with their slot, sent again by the facilitator
    batches_posted: int = 0
    batches_final: int = 0
    node_agrees: bool = False
    errors: list[str] = Field(default_factory=list)
