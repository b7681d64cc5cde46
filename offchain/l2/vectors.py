"""Test vectors of the L2 rules, for the on-chain one-step verifier to check against.

Each vector is one transaction applied to a known state: its record, its EIP-712 digest and the
signer its signature recovers to (signed kinds), the block context, the pre-state root, every leaf the transaction reads with its value and its proof against the
pre-state root (membership or non-membership), its state witness (`witness.py`: every leaf it
reads or writes, proven in key order), the expected status and the post-state root. A verifier
that recomputes the status and post-state root from the record, context, pre-state root and
witness alone, for every vector, implements the same rules as `stf.apply_tx`; between them the
cases take every path through the tree a one-step proof can take (insert into an empty tree or
an empty subtree, insert beside a leaf, overwrite, delete beside a leaf or beside a subtree).
Written by `python -m offchain.l2.vectors`, with `l2_steps.json`: a batch as the inbox holds it
(data, tx root, count, poster) and the whole one-step proof of each of its transactions
(`onestep.py`) with the agreed root before it, its status and the post-state root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eth_account import Account

from offchain.chain.ecdsa import recover_signer
from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block, batch_preimage, execute_batch
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Tx, Withdraw, encode
from offchain.l2.onestep import prove_step
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.stf import BlockContext, State, Status, apply_block, apply_tx, balance_key, nonce_key
from offchain.l2.witness import prove_tx

CHAIN, INBOX, TOKEN = 424_242, "0x" + "1b" * 20, "0x" + "0a" * 20
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer="0x" + "5e" * 20)
ALICE, BOB = (Account.from_key(keccak(name)) for name in (b"vector-alice", b"vector-bob"))
CAROL, DAVE = "0x" + "20" * 20, "0x" + "85" * 20  # chosen for where their balance leaves fall in the tree
# ERIN's balance key sorts before her nonce and withdrawal keys: withdrawing all she has from a
# tree where her balance is the only leaf deletes the only leaf, then inserts into the empty tree.
ERIN = Account.from_key(keccak(b"vector-erin-0"))
ZERO_ADDRESS = "0x" + "00" * 20
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# No curve point has x = 5: ecrecover answers the zero address for any signature with this r.
UNRECOVERABLE_R = 5


def _transfer(
    key: bytes,
    sender: str,
    amount: int,
    fee: int = 1,
    nonce: int = 0,
    chain: int = CHAIN,
    to: str | None = None,
) -> Transfer:
    to = BOB.address if to is None else to
    unsigned = Transfer(sender, to, TOKEN, amount, fee, nonce, b"\x00" * 65)
    return Transfer(sender, to, TOKEN, amount, fee, nonce, sign(key, transfer_digest(unsigned, chain, INBOX)))


def _v_as_0_or_1(tx: Transfer) -> Transfer:
    """`tx` with v = 0/1: the same signer to a lax recovery, no signature to ecrecover."""
    signature = tx.signature[:64] + bytes([tx.signature[64] - 27])
    return Transfer(tx.sender, tx.to, tx.token, tx.amount, tx.fee, tx.nonce, signature)


def _authorization(key: bytes, value: int, after: int = 0, before: int = 2_000, nonce: bytes = b"\x01" * 32):
    unsigned = TransferWithAuthorization(
        ALICE.address, BOB.address, TOKEN, value, after, before, nonce, b"\x00" * 65
    )
    signature = sign(key, authorization_digest(unsigned, CHAIN))
    return TransferWithAuthorization(
        ALICE.address, BOB.address, TOKEN, value, after, before, nonce, signature
    )


def _withdraw(key: bytes, amount: int, nonce: int = 0, fee: int = 2, sender: str | None = None) -> Withdraw:
    sender = ALICE.address if sender is None else sender
    unsigned = Withdraw(sender, TOKEN, amount, fee, BOB.address, nonce, b"\x00" * 65)
    return Withdraw(
        sender,
        TOKEN,
        amount,
        fee,
        BOB.address,
        nonce,
        sign(key, withdraw_digest(unsigned, CHAIN, INBOX)),
    )


def _with_signature(tx: Transfer, r: int, s: int, v: int) -> Transfer:
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    return Transfer(tx.sender, tx.to, tx.token, tx.amount, tx.fee, tx.nonce, signature)


def _high_s(tx: Transfer) -> Transfer:
    """`tx` with s replaced by n - s (and v flipped): the same signer to a lax recovery."""
    r, s, v = (
        int.from_bytes(tx.signature[:32], "big"),
        int.from_bytes(tx.signature[32:64], "big"),
        tx.signature[64],
    )
    return _with_signature(tx, r, SECP256K1_N - s, 55 - v)


def _from_zero_address() -> Transfer:
    """A record "from" the zero address whose signature recovers to nothing (ecrecover: zero)."""
    unsigned = Transfer(ZERO_ADDRESS, BOB.address, TOKEN, 1, 0, 0, b"\x00" * 65)
    return _with_signature(unsigned, UNRECOVERABLE_R, 1, 27)


def _leaves(values: dict[bytes, bytes]) -> State:
    """A state holding exactly `values` (to reach tree shapes no short history gives)."""
    return State().apply(values)


def _genesis() -> State:
    """ALICE holds 999 and BOB 1 (she paid him 1 by an authorization, whose nonce is now used)."""
    state = apply_block(State(), CTX, [Deposit(0, ALICE.address, TOKEN, 1_000)]).state
    return apply_block(state, CTX, [_authorization(ALICE.key, 1, nonce=b"\x0f" * 32)]).state


def _with_carol(genesis: State) -> State:
    """Genesis and a deposit to CAROL: ALICE's balance leaf now has a subtree beside it."""
    return apply_block(genesis, CTX, [Deposit(1, CAROL, TOKEN, 10)]).state


