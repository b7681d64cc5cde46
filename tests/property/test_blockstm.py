"""Block-STM equals sequential execution: statuses, writes, roots, for random blocks."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.executor.block import run_block
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Withdraw
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.stf import BlockContext, State, apply_block

pytestmark = pytest.mark.fuzzing

CHAIN, INBOX, TOKEN = 7_777, "0x" + "1b" * 20, "0x" + "0a" * 20
KEYS = [keccak(i.to_bytes(4, "big")) for i in range(8)]
ADDRS = [Account.from_key(k).address for k in KEYS]
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer=ADDRS[7])

# Signing is slow: sign each (sender, kind, fields) once and reuse it across examples.
_signed: dict[tuple, object] = {}


def _tx(kind: str, sender: int, to: int, amount: int, nonce: int, bad_sig: bool):
    cache_key = (kind, sender, to, amount, nonce, bad_sig)
    if cache_key in _signed:
        return _signed[cache_key]
    key = KEYS[(sender + 1) % 8] if bad_sig else KEYS[sender]
    a, b = ADDRS[sender], ADDRS[to]
    if kind == "transfer":
        tx = Transfer(a, b, TOKEN, amount, 1, nonce, b"\x00" * 65)
        tx = Transfer(a, b, TOKEN, amount, 1, nonce, sign(key, transfer_digest(tx, CHAIN, INBOX)))
    elif kind == "withdraw":
        tx = Withdraw(a, TOKEN, amount, 0, b, nonce, b"\x00" * 65)
        tx = Withdraw(a, TOKEN, amount, 0, b, nonce, sign(key, withdraw_digest(tx, CHAIN, INBOX)))
    else:
        auth_nonce = keccak(bytes([sender, to, amount % 256, nonce % 256]))
        tx = TransferWithAuthorization(a, b, TOKEN, amount, 0, 2_000, auth_nonce, b"\x00" * 65)
        tx = TransferWithAuthorization(
            a, b, TOKEN, amount, 0, 2_000, auth_nonce, sign(key, authorization_digest(tx, CHAIN))
        )
    _signed[cache_key] = tx
    return tx


def _deposits(n: int):
    return [Deposit(i, ADDRS[i % 7], TOKEN, 50) for i in range(n)]


@st.composite
def blocks(draw):
    """Random blocks, from no contention to one hot account, with failures and deposits mixed in."""
    hot = draw(st.sampled_from([None, 0, 1, 7]))  # None: spread; else the hot sender/receiver
    size = draw(st.integers(0, 40))
    txs = []
    next_deposit = 7
    for _ in range(size):
        kind = draw(st.sampled_from(["transfer", "transfer", "authorization", "withdraw", "deposit"]))
        if kind == "deposit":
            index = next_deposit if draw(st.booleans()) else draw(st.integers(0, 20))  # some out of order
            next_deposit += index == next_deposit
            txs.append(Deposit(index, ADDRS[draw(st.integers(0, 6))], TOKEN, draw(st.integers(1, 30))))
            continue
        # Account 7 is the sequencer: it earns the fees and, spending them, reads its credits.
        sender = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 7))
        to = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 7))
        txs.append(
            _tx(
                kind,
                sender,
                to,
                draw(st.integers(1, 60)),
                draw(st.integers(0, 3)),
                draw(st.integers(0, 9)) == 0,
            )
        )
    return txs


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(max_workers=2) as executor:
        yield executor


@pytest.fixture(scope="module")
def genesis():
    return apply_block(State(), CTX, _deposits(7)).state


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txs=blocks(), threads=st.sampled_from([1, 2, 4, 8]))
def test_blockstm__equals_sequential(genesis, txs, threads):
    expected = apply_block(genesis, CTX, txs)
    got = run_block(genesis, CTX, txs, threads=threads, trace=True, sequential_below=0)
    assert got.statuses == expected.statuses
    assert got.roots == expected.roots
    assert got.state.values == expected.state.values
    assert got.state.root == expected.state.root
    assert got.stats.incarnations >= len(txs)
    untraced = run_block(genesis, CTX, txs, threads=threads, sequential_below=0)
    assert (untraced.state.root, untraced.roots) == (expected.state.root, None)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txs=blocks())
def test_blockstm_with_signatures_in_processes__equals_sequential(genesis, pool, txs):
    txs = txs * 3  # long enough to use the pool
    expected = apply_block(genesis, CTX, txs)
    got = run_block(genesis, CTX, txs, threads=4, pool=pool, trace=True, sequential_below=0)
    assert (got.statuses, got.roots) == (expected.statuses, expected.roots)
