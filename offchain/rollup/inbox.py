"""Typed client of a rollup's Inbox: deposits, forced records, batches, claims, withdrawals.

Contract rules live in the contract: a call that breaks one is refused at gas estimation and
raises `ContractReverted` with the inbox's reason ("inbox: ..."); nothing is sent.
"""

from __future__ import annotations

from typing import Any

from ape import chain
from ape.contracts import ContractInstance
from pydantic import BaseModel

from offchain.chain.calls import event, logs, transact, view
from offchain.errors import InvalidInput
from offchain.hashing import keccak
from offchain.l2.batch import Batch
from offchain.l2.queue import QueueEntry, deposit_record, forced_record
from offchain.rollup.params import RollupParams
from offchain.rollup.sequencer_set import CLOCK_MARGIN, SEED_MARGIN

ETH = "0x0000000000000000000000000000000000000000"
ZERO_ROOT = b"\x00" * 32


class Claim(BaseModel):
    """A root claim beside a batch."""

    index: int
    root: bytes
    proposer: str
    proposed_at: int
    open_disputes: int
    bond: int
    final: bool


class AppendedBatch(BaseModel):
    """A batch as its `BatchAppended` event and its transaction tell it."""

    index: int
    poster: str
    batch_hash: bytes
    data_hash: bytes
    tx_root: bytes
    tx_count: int
    first_l2_block: int
    block_count: int
    queue_head: int
    l1_block: int
    l1_timestamp: int
    txn_hash: str


class Withdrawal(BaseModel):
    """An L2 withdrawal leaf (docs/l2-protocol.md §State leaves) to pay on L1."""

    account: str
    nonce: int
    token: str
    amount: int
    recipient: str