def cases() -> list[tuple[str, Tx, Status]]:
    """Every kind and every outcome on the genesis state, with the status the rules give."""
    return [
        ("deposit-ok", Deposit(1, BOB.address, TOKEN, 50), Status.OK),
        ("deposit-bad-index", Deposit(5, BOB.address, TOKEN, 50), Status.BAD_DEPOSIT_INDEX),
        ("transfer-ok", _transfer(ALICE.key, ALICE.address, 100), Status.OK),
        ("transfer-bad-signature", _transfer(BOB.key, ALICE.address, 100), Status.BAD_SIGNATURE),
        (
            "transfer-other-chain",
            _transfer(ALICE.key, ALICE.address, 100, chain=CHAIN + 1),
            Status.BAD_SIGNATURE,
        ),
        ("transfer-bad-nonce", _transfer(ALICE.key, ALICE.address, 100, nonce=3), Status.BAD_NONCE),
        ("transfer-insufficient", _transfer(ALICE.key, ALICE.address, 999), Status.INSUFFICIENT_BALANCE),
        ("transfer-v-0-or-1", _v_as_0_or_1(_transfer(ALICE.key, ALICE.address, 100)), Status.BAD_SIGNATURE),
        # Which leaves a transaction touches: no fee, no sequencer leaf; an amount of 0 still
        # touches the receiver's (absent, it stays absent); paying oneself is one leaf.
        ("transfer-no-fee", _transfer(ALICE.key, ALICE.address, 100, fee=0), Status.OK),
        ("transfer-zero-amount-to-new-account", _transfer(ALICE.key, ALICE.address, 0, to=DAVE), Status.OK),
        ("transfer-to-self", _transfer(ALICE.key, ALICE.address, 100, to=ALICE.address), Status.OK),
        ("authorization-ok", _authorization(ALICE.key, 200), Status.OK),
        ("authorization-bad-signature", _authorization(BOB.key, 200), Status.BAD_SIGNATURE),
        ("authorization-not-yet-valid", _authorization(ALICE.key, 200, after=1_000), Status.NOT_YET_VALID),
        ("authorization-expired", _authorization(ALICE.key, 200, before=1_000), Status.EXPIRED),
        ("authorization-used", _authorization(ALICE.key, 200, nonce=b"\x0f" * 32), Status.AUTHORIZATION_USED),
        ("authorization-insufficient", _authorization(ALICE.key, 2_000), Status.INSUFFICIENT_BALANCE),
        ("withdraw-ok", _withdraw(ALICE.key, 300), Status.OK),
        ("withdraw-bad-signature", _withdraw(BOB.key, 300), Status.BAD_SIGNATURE),
        ("withdraw-bad-nonce", _withdraw(ALICE.key, 300, nonce=1), Status.BAD_NONCE),
        ("withdraw-insufficient", _withdraw(ALICE.key, 999), Status.INSUFFICIENT_BALANCE),
        ("withdraw-no-fee", _withdraw(ALICE.key, 300, fee=0), Status.OK),
        # ALICE's whole balance, fee included: her leaf is deleted and a sibling leaf moves up.
        ("transfer-whole-balance", _transfer(ALICE.key, ALICE.address, 998), Status.OK),
        # Malformed signatures are no signatures (docs/l2-protocol.md §Transactions).
        ("transfer-high-s", _high_s(_transfer(ALICE.key, ALICE.address, 100)), Status.BAD_SIGNATURE),
        (
            "transfer-r-zero",
            _with_signature(_transfer(ALICE.key, ALICE.address, 1), 0, 1, 27),
            Status.BAD_SIGNATURE,
        ),
        (
            "transfer-s-zero",
            _with_signature(_transfer(ALICE.key, ALICE.address, 1), 1, 0, 27),
            Status.BAD_SIGNATURE,
        ),
        (
            "transfer-r-not-below-n",
            _with_signature(_transfer(ALICE.key, ALICE.address, 1), SECP256K1_N, 1, 27),
            Status.BAD_SIGNATURE,
        ),
        ("transfer-from-zero-address-unrecoverable", _from_zero_address(), Status.BAD_SIGNATURE),
    ]


