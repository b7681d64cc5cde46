"""A rollup's parameters, as RollupFactory.createRollup takes them (contracts/interfaces/IRollup.sol)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from offchain.l2.batch import MAX_TIMESTAMP_LAG

DAY = 86_400


class RollupParams(BaseModel):
    """Times in seconds, slots in L1 blocks, bonds in wei, stakes in the stake token's units.

    The defaults suit a devnet run by agents: short windows so that a demo finalizes in minutes.
    """

    chain_id: int = Field(gt=0, lt=2**64)
    stake_token: str
    min_stake: int = Field(gt=0)
    slot_length: int = Field(default=4, ge=1, lt=2**64)
    slots_per_epoch: int = Field(default=8, ge=1, lt=2**64)
    exit_delay: int = Field(default=600, gt=0, lt=2**64)
    challenge_window: int = Field(default=300, gt=0, lt=2**64)
    force_inclusion_delay: int = Field(default=600, gt=0, lt=2**64)
    escape_delay: int = Field(default=1_800, gt=0, lt=2**64)
    max_timestamp_lag: int = Field(default=MAX_TIMESTAMP_LAG, gt=0, lt=2**64)
    proposer_bond: int = Field(default=10**17, gt=0)
    challenger_bond: int = Field(default=10**17, gt=0)
    challenger_share_bps: int = Field(default=5_000, ge=0, le=10_000)
    dispute_clock: int = Field(default=300, gt=0, lt=2**64)

    @model_validator(mode="after")
    def _ordered(self) -> RollupParams:
        if self.exit_delay < self.challenge_window:
            raise ValueError(
                "exit_delay must be at least challenge_window (a leaving operator stays slashable)"
            )
        if self.force_inclusion_delay >= self.escape_delay:
            raise ValueError("force_inclusion_delay must be shorter than escape_delay")
        return self

    def as_tuple(self) -> tuple:
        return (
            self.chain_id,
            self.stake_token,
            self.min_stake,
            self.slot_length,
            self.slots_per_epoch,
            self.exit_delay,
            self.challenge_window,
            self.force_inclusion_delay,
            self.escape_delay,
            self.max_timestamp_lag,
            self.proposer_bond,
            self.challenger_bond,
            self.challenger_share_bps,
            self.dispute_clock,
        )
