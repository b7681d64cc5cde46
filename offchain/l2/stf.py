"""The L2 state transition function (docs/l2-protocol.md §State leaves, §Effects).

`apply_tx` is pure: it reads state through a `Reader`, and returns the receipt status and the
leaf writes (empty for a failed transaction). `apply_block` runs a block sequentially on top of a
`State`, committing each transaction's writes to the tree to record the per-transaction roots.
Executors (sequential or Block-STM) reuse `apply_tx` as their one definition of a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from eth_hash.auto import keccak

from offchain.chain.ecdsa import recover_signer
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Tx, Withdraw
from offchain.l2.signing import authorization_digest, transfer_digest, withdraw_digest
from offchain.l2.smt import EMPTY, SparseMerkleTree

Reader = Callable[[bytes], bytes | None]  # leaf key -> raw value (None: absent)
Writes = dict[bytes, bytes | None]  # leaf key -> new raw value (None: delete)


class Status(IntEnum):
    OK = 0
    BAD_SIGNATURE = 1
    BAD_NONCE = 2
    INSUFFICIENT_BALANCE = 3
    NOT_YET_VALID = 4
    EXPIRED = 5
    AUTHORIZATION_USED = 6
    BAD_DEPOSIT_INDEX = 7


# -- leaves -------------------------------------------------------------------------------------


def _addr(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def balance_key(account: str, token: str) -> bytes:
    return keccak(b"\x01" + _addr(account) + _addr(token))


def nonce_key(account: str) -> bytes:
    return keccak(b"\x02" + _addr(account))


def authorization_key(authorizer: str, nonce: bytes) -> bytes:
    return keccak(b"\x03" + _addr(authorizer) + nonce)


def withdrawal_key(account: str, nonce: int) -> bytes:
    return keccak(b"\x04" + _addr(account) + nonce.to_bytes(8, "big"))


DEPOSITS_KEY = keccak(b"\x05")
USED = b"\x01"


def withdrawal_value(token: str, amount: int, recipient: str) -> bytes:
    return _addr(token) + amount.to_bytes(16, "big") + _addr(recipient)


def _uint(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _put_uint(value: int, width: int) -> bytes | None:
    return value.to_bytes(width, "big") if value else None  # an "absent" value deletes the leaf


@dataclass(frozen=True)
class BlockContext:
    """What a block gives its transactions."""

    chain_id: int
    inbox: str
    timestamp: int
    sequencer: str


# -- one transaction ----------------------------------------------------------------------------


def signature_ok(tx: Tx, ctx: BlockContext) -> bool:
    """Whether `tx` is signed by its sender (a deposit needs no signature). Reads no state."""
    if isinstance(tx, Deposit):
        return True
    if isinstance(tx, TransferWithAuthorization):
        digest = authorization_digest(tx, ctx.chain_id)
    elif isinstance(tx, Transfer):
        digest = transfer_digest(tx, ctx.chain_id, ctx.inbox)
    elif isinstance(tx, Withdraw):
        digest = withdraw_digest(tx, ctx.chain_id, ctx.inbox)
    else:
        raise TypeError(f"not an L2 transaction: {type(tx).__name__}")
    return recover_signer(digest, tx.signature) == tx.sender


def apply_tx(tx: Tx, ctx: BlockContext, read: Reader, signed: bool | None = None) -> tuple[Status, Writes]:
    """The status and leaf writes of `tx`; a failure writes nothing.

    `signed` is `signature_ok(tx, ctx)` when the caller computed it already (executors do so in
    parallel, as it reads no state); None computes it here.
    """
    if signed is None:
        signed = signature_ok(tx, ctx)
    if isinstance(tx, Deposit):
        if tx.index != _uint(read(DEPOSITS_KEY)):
            return Status.BAD_DEPOSIT_INDEX, {}
        to = balance_key(tx.to, tx.token)
        return Status.OK, {
            DEPOSITS_KEY: _put_uint(tx.index + 1, 8),
            to: _put_uint(_uint(read(to)) + tx.amount, 16),
        }

    if not signed:
        return Status.BAD_SIGNATURE, {}
    if isinstance(tx, TransferWithAuthorization):
        if not tx.valid_after < ctx.timestamp:
            return Status.NOT_YET_VALID, {}
        if not ctx.timestamp < tx.valid_before:
            return Status.EXPIRED, {}
        used = authorization_key(tx.sender, tx.nonce)
        if read(used) is not None:
            return Status.AUTHORIZATION_USED, {}
        writes = _move(read, tx.sender, tx.to, tx.token, tx.value, 0, ctx.sequencer)
        if writes is None:
            return Status.INSUFFICIENT_BALANCE, {}
        writes[used] = USED
        return Status.OK, writes

    nonce = nonce_key(tx.sender)
    if tx.nonce != _uint(read(nonce)):
        return Status.BAD_NONCE, {}
    if isinstance(tx, Transfer):
        writes = _move(read, tx.sender, tx.to, tx.token, tx.amount, tx.fee, ctx.sequencer)
    else:  # the amount leaves the L2: burnt here, paid on L1 against the withdrawal leaf
        writes = _move(read, tx.sender, None, tx.token, tx.amount, tx.fee, ctx.sequencer)
        if writes is not None:
            writes[withdrawal_key(tx.sender, tx.nonce)] = withdrawal_value(tx.token, tx.amount, tx.recipient)
    if writes is None:
        return Status.INSUFFICIENT_BALANCE, {}
    writes[nonce] = _put_uint(tx.nonce + 1, 8)
    return Status.OK, writes


def _move(
    read: Reader, sender: str, to: str | None, token: str, amount: int, fee: int, sequencer: str
) -> Writes | None:
    """Balance writes moving `amount` to `to` (None: burnt) and `fee` to the sequencer; None if short."""
    balances: dict[bytes, int] = {}

    def add(account: str, delta: int) -> None:
        key = balance_key(account, token)
        balances[key] = balances.get(key, _uint(read(key))) + delta

    add(sender, -(amount + fee))
    if balances[balance_key(sender, token)] < 0:
        return None
    if to is not None:
        add(to, amount)
    if fee:
        add(sequencer, fee)
    return {key: _put_uint(value, 16) for key, value in balances.items()}


# -- a block ------------------------------------------------------------------------------------


@dataclass
class State:
    """L2 state: leaf values by key, and the tree over them (its root is the state root)."""

    tree: SparseMerkleTree = field(default_factory=SparseMerkleTree)
    values: dict[bytes, bytes] = field(default_factory=dict)
    root: bytes = EMPTY

    def read(self, key: bytes) -> bytes | None:
        return self.values.get(key)

    def apply(self, writes: Mapping[bytes, bytes | None]) -> State:
        """A new state with `writes` applied (this one is left as it was)."""
        hashes = {key: (None if value is None else keccak(value)) for key, value in writes.items()}
        return self.merged(writes, self.tree.update(self.root, hashes))

    def merged(self, writes: Mapping[bytes, bytes | None], root: bytes) -> State:
        """A new state holding this one's values with `writes` over them, under `root` (already computed)."""
        values = dict(self.values)
        for key, value in writes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        return State(self.tree, values, root)


@dataclass(frozen=True)
class BlockResult:
    state: State
    statuses: list[Status]
    roots: list[bytes]  # the state root after each transaction


def apply_block(state: State, ctx: BlockContext, txs: list[Tx]) -> BlockResult:
    """Runs `txs` in order: the reference every executor must reproduce."""
    overlay: Writes = {}  # this block's writes so far (None: deleted)

    def read(key: bytes) -> bytes | None:
        return overlay[key] if key in overlay else state.values.get(key)

    statuses, roots, root = [], [], state.root
    for tx in txs:
        status, writes = apply_tx(tx, ctx, read)
        if writes:
            overlay.update(writes)
            root = state.tree.update(root, {k: None if v is None else keccak(v) for k, v in writes.items()})
        statuses.append(status)
        roots.append(root)
    return BlockResult(state.merged(overlay, root), statuses, roots)