def tree_cases() -> list[tuple[str, Tx, Status, State]]:
    """Transactions on other states, for the tree paths the genesis cases do not take."""
    genesis = _genesis()
    carol = _with_carol(genesis)
    alice, amount = balance_key(ALICE.address, TOKEN), (1_000).to_bytes(16, "big")
    return [
        ("deposit-into-empty-state", Deposit(0, ALICE.address, TOKEN, 1_000), Status.OK, State()),
        ("deposit-into-empty-subtree", Deposit(2, DAVE, TOKEN, 5), Status.OK, carol),
        # ALICE's leaf is deleted beside a subtree of two leaves or more: nothing moves up.
        ("transfer-whole-balance-beside-subtree", _transfer(ALICE.key, ALICE.address, 998), Status.OK, carol),
        # A tree of one leaf: the deposits leaf and BOB's balance go in beside it at depth 0.
        (
            "deposit-beside-single-leaf",
            Deposit(0, BOB.address, TOKEN, 7),
            Status.OK,
            _leaves({alice: amount}),
        ),
        # ERIN's balance is the only leaf and she withdraws it all: deleted to the empty tree,
        # then her withdrawal goes into the empty tree and her nonce beside it.
        (
            "withdraw-the-only-leaf",
            _withdraw(ERIN.key, 40, fee=0, sender=ERIN.address),
            Status.OK,
            _leaves({balance_key(ERIN.address, TOKEN): (40).to_bytes(16, "big")}),
        ),
        # The last nonce is never usable (the next would not fit 8 bytes): BAD_NONCE, no overflow.
        (
            "transfer-last-nonce",
            _transfer(ALICE.key, ALICE.address, 1, nonce=2**64 - 1),
            Status.BAD_NONCE,
            genesis.apply({nonce_key(ALICE.address): (2**64 - 1).to_bytes(8, "big")}),
        ),
    ]


def _digest(tx: Tx) -> bytes | None:
    if isinstance(tx, Transfer):
        return transfer_digest(tx, CTX.chain_id, CTX.inbox)
    if isinstance(tx, Withdraw):
        return withdraw_digest(tx, CTX.chain_id, CTX.inbox)
    if isinstance(tx, TransferWithAuthorization):
        return authorization_digest(tx, CTX.chain_id)
    return None


