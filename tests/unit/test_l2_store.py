"""The versioned LMDB state store: every block readable, and a crash mid-commit loses nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from offchain.l2.codec import Deposit, Transfer
from offchain.l2.signing import sign, transfer_digest
from offchain.l2.stf import BlockContext, apply_block, balance_key
from offchain.l2.store import StateStore, StoreError

CTX = BlockContext(chain_id=9, inbox="0x" + "1b" * 20, timestamp=1_000, sequencer="0x" + "5e" * 20)
TOKEN = "0x" + "0a" * 20
ALICE = Account.from_key(keccak(b"alice"))
BOB = "0x" + "b0" * 20


def _transfer(amount: int, nonce: int) -> Transfer:
    unsigned = Transfer(ALICE.address, BOB, TOKEN, amount, 0, nonce, b"\x00" * 65)
    return Transfer(
        ALICE.address, BOB, TOKEN, amount, 0, nonce, sign(ALICE.key, transfer_digest(unsigned, 9, CTX.inbox))
    )


def _amount(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _three_blocks(store: StateStore) -> list[bytes]:
    blocks = [[Deposit(0, ALICE.address, TOKEN, 100)], [_transfer(30, 0)], [_transfer(20, 1)]]
    roots = []
    for number, txs in enumerate(blocks):
        result = apply_block(store.state_at(), CTX, txs)
        store.commit(number, result.state)
        roots.append(result.state.root)
    return roots


def test_every_block__stays_readable_after_reopening(tmp_path):
    store = StateStore(tmp_path / "state")
    roots = _three_blocks(store)
    store.close()
    store = StateStore(tmp_path / "state")
    assert store.latest() == 2
    assert [store.root_at(n) for n in range(3)] == roots
    bob = balance_key(BOB, TOKEN)
    assert [_amount(store.read(n, bob)) for n in range(3)] == [0, 30, 50]
    assert _amount(store.read(1, balance_key(ALICE.address, TOKEN))) == 70
    assert store.state_at().root == roots[2] and store.state_at(0).root == roots[0]


def test_blocks_out_of_order__are_refused(tmp_path):
    store = StateStore(tmp_path / "state")
    result = apply_block(store.state_at(), CTX, [Deposit(0, ALICE.address, TOKEN, 1)])
    with pytest.raises(StoreError, match="out of order"):
        store.commit(1, result.state)
    with pytest.raises(StoreError, match="not stored"):
        store.root_at(0)


def test_crash_in_the_middle_of_a_commit__leaves_the_last_block_intact(tmp_path):
    store = StateStore(tmp_path / "state")
    roots = _three_blocks(store)
    store.close()
    # Another process starts committing block 3, writes part of it, and dies before the end.
    script = textwrap.dedent(
        f"""
        import os
        from offchain.l2.store import StateStore
        store = StateStore({str(tmp_path / "state")!r})
        txn = store.env.begin(write=True)
        txn.put(b"\\x01" * 32, b"\\x00" * 65, db=store.nodes)
        txn.put((3).to_bytes(8, "big"), b"\\x02" * 32, db=store.blocks)
        txn.put(b"latest", (3).to_bytes(8, "big"), db=store.meta)
        os._exit(9)
        """
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    store = StateStore(tmp_path / "state")
    assert store.latest() == 2 and store.root_at(2) == roots[2]
    with pytest.raises(StoreError):
        store.root_at(3)
    assert _amount(store.read(2, balance_key(BOB, TOKEN))) == 50
    # And it goes on from there.
    result = apply_block(store.state_at(), CTX, [_transfer(5, 2)])
    store.commit(3, result.state)
    assert _amount(store.read(3, balance_key(BOB, TOKEN))) == 55


def test_process_dying_inside_commit__leaves_the_last_block_intact(tmp_path):
    """The crash happens in `StateStore.commit` itself, after some of the block's nodes are written."""
    store = StateStore(tmp_path / "state")
    roots = _three_blocks(store)
    store.close()
    script = textwrap.dedent(
        f"""
        import os
        from eth_account import Account
        from eth_hash.auto import keccak
        from offchain.l2.codec import Transfer
        from offchain.l2.signing import sign, transfer_digest
        from offchain.l2.stf import BlockContext, apply_block
        from offchain.l2.store import StateStore

        ctx = BlockContext(chain_id=9, inbox="0x" + "1b" * 20, timestamp=1_000, sequencer="0x" + "5e" * 20)
        alice = Account.from_key(keccak(b"alice"))
        unsigned = Transfer(alice.address, "0x" + "b0" * 20, "0x" + "0a" * 20, 5, 0, 2, b"\\x00" * 65)
        signature = sign(alice.key, transfer_digest(unsigned, 9, ctx.inbox))
        tx = Transfer(alice.address, "0x" + "b0" * 20, "0x" + "0a" * 20, 5, 0, 2, signature)
        store = StateStore({str(tmp_path / "state")!r})
        block = apply_block(store.state_at(), ctx, [tx]).state
        encoded = store._nodes.encoded

        def dying():  # the commit writes two nodes, then the process is gone
            for count, node in enumerate(encoded()):
                if count == 2:
                    os._exit(9)
                yield node

        store._nodes.encoded = dying
        store.commit(3, block)
        """
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    store = StateStore(tmp_path / "state")
    assert store.latest() == 2 and store.root_at(2) == roots[2]
    assert store.state_at().root == roots[2]
    result = apply_block(store.state_at(), CTX, [_transfer(5, 2)])
    store.commit(3, result.state)
    assert _amount(store.read(3, balance_key(BOB, TOKEN))) == 55


def test_missing_value__is_a_store_error(tmp_path):
    store = StateStore(tmp_path / "state")
    _three_blocks(store)
    value_hash = store.tree.get(store.root_at(2), balance_key(BOB, TOKEN))
    with store.env.begin(write=True) as txn:
        txn.delete(value_hash, db=store.values)
    with pytest.raises(StoreError, match="not stored"):
        store.state_at()
    with pytest.raises(StoreError, match="not stored"):
        store.read(2, balance_key(BOB, TOKEN))


def test_a_block_not_built_on_the_last_one__is_refused(tmp_path):
    store = StateStore(tmp_path / "state")
    roots = _three_blocks(store)
    stale = apply_block(store.state_at(1), CTX, [_transfer(5, 1)]).state  # on block 1, not block 2
    with pytest.raises(StoreError, match="not built on the state after block 2"):
        store.commit(3, stale)
    two_steps = apply_block(
        apply_block(store.state_at(), CTX, [_transfer(1, 2)]).state, CTX, [_transfer(1, 3)]
    )
    with pytest.raises(StoreError, match="not built on"):
        store.commit(3, two_steps.state)  # block 3 was skipped
    assert store.latest() == 2 and store.root_at(2) == roots[2]
    store.commit(3, apply_block(store.state_at(), CTX, [_transfer(1, 2)]).state)
    assert _amount(store.read(3, balance_key(BOB, TOKEN))) == 51


def _leaves(store: StateStore) -> dict[bytes, bytes]:
    with store.env.begin(db=store.leaves) as txn:
        return {bytes(key): bytes(value) for key, value in txn.cursor()}


def test_leaves_table__holds_the_latest_state_block_after_block(tmp_path):
    store = StateStore(tmp_path)
    roots = _three_blocks(store)
    assert _leaves(store) == store.state_at().values
    assert store.leaves_root() == roots[-1]
    drained = apply_block(store.state_at(), CTX, [_transfer(50, 2)]).state  # Alice's balance leaf goes
    store.commit(3, drained)
    assert balance_key(ALICE.address, TOKEN) not in _leaves(store)
    assert _leaves(store) == drained.values and store.leaves_root() == drained.root


def test_leaves_table__is_rewritten_for_a_state_not_made_in_one_step(tmp_path):
    store = StateStore(tmp_path)
    _three_blocks(store)
    state = store.state_at()
    twice = apply_block(apply_block(state, CTX, [_transfer(5, 2)]).state, CTX, [_transfer(5, 3)]).state
    twice.parent, twice.changes = state.root, None  # as a caller that built it by hand would
    store.commit(3, twice)
    assert _leaves(store) == twice.values == store.state_at().values


def test_store_from_before_the_leaves_table__fills_it_on_opening(tmp_path):
    store = StateStore(tmp_path)
    _three_blocks(store)
    expected = store.state_at().values
    with store.env.begin(write=True) as txn:
        txn.drop(store.leaves, delete=False)
        txn.delete(b"leaves", db=store.meta)
    store.close()
    reopened = StateStore(tmp_path)
    assert _leaves(reopened) == expected
    assert reopened.leaves_root() == reopened.root_at(2)
