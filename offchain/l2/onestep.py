"""The whole one-step proof (docs/l2-protocol.md §One-step proof: the whole step).

At the end of a bisection the dispute is over one transaction `index` of a posted batch: the
parties agree on the state root before it and disagree on the root after it. The proof carries
the transaction (its block's timestamp and its record), its inclusion under the batch's tx root,
and its state witness:

    index(4) ‖ timestamp(8) ‖ record ‖ txProof ‖ witness

`verify_step` is what the on-chain verifier does with it, given what the inbox stored of the
batch (tx root, transaction count, poster): check the inclusion, then recompute the status and
the true post-state root from the agreed root. `prove_step` builds the proof from the batch and
its pre-state.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.hashing import checksum_address, keccak
from offchain.l2 import codec
from offchain.l2.batch import Batch, BatchError, TxProof, tx_leaf, verify_tx
from offchain.l2.smt import Node, NodeStore, SparseMerkleTree
from offchain.l2.stf import BlockContext, State, Status, apply_tx
from offchain.l2.witness import Witness, WitnessError, prove_tx, recompute


class OneStepError(WitnessError):
    """A one-step proof that is malformed or does not show what it claims: it decides nothing."""


@dataclass(frozen=True)
class OneStepProof:
    index: int
    timestamp: int
    record: bytes
    tx_proof: TxProof
    witness: Witness

    def encode(self) -> bytes:
        if not 0 <= self.index < 1 << 32 or not 0 <= self.timestamp < 1 << 64:
            raise OneStepError("the index is 4 bytes and the timestamp 8")
        return (
            self.index.to_bytes(4, "big")
            + self.timestamp.to_bytes(8, "big")
            + self.record
            + self.tx_proof.encode()
            + self.witness.encode()
        )

    @classmethod
    def decode(cls, raw: bytes) -> OneStepProof:
        """The proof `raw` holds; raises OneStepError (never anything else) on malformed bytes."""
        if len(raw) < 13:
            raise OneStepError("a one-step proof starts with index(4) ‖ timestamp(8) ‖ a record")
        index, timestamp = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:12], "big")
        try:
            length = codec.RECORD_LENGTH[codec.TxKind(raw[12])]
        except ValueError:
            raise OneStepError(f"unknown transaction kind 0x{raw[12]:02x}") from None
        record_end = 12 + length
        if record_end >= len(raw):
            raise OneStepError("the proof ends inside its record or before its tx proof")
        proof_end = record_end + 1 + 32 * raw[record_end]  # the record's kind fixes where txProof starts
        if proof_end > len(raw):
            raise OneStepError("the proof ends inside its tx proof")
        try:
            tx_proof = TxProof.decode(raw[record_end:proof_end])
            witness = Witness.decode(raw[proof_end:])
        except (BatchError, WitnessError) as exc:
            raise OneStepError(str(exc)) from exc
        return cls(index, timestamp, bytes(raw[12:record_end]), tx_proof, witness)


class _Overlay:
    """New nodes in memory over a node store that is only read."""

    def __init__(self, base: NodeStore):
        self._base = base
        self._nodes: dict[bytes, Node] = {}

    def get(self, node_hash: bytes) -> Node | None:
        node = self._nodes.get(node_hash)
        return node if node is not None else self._base.get(node_hash)

    def __setitem__(self, node_hash: bytes, node: Node) -> None:
        self._nodes[node_hash] = node


def prove_step(
    pre_state: State, batch: Batch, index: int, chain_id: int, inbox: str, poster: str
) -> OneStepProof:
    """The proof of transaction `index` of `batch`, posted by `poster` on `pre_state`."""
    if not 0 <= index < batch.tx_count:
        raise OneStepError(f"no transaction {index} in a batch of {batch.tx_count}")
    # The states up to the step are scratch: their nodes go to an overlay, not to the store.
    scratch = SparseMerkleTree(_Overlay(pre_state.tree.store))
    state, position = State(scratch, pre_state.values, pre_state.root), 0
    for block in batch.blocks:
        ctx = BlockContext(chain_id, inbox, block.timestamp, poster)
        for tx in block.txs:
            if position == index:
                return OneStepProof(
                    index, block.timestamp, codec.encode(tx), batch.prove(index), prove_tx(state, ctx, tx)
                )
            _, writes = apply_tx(tx, ctx, state.read)
            state = state.apply(writes) if writes else state
            position += 1
    raise AssertionError("unreachable: index is below the batch's transaction count")


PREIMAGE_LENGTH = 120  # previousBatchHash ‖ dataHash ‖ txRoot ‖ txCount(4) ‖ poster(20)


def verify_step(
    batch_hash: bytes,
    preimage: bytes,
    disputed_index: int,
    agreed_root: bytes,
    chain_id: int,
    inbox: str,
    proof: bytes,
) -> tuple[Status, bytes]:
    """The status and true post-state root of transaction `disputed_index` of the batch whose
    stored hash is `batch_hash`, from the agreed pre-state root and the proof: what the on-chain
    verifier computes, check for check (its arguments in its order).

    The preimage gives the batch's tx root, transaction count and poster (§Batches, Batch hash).
    Raises OneStepError for a preimage that is not the batch's, a proof of another index, a
    malformed proof, a transaction not in the batch, or a witness that does not prove its leaves:
    such a proof decides nothing.
    """
    if len(agreed_root) != 32 or len(batch_hash) != 32:
        raise OneStepError("the batch hash and the agreed root are 32 bytes")
    if len(preimage) != PREIMAGE_LENGTH or keccak(preimage) != batch_hash:
        raise OneStepError("the preimage is not the batch's")
    tx_root, tx_count = preimage[64:96], int.from_bytes(preimage[96:100], "big")
    poster = checksum_address(preimage[100:120])
    step = OneStepProof.decode(proof)
    if step.index != disputed_index:
        raise OneStepError(f"a proof of transaction {step.index}, not of the disputed {disputed_index}")
    if not verify_tx(tx_root, tx_count, step.index, tx_leaf(step.timestamp, step.record), step.tx_proof):
        raise OneStepError(f"transaction {step.index} is not in the batch under this tx root")
    ctx = BlockContext(chain_id, inbox, step.timestamp, poster)
    try:
        return recompute(agreed_root, ctx, codec.decode(step.record), step.witness)
    except (
        codec.CodecError,
        WitnessError,
    ) as exc:  # a record that decodes not: the inbox refuses such batches
        raise OneStepError(str(exc)) from exc
    except OverflowError:  # a leaf value past its width: only if the inbox's deposit cap was broken
        raise OneStepError("a value overflows its leaf") from None