def vector(name: str, tx: Tx, state: State) -> dict:
    """The vector of `tx` on `state`."""
    reads: list[bytes] = []

    def read(key: bytes) -> bytes | None:
        if key not in reads:
            reads.append(key)
        return state.read(key)

    status, _ = apply_tx(tx, CTX, read)
    post = apply_block(state, CTX, [tx]).state.root
    witness = prove_tx(state, CTX, tx)
    leaves = []
    for key in reads:
        value = state.read(key)
        leaves.append(
            {
                "key": "0x" + key.hex(),
                "value": None if value is None else "0x" + value.hex(),
                "proof": "0x" + state.tree.prove(state.root, key).encode().hex(),
            }
        )
    digest = _digest(tx)
    signer = None if digest is None else recover_signer(digest, tx.signature)  # type: ignore[union-attr]
    return {
        "name": name,
        "record": "0x" + encode(tx).hex(),
        "digest": None if digest is None else "0x" + digest.hex(),  # EIP-712, of a signed kind
        "signer": signer,  # what the signature recovers to (None: no valid signature)
        "context": {
            "chainId": CTX.chain_id,
            "inbox": CTX.inbox,
            "timestamp": CTX.timestamp,
            "sequencer": CTX.sequencer,
        },
        "preStateRoot": "0x" + state.root.hex(),
        "reads": leaves,
        "witness": "0x" + witness.encode().hex(),
        "status": int(status),
        "statusName": status.name,
        "postStateRoot": "0x" + post.hex(),
    }


def all_cases() -> list[tuple[str, Tx, Status, State]]:
    """Every case with the state it applies to."""
    genesis = _genesis()
    return [(name, tx, expected, genesis) for name, tx, expected in cases()] + tree_cases()


def generate() -> list[dict]:
    out = []
    for name, tx, expected, state in all_cases():
        item = vector(name, tx, state)
        if item["status"] != expected:
            raise AssertionError(
                f"{name}: the rules give {item['statusName']}, the case expects {expected.name}"
            )
        out.append(item)
    return out


def step_batch() -> Batch:
    """A batch of two blocks, for whole one-step proofs: successes and failures, a deposit."""
    return Batch(
        (
            Block(1_000, (_transfer(ALICE.key, ALICE.address, 100), _transfer(BOB.key, ALICE.address, 5))),
            Block(
                1_200,
                (
                    Deposit(1, CAROL, TOKEN, 10),
                    _authorization(ALICE.key, 200),
                    _withdraw(ALICE.key, 300, nonce=1),
                    _transfer(ALICE.key, ALICE.address, 1, nonce=9),
                ),
            ),
        )
    )


def generate_steps() -> dict:
    """The batch as posted (data, tx root, count, poster) and the proof of each of its steps."""
    pre, batch = _genesis(), step_batch()
    _, statuses, roots = execute_batch(pre, batch, CTX.chain_id, CTX.inbox, CTX.sequencer)
    steps = []
    for index in range(batch.tx_count):
        proof = prove_step(pre, batch, index, CTX.chain_id, CTX.inbox, CTX.sequencer)
        steps.append(
            {
                "index": index,
                "agreedRoot": "0x" + (roots[index - 1] if index else pre.root).hex(),
                "proof": "0x" + proof.encode().hex(),
                "status": int(statuses[index]),
                "statusName": statuses[index].name,
                "postStateRoot": "0x" + roots[index].hex(),
            }
        )
    preimage = batch_preimage(b"\x00" * 32, batch.encode(), batch.tx_root(), batch.tx_count, CTX.sequencer)
    return {
        "chainId": CTX.chain_id,
        "inbox": CTX.inbox,
        "poster": CTX.sequencer,
        "preimage": "0x" + preimage.hex(),  # the first batch of its inbox: no batch before it
        "batchHash": "0x" + keccak(preimage).hex(),
        "preStateRoot": "0x" + pre.root.hex(),
        "data": "0x" + batch.encode().hex(),
        "txRoot": "0x" + batch.tx_root().hex(),
        "txCount": batch.tx_count,
        "steps": steps,
    }


def main(
    path: str = "tests/vectors/l2_transactions.json", steps: str = "tests/vectors/l2_steps.json"
) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"version": 1, "vectors": generate()}, indent=2) + "\n")
    print(f"wrote {target}")
    Path(steps).write_text(json.dumps({"version": 1, "batch": generate_steps()}, indent=2) + "\n")
    print(f"wrote {steps}")


if __name__ == "__main__":
    main(*sys.argv[1:])
