"""The whole one-step proof: every transaction of a batch, proven and verified as the inbox holds it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block, batch_preimage, execute_batch
from offchain.l2.codec import Deposit
from offchain.l2.onestep import OneStepError, OneStepProof, prove_step, verify_step
from offchain.l2.stf import State, Status, apply_block
from offchain.l2.store import StateStore
from tests.l2_blocks import ADDRS, CHAIN, CTX, INBOX, TOKEN, deposits, signed_tx

POSTER = CTX.sequencer
PRE = apply_block(State(), CTX, deposits(7)).state
BATCH = Batch(
    (
        Block(1_000, (signed_tx("transfer", 0, 1, 10, 0), signed_tx("transfer", 1, 2, 5, 0, bad_sig=True))),
        Block(1_000, ()),
        Block(
            1_500,
            (
                Deposit(7, ADDRS[3], TOKEN, 4),
                signed_tx("authorization", 2, 0, 7, 0),
                signed_tx("withdraw", 3, 3, 50, 0),  # 50 + fee 1 of 54: the rest stays
                signed_tx("transfer", 4, 5, 1, 3),  # bad nonce
            ),
        ),
    )
)
_, STATUSES, ROOTS = execute_batch(PRE, BATCH, CHAIN, INBOX, POSTER)
TX_ROOT, N = BATCH.tx_root(), BATCH.tx_count


def _verify(index: int, proof: bytes, n: int = N, agreed: bytes | None = None) -> tuple[Status, bytes]:
    """Verifies as the game does, for a batch the inbox recorded with `n` transactions."""
    agreed = (ROOTS[index - 1] if index else PRE.root) if agreed is None else agreed
    preimage = batch_preimage(b"\x00" * 32, BATCH.encode(), TX_ROOT, n, POSTER)
    return verify_step(keccak(preimage), preimage, index, agreed, CHAIN, INBOX, proof)


@pytest.mark.parametrize("index", range(N))
def test_every_step__verifies_to_the_trace(index):
    proof = prove_step(PRE, BATCH, index, CHAIN, INBOX, POSTER).encode()
    assert _verify(index, proof) == (STATUSES[index], ROOTS[index])
    assert OneStepProof.decode(proof).encode() == proof


def test_a_proof__shows_only_its_own_transaction():
    proof = prove_step(PRE, BATCH, 2, CHAIN, INBOX, POSTER)
    moved = OneStepProof(3, proof.timestamp, proof.record, proof.tx_proof, proof.witness)
    with pytest.raises(OneStepError, match="not in the batch"):
        _verify(3, moved.encode())
    with pytest.raises(OneStepError, match="not in the batch"):  # another block's timestamp
        _verify(2, OneStepProof(2, 1_000, proof.record, proof.tx_proof, proof.witness).encode())
    for count in (2, 9):  # counts the inbox did not record: below the index, of another tree depth
        with pytest.raises(OneStepError, match="not in the batch"):
            _verify(2, proof.encode(), n=count)
    with pytest.raises(OneStepError, match="not in the batch"):
        _verify(N, OneStepProof(N, 1_500, proof.record, proof.tx_proof, proof.witness).encode())


def test_a_witness_against_another_root__is_refused():
    proof = prove_step(PRE, BATCH, 4, CHAIN, INBOX, POSTER).encode()
    with pytest.raises(OneStepError):
        _verify(4, proof, agreed=PRE.root)  # the root before transaction 0, not before 4


def test_no_such_transaction__cannot_be_proven():
    with pytest.raises(OneStepError, match="no transaction"):
        prove_step(PRE, BATCH, N, CHAIN, INBOX, POSTER)


@settings(max_examples=300)
@given(raw=st.binary(max_size=400))
def test_random_bytes__raise_one_step_error_only(raw):
    with pytest.raises(OneStepError):
        _verify(5, raw)


def test_a_truncated_or_extended_proof__is_refused():
    proof = prove_step(PRE, BATCH, 5, CHAIN, INBOX, POSTER).encode()
    for cut in range(len(proof)):
        with pytest.raises(OneStepError):
            _verify(5, proof[:cut])
    with pytest.raises(OneStepError):
        _verify(5, proof + b"\x00")


def test_proving_a_step_on_a_stored_state__leaves_the_store_as_it_was(tmp_path):
    store = StateStore(tmp_path / "state")
    store.commit(0, apply_block(store.state_at(), CTX, deposits(7)).state)
    stored = store.state_at()
    proof = prove_step(stored, BATCH, 4, CHAIN, INBOX, POSTER).encode()
    assert store.committed(stored)  # no scratch node is waiting to be committed with the next block
    assert _verify(4, proof) == (STATUSES[4], ROOTS[4])


def test_the_verifier_checks_the_batch_and_the_index_itself():
    proof = prove_step(PRE, BATCH, 2, CHAIN, INBOX, POSTER).encode()
    preimage = batch_preimage(b"\x00" * 32, BATCH.encode(), TX_ROOT, N, POSTER)
    agreed = ROOTS[1]
    with pytest.raises(OneStepError, match="not the batch's"):  # a preimage of another batch hash
        verify_step(keccak(preimage[:-1] + b"\x00"), preimage, 2, agreed, CHAIN, INBOX, proof)
    with pytest.raises(OneStepError, match="not the batch's"):  # a preimage cut short
        verify_step(keccak(preimage[:-1]), preimage[:-1], 2, agreed, CHAIN, INBOX, proof)
    with pytest.raises(OneStepError, match="not of the disputed 3"):  # a valid proof of another step
        verify_step(keccak(preimage), preimage, 3, agreed, CHAIN, INBOX, proof)
    assert verify_step(keccak(preimage), preimage, 2, agreed, CHAIN, INBOX, proof) == (STATUSES[2], ROOTS[2])
