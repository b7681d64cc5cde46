"""The sequencer's state machine: admission against the pending state, blocks, batches.

The L2 state the sequencer builds on is what L1 says: `Derivation` replays the posted batches.
Over it lie the blocks the sequencer has built and not yet posted. A submitted record is run
against that pending state with the reference STF; if it would fail, it is refused with the
status and nothing changes; if it applies, it takes the next position of the open block and the
caller gets a signed soft confirmation of that place at once.

A block opens with the L1 queue's entries that are not in any block yet (deposits and forced
records must come first, in queue order, §Queue) and then takes transactions. `post` seals the
unposted blocks and appends them as one batch, executed with the Block-STM executor, with its
claimed post-state root. Only sealing and the bookkeeping after the batch is mined hold the
core's lock: submissions go on into new blocks while the batch executes and its transaction is
mined. The promised places are exactly the posted ones: a block's contents never change once a
transaction in it is confirmed, and a sealed batch that fails to post is retried as it is.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from offchain.errors import AgentL2Error, InvalidInput
from offchain.executor.block import run_block
from offchain.l2.batch import MAX_BLOCKS_PER_BATCH, MAX_TXS_PER_BATCH, Batch, Block
from offchain.l2.codec import CodecError, Deposit, Tx, decode
from offchain.l2.dispute import BatchTrace
from offchain.l2.stf import (
    BlockContext,
    State,
    Status,
    apply_tx,
    authorization_key,
    balance_key,
    nonce_key,
    signature_ok,
)
from offchain.rollup.derive import Derivation
from offchain.rollup.inbox import Inbox, QueueCursor
from offchain.sequencer.confirmation import ConfirmationSigner, SoftConfirmation, confirm, tx_hash
from offchain.sequencer.faults import Fault, faulty_trace

log = logging.getLogger("agentl2.sequencer")

# A batch's records: geth's txpool refuses transactions over 128 KiB, so a batch must stay under
# it to travel the public mempool (docs/l2-protocol.md §Batches, Limits); 120,000 bytes leave room
# for the call's other arguments. The backlog: how many batches' worth may wait unsealed.
BATCH_BYTES = 120_000
BACKLOG_BATCHES = 4


class Rejected(InvalidInput):
    """A submitted record the sequencer refuses; `status` is the STF's, or None (malformed)."""

    def __init__(self, message: str, status: Status | None = None):
        self.status = status
        super().__init__(message)


class Busy(Rejected):
    """The unposted backlog is full: retry once the next batch is on L1."""


class StaleState(AgentL2Error):
    """The unposted blocks were built on a state that L1 has moved past (another poster)."""


@dataclass
class OpenBlock:
    number: int
    timestamp: int
    txs: list[Tx] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    writes: dict[bytes, bytes | None] = field(default_factory=dict)  # the reference STF's, in order
    size: int = 0  # the records' bytes
    signed: list[bool] = field(default_factory=list)  # each transaction's signature check


@dataclass(frozen=True)
class TxReceipt:
    """Where a confirmed transaction stands: soft (confirmed), posted (in a batch on L1), final."""

    tx_hash: str
    stage: str
    confirmation: SoftConfirmation
    status: int | None  # the STF status once posted (the admission check said OK)
    batch: int | None


