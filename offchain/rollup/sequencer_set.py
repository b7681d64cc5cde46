"""Typed client of a rollup's SequencerSet: join, exit, withdraw, and the slot schedule.

Contract rules live in the contract: a call that breaks one is refused at gas estimation and
raises `ContractReverted` with its reason ("sequencer: ..."); nothing is sent.

`pick_leader` is the contract's draw in Python, so that a node can compute an epoch's whole
schedule from the operators read once (`SequencerSet.schedule`) instead of a call per slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ape.contracts import ContractInstance
from eth_abi import encode
from ethpm_types import ContractType
from pydantic import BaseModel

from offchain.chain.calls import event, transact, view
from offchain.chain.contracts import contract_at
from offchain.errors import InvalidInput
from offchain.hashing import keccak

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
BURN_ADDRESS = "0x000000000000000000000000000000000000dEaD"
# A call of the set records the seeds of the epochs begun since the last one (about 26k gas each,
# at most MAX_SEED_CATCHUP = 4). Estimated in an epoch's last block and mined in the next, a call
# records one more than its estimate paid for: every transaction that may record gets this margin.
SEED_MARGIN = 4 * 26_000
# A claim records its time (noteClaim). Estimated in the second of the proposer's last claim the
# write is a no-op; mined a second later it changes the slot and costs 2,900 gas more.
CLOCK_MARGIN = 5_000

_ERC20 = ContractType.model_validate(
    {
        "contractName": "ERC20",
        "abi": [
            {
                "type": "function",
                "name": "approve",
                "stateMutability": "nonpayable",
                "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
                "outputs": [{"name": "", "type": "bool"}],
            },
            {
                "type": "function",
                "name": "allowance",
                "stateMutability": "view",
                "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
                "outputs": [{"name": "", "type": "uint256"}],
            },
        ],
    }
)


class SequencerParams(BaseModel):
    """What the sequencer set was initialized with."""

    stake_token: str
    min_stake: int
    slot_length: int
    slots_per_epoch: int
    exit_delay: int
    challenge_window: int
    challenger_share_bps: int
    genesis_block: int
    identity_registry: str
    inbox: str
    dispute_game: str


class OperatorRecord(BaseModel):
    """An operator as the contract holds it (times are L1 timestamps, epochs count from 0)."""

    address: str
    agent_id: int
    stake: int  # staked; for an ejected operator, what was taken (still its weight until exit_epoch)
    eligible_from: int
    exit_epoch: int | None
    exit_requested_at: int | None
    last_claim_at: int | None
    open_disputes: int
    ejected: bool

    @property
    def active(self) -> bool:
        """In the set, not ejected, no exit asked (the contract's `isActive`)."""
        return not self.ejected and self.exit_epoch is None

    def drawn_in(self, epoch: int) -> bool:
        """Whether its stake counts in the draw of `epoch` (ejected or not)."""
        return self.eligible_from <= epoch and (self.exit_epoch is None or epoch < self.exit_epoch)


def draw_value(seed: bytes, slot: int) -> int:
    """The slot's random word: keccak256(abi.encode(seed, slot))."""
    if len(seed) != 32:
        raise InvalidInput("a seed is 32 bytes")
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, slot])), "big")


def pick_leader(seed: bytes, slot: int, epoch: int, operators: Sequence[OperatorRecord]) -> str | None:
    """The leader of `slot` in `epoch`, as the contract draws it from `operators` in set order.

    Stake-weighted pick; an ejected pick passes to the next operator drawn in the epoch and not
    ejected, in set order, cyclically. None when no operator may lead.
    """
    weights = [op.stake if op.drawn_in(epoch) else 0 for op in operators]
    pickable = [op.drawn_in(epoch) and not op.ejected for op in operators]
    if not any(pickable):
        return None
    draw = draw_value(seed, slot) % sum(weights)
    cumulative, picked = 0, 0
    while cumulative + weights[picked] <= draw:
        cumulative += weights[picked]
        picked += 1
    count = len(operators)
    index = next(i % count for i in range(picked, picked + count) if pickable[i % count])
    return operators[index].address


