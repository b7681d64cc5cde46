"""Typed client of a rollup's DisputeGame, and the implementation the factory clones.

Contract rules live in the contract: a move that breaks one is refused at gas estimation and
raises ContractReverted with the game's reason; nothing is sent. The data of each move comes
from `offchain/l2/dispute.py` (BatchTrace).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ape import chain, project
from ape.contracts import ContractInstance
from pydantic import BaseModel

from offchain.chain.calls import event, transact, view
from offchain.chain.contracts import contract_at
from offchain.rollup.sequencer_set import SEED_MARGIN

# Parts per reveal of the games the project deploys. bench/dispute_gas.py measured 2 to 64: 16 is
# the cheapest whole dispute over 16 and 256 transactions and within 3 % of the cheapest (64) over
# 2,048, in 3 rounds where bisection takes 11 (docs/rollup.md, Dispute game).
DEFAULT_ARITY = 16


class Outcome(IntEnum):
    NONE = 0
    OPEN = 1
    DEFENDER_WON = 2
    CHALLENGER_WON = 3
    MOOT = 4


class GameState(BaseModel):
    """One game as the contract holds it."""

    game_id: int
    challenger: str
    defender: str
    claim_index: int
    lo: int
    hi: int
    tx_count: int
    outcome: Outcome
    defender_to_move: bool
    root_lo: bytes
    root_hi: bytes
    last_move_at: int
    defender_used: int
    challenger_used: int
    moves: int
    proposed_at: int
    claim_root: bytes

    @property
    def at_one_step(self) -> bool:
        return self.hi - self.lo == 1


def deploy_implementation(deployer: Any, arity: int = DEFAULT_ARITY) -> ContractInstance:
    """Deploys a OneStepVerifier and the DisputeGame implementation that rollups clone."""
    verifier = deployer.deploy(project.OneStepVerifier)
    return deployer.deploy(project.DisputeGame, verifier.address, arity)


class DisputeGame:
    """The dispute game of one rollup."""

    def __init__(self, contract: ContractInstance):
        self.contract = contract

    @classmethod
    def at(cls, address: str) -> DisputeGame:
        return cls(contract_at("DisputeGame", address))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @property
    def arity(self) -> int:
        return int(view(self.contract, "ARITY"))

    @property
    def bond(self) -> int:
        return int(view(self.contract, "challengerBond"))

    # -- moves -----------------------------------------------------------------------------------

    def open(self, challenger: Any, claim_index: int, preimage: bytes) -> int:
        """Disputes claim `claim_index` with the challenger bond; returns the game id."""
        # A game decided at open (an empty batch) slashes, and the slash records seeds (SEED_MARGIN).
        receipt = transact(
            self.contract,
            "open",
            claim_index,
            preimage,
            sender=challenger,
            value=self.bond,
            gas_margin=SEED_MARGIN,
        )
        return int(event(receipt, self.contract, "GameOpened").gameId)

    def reveal(self, defender: Any, game_id: int, roots: list[bytes]) -> None:
        transact(self.contract, "reveal", game_id, roots, sender=defender)

    def pick(self, challenger: Any, game_id: int, roots: list[bytes], part: int) -> None:
        transact(self.contract, "pick", game_id, roots, part, sender=challenger)

    def step(self, sender: Any, game_id: int, preimage: bytes, proof: bytes) -> Outcome:
        receipt = transact(
            self.contract, "step", game_id, preimage, proof, sender=sender, gas_margin=SEED_MARGIN
        )
        return Outcome(int(event(receipt, self.contract, "GameResolved").outcome))

    def timeout(self, sender: Any, game_id: int) -> Outcome:
        receipt = transact(self.contract, "timeout", game_id, sender=sender, gas_margin=SEED_MARGIN)
        return Outcome(int(event(receipt, self.contract, "GameResolved").outcome))

    def close(self, sender: Any, game_id: int) -> None:
        transact(self.contract, "close", game_id, sender=sender)

    def withdraw_credit(self, account: Any) -> int:
        receipt = transact(self.contract, "withdrawCredit", sender=account)
        return int(event(receipt, self.contract, "CreditWithdrawn").amount)

    # -- views -----------------------------------------------------------------------------------

    def game(self, game_id: int) -> GameState:
        raw = view(self.contract, "getGame", game_id)
        return GameState(
            game_id=game_id,
            challenger=str(raw.challenger),
            defender=str(raw.defender),
            claim_index=raw.claimIndex,
            lo=raw.lo,
            hi=raw.hi,
            tx_count=raw.txCount,
            outcome=Outcome(raw.outcome),
            defender_to_move=raw.defenderToMove,
            root_lo=bytes(raw.rootLo),
            root_hi=bytes(raw.rootHi),
            last_move_at=raw.lastMoveAt,
            defender_used=raw.defenderUsed,
            challenger_used=raw.challengerUsed,
            moves=raw.moves,
            proposed_at=raw.proposedAt,
            claim_root=bytes(raw.claimRoot),
        )

    def revealed_roots(self, game_id: int) -> list[bytes]:
        """The roots of the game's last reveal, from its RootsRevealed event."""
        head = chain.blocks.head.number
        logs = list(self.contract.RootsRevealed.range(0, head + 1, search_topics={"gameId": game_id}))
        return [bytes(root) for root in logs[-1].event_arguments["roots"]] if logs else []

    def cut_points(self, game_id: int) -> list[int]:
        return [int(p) for p in view(self.contract, "cutPoints", game_id)]

    def credit(self, account: str) -> int:
        return int(view(self.contract, "credits", account))

    def game_count(self) -> int:
        return int(view(self.contract, "gameCount"))
