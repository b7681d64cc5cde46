"""Typed client of the RollupFactory: one call spins up a rollup instance."""

from __future__ import annotations

from typing import Any

from ape import project
from ape.contracts import ContractInstance
from pydantic import BaseModel

from offchain.chain.calls import event, transact, view
from offchain.chain.contracts import contract_at
from offchain.rollup.inbox import Inbox
from offchain.rollup.params import RollupParams

NO_DISPUTE_GAME = "0x0000000000000000000000000000000000000000"


class RollupInstance(BaseModel):
    """The contracts of one rollup, as the factory lists them."""

    chain_id: int
    inbox: str
    sequencer_set: str
    dispute_game: str
    creator: str
    created_at: int

    def inbox_client(self) -> Inbox:
        return Inbox(contract_at("Inbox", self.inbox))


class RollupFactory:
    """The RollupFactory of one deployment."""

    def __init__(self, contract: ContractInstance):
        self.contract = contract

    @classmethod
    def deploy(
        cls, deployer: Any, identity_registry: str, dispute_game: str = NO_DISPUTE_GAME
    ) -> RollupFactory:
        """Deploys the implementations once and the factory that clones them."""
        inbox = deployer.deploy(project.Inbox)
        sequencer_set = deployer.deploy(project.SequencerSet)
        return cls(
            deployer.deploy(
                project.RollupFactory, inbox.address, sequencer_set.address, dispute_game, identity_registry
            )
        )

    def create(self, creator: Any, params: RollupParams) -> RollupInstance:
        """Spins up a rollup with `params`; its chain id must be new to this factory."""
        receipt = transact(self.contract, "createRollup", params.as_tuple(), sender=creator)
        created = event(receipt, self.contract, "RollupCreated")
        return self.rollup(int(created.chainId))

    def rollup(self, chain_id: int) -> RollupInstance:
        return self._instance(view(self.contract, "rollupOf", chain_id))

    def rollups(self) -> list[RollupInstance]:
        out: list[RollupInstance] = []
        while True:
            page = view(self.contract, "rollups", len(out))
            out += [self._instance(raw) for raw in page]
            if len(page) < int(view(self.contract, "PAGE")):
                return out

    @staticmethod
    def _instance(raw: Any) -> RollupInstance:
        return RollupInstance(
            chain_id=raw.chainId,
            inbox=str(raw.inbox),
            sequencer_set=str(raw.sequencerSet),
            dispute_game=str(raw.disputeGame),
            creator=str(raw.creator),
            created_at=raw.createdAt,
        )