class SequencerSet:
    """The sequencer set of one rollup instance."""

    def __init__(self, contract: ContractInstance):
        self.contract = contract

    @classmethod
    def at(cls, address: str) -> SequencerSet:
        return cls(contract_at("SequencerSet", address))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def params(self) -> SequencerParams:
        c = self.contract
        return SequencerParams(
            stake_token=str(view(c, "stakeToken")),
            min_stake=int(view(c, "minStake")),
            slot_length=int(view(c, "slotLength")),
            slots_per_epoch=int(view(c, "slotsPerEpoch")),
            exit_delay=int(view(c, "exitDelay")),
            challenge_window=int(view(c, "challengeWindow")),
            challenger_share_bps=int(view(c, "challengerShareBps")),
            genesis_block=int(view(c, "genesisBlock")),
            identity_registry=str(view(c, "identityRegistry")),
            inbox=str(view(c, "inbox")),
            dispute_game=str(view(c, "disputeGame")),
        )

    # -- operators -------------------------------------------------------------------------------

    def join(self, operator: Any, agent_id: int, amount: int, approve: bool = True) -> int:
        """Stakes `amount` for `agent_id` (approving the stake token first unless told not to).

        Returns the first epoch the operator is drawn in.
        """
        if amount <= 0:
            raise InvalidInput("the stake must be positive")
        if approve:
            token = ContractInstance(view(self.contract, "stakeToken"), _ERC20)
            if int(view(token, "allowance", operator.address, self.address)) < amount:
                transact(token, "approve", self.address, amount, sender=operator)
        receipt = transact(self.contract, "join", agent_id, amount, sender=operator, gas_margin=SEED_MARGIN)
        return int(event(receipt, self.contract, "Joined").eligibleFrom)

    def request_exit(self, operator: Any) -> int:
        """Asks to leave; returns the exit epoch (the first it is no longer drawn in)."""
        receipt = transact(self.contract, "requestExit", sender=operator, gas_margin=SEED_MARGIN)
        return int(event(receipt, self.contract, "ExitRequested").exitEpoch)

    def withdraw(self, operator: Any) -> int:
        """Takes the stake back after the exit; returns the amount."""
        receipt = transact(self.contract, "withdraw", sender=operator, gas_margin=SEED_MARGIN)
        return int(event(receipt, self.contract, "Withdrawn").amount)

    def prune(self, caller: Any, operator: str) -> None:
        """Removes an ejected operator whose exit epoch has begun (anyone may)."""
        transact(self.contract, "prune", operator, sender=caller)

    def operator(self, address: str) -> OperatorRecord | None:
        """The operator's record, None if `address` is not in the set."""
        raw = view(self.contract, "getOperator", address)
        if int(raw.eligibleFrom) == 0:  # every operator is drawn from epoch 2 at the earliest
            return None
        return OperatorRecord(
            address=str(address),
            agent_id=int(raw.agentId),
            stake=int(raw.stake),
            eligible_from=int(raw.eligibleFrom),
            exit_epoch=int(raw.exitEpoch) or None,
            exit_requested_at=int(raw.exitRequestedAt) or None,
            last_claim_at=int(raw.lastClaimAt) or None,
            open_disputes=int(raw.openDisputes),
            ejected=bool(raw.ejected),
        )

    def operators(self) -> list[OperatorRecord]:
        """Every operator in the set, in draw order."""
        records = []
        for address in view(self.contract, "operators"):
            record = self.operator(str(address))
            if record is not None:
                records.append(record)
        return records

    def operator_count(self) -> int:
        return int(view(self.contract, "operatorCount"))

    def is_active(self, address: str) -> bool:
        return bool(view(self.contract, "isActive", address))

    def is_banned(self, address: str) -> bool:
        return bool(view(self.contract, "banned", address))

    def operator_of_agent(self, agent_id: int) -> str | None:
        address = str(view(self.contract, "operatorOfAgent", agent_id))
        return None if int(address, 16) == 0 else address

    # -- time and leaders ------------------------------------------------------------------------

    def current_slot(self) -> int:
        return int(view(self.contract, "currentSlot"))

    def current_epoch(self) -> int:
        return int(view(self.contract, "currentEpoch"))

    def epoch_start_block(self, epoch: int) -> int:
        return int(view(self.contract, "epochStartBlock", epoch))

    def seed_of(self, epoch: int) -> bytes:
        """The epoch's seed; `ContractReverted` ("sequencer: seed not fixed") before it begins."""
        return bytes(view(self.contract, "seedOf", epoch))

    def leader_of(self, slot: int) -> str | None:
        """The slot's leader, None if no operator may lead."""
        leader = str(view(self.contract, "leaderOf", slot))
        return None if int(leader, 16) == 0 else leader

    def total_stake_at(self, epoch: int) -> int:
        return int(view(self.contract, "totalStakeAt", epoch))

    def schedule(self, epoch: int) -> list[str | None]:
        """The leader of every slot of `epoch` (begun), computed here from the operators read once."""
        seed = self.seed_of(epoch)
        per_epoch = int(view(self.contract, "slotsPerEpoch"))
        operators = self.operators()
        first = epoch * per_epoch
        return [pick_leader(seed, slot, epoch, operators) for slot in range(first, first + per_epoch)]
