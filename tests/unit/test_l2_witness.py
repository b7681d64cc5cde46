"""The state witness of a one-step proof: the post-state root from a pre-state root and a witness alone."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.errors import AgentL2Error
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Withdraw, encode
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.smt import EMPTY, Internal, Leaf, Proof
from offchain.l2.stf import (
    DEPOSITS_KEY,
    BlockContext,
    State,
    Status,
    apply_block,
    authorization_key,
    balance_key,
    nonce_key,
    withdrawal_key,
    withdrawal_value,
)
from offchain.l2.vectors import CTX as VECTOR_CTX
from offchain.l2.vectors import all_cases
from offchain.l2.witness import Entry, Witness, WitnessError, post_state_root, prove_tx

CHAIN, INBOX = 424_242, "0x" + "1b" * 20
ACCOUNTS = [Account.from_key(keccak(b"witness-%d" % i)) for i in range(4)]
TOKENS = ["0x" + "0a" * 20, "0x" + "0b" * 20]
AUTH_NONCES = [b"\x01" * 32, b"\x02" * 32, b"\x03" * 32]
OUTSIDER = "0x" + "5e" * 20
NOW = 1_000


def _u(value: int, width: int) -> bytes | None:
    return value.to_bytes(width, "big") if value else None


# -- random states and transactions --------------------------------------------------------------


@st.composite
def states(draw) -> State:
    """Balances, nonces, used authorizations and withdrawals of a few accounts, among up to 200 other leaves."""
    writes: dict[bytes, bytes | None] = {DEPOSITS_KEY: _u(draw(st.integers(0, 4)), 8)}
    for account in ACCOUNTS:
        for token in TOKENS:
            amount = draw(st.sampled_from([1_000, 5, 1, 2**100, 0]))
            writes[balance_key(account.address, token)] = _u(amount, 16)
        writes[nonce_key(account.address)] = _u(draw(st.integers(0, 2)), 8)
        for nonce in AUTH_NONCES:
            writes[authorization_key(account.address, nonce)] = b"\x01" if draw(st.booleans()) else None
        if draw(st.booleans()):
            writes[withdrawal_key(account.address, 0)] = withdrawal_value(TOKENS[0], 1, OUTSIDER)
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(0, 200))):  # other leaves, for the shape of the tree
        writes[rng.randbytes(32)] = rng.randbytes(rng.randint(1, 56))
    return State().apply({key: value for key, value in writes.items() if value is not None})


def _balance(state: State, account: str, token: str) -> int:
    raw = state.read(balance_key(account, token))
    return int.from_bytes(raw, "big") if raw else 0


def _nonce(state: State, account: str) -> int:
    raw = state.read(nonce_key(account))
    return int.from_bytes(raw, "big") if raw else 0


@st.composite
def transactions(draw, state: State, ctx: BlockContext, spend_all: bool = False):
    """Any kind, any outcome: whole balances, self-transfers, bad signatures, nonces, windows, reuse.

    `spend_all`: a valid spend of the sender's whole balance (fee included) to someone else.
    """
    kind = draw(
        st.sampled_from(["transfer", "authorization", "withdraw", *(() if spend_all else ("deposit",))])
    )
    token = draw(st.sampled_from(TOKENS))
    sender = draw(st.sampled_from(ACCOUNTS))
    others = [a for a in ACCOUNTS if a != sender] if spend_all else [*ACCOUNTS, sender]
    to = draw(st.sampled_from(others)).address  # self-transfers are common unless spending all
    signer = sender if spend_all else draw(st.sampled_from([sender] * 6 + ACCOUNTS[:2]))  # mostly the sender
    if kind == "deposit":
        index = int.from_bytes(state.read(DEPOSITS_KEY) or b"", "big") + draw(st.sampled_from([0, 0, 0, 1]))
        return Deposit(index, to, token, draw(st.sampled_from([0, 1, 7, 2**100])))
    fee = draw(st.sampled_from([0, 1, 3]))
    balance = _balance(state, sender.address, token)
    whole = balance - (0 if kind == "authorization" else fee)
    amount = max(
        0, whole if spend_all else draw(st.sampled_from([whole, balance // 2, whole + 1, whole, 0, 1]))
    )
    if kind == "authorization":
        after, before = draw(
            st.sampled_from([(0, 2 * NOW), (0, 2 * NOW), (NOW, 2 * NOW), (0, NOW)][: 1 if spend_all else 4])
        )
        unused = [n for n in AUTH_NONCES if state.read(authorization_key(sender.address, n)) is None]
        nonce = draw(st.sampled_from(unused if spend_all and unused else AUTH_NONCES))
        unsigned = TransferWithAuthorization(sender.address, to, token, amount, after, before, nonce, b"")
        signature = sign(signer.key, authorization_digest(unsigned, ctx.chain_id))
        return replace(unsigned, signature=signature)
    nonce = _nonce(state, sender.address) + (0 if spend_all else draw(st.sampled_from([0, 0, 0, 1])))
    if kind == "transfer":
        unsigned = Transfer(sender.address, to, token, amount, fee, nonce, b"")
        return replace(
            unsigned, signature=sign(signer.key, transfer_digest(unsigned, ctx.chain_id, ctx.inbox))
        )
    unsigned = Withdraw(sender.address, token, amount, fee, to, nonce, b"")
    return replace(unsigned, signature=sign(signer.key, withdraw_digest(unsigned, ctx.chain_id, ctx.inbox)))


@st.composite
def scenarios(draw, spend_all: bool = False):
    state = draw(states())
    sequencer = draw(st.sampled_from([OUTSIDER, *(a.address for a in ACCOUNTS)]))
    ctx = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=NOW, sequencer=sequencer)
    return state, ctx, draw(transactions(state, ctx, spend_all))


@settings(max_examples=250, deadline=None)
@given(scenario=scenarios())
def test_post_state_root__from_the_witness_alone_equals_the_block_root(scenario):
    state, ctx, tx = scenario
    witness = prove_tx(state, ctx, tx)
    assert Witness.decode(witness.encode()) == witness
    result = apply_block(state, ctx, [tx])
    assert post_state_root(state.root, ctx, encode(tx), witness.encode()) == (
        result.statuses[0],
        result.state.root,
    )


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios(spend_all=True))
def test_post_state_root__spending_a_whole_balance_deletes_its_leaf(scenario):
    state, ctx, tx = scenario
    witness = prove_tx(state, ctx, tx)
    result = apply_block(state, ctx, [tx])
    assert post_state_root(state.root, ctx, encode(tx), witness.encode()) == (
        result.statuses[0],
        result.state.root,
    )
    if result.statuses[0] == Status.OK and ctx.sequencer != tx.sender:
        assert result.state.read(balance_key(tx.sender, tx.token)) is None


# -- fixed cases: what the witness holds -------------------------------------------------------


def _vector(name: str):
    return next((tx, state) for case, tx, _, state in all_cases() if case == name)


def _entry_kinds(name: str) -> list[str]:
    tx, state = _vector(name)
    return [type(entry.hint).__name__ for entry in prove_tx(state, VECTOR_CTX, tx).entries]


def test_witness__holds_reads_and_writes_in_key_order_with_hints_only_for_deletions():
    tx, state = _vector("withdraw-ok")
    witness = prove_tx(state, VECTOR_CTX, tx)
    keys = [entry.key for entry in witness.entries]
    assert keys == sorted(keys)
    assert withdrawal_key(tx.sender, tx.nonce) in keys  # written, never read
    assert all(entry.hint is None for entry in witness.entries)
    assert "Leaf" in _entry_kinds("transfer-whole-balance")
    assert "Internal" in _entry_kinds("transfer-whole-balance-beside-subtree")
    tx, state = _vector("transfer-bad-signature")
    assert prove_tx(state, VECTOR_CTX, tx).encode() == b"\x00"  # reads nothing, writes nothing


def test_post_state_root__whole_balance_and_self_transfer():
    alice = ACCOUNTS[0]
    ctx = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=NOW, sequencer=OUTSIDER)
    state = apply_block(State(), ctx, [Deposit(0, alice.address, TOKENS[0], 10)]).state
    for to, amount in [(alice.address, 9), (ACCOUNTS[1].address, 9)]:  # 9 + fee 1: her whole balance
        unsigned = Transfer(alice.address, to, TOKENS[0], amount, 1, 0, b"")
        tx = replace(unsigned, signature=sign(alice.key, transfer_digest(unsigned, CHAIN, INBOX)))
        status, root = post_state_root(state.root, ctx, encode(tx), prove_tx(state, ctx, tx).encode())
        assert status == Status.OK and root == apply_block(state, ctx, [tx]).state.root


# -- tampering: always an error, never a wrong root ------------------------------------------------


def _raw(entries) -> bytes:
    return bytes([len(entries)]) + b"".join(entry.encode() for entry in entries)


def _case(name: str):
    tx, state = _vector(name)
    return state, tx, list(prove_tx(state, VECTOR_CTX, tx).entries)


def _rejects(state: State, tx, raw: bytes, message: str) -> None:
    with pytest.raises(WitnessError, match=message):
        post_state_root(state.root, VECTOR_CTX, encode(tx), raw)


def _deletion(entries) -> int:
    return next(j for j, entry in enumerate(entries) if entry.hint is not None)


@pytest.mark.parametrize(
    "name", ["transfer-whole-balance", "transfer-whole-balance-beside-subtree", "withdraw-ok"]
)
def test_tampered_values_siblings_and_roots__are_rejected(name):
    state, tx, entries = _case(name)
    for j, entry in enumerate(entries):
        wrong = (entry.value or b"\x00") + b"\x01"
        # A wrong value may change what the transaction reads before any proof is checked.
        lied = "does not show|which the witness lacks|neither reads nor writes"
        _rejects(state, tx, _raw([*entries[:j], replace(entry, value=wrong), *entries[j + 1 :]]), lied)
        if entry.value is not None:  # present, claimed absent
            _rejects(state, tx, _raw([*entries[:j], replace(entry, value=None), *entries[j + 1 :]]), lied)
        for d in range(len(entry.proof.siblings)):
            siblings = list(entry.proof.siblings)
            siblings[d] = keccak(siblings[d])
            forged = replace(entry, proof=Proof(tuple(siblings), entry.proof.terminal))
            _rejects(state, tx, _raw([*entries[:j], forged, *entries[j + 1 :]]), "does not show")
    with pytest.raises(WitnessError, match="does not show"):
        post_state_root(keccak(state.root), VECTOR_CTX, encode(tx), _raw(entries))


@pytest.mark.parametrize(
    "name", ["transfer-ok", "transfer-whole-balance", "withdraw-ok", "deposit-bad-index"]
)
def test_missing_extra_duplicate_and_unsorted_entries__are_rejected(name):
    state, tx, entries = _case(name)
    for j in range(len(entries)):
        _rejects(state, tx, _raw(entries[:j] + entries[j + 1 :]), "which the witness lacks")
        _rejects(state, tx, _raw([*entries[: j + 1], entries[j], *entries[j + 1 :]]), "ascend strictly")
    if len(entries) > 1:
        _rejects(state, tx, _raw([entries[1], entries[0], *entries[2:]]), "ascend strictly")
    # An extra leaf, correctly proven against the root the entries before it leave.
    post = apply_block(state, VECTOR_CTX, [tx]).state
    extra = Entry(b"\xff" * 32, None, post.tree.prove(post.root, b"\xff" * 32))
    _rejects(state, tx, _raw([*entries, extra]), "neither reads nor writes")


@pytest.mark.parametrize(
    ("name", "forge", "message"),
    [
        ("transfer-whole-balance", lambda hint: None, "needs a hint"),
        ("transfer-whole-balance", lambda hint: Internal(hint.key, hint.value_hash), "internal node is not"),
        ("transfer-whole-balance", lambda hint: Leaf(keccak(hint.key), hint.value_hash), "leaf is not"),
        ("transfer-whole-balance-beside-subtree", lambda hint: Leaf(hint.left, hint.right), "leaf is not"),
        (
            "transfer-whole-balance-beside-subtree",
            lambda hint: Internal(hint.right, hint.left),
            "internal node is not",
        ),
    ],
    ids=["missing", "leaf-called-internal", "wrong-leaf", "internal-called-leaf", "wrong-internal"],
)
def test_wrong_or_lying_hints__are_rejected(name, forge, message):
    state, tx, entries = _case(name)
    j = _deletion(entries)
    _rejects(
        state,
        tx,
        _raw([*entries[:j], replace(entries[j], hint=forge(entries[j].hint)), *entries[j + 1 :]]),
        message,
    )


@pytest.mark.parametrize("name", ["transfer-ok", "transfer-whole-balance", "transfer-insufficient"])
def test_a_hint_where_none_is_needed__is_rejected(name):
    state, tx, entries = _case(name)
    some_leaf = Leaf(b"\x01" * 32, b"\x02" * 32)
    for j, entry in enumerate(entries):
        if entry.hint is None:
            _rejects(
                state, tx, _raw([*entries[:j], replace(entry, hint=some_leaf), *entries[j + 1 :]]), "hint"
            )


@pytest.mark.parametrize("name", ["transfer-whole-balance", "withdraw-ok", "deposit-into-empty-state"])
def test_every_truncation_and_every_flipped_bit__is_rejected(name):
    state, tx, entries = _case(name)
    raw = _raw(entries)
    assert (
        post_state_root(state.root, VECTOR_CTX, encode(tx), raw)[1]
        == apply_block(state, VECTOR_CTX, [tx]).state.root
    )
    for end in range(len(raw)):
        _rejects(state, tx, raw[:end], "")
    _rejects(state, tx, raw + b"\x00", "1 bytes after the last entry")
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            _rejects(state, tx, raw[:i] + bytes([raw[i] ^ mask]) + raw[i + 1 :], "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty witness"),
        (b"\x01" + b"\x00" * 20, "truncated before its value length"),
        (b"\x01" + b"\x00" * 32 + b"\x39" + b"\x01" * 57, "at most 56 bytes, not 57"),
        (b"\x01" + b"\x00" * 32 + b"\x05" + b"\x01" * 3, "value truncated"),
        (b"\x01" + b"\x00" * 32 + b"\x00", "entry 0: empty proof"),
        (b"\x01" + b"\x00" * 32 + b"\x00" + b"\x00\x02", "entry 0: bad proof terminal 0x02"),
        (b"\x01" + b"\x00" * 32 + b"\x00" + b"\x00\x00", "entry 0: hint truncated"),
        (b"\x01" + b"\x00" * 32 + b"\x00" + b"\x00\x00\x03", "entry 0: bad hint kind 0x03"),
    ],
)
def test_malformed_bytes__raise_witness_error(raw, message):
    with pytest.raises(WitnessError, match=message):
        Witness.decode(raw)


def test_witness_error__is_in_the_project_exception_tree():
    assert issubclass(WitnessError, AgentL2Error) and issubclass(WitnessError, ValueError)
    with pytest.raises(WitnessError, match="32 bytes"):
        Witness((Entry(b"short", None, Proof((), None)),))
    with pytest.raises(WitnessError, match="1 to 56 bytes"):
        Witness((Entry(EMPTY, b"", Proof((), None)),))
