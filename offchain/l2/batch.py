"""Batches as posted to the L1 inbox (docs/l2-protocol.md §Batches).

A batch is what one slot's leader posts in one L1 transaction: one or more blocks, each a
timestamp and its transactions' fixed-length records. Block numbers, the chain id, the inbox and
the sequencer (the batch's poster) are not in the data: the inbox knows them. The batch commits
to its transactions with a padded binary Merkle tree (the tx root) whose leaf order, 0 … n-1
across blocks, is the order a dispute bisects over.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.hashing import keccak
from offchain.l2 import codec
from offchain.l2.codec import RECORD_LENGTH, CodecError, Tx, TxKind
from offchain.l2.stf import BlockContext, State, Status, apply_block

VERSION = 0x01
# Both limits are set by L1 calldata (docs §Batches, Limits): geth's txpool refuses transactions
# over 128 KiB, which hold at most ~2,000 of the smallest records (a deposit, 65 bytes), so 2^11
# never binds a batch carried by the public mempool, yet bounds the proof depth (11) and the trace
# for one handed to a builder directly. A block header is 10 bytes: 1,024 of them are 8 % of the
# 128 KiB, so empty blocks cannot fill a batch with nothing but time.
MAX_TXS_PER_BATCH = 2048
MAX_BLOCKS_PER_BATCH = 1024
# A rollup parameter: how far behind L1 time a batch's first block may be. One hour lets a leader
# post blocks of slots it covered while L1 was congested; an x402 authorization is usually valid
# for minutes, so a held-back clock could otherwise revive one that expired.
MAX_TIMESTAMP_LAG = 3600
ZERO = b"\x00" * 32
_HEADER, _BLOCK_HEADER = 3, 10  # version(1) ‖ blockCount(2); timestamp(8) ‖ txCount(2)


class BatchError(CodecError):
    """Bytes that are not a batch, a batch out of its limits or bounds, or a malformed tx proof.

    A CodecError too, so one `except CodecError` covers a record and a batch of records.
    """


@dataclass(frozen=True, slots=True)
class Block:
    timestamp: int
    txs: tuple[Tx, ...] = ()


@dataclass(frozen=True, slots=True)
class TxProof:
    """Siblings of a leaf from the leaf level up (bottom first)."""

    siblings: tuple[bytes, ...]

    def encode(self) -> bytes:
        """count(1) ‖ siblings(32 each, bottom first)."""
        if len(self.siblings) > 255 or any(len(s) != 32 for s in self.siblings):
            raise BatchError("a tx proof has at most 255 siblings of 32 bytes")
        return bytes([len(self.siblings)]) + b"".join(self.siblings)

    @classmethod
    def decode(cls, raw: bytes) -> TxProof:
        if not raw:
            raise BatchError("empty tx proof")
        if len(raw) != 1 + 32 * raw[0]:
            raise BatchError(f"a tx proof of {raw[0]} siblings is {1 + 32 * raw[0]} bytes, not {len(raw)}")
        return cls(tuple(bytes(raw[1 + 32 * i : 33 + 32 * i]) for i in range(raw[0])))


@dataclass(frozen=True, slots=True)
class Batch:
    blocks: tuple[Block, ...]

    @property
    def tx_count(self) -> int:
        return sum(len(block.txs) for block in self.blocks)

    def encode(self) -> bytes:
        """The batch data; raises BatchError (or CodecError for a record) for what decode refuses."""
        if not self.blocks:
            raise BatchError("a batch has at least one block")
        if len(self.blocks) > MAX_BLOCKS_PER_BATCH:
            raise BatchError(f"a batch has at most {MAX_BLOCKS_PER_BATCH} blocks, not {len(self.blocks)}")
        if self.tx_count > MAX_TXS_PER_BATCH:
            raise BatchError(f"a batch has at most {MAX_TXS_PER_BATCH} transactions, not {self.tx_count}")
        parts, previous = [bytes([VERSION]), len(self.blocks).to_bytes(2, "big")], 0
        for b, block in enumerate(self.blocks):
            if not isinstance(block.timestamp, int) or not 0 <= block.timestamp <= codec.MAX_U64:
                raise BatchError(f"block {b}: a timestamp is an integer of 8 bytes")
            if block.timestamp < previous:
                raise BatchError(f"block {b}: timestamp {block.timestamp} is before the previous {previous}")
            previous = block.timestamp
            parts += [block.timestamp.to_bytes(8, "big"), len(block.txs).to_bytes(2, "big")]
            parts += [codec.encode(tx) for tx in block.txs]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Batch:
        """The batch `data` holds; raises BatchError (never anything else) for anything malformed."""
        if not data:
            raise BatchError("empty batch data")
        if data[0] != VERSION:
            raise BatchError(f"unknown batch version 0x{data[0]:02x}")
        if len(data) < _HEADER:
            raise BatchError("batch header truncated")
        block_count = int.from_bytes(data[1:3], "big")
        if block_count == 0:
            raise BatchError("a batch has at least one block")
        if block_count > MAX_BLOCKS_PER_BATCH:
            raise BatchError(f"a batch has at most {MAX_BLOCKS_PER_BATCH} blocks, not {block_count}")
        # Frame every record first and decode after, so malformed data costs no address decoding.
        frames: list[tuple[int, list[bytes]]] = []
        offset, total, previous = _HEADER, 0, 0
        for b in range(block_count):
            if offset + _BLOCK_HEADER > len(data):
                raise BatchError(f"block {b}: header truncated at byte {offset}")
            timestamp = int.from_bytes(data[offset : offset + 8], "big")
            tx_count = int.from_bytes(data[offset + 8 : offset + 10], "big")
            offset += _BLOCK_HEADER
            if timestamp < previous:
                raise BatchError(f"block {b}: timestamp {timestamp} is before the previous {previous}")
            previous = timestamp
            total += tx_count
            if total > MAX_TXS_PER_BATCH:  # refused before its records are read
                raise BatchError(f"a batch has at most {MAX_TXS_PER_BATCH} transactions, not {total}+")
            records = []
            for j in range(tx_count):
                if offset >= len(data):
                    raise BatchError(f"block {b}: record {j} truncated at byte {offset}")
                try:
                    length = RECORD_LENGTH[TxKind(data[offset])]
                except ValueError:
                    kind = data[offset]
                    raise BatchError(
                        f"block {b}: record {j}: unknown transaction kind 0x{kind:02x} at byte {offset}"
                    ) from None
                if offset + length > len(data):
                    raise BatchError(f"block {b}: record {j} truncated at byte {offset}")
                records.append(bytes(data[offset : offset + length]))
                offset += length
            frames.append((timestamp, records))
        if offset != len(data):
            raise BatchError(f"{len(data) - offset} trailing bytes after the last block")
        try:  # every field of a framed record is valid, so this cannot fail; kept so nothing else leaks
            blocks = [
                Block(timestamp, tuple(codec.decode(r) for r in records)) for timestamp, records in frames
            ]
        except CodecError as error:
            raise BatchError(str(error)) from None
        return cls(tuple(blocks))

    def leaves(self) -> list[bytes]:
        """Leaf i = keccak256(timestamp(8) ‖ record) of the batch's i-th transaction."""
        return [tx_leaf(block.timestamp, codec.encode(tx)) for block in self.blocks for tx in block.txs]

    def tx_root(self) -> bytes:
        return merkle_root(self.leaves())

    def prove(self, index: int) -> TxProof:
        """The inclusion proof of transaction `index` under `tx_root()`."""
        layer = self.leaves()
        if not 0 <= index < len(layer):
            raise BatchError(f"no transaction {index} in a batch of {len(layer)}")
        layer += [ZERO] * ((1 << tree_depth(len(layer))) - len(layer))
        siblings = []
        while len(layer) > 1:
            siblings.append(layer[index ^ 1])
            layer = [keccak(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
            index >>= 1
        return TxProof(tuple(siblings))

    def check_timestamps(self, previous_last: int, l1_now: int, max_lag: int = MAX_TIMESTAMP_LAG) -> None:
        """The inbox's bounds at append: the batch starts no earlier than the previous batch's last
        block, nor more than `max_lag` seconds before the L1 block that appends it, and ends no
        later than that L1 block (its blocks are in order already). Without the lag bound a leader
        could hold the L2 clock back and include authorizations long expired in real time."""
        if not self.blocks:
            raise BatchError("a batch has at least one block")
        first, last = self.blocks[0].timestamp, self.blocks[-1].timestamp
        if first < previous_last:
            raise BatchError(f"first timestamp {first} is before the previous batch's last {previous_last}")
        if first < l1_now - max_lag:
            raise BatchError(f"first timestamp {first} lags the L1 block's {l1_now} by more than {max_lag} s")
        if last > l1_now:
            raise BatchError(f"last timestamp {last} is after the L1 block's {l1_now}")


def tx_leaf(timestamp: int, record: bytes) -> bytes:
    return keccak(timestamp.to_bytes(8, "big") + record)


def tree_depth(n: int) -> int:
    """Levels above the leaves in the tree of `n` leaves: ceil(log2 n), 0 for n <= 1."""
    return max(n - 1, 0).bit_length()


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root over `leaves` padded with ZERO to a power of two; ZERO for none, the leaf for one."""
    if not leaves:
        return ZERO
    layer = list(leaves) + [ZERO] * ((1 << tree_depth(len(leaves))) - len(leaves))
    while len(layer) > 1:
        layer = [keccak(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def verify_tx(root: bytes, n: int, index: int, leaf: bytes, proof: TxProof) -> bool:
    """Whether `leaf` is transaction `index` of the batch of `n` (the inbox's count) under `root`.

    The sibling count must be the depth for `n`: otherwise a proof could stop at an inner node, or
    claim a padding leaf, and the index's bits would no longer name one transaction.
    """
    if not 0 <= index < n or len(proof.siblings) != tree_depth(n):
        return False
    node = leaf
    for d, sibling in enumerate(proof.siblings):
        node = keccak(sibling + node) if (index >> d) & 1 else keccak(node + sibling)
    return node == root


def batch_preimage(previous: bytes, data: bytes, tx_root: bytes, tx_count: int, poster: str) -> bytes:
    """previousBatchHash ‖ keccak256(data) ‖ txRoot ‖ txCount(4) ‖ poster(20): what `batch_hash`
    hashes, and what a one-step proof presents to show the batch's tx root, count and poster."""
    if len(previous) != 32 or len(tx_root) != 32:
        raise BatchError("batch hash inputs are 32-byte hashes")
    try:
        poster_raw = bytes.fromhex(poster.removeprefix("0x"))
    except ValueError:
        poster_raw = b""
    if len(poster_raw) != 20 or not 0 <= tx_count < 1 << 32:
        raise BatchError("a batch hash takes a 20-byte poster and a 4-byte tx count")
    return previous + keccak(data) + tx_root + tx_count.to_bytes(4, "big") + poster_raw


def batch_hash(previous: bytes, data: bytes, tx_root: bytes, tx_count: int, poster: str) -> bytes:
    """keccak256(previousBatchHash ‖ keccak256(data) ‖ txRoot ‖ txCount(4) ‖ poster(20)).

    Data only: the post-state root is a claim stored beside the hash, which a dispute can remove
    and a proposer can make again while the data, chained here, stays (docs §Batches, Batch hash).
    txCount is in the hash because a verifier needs n (tree depth, index bound, trace length) and
    the tx root does not fix it: trees of 5 and 6 leaves have one depth, so a claimed n of 5 would
    drop the sixth transaction from the trace.
    """
    return keccak(batch_preimage(previous, data, tx_root, tx_count, poster))


def execute_batch(
    state: State, batch: Batch, chain_id: int, inbox: str, sequencer: str
) -> tuple[State, list[Status], list[bytes]]:
    """Runs the batch's blocks in order; roots[i] is the state root after its transaction i.

    The post-state root is roots[-1], or the pre-state root when the batch has no transactions.
    """
    statuses: list[Status] = []
    roots: list[bytes] = []
    for block in batch.blocks:
        result = apply_block(
            state, BlockContext(chain_id, inbox, block.timestamp, sequencer), list(block.txs)
        )
        state = result.state
        statuses += result.statuses
        roots += result.roots
    return state, statuses, roots
