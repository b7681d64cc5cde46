"""Typed client of the BountyEscrow, and a feed of bounties rebuilt from its events.

Contract rules live in the contract: a call that breaks one is refused at gas estimation and
raises `ContractReverted` with the contract's reason; nothing is sent.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar

from ape import chain, project
from ape.contracts import ContractInstance
from pydantic import BaseModel, Field

from offchain.chain.calls import event, transact, view
from offchain.errors import InvalidInput
from offchain.identity.registries import Erc8004

ETH = "0x0000000000000000000000000000000000000000"


class Kind(IntEnum):
    TASK = 0
    SERVICE = 1


class Status(IntEnum):
    OPEN = 0
    CLAIMED = 1
    SUBMITTED = 2
    REJECTED = 3
    DISPUTED = 4
    COMPLETED = 5
    CLOSED = 6


class TaskTerms(BaseModel):
    """What a task bounty asks and pays (amounts in the asset's smallest unit)."""

    amount: int = Field(gt=0)
    deadline: int
    arbiter: str
    review_window: int = Field(gt=0)
    asset: str = ETH
    stake: int = Field(default=0, ge=0)
    validator: str = ETH
    threshold: int = Field(default=0, ge=0, le=100)
    agents_only: bool = False
    spec_uri: str = ""

    def as_tuple(self) -> tuple:
        return (
            self.asset,
            self.amount,
            self.deadline,
            self.stake,
            self.validator,
            self.threshold,
            self.arbiter,
            self.review_window,
            self.agents_only,
            self.spec_uri,
        )


class ServiceTerms(BaseModel):
    """A budget paid per attested unit of work."""

    amount: int = Field(gt=0)
    term_end: int
    attester: str
    rate: int = Field(gt=0)
    asset: str = ETH
    agents_only: bool = False
    spec_uri: str = ""

    def as_tuple(self) -> tuple:
        return (
            self.asset,
            self.amount,
            self.term_end,
            self.attester,
            self.rate,
            self.agents_only,
            self.spec_uri,
        )


class BountyState(BaseModel):
    """A bounty as the contract holds it."""

    id: int
    kind: Kind
    status: Status
    agents_only: bool
    deadline: int
    poster: str
    asset: str
    funded: int
    paid: int
    slashed: int
    refunded: int
    funders: int
    refunds: int


class Escrow:
    """The BountyEscrow of one deployment."""

    def __init__(self, contract: ContractInstance):
        self.contract = contract

    @classmethod
    def deploy(cls, deployer: Any, registries: Erc8004) -> Escrow:
        return cls(
            deployer.deploy(project.BountyEscrow, registries.identity.address, registries.validation.address)
        )

    # -- posting ---------------------------------------------------------------------------------

    def create_task(self, poster: Any, terms: TaskTerms) -> int:
        value = terms.amount if terms.asset == ETH else 0
        receipt = transact(self.contract, "createTask", terms.as_tuple(), sender=poster, value=value)
        return int(event(receipt, self.contract, "BountyCreated").id)

    def create_service(self, poster: Any, terms: ServiceTerms) -> int:
        value = terms.amount if terms.asset == ETH else 0
        receipt = transact(self.contract, "createService", terms.as_tuple(), sender=poster, value=value)
        return int(event(receipt, self.contract, "BountyCreated").id)

    def fund(self, funder: Any, bounty_id: int, amount: int) -> None:
        value = amount if self.bounty(bounty_id).asset == ETH else 0
        transact(self.contract, "fund", bounty_id, amount, sender=funder, value=value)

    # -- tasks -----------------------------------------------------------------------------------

    def claim(self, claimant: Any, bounty_id: int, agent_id: int = 0) -> None:
        bounty = self.bounty(bounty_id)
        stake = int(view(self.contract, "getTask", bounty_id).stake)
        value = stake if bounty.asset == ETH else 0
        transact(self.contract, "claim", bounty_id, agent_id, sender=claimant, value=value)

    def submit(self, claimant: Any, bounty_id: int, uri: str, digest: bytes) -> None:
        if len(digest) != 32:
            raise InvalidInput("the deliverable hash must be 32 bytes")
        transact(self.contract, "submit", bounty_id, uri, digest, sender=claimant)

    def accept(self, poster: Any, bounty_id: int) -> None:
        transact(self.contract, "accept", bounty_id, sender=poster)

    def accept_by_validation(self, caller: Any, bounty_id: int) -> None:
        """Completes the task with the validator's answer to the request about its deliverable."""
        transact(
            self.contract, "acceptByValidation", bounty_id, self.validation_request(bounty_id), sender=caller
        )

    def validation_request(self, bounty_id: int) -> bytes:
        """The validation request the bounty's validator must answer (zero until a submission)."""
        return bytes(view(self.contract, "getTask", bounty_id).validationRequest)

    def reject(self, poster: Any, bounty_id: int) -> None:
        transact(self.contract, "reject", bounty_id, sender=poster)

    def dispute(self, claimant: Any, bounty_id: int) -> None:
        transact(self.contract, "dispute", bounty_id, sender=claimant)

    def resolve(self, arbiter: Any, bounty_id: int, claimant_wins: bool) -> None:
        transact(self.contract, "resolve", bounty_id, claimant_wins, sender=arbiter)

    def reopen(self, poster: Any, bounty_id: int) -> None:
        """Reopens a task claimed without a stake, before the work is submitted."""
        transact(self.contract, "reopen", bounty_id, sender=poster)

    def cancel(self, poster: Any, bounty_id: int) -> None:
        """Closes an unclaimed task, or a service no current worker has served."""
        transact(self.contract, "cancel", bounty_id, sender=poster)

    def finalize(self, caller: Any, bounty_id: int) -> None:
        transact(self.contract, "finalize", bounty_id, sender=caller)

    # -- services --------------------------------------------------------------------------------

    def join(self, worker: Any, bounty_id: int, agent_id: int = 0) -> None:
        transact(self.contract, "join", bounty_id, agent_id, sender=worker)

    def leave(self, worker: Any, bounty_id: int) -> int:
        """Leaves a service bounty; returns what was credited on the way out (0 if nothing)."""
        receipt = transact(self.contract, "leave", bounty_id, sender=worker)
        logs = list(receipt.decode_logs(self.contract.PaidOut))
        return int(logs[0].amount) if logs else 0

    def remove_worker(self, poster: Any, bounty_id: int, worker: str) -> None:
        """The poster removes a worker the attester has counted nothing for since it joined."""
        transact(self.contract, "removeWorker", bounty_id, worker, sender=poster)

    def workers(self, bounty_id: int) -> list[str]:
        """The service's current workers."""
        return [str(worker) for worker in view(self.contract, "getService", bounty_id)[2]]

    def pay_out(self, caller: Any, bounty_id: int, worker: str) -> int:
        """Credits what the worker is due; returns the amount (0 if nothing was due)."""
        receipt = transact(self.contract, "payOut", bounty_id, worker, sender=caller)
        logs = list(receipt.decode_logs(self.contract.PaidOut))
        return int(logs[0].amount) if logs else 0

    # -- money out -------------------------------------------------------------------------------

    def refund(self, funder: Any, bounty_id: int) -> int:
        receipt = transact(self.contract, "refund", bounty_id, sender=funder)
        return int(event(receipt, self.contract, "Refunded").amount)

    def withdraw(self, account: Any, asset: str = ETH) -> int:
        receipt = transact(self.contract, "withdraw", asset, sender=account)
        return int(event(receipt, self.contract, "Withdrawn").amount)

    def withdrawable(self, account: str, asset: str = ETH) -> int:
        return int(view(self.contract, "withdrawable", asset, account))

    # -- reads and reputation --------------------------------------------------------------------

    def bounty(self, bounty_id: int) -> BountyState:
        raw = view(self.contract, "getBounty", bounty_id)
        return BountyState(
            id=bounty_id,
            kind=Kind(raw.kind),
            status=Status(raw.status),
            agents_only=raw.agentsOnly,
            deadline=raw.deadline,
            poster=str(raw.poster),
            asset=str(raw.asset),
            funded=raw.funded,
            paid=raw.paid,
            slashed=raw.slashed,
            refunded=raw.refunded,
            funders=raw.funders,
            refunds=raw.refunds,
        )

    def rate_worker(
        self, poster: Any, registries: Erc8004, bounty_id: int, value: int, decimals: int = 0, tag2: str = ""
    ) -> int:
        """The poster's ERC-8004 feedback on the agent that completed a task bounty."""
        if self.bounty(bounty_id).status != Status.COMPLETED:
            raise InvalidInput(f"bounty {bounty_id} is not completed")
        agent_id = int(view(self.contract, "getTask", bounty_id).agentId)
        if agent_id == 0:
            raise InvalidInput(f"bounty {bounty_id} was completed by no registered agent")
        return registries.give_feedback(
            poster,
            agent_id,
            value,
            decimals,
            tag1="bounty",
            tag2=tag2,
            endpoint=f"escrow:{self.contract.address}:{bounty_id}",
        )


class BountyView(BaseModel):
    """A bounty as its events tell it."""

    id: int
    kind: Kind
    poster: str
    asset: str
    deadline: int
    spec_uri: str
    status: Status = Status.OPEN
    funded: int = 0
    claimant: str | None = None
    agent_id: int | None = None
    workers: list[str] = Field(default_factory=list)
    paid: int = 0


class BountyFeed:
    """Open bounties and their state, rebuilt from the escrow's events (no storage reads)."""

    _STATUS: ClassVar[dict[str, Status]] = {
        "Claimed": Status.CLAIMED,
        "Submitted": Status.SUBMITTED,
        "Rejected": Status.REJECTED,
        "Disputed": Status.DISPUTED,
        "Completed": Status.COMPLETED,
        "Closed": Status.CLOSED,
    }

    def __init__(self, escrow: Escrow, start_block: int = 0):
        self.escrow = escrow
        self.bounties: dict[int, BountyView] = {}
        self._next_block = start_block

    def sync(self) -> dict[int, BountyView]:
        """Reads the events since the last sync, in chain order, and applies them."""
        head = chain.blocks.head.number
        if head < self._next_block:
            return self.bounties
        contract = self.escrow.contract
        names = (
            "BountyCreated",
            "Funded",
            "Claimed",
            "Reopened",
            *self._STATUS,
            "Joined",
            "Left",
            "WorkerRemoved",
            "PaidOut",
        )
        logs = []
        for name in names:
            logs.extend(getattr(contract, name).range(self._next_block, head + 1))
        logs.sort(key=lambda log: (log.block_number, log.log_index))
        for log in logs:
            self._apply(log)
        self._next_block = head + 1
        return self.bounties

    def open(self, kind: Kind | None = None) -> list[BountyView]:
        return [
            b for b in self.sync().values() if b.status == Status.OPEN and (kind is None or b.kind == kind)
        ]

    def _apply(self, log: Any) -> None:
        args = log.event_arguments
        name = log.event_name
        if name == "BountyCreated":
            self.bounties[args["id"]] = BountyView(
                id=args["id"],
                kind=Kind(args["kind"]),
                poster=str(args["poster"]),
                asset=str(args["asset"]),
                deadline=args["deadline"],
                spec_uri=args["specURI"],
            )
            return
        bounty = self.bounties.get(args["id"])
        if bounty is None:
            return  # created before the feed's first block
        if name == "Funded":
            bounty.funded += args["amount"]
        elif name == "Joined":
            bounty.workers.append(str(args["worker"]))
        elif name in ("Left", "WorkerRemoved"):
            bounty.workers.remove(str(args["worker"]))
        elif name == "Reopened":
            bounty.status, bounty.claimant, bounty.agent_id = Status.OPEN, None, None
        elif name == "PaidOut":
            bounty.paid += args["amount"]
        else:
            bounty.status = self._STATUS[name]
            if name == "Claimed":
                bounty.claimant, bounty.agent_id = str(args["claimant"]), args["agentId"]
            elif name == "Completed":
                bounty.paid += args["amount"]
