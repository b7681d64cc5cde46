"""The L2 state transition: every kind, every failure, per-transaction roots, signatures."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from offchain.chain.eip712 import Eip712Domain, typed_digest
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Withdraw
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.smt import verify
from offchain.l2.stf import (
    BlockContext,
    State,
    Status,
    apply_block,
    balance_key,
    nonce_key,
    withdrawal_key,
    withdrawal_value,
)

CHAIN, INBOX, TOKEN = 424_242, "0x" + "1b" * 20, "0x" + "0a" * 20
ALICE, BOB, SEQ = (Account.from_key(keccak(name)) for name in (b"alice", b"bob", b"seq"))
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer=SEQ.address)


def _transfer(key, sender, to, amount, fee=0, nonce=0, chain=CHAIN):
    unsigned = Transfer(sender, to, TOKEN, amount, fee, nonce, b"\x00" * 65)
    return Transfer(sender, to, TOKEN, amount, fee, nonce, sign(key, transfer_digest(unsigned, chain, INBOX)))


def _authorization(key, sender, to, value, after=0, before=2_000, nonce=b"\x07" * 32, chain=CHAIN):
    unsigned = TransferWithAuthorization(sender, to, TOKEN, value, after, before, nonce, b"\x00" * 65)
    signature = sign(key, authorization_digest(unsigned, chain))
    return TransferWithAuthorization(sender, to, TOKEN, value, after, before, nonce, signature)


def _with_v01(tx):
    """`tx` with its signature's v as 0/1: the same signer, but ecrecover (so OpenZeppelin's
    ECDSA, so the one-step verifier) refuses it; the STF must too."""
    signature = tx.signature[:64] + bytes([tx.signature[64] - 27])
    return type(tx)(*(signature if name == "signature" else getattr(tx, name) for name in tx.__slots__))


def _withdraw(key, sender, amount, fee=0, nonce=0, recipient=None):
    unsigned = Withdraw(sender, TOKEN, amount, fee, recipient or sender, nonce, b"\x00" * 65)
    return Withdraw(
        sender,
        TOKEN,
        amount,
        fee,
        recipient or sender,
        nonce,
        sign(key, withdraw_digest(unsigned, CHAIN, INBOX)),
    )


def _funded(amount=1_000) -> State:
    return apply_block(State(), CTX, [Deposit(0, ALICE.address, TOKEN, amount)]).state


def _balance(state, account) -> int:
    raw = state.read(balance_key(account, TOKEN))
    return int.from_bytes(raw, "big") if raw else 0


def test_digests__equal_the_generic_eip712_encoding():
    transfer = _transfer(ALICE.key, ALICE.address, BOB.address, 5, 1, 3)
    rollup = Eip712Domain(name="Agent L2", version="1", chain_id=CHAIN, verifying_contract=INBOX)
    fields = [
        ("from", "address"),
        ("to", "address"),
        ("token", "address"),
        ("amount", "uint256"),
        ("fee", "uint256"),
        ("nonce", "uint64"),
    ]
    message = {"from": ALICE.address, "to": BOB.address, "token": TOKEN, "amount": 5, "fee": 1, "nonce": 3}
    generic = typed_digest(rollup, "Transfer", [{"name": n, "type": t} for n, t in fields], message)
    assert transfer_digest(transfer, CHAIN, INBOX) == generic

    auth = _authorization(ALICE.key, ALICE.address, BOB.address, 9)
    token_domain = Eip712Domain(name="Agent L2 Token", version="1", chain_id=CHAIN, verifying_contract=TOKEN)
    fields = [
        ("from", "address"),
        ("to", "address"),
        ("value", "uint256"),
        ("validAfter", "uint256"),
        ("validBefore", "uint256"),
        ("nonce", "bytes32"),
    ]
    message = {
        "from": ALICE.address,
        "to": BOB.address,
        "value": 9,
        "validAfter": 0,
        "validBefore": 2_000,
        "nonce": b"\x07" * 32,
    }
    assert authorization_digest(auth, CHAIN) == typed_digest(
        token_domain, "TransferWithAuthorization", [{"name": n, "type": t} for n, t in fields], message
    )


def test_deposit__credits_in_queue_order_only():
    result = apply_block(
        State(),
        CTX,
        [
            Deposit(0, ALICE.address, TOKEN, 10),
            Deposit(2, BOB.address, TOKEN, 5),
            Deposit(1, BOB.address, TOKEN, 7),
        ],
    )
    assert result.statuses == [Status.OK, Status.BAD_DEPOSIT_INDEX, Status.OK]
    assert (_balance(result.state, ALICE.address), _balance(result.state, BOB.address)) == (10, 7)
    assert result.roots[1] == result.roots[0]  # a failure changes nothing but its receipt


def test_transfer__moves_amount_and_fee_and_bumps_nonce():
    result = apply_block(_funded(), CTX, [_transfer(ALICE.key, ALICE.address, BOB.address, 300, fee=2)])
    assert result.statuses == [Status.OK]
    state = result.state
    assert (_balance(state, ALICE.address), _balance(state, BOB.address), _balance(state, SEQ.address)) == (
        698,
        300,
        2,
    )
    assert state.read(nonce_key(ALICE.address)) == (1).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda: _transfer(BOB.key, ALICE.address, BOB.address, 1), Status.BAD_SIGNATURE),
        (lambda: _transfer(ALICE.key, ALICE.address, BOB.address, 1, chain=CHAIN + 1), Status.BAD_SIGNATURE),
        (lambda: _transfer(ALICE.key, ALICE.address, BOB.address, 1, nonce=1), Status.BAD_NONCE),
        (lambda: _transfer(ALICE.key, ALICE.address, BOB.address, 1_000, fee=1), Status.INSUFFICIENT_BALANCE),
        (lambda: _withdraw(BOB.key, ALICE.address, 1), Status.BAD_SIGNATURE),
        (lambda: _withdraw(ALICE.key, ALICE.address, 1_001), Status.INSUFFICIENT_BALANCE),
        (lambda: _authorization(BOB.key, ALICE.address, BOB.address, 1), Status.BAD_SIGNATURE),
        (
            lambda: _authorization(ALICE.key, ALICE.address, BOB.address, 1, chain=CHAIN + 1),
            Status.BAD_SIGNATURE,
        ),
        (lambda: _authorization(ALICE.key, ALICE.address, BOB.address, 1, after=1_000), Status.NOT_YET_VALID),
        (lambda: _authorization(ALICE.key, ALICE.address, BOB.address, 1, before=1_000), Status.EXPIRED),
        (lambda: _authorization(ALICE.key, ALICE.address, BOB.address, 1_001), Status.INSUFFICIENT_BALANCE),
        (lambda: _with_v01(_transfer(ALICE.key, ALICE.address, BOB.address, 1)), Status.BAD_SIGNATURE),
        (lambda: _with_v01(_authorization(ALICE.key, ALICE.address, BOB.address, 1)), Status.BAD_SIGNATURE),
    ],
    ids=[
        "transfer-wrong-signer",
        "transfer-other-chain",
        "transfer-wrong-nonce",
        "transfer-short",
        "withdraw-wrong-signer",
        "withdraw-short",
        "authorization-wrong-signer",
        "authorization-other-chain",
        "authorization-not-yet-valid",
        "authorization-expired",
        "authorization-short",
        "transfer-v-0-or-1",
        "authorization-v-0-or-1",
    ],
)
def test_failures__change_nothing_but_the_receipt(make, status):
    state = _funded()
    result = apply_block(state, CTX, [make()])
    assert result.statuses == [status]
    assert result.roots == [state.root] and result.state.values == state.values


def test_replayed_nonce_and_reused_authorization__fail():
    transfer = _transfer(ALICE.key, ALICE.address, BOB.address, 1)
    auth = _authorization(ALICE.key, ALICE.address, BOB.address, 1)
    result = apply_block(_funded(), CTX, [transfer, transfer, auth, auth])
    assert result.statuses == [Status.OK, Status.BAD_NONCE, Status.OK, Status.AUTHORIZATION_USED]
    assert _balance(result.state, BOB.address) == 2


def test_withdraw__burns_and_records_a_provable_withdrawal():
    state = _funded()
    result = apply_block(state, CTX, [_withdraw(ALICE.key, ALICE.address, 400, fee=5, recipient=BOB.address)])
    assert result.statuses == [Status.OK]
    final = result.state
    assert (_balance(final, ALICE.address), _balance(final, SEQ.address)) == (595, 5)
    key, value = withdrawal_key(ALICE.address, 0), withdrawal_value(TOKEN, 400, BOB.address)
    assert final.read(key) == value
    assert verify(final.root, key, keccak(value), final.tree.prove(final.root, key))


def test_self_transfer__only_the_fee_moves():
    result = apply_block(_funded(), CTX, [_transfer(ALICE.key, ALICE.address, ALICE.address, 500, fee=3)])
    assert (_balance(result.state, ALICE.address), _balance(result.state, SEQ.address)) == (997, 3)


def test_roots__are_the_roots_of_each_prefix():
    txs = [
        _transfer(ALICE.key, ALICE.address, BOB.address, 10),
        _authorization(ALICE.key, ALICE.address, BOB.address, 20),
        _transfer(BOB.key, BOB.address, ALICE.address, 5),
        _withdraw(ALICE.key, ALICE.address, 1, nonce=1),
    ]
    state = _funded()
    full = apply_block(state, CTX, txs)
    for i in range(len(txs)):
        assert apply_block(state, CTX, txs[: i + 1]).state.root == full.roots[i]
    assert full.state.root == full.roots[-1]
    # Emptied balances leave the tree: a state equal in content has an equal root.
    drained = apply_block(full.state, CTX, [_transfer(BOB.key, BOB.address, ALICE.address, 25, nonce=1)])
    assert drained.state.read(balance_key(BOB.address, TOKEN)) is None