class Inbox:
    """The Inbox of one rollup instance."""

    def __init__(self, contract: ContractInstance):
        self.contract = contract

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def params(self) -> RollupParams:
        raw = view(self.contract, "params")
        return RollupParams(
            chain_id=raw.chainId,
            stake_token=str(raw.stakeToken),
            min_stake=raw.minStake,
            slot_length=raw.slotLength,
            slots_per_epoch=raw.slotsPerEpoch,
            exit_delay=raw.exitDelay,
            challenge_window=raw.challengeWindow,
            force_inclusion_delay=raw.forceInclusionDelay,
            escape_delay=raw.escapeDelay,
            max_timestamp_lag=raw.maxTimestampLag,
            proposer_bond=raw.proposerBond,
            challenger_bond=raw.challengerBond,
            challenger_share_bps=raw.challengerShareBps,
            dispute_clock=raw.disputeClock,
        )

    # -- deposits and forced records ---------------------------------------------------------

    def deposit_eth(self, sender: Any, to: str, amount: int) -> int:
        """Queues a deposit of `amount` wei to `to` on L2; returns its queue index."""
        receipt = transact(self.contract, "depositETH", to, sender=sender, value=amount)
        return int(event(receipt, self.contract, "Deposited").queueIndex)

    def deposit_erc20(self, sender: Any, token: ContractInstance, to: str, amount: int) -> int:
        """Approves the inbox for `amount` of `token` and queues its deposit; returns the queue index."""
        transact(token, "approve", self.address, amount, sender=sender)
        receipt = transact(self.contract, "depositERC20", token.address, to, amount, sender=sender)
        return int(event(receipt, self.contract, "Deposited").queueIndex)

    def enqueue_record(self, sender: Any, record: bytes) -> int:
        """Queues a signed L2 record from L1 (checked here as the inbox checks it); its queue index."""
        receipt = transact(self.contract, "enqueueRecord", forced_record(record), sender=sender)
        return int(event(receipt, self.contract, "RecordQueued").queueIndex)

    def queue(self, start: int = 0, start_block: int = 0) -> list[QueueEntry]:
        """Queue entries `start` … from the inbox's events, with the L1 time each was queued."""
        entries = self.queue_entries(start_block, chain.blocks.head.number)
        return [entries[i] for i in sorted(entries) if i >= start]

    def queue_entries(self, first_block: int, last_block: int) -> dict[int, QueueEntry]:
        """The entries queued in L1 blocks `first_block` … `last_block`, by queue index."""
        found = [
            *logs(self.contract, "Deposited", first_block, last_block),
            *logs(self.contract, "RecordQueued", first_block, last_block),
        ]
        entries: dict[int, QueueEntry] = {}
        times: dict[int, int] = {}
        for log in found:
            args = log.event_arguments
            if log.event_name == "Deposited":
                record = deposit_record(args["depositIndex"], args["to"], args["token"], args["amount"])
            else:
                record = bytes(args["record"])
            if log.block_number not in times:
                times[log.block_number] = chain.blocks[log.block_number].timestamp
            entries[args["queueIndex"]] = QueueEntry(record, times[log.block_number])
        return entries

    def pending_queue(self, start_block: int = 0) -> list[QueueEntry]:
        """The entries no batch has carried yet, from the head."""
        return self.queue(int(view(self.contract, "queueHead")), start_block)

    # -- batches and claims ------------------------------------------------------------------

    def append_batch(
        self, sender: Any, batch: Batch | bytes, claimed_root: bytes = ZERO_ROOT, bond: int = 0
    ) -> int:
        """Appends a batch (with a root claim unless `claimed_root` is zero); returns its index."""
        return self.post_batch(sender, batch, claimed_root, bond).index

    def post_batch(
        self, sender: Any, batch: Batch | bytes, claimed_root: bytes = ZERO_ROOT, bond: int = 0
    ) -> AppendedBatch:
        """`append_batch`, returning the appended batch as its event describes it."""
        data = batch.encode() if isinstance(batch, Batch) else batch
        if len(claimed_root) != 32:
            raise InvalidInput("a state root is 32 bytes")
        receipt = transact(
            self.contract,
            "appendBatch",
            data,
            claimed_root,
            sender=sender,
            value=bond,
            gas_margin=SEED_MARGIN,
        )
        log = event(receipt, self.contract, "BatchAppended")
        return _appended(log.event_arguments, receipt.block_number, str(receipt.txn_hash))

    def propose_root(self, sender: Any, index: int, root: bytes, bond: int = 0) -> None:
        if len(root) != 32:
            raise InvalidInput("a state root is 32 bytes")
        transact(
            self.contract, "proposeRoot", index, root, sender=sender, value=bond, gas_margin=CLOCK_MARGIN
        )

    def finalize(self, sender: Any, max_count: int = 256) -> int:
        """Finalizes the claims that are due; returns how many."""
        receipt = transact(self.contract, "finalize", max_count, sender=sender)
        return len(list(receipt.decode_logs(self.contract.ClaimFinalized)))

    def proposal(self, index: int) -> tuple[bytes, str, int]:
        """The root claimed for batch `index`, its proposer and its time: one view of the three
        `claim` reads (a watchtower checks every open claim each round)."""
        raw = view(self.contract, "claimOf", index)
        return bytes(raw.root), str(raw.proposer), int(raw.proposedAt)

    def claim(self, index: int) -> Claim:
        raw = view(self.contract, "claimOf", index)
        return Claim(
            index=index,
            root=bytes(raw.root),
            proposer=str(raw.proposer),
            proposed_at=raw.proposedAt,
            open_disputes=raw.openDisputes,
            bond=int(view(self.contract, "bondOf", index)),
            final=bool(view(self.contract, "isFinal", index)),
        )

    def batches(self, start_block: int = 0, stop_block: int | None = None) -> list[AppendedBatch]:
        """Every batch appended in blocks `start_block` to `stop_block` (the head if None), in
        order, from the inbox's events."""
        stop = chain.blocks.head.number if stop_block is None else stop_block
        out = []
        for log in logs(self.contract, "BatchAppended", start_block, stop):
            out.append(_appended(log.event_arguments, log.block_number, str(log.transaction_hash)))
        return sorted(out, key=lambda b: b.index)

    def preimage(self, batch: AppendedBatch) -> bytes:
        """The preimage of the batch's stored hash (what a dispute presents; §Batches, Batch hash)."""
        previous = bytes(view(self.contract, "batchHashOf", batch.index - 1)) if batch.index else ZERO_ROOT
        preimage = previous + batch.data_hash + batch.tx_root + batch.tx_count.to_bytes(4, "big")
        preimage += bytes.fromhex(batch.poster[2:])
        if keccak(preimage) != batch.batch_hash:
            raise InvalidInput(f"batch {batch.index}: its event does not give its stored hash")
        return preimage

    def batch_data(self, batch: AppendedBatch) -> bytes:
        """The data of an appended batch, read back from its L1 transaction's calldata."""
        calldata = bytes(chain.provider.web3.eth.get_transaction(batch.txn_hash)["input"])
        _, args = self.contract.decode_input(calldata)
        data = bytes(args["data"])
        if keccak(data) != batch.data_hash:
            raise InvalidInput(f"transaction {batch.txn_hash} does not carry batch {batch.index}")
        return data

    # -- withdrawals -------------------------------------------------------------------------

    def finalize_withdrawal(
        self, sender: Any, batch_index: int, withdrawal: Withdrawal, proof: bytes
    ) -> None:
        """Pays `withdrawal` on L1 against the final claim of `batch_index` with its leaf's proof."""
        transact(
            self.contract,
            "finalizeWithdrawal",
            batch_index,
            withdrawal.account,
            withdrawal.nonce,
            withdrawal.token,
            withdrawal.amount,
            withdrawal.recipient,
            proof,
            sender=sender,
        )

    def withdrawn(self, key: bytes) -> bool:
        return bool(view(self.contract, "withdrawn", key))

    # -- counters ----------------------------------------------------------------------------

    def count(self, name: str, *args: Any) -> int:
        """An integer view: batchCount, claimCount, finalizedCount, queueLength, queueHead, held, ..."""
        return int(view(self.contract, name, *args))


def _appended(args: dict, l1_block: int, txn_hash: str) -> AppendedBatch:
    """An appended batch from its BatchAppended event's arguments."""
    return AppendedBatch(
        index=args["index"],
        poster=str(args["poster"]),
        batch_hash=bytes(args["batchHash"]),
        data_hash=bytes(args["dataHash"]),
        tx_root=bytes(args["txRoot"]),
        tx_count=args["txCount"],
        first_l2_block=args["firstL2Block"],
        block_count=args["blockCount"],
        queue_head=args["queueHead"],
        l1_block=l1_block,
        l1_timestamp=chain.blocks[l1_block].timestamp,
        txn_hash=txn_hash,
    )


class QueueCursor:
    """The inbox's queue as far as L1 has been read; `sync` reads on from where it stopped, so
    that a sequencer's hot path takes queue entries with no call to L1."""

    def __init__(self, inbox: Inbox):
        self.inbox = inbox
        self.entries: dict[int, QueueEntry] = {}
        self.next_block = 0  # the first L1 block not read yet

    def sync(self) -> None:
        head = chain.provider.web3.eth.block_number  # one light call when nothing is new
        if head >= self.next_block:
            self.entries.update(self.inbox.queue_entries(self.next_block, head))
            self.next_block = head + 1

    def since(self, start: int) -> list[QueueEntry]:
        """The entries read so far from queue index `start` on, in order, without gaps."""
        out = []
        while start + len(out) in self.entries:
            out.append(self.entries[start + len(out)])
        return out
