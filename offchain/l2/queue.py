"""The inbox's queue of deposits and forced records (docs/l2-protocol.md §Queue).

Deposits and signed L2 records sent from L1 wait in one first-in first-out queue. A batch
consumes the queue in order: a Deposit record must be the queue's next entry; any other record
that equals the next entry consumes it; and while the next entry is older than the
force-inclusion delay, every record must be it (so overdue entries come first, and a batch that
carries none of them is refused). This module is the inbox's rule in Python, for a sequencer that
builds batches and for a node that checks them; the inbox itself makes the same checks on chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offchain.l2 import codec
from offchain.l2.batch import Batch, BatchError
from offchain.l2.codec import Deposit, TxKind


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One queued record, as the inbox's events tell it, and the L1 time it was queued."""

    record: bytes
    queued_at: int

    @property
    def is_deposit(self) -> bool:
        return self.record[0] == TxKind.DEPOSIT


def deposit_record(index: int, to: str, token: str, amount: int) -> bytes:
    """The record the inbox queues for deposit number `index` (its `Deposited` event's fields)."""
    return codec.encode(Deposit(index, to, token, amount))


def forced_record(record: bytes) -> bytes:
    """`record` if the inbox takes it in `enqueueRecord` (a signed kind, of its length), else raises."""
    try:
        tx = codec.decode(record)
    except codec.CodecError as error:
        raise BatchError(f"not a record: {error}") from None
    if isinstance(tx, Deposit):
        raise BatchError("deposits enter the queue through depositETH / depositERC20, not as records")
    return record


def overdue(entry: QueueEntry, l1_now: int, delay: int) -> bool:
    """Whether `entry` is older than the force-inclusion delay at L1 time `l1_now`."""
    return l1_now > entry.queued_at + delay


def consume(batch: Batch, pending: Sequence[QueueEntry], l1_now: int, delay: int) -> int:
    """How many of the `pending` entries (the queue from its head) `batch` carries, checked as the
    inbox checks them in a block at time `l1_now`; raises BatchError for what the inbox refuses."""
    head = 0
    late = bool(pending) and overdue(pending[0], l1_now, delay)
    for index, tx in enumerate(tx for block in batch.blocks for tx in block.txs):
        record = codec.encode(tx)
        if head < len(pending) and record == pending[head].record:
            head += 1
            late = late and head < len(pending) and overdue(pending[head], l1_now, delay)
        elif isinstance(tx, Deposit):
            raise BatchError(f"transaction {index}: a deposit that is not the queue's next entry")
        elif late:
            raise BatchError(f"transaction {index}: queue entry {head} is overdue and must come first")
    if late and head == 0:
        raise BatchError("queue entry 0 is overdue and the batch leaves it out")
    return head
