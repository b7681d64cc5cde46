"""L2 batches: exact round trips, clear errors, the tx root and its proofs, execution over blocks."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.errors import AgentL2Error
from offchain.l2.batch import (
    MAX_BLOCKS_PER_BATCH,
    MAX_TXS_PER_BATCH,
    ZERO,
    Batch,
    BatchError,
    Block,
    TxProof,
    batch_hash,
    execute_batch,
    merkle_root,
    tree_depth,
    tx_leaf,
    verify_tx,
)
from offchain.l2.codec import CodecError, Deposit, Transfer, TransferWithAuthorization, Withdraw, encode
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.stf import BlockContext, State, Status, apply_block
from tests.unit.test_l2_codec import txs

CHAIN, INBOX, TOKEN = 424_242, "0x" + "1b" * 20, "0x" + "0a" * 20
ALICE, BOB, SEQ = (Account.from_key(keccak(name)) for name in (b"alice", b"bob", b"seq"))
DEPOSIT = Deposit(0, "0x" + "11" * 20, "0x" + "00" * 20, 5)


@st.composite
def batches(draw, max_blocks=4, max_txs=4):
    times = sorted(draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=max_blocks)))
    return Batch(tuple(Block(t, tuple(draw(st.lists(txs, max_size=max_txs)))) for t in times))


def _header(blocks: int) -> bytes:
    return b"\x01" + blocks.to_bytes(2, "big")


def _block(timestamp: int, count: int) -> bytes:
    return timestamp.to_bytes(8, "big") + count.to_bytes(2, "big")


def _of(n: int) -> Batch:
    """A batch of n deposits over two blocks (the second may be empty)."""
    deposits = tuple(Deposit(i, DEPOSIT.to, DEPOSIT.token, i + 1) for i in range(n))
    return Batch((Block(7, deposits[: n // 2 + 1]), Block(9, deposits[n // 2 + 1 :])))


# -- encoding -----------------------------------------------------------------------------------


@settings(max_examples=200)
@given(batch=batches())
def test_round_trip__random_batches_of_every_kind(batch):
    data = batch.encode()
    back = Batch.decode(data)
    assert back.encode() == data  # addresses come back checksummed, so compare bytes, kinds and times
    assert [(b.timestamp, [type(tx) for tx in b.txs]) for b in back.blocks] == [
        (b.timestamp, [type(tx) for tx in b.txs]) for b in batch.blocks
    ]
    assert len(data) == 3 + 10 * len(batch.blocks) + sum(
        len(encode(tx)) for b in batch.blocks for tx in b.txs
    )


def test_layout__is_the_specified_one():
    batch = Batch((Block(0x0102, (DEPOSIT,)), Block(0x0102, ())))
    assert batch.encode() == _header(2) + _block(0x0102, 1) + encode(DEPOSIT) + _block(0x0102, 0)


@settings(max_examples=300)
@given(raw=st.binary(max_size=400))
def test_random_bytes__decode_exactly_or_raise_batch_error(raw):
    for data in (raw, b"\x01" + raw):  # the second gets past the version byte
        try:
            batch = Batch.decode(data)
        except BatchError:
            continue
        assert batch.encode() == data


@settings(max_examples=200, deadline=None)
@given(batch=batches(max_blocks=3, max_txs=3), data=st.data())
def test_mutated_data__decodes_exactly_or_raises_batch_error(batch, data):
    raw = bytearray(batch.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = Batch.decode(bytes(raw))
    except BatchError:
        return
    assert decoded.encode() == bytes(raw)


@settings(max_examples=50, deadline=None)
@given(batch=batches(max_blocks=3, max_txs=3))
def test_every_truncation__is_refused(batch):
    data = batch.encode()
    for cut in range(len(data)):
        with pytest.raises(BatchError):
            Batch.decode(data[:cut])


def test_batch_error__is_in_the_exception_tree_and_a_codec_error():
    assert issubclass(BatchError, AgentL2Error)
    assert issubclass(BatchError, CodecError)


RECORD = encode(DEPOSIT)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty batch data"),
        (b"\x02" + _header(1)[1:] + _block(1, 0), "unknown batch version 0x02"),
        (b"\x01\x00", "batch header truncated"),
        (_header(0), "at least one block"),
        (
            _header(MAX_BLOCKS_PER_BATCH + 1),
            f"at most {MAX_BLOCKS_PER_BATCH} blocks, not {MAX_BLOCKS_PER_BATCH + 1}",
        ),
        (_header(1) + _block(1, 0)[:9], "block 0: header truncated at byte 3"),
        (_header(2) + _block(1, 0), "block 1: header truncated at byte 13"),
        (_header(1) + _block(1, 1), "block 0: record 0 truncated at byte 13"),
        (_header(1) + _block(1, 1) + RECORD[:-1], "block 0: record 0 truncated at byte 13"),
        (
            _header(1) + _block(1, 2) + RECORD + b"\x09" + RECORD[1:],
            "record 1: unknown transaction kind 0x09 at byte 78",
        ),
        (_header(1) + _block(1, MAX_TXS_PER_BATCH + 1), f"at most {MAX_TXS_PER_BATCH} transactions"),
        (
            _header(2) + _block(1, 0) + _block(1, MAX_TXS_PER_BATCH + 1),
            f"at most {MAX_TXS_PER_BATCH} transactions",
        ),
        (_header(2) + _block(5, 0) + _block(4, 0), "block 1: timestamp 4 is before the previous 5"),
        (_header(1) + _block(1, 1) + RECORD + b"\x00", "1 trailing bytes after the last block"),
    ],
    ids=[
        "empty",
        "version",
        "short-header",
        "no-blocks",
        "too-many-blocks",
        "short-block-header",
        "missing-block",
        "missing-record",
        "short-record",
        "unknown-kind",
        "too-many-txs",
        "too-many-txs-across-blocks",
        "decreasing-timestamps",
        "trailing",
    ],
)
def test_decode__clear_errors(data, message):
    with pytest.raises(BatchError, match=message):
        Batch.decode(data)


def test_limits__are_reached_exactly():
    full = Batch((Block(1, (DEPOSIT,) * MAX_TXS_PER_BATCH),) + (Block(1),) * (MAX_BLOCKS_PER_BATCH - 1))
    assert Batch.decode(full.encode()) == full


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (Batch(()), "at least one block"),
        (Batch((Block(1),) * (MAX_BLOCKS_PER_BATCH + 1)), "at most 1024 blocks"),
        (Batch((Block(1, (DEPOSIT,) * (MAX_TXS_PER_BATCH + 1)),)), "at most 2048 transactions"),
        (Batch((Block(2), Block(1))), "block 1: timestamp 1 is before the previous 2"),
        (Batch((Block(2**64),)), "block 0: a timestamp is an integer of 8 bytes"),
    ],
    ids=["no-blocks", "too-many-blocks", "too-many-txs", "decreasing", "timestamp-too-big"],
)
def test_encode__refuses_what_decode_refuses(batch, message):
    with pytest.raises(BatchError, match=message):
        batch.encode()


def test_check_timestamps__bounds_against_the_previous_batch_and_l1():
    batch = Batch((Block(10), Block(12), Block(15)))
    batch.check_timestamps(previous_last=10, l1_now=15)
    with pytest.raises(BatchError, match="first timestamp 10 is before the previous batch's last 11"):
        batch.check_timestamps(previous_last=11, l1_now=20)
    with pytest.raises(BatchError, match="last timestamp 15 is after the L1 block's 14"):
        batch.check_timestamps(previous_last=0, l1_now=14)
    batch.check_timestamps(previous_last=0, l1_now=20, max_lag=10)
    with pytest.raises(BatchError, match="first timestamp 10 lags the L1 block's 21 by more than 10 s"):
        batch.check_timestamps(previous_last=0, l1_now=21, max_lag=10)


# -- tx root and proofs -------------------------------------------------------------------------


def test_leaves__are_timestamp_and_record_in_batch_order():
    batch = _of(3)
    expected = [tx_leaf(7, encode(batch.blocks[0].txs[0])), tx_leaf(7, encode(batch.blocks[0].txs[1]))]
    expected.append(keccak((9).to_bytes(8, "big") + encode(batch.blocks[1].txs[0])))
    assert batch.leaves() == expected


def test_tx_root__small_trees_by_hand():
    assert Batch((Block(1),)).tx_root() == ZERO
    one = _of(1)
    assert one.tx_root() == one.leaves()[0]
    a, b, c = _of(3).leaves()
    assert merkle_root([a, b, c]) == keccak(keccak(a + b) + keccak(c + ZERO))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8])
def test_proofs__every_leaf_proves_and_tampering_fails(n):
    batch = _of(n)
    root, leaves = batch.tx_root(), batch.leaves()
    assert tree_depth(n) == {0: 0, 1: 0, 2: 1, 3: 2, 5: 3, 8: 3}[n]
    for i, leaf in enumerate(leaves):
        proof = TxProof.decode(batch.prove(i).encode())
        assert len(proof.siblings) == tree_depth(n)
        assert verify_tx(root, n, i, leaf, proof)
        assert not verify_tx(root, n, n, leaf, proof)  # index >= n
        assert not verify_tx(root, n, -1, leaf, proof)
        assert not verify_tx(root, n + 1, i, leaf, proof) or tree_depth(n + 1) == tree_depth(n)
        assert not verify_tx(root, n, i, keccak(leaf), proof)  # wrong leaf
        if n > 1:
            assert not verify_tx(root, n, i ^ 1, leaf, proof)  # wrong index
            for d in range(len(proof.siblings)):  # wrong sibling at every level
                bad = list(proof.siblings)
                bad[d] = keccak(bad[d])
                assert not verify_tx(root, n, i, leaf, TxProof(tuple(bad)))
            assert not verify_tx(root, n, i, leaf, TxProof(proof.siblings[:-1]))  # count too small
        assert not verify_tx(root, n, i, leaf, TxProof((*proof.siblings, ZERO)))  # count too large
    for i in (n, n + 1):
        with pytest.raises(BatchError, match=f"no transaction {i}"):
            batch.prove(i)


def test_proofs__a_padding_leaf_never_proves():
    batch = _of(3)
    layer = [*batch.leaves(), ZERO]
    proof = TxProof((layer[2], keccak(layer[0] + layer[1])))
    assert verify_tx(batch.tx_root(), 4, 3, ZERO, proof)  # it would, with n overstated
    assert not verify_tx(batch.tx_root(), 3, 3, ZERO, proof)


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "empty tx proof"), (b"\x02" + ZERO, "2 siblings is 65 bytes, not 33"), (b"\x00\x00", "not 2")],
)
def test_proof_decode__clear_errors(raw, message):
    with pytest.raises(BatchError, match=message):
        TxProof.decode(raw)


def test_batch_hash__is_the_specified_concatenation():
    data, root, prev = _of(3).encode(), keccak(b"r"), keccak(b"p")
    expected = keccak(prev + keccak(data) + root + (3).to_bytes(4, "big") + bytes.fromhex("1b" * 20))
    assert batch_hash(prev, data, root, 3, INBOX) == expected
    assert batch_hash(prev, data, root, 2, INBOX) != expected
    with pytest.raises(BatchError, match="20-byte poster"):
        batch_hash(prev, data, root, 3, "0x1234")


# -- execution ----------------------------------------------------------------------------------


def _transfer(amount, nonce):
    unsigned = Transfer(ALICE.address, BOB.address, TOKEN, amount, 1, nonce, b"\x00" * 65)
    return replace(unsigned, signature=sign(ALICE.key, transfer_digest(unsigned, CHAIN, INBOX)))


def _authorization(value, before, nonce):
    unsigned = TransferWithAuthorization(
        ALICE.address, BOB.address, TOKEN, value, 0, before, nonce, b"\x00" * 65
    )
    return replace(unsigned, signature=sign(ALICE.key, authorization_digest(unsigned, CHAIN)))


def _withdraw(amount, nonce):
    unsigned = Withdraw(ALICE.address, TOKEN, amount, 0, BOB.address, nonce, b"\x00" * 65)
    return replace(unsigned, signature=sign(ALICE.key, withdraw_digest(unsigned, CHAIN, INBOX)))


TXS = [
    Deposit(0, ALICE.address, TOKEN, 1_000),
    _transfer(10, 0),
    _authorization(20, 2_000, b"\x01" * 32),
    _withdraw(30, 1),
    _transfer(10, 0),  # reused nonce: BAD_NONCE
    _authorization(20, 2_000, b"\x01" * 32),  # reused: AUTHORIZATION_USED
    Deposit(1, BOB.address, TOKEN, 5),
]


def test_execute_batch__equals_apply_block_over_the_concatenated_blocks():
    batch = Batch(
        (Block(1_000, tuple(TXS[:2])), Block(1_000), Block(1_000, tuple(TXS[2:6])), Block(1_000, (TXS[6],)))
    )
    state, statuses, roots = execute_batch(State(), batch, CHAIN, INBOX, SEQ.address)
    ctx = BlockContext(CHAIN, INBOX, 1_000, SEQ.address)
    reference = apply_block(State(), ctx, TXS)
    assert statuses == reference.statuses
    assert statuses == [Status.OK] * 4 + [Status.BAD_NONCE, Status.AUTHORIZATION_USED, Status.OK]
    assert roots == reference.roots and len(roots) == batch.tx_count
    assert state.root == roots[-1] == reference.state.root
    assert state.values == reference.state.values


def test_execute_batch__each_block_runs_at_its_own_timestamp():
    funded = Block(1_000, (TXS[0],))
    batch = Batch((funded, Block(1_500, (_authorization(20, 2_000, b"\x02" * 32),)), Block(2_000, (TXS[2],))))
    _, statuses, _ = execute_batch(State(), batch, CHAIN, INBOX, SEQ.address)
    assert statuses == [Status.OK, Status.OK, Status.EXPIRED]


def test_execute_batch__without_transactions_keeps_the_pre_state_root():
    pre = apply_block(State(), BlockContext(CHAIN, INBOX, 1, SEQ.address), [TXS[0]]).state
    state, statuses, roots = execute_batch(pre, Batch((Block(5), Block(6))), CHAIN, INBOX, SEQ.address)
    assert (state.root, statuses, roots) == (pre.root, [], [])