class Sequencer:
    """One operator's sequencer over one rollup (see the module's docstring)."""

    def __init__(
        self,
        account: Any,
        inbox: Inbox,
        chain_id: int,
        clock: Any,
        fault: Fault | None = None,
        batch_bytes: int = BATCH_BYTES,
    ):
        self.account = account  # an ape account: signs the confirmations, sends the batches
        self.signer = ConfirmationSigner(account)
        self.fault = fault  # fault injection: claim the roots of this lie (offchain/sequencer/faults.py)
        self.lies: dict[int, BatchTrace] = {}  # batch index -> the faulty trace its claim stands for
        self.inbox = inbox
        self.chain_id = chain_id
        self.clock = clock  # () -> L1 time to stamp a new block with
        self.batch_bytes = batch_bytes  # a batch's records stay within this (one block may pass it)
        self.derivation = Derivation(inbox, chain_id)
        self.derivation.sync()
        self.lock = threading.RLock()  # one caller inside the state machine at a time
        self._posting = threading.Lock()  # one batch on its way at a time
        self.sealed: list[OpenBlock] = []  # the batch being posted (kept until it is on L1)
        self.blocks: list[OpenBlock] = []  # built after it, unposted; the last one is open
        self.overlay: dict[bytes, bytes | None] = {}  # the sealed and unposted blocks' writes
        self.confirmed: dict[str, SoftConfirmation] = {}  # tx hash -> its confirmation
        self.dropped: dict[str, SoftConfirmation] = {}  # confirmed, then lost to a missed slot
        self.posted: dict[str, tuple[int, Status]] = {}  # tx hash -> (batch index, status)
        self.queue_taken = inbox.count("queueHead")  # the next queue entry no block holds yet
        self.queue = QueueCursor(inbox)  # what L1 has queued, read by `sync_queue`
        self.queue.sync()

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- reads -----------------------------------------------------------------------------------

    @property
    def base(self) -> State:
        return self.derivation.states[-1] if self.derivation.states else State()

    def read(self, key: bytes) -> bytes | None:
        """A leaf of the pending state (posted state with the unposted blocks over it)."""
        return self.overlay[key] if key in self.overlay else self.base.read(key)

    def balance(self, account: str, token: str) -> int:
        raw = self.read(balance_key(account, token))
        return int.from_bytes(raw, "big") if raw else 0

    def nonce(self, account: str) -> int:
        raw = self.read(nonce_key(account))
        return int.from_bytes(raw, "big") if raw else 0

    def authorization_used(self, authorizer: str, nonce: bytes) -> bool:
        """Whether a TransferWithAuthorization of `authorizer` with `nonce` is in the pending state."""
        return self.read(authorization_key(authorizer, nonce)) is not None

    def pending_time(self) -> int:
        """The timestamp a transaction admitted now gets: the open block's, or a new block's."""
        return max(int(self.clock()), self._last_timestamp())

    # -- writes ----------------------------------------------------------------------------------

    def submit(self, record: bytes) -> SoftConfirmation:
        """Admits `record` into the open block, or raises Rejected (nothing changes)."""
        try:
            tx = decode(record)
        except CodecError as exc:
            raise Rejected(f"malformed record: {exc}") from None
        if isinstance(tx, Deposit):
            raise Rejected("deposits enter through the L1 inbox, not the sequencer")
        txn_hash = "0x" + tx_hash(record).hex()
        if txn_hash in self.confirmed:
            raise Rejected(f"transaction {txn_hash} was already confirmed")
        self.dropped.pop(txn_hash, None)  # submitted again after its first confirmation was dropped
        if self.unposted_bytes() >= BACKLOG_BATCHES * self.batch_bytes:
            raise Busy(f"{BACKLOG_BATCHES} batches wait to be posted; retry after the next post")
        block = self._open_block()
        ctx = self._context(block)
        signed = signature_ok(tx, ctx)
        status, writes = apply_tx(tx, ctx, self.read, signed)
        if status != Status.OK:
            raise Rejected(f"the transaction would fail: {status.name}", status)
        self.overlay.update(writes)
        block.writes.update(writes)
        block.txs.append(tx)
        block.records.append(record)
        block.size += len(record)
        block.signed.append(signed)
        confirmation = confirm(
            self.signer, self.chain_id, self.inbox.address, record, block.number, len(block.txs) - 1
        )
        self.confirmed[txn_hash] = confirmation
        return confirmation

    def refresh(self) -> None:
        """With nothing unposted, catches up with L1 (batches another leader posted, the queue
        entries they carried) so that the next block builds on the latest state (no L1 read
        otherwise: submissions call it)."""
        if not self.blocks and not self.sealed:
            self.derivation.sync()
            self.queue_taken = max(self.queue_taken, self.inbox.count("queueHead"))

    def follow(self) -> None:
        """`refresh`, and with unposted blocks that another leader's batch has overtaken,
        `drop_stale` (the schedule's loop calls it; not while a batch of ours is on its way)."""
        if (self.blocks or self.sealed) and self.inbox.count("batchCount") != len(self.derivation.batches):
            self.drop_stale()
        self.refresh()

    def drop_stale(self) -> list[str]:
        """Drops the unposted blocks after their slot passed unposted (another batch may have been
        appended before them: L1 then holds a state they were not built on). Their transactions
        are not in the L2: each signed soft confirmation stays the evidence of a broken
        promise, the receipt says `dropped`, and the record may be submitted again. Returns
        the dropped transactions' hashes."""
        hashes = ["0x" + tx_hash(r).hex() for b in self.sealed + self.blocks for r in b.records]
        hashes = [h for h in hashes if h in self.confirmed]  # not the queue's entries
        for txn_hash in hashes:
            self.dropped[txn_hash] = self.confirmed.pop(txn_hash)
        self.sealed, self.blocks, self.overlay = [], [], {}
        self.derivation.sync()
        self.queue_taken = self.inbox.count("queueHead")  # what the dropped blocks took is queued again
        if hashes:
            log.error(
                "the slot passed before %d confirmed transactions were posted: they are dropped, "
                "their signed confirmations stand as evidence",
                len(hashes),
            )
        return hashes

    def take_queue(self) -> None:
        """Opens a block for L1 queue entries no block holds yet (deposits need no submission)."""
        if self.queue.since(self.queue_taken):
            self._open_block()

    def post(self) -> int | None:
        """Appends the unposted blocks as one batch with its claimed root; returns its index
        (None if there was nothing to post). A batch sealed before and not yet on L1 goes first."""
        with self._posting:
            with self.lock:
                if not self.sealed:
                    if not any(b.txs for b in self.blocks):
                        return None
                    count = self._batch_prefix()
                    self.sealed, self.blocks = self.blocks[:count], self.blocks[count:]
                sealed, base = list(self.sealed), self.base
            try:
                appended, state, statuses = self._execute_and_post(sealed, base)
            except StaleState:  # our slot passed unposted and the next leader posted: drop ours
                with self.lock:
                    self.drop_stale()
                return None
            with self.lock:
                self.derivation.extend(appended, state)
                records = [record for block in sealed for record in block.records]
                for record, status in zip(records, statuses, strict=True):
                    self.posted["0x" + tx_hash(record).hex()] = (appended.index, status)
                self.sealed, self.overlay = [], {}
                for block in self.blocks:
                    self.overlay.update(block.writes)
            return appended.index

    def _execute_and_post(self, sealed: list[OpenBlock], base: State):
        """Executes the sealed blocks with Block-STM and appends them (outside the lock)."""
        batch = Batch(tuple(Block(b.timestamp, tuple(b.txs)) for b in sealed))
        if self.inbox.count("batchCount") != len(self.derivation.batches):
            raise StaleState("another batch was appended since these blocks were built on the state")
        state, statuses = base, []
        for block in sealed:
            # The admission checked each signature: the executor does not check them again.
            executed = run_block(state, self._context(block), list(block.txs), signed=block.signed)
            state = executed.state
            statuses.extend(executed.statuses)
        _check_against_admission(sealed, state)
        claimed_root = state.root
        lie = None
        if self.fault is not None:  # fault injection: the lie, and the trace to defend it with
            honest = BatchTrace.run(base, batch, self.chain_id, self.inbox.address, self.address)
            try:
                lie = faulty_trace(self.fault, honest)
                claimed_root = lie.post_root
            except InvalidInput:  # nothing in this batch to lie about: its root is honest
                log.warning("batch with nothing for %s to change: claimed honestly", self.fault.value)
        appended = self.inbox.post_batch(self.account, batch, claimed_root)
        if lie is not None:
            self.lies[appended.index] = lie
        return appended, state, statuses

    def receipt(self, txn_hash: str) -> TxReceipt | None:
        if txn_hash in self.dropped:
            return TxReceipt(txn_hash, "dropped", self.dropped[txn_hash], None, None)
        if txn_hash not in self.confirmed:
            return None
        confirmation = self.confirmed[txn_hash]
        if txn_hash not in self.posted:
            return TxReceipt(txn_hash, "soft", confirmation, None, None)
        batch, status = self.posted[txn_hash]
        final = batch < self.inbox.count("claimCount") and self.inbox.claim(batch).final
        return TxReceipt(txn_hash, "final" if final else "posted", confirmation, int(status), batch)

    # -- internals -------------------------------------------------------------------------------

    def _context(self, block: OpenBlock) -> BlockContext:
        return BlockContext(self.chain_id, self.inbox.address, block.timestamp, self.address)

    def _next_block_number(self) -> int:
        if self.blocks or self.sealed:
            return (self.blocks or self.sealed)[-1].number + 1
        batches = self.derivation.batches
        return batches[-1].first_l2_block + batches[-1].block_count if batches else 0

    def unposted_bytes(self) -> int:
        """The bytes of the records in blocks not sealed yet."""
        return sum(b.size for b in self.blocks)

    def _batch_prefix(self) -> int:
        """How many of the unposted blocks the next batch holds: as many whole blocks as stay
        within `batch_bytes` and the transaction limit, at least one."""
        count = size = txs = 0
        for block in self.blocks:
            size, txs = size + block.size, txs + len(block.txs)
            over = size > self.batch_bytes or txs > MAX_TXS_PER_BATCH or count == MAX_BLOCKS_PER_BATCH
            if count and over:
                break
            count += 1
        return count

    def _open_block(self) -> OpenBlock:
        """The open block; a new one (led by the queue's new entries) once a second has passed or
        the last is full (a batch's worth of bytes, or of transactions)."""
        now = int(self.clock())
        if self.blocks:
            last = self.blocks[-1]
            full = last.size >= self.batch_bytes or len(last.txs) >= MAX_TXS_PER_BATCH
            if last.timestamp >= now and not full:
                return last
        block = OpenBlock(self._next_block_number(), max(now, self._last_timestamp()))
        self.blocks.append(block)
        self.queue.sync()  # incremental: the L1 blocks since the last read (the loop keeps it short)
        for entry in self.queue.since(self.queue_taken):
            tx = decode(entry.record)
            signed = signature_ok(tx, self._context(block))
            _, writes = apply_tx(tx, self._context(block), self.read, signed)  # a failing one stays in
            self.overlay.update(writes)
            block.writes.update(writes)
            block.txs.append(tx)
            block.records.append(entry.record)
            block.size += len(entry.record)
            block.signed.append(signed)
            self.queue_taken += 1
        return block

    def _last_timestamp(self) -> int:
        if self.blocks or self.sealed:
            return (self.blocks or self.sealed)[-1].timestamp
        return 0


def _check_against_admission(sealed: list[OpenBlock], state: State) -> None:
    """Our executor against the reference STF: every leaf the admission checks wrote (the
    reference STF, transaction by transaction) must read the same after the executor's run."""
    expected: dict[bytes, bytes | None] = {}
    for block in sealed:
        expected.update(block.writes)
    for key, value in expected.items():
        if (state.read(key) or None) != (value or None):
            raise RuntimeError(f"the executor's leaf {key.hex()} is not the reference STF's")
