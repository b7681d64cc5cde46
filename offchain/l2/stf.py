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
from functools import lru_cache

from offchain.chain.ecdsa import recover_address
from offchain.hashing import keccak
from offchain.l2.codec import MAX_U64, Deposit, Transfer, TransferWithAuthorization, Tx, Withdraw
from offchain.l2.signing import authorization_digest, transfer_digest, withdraw_digest
from offchain.l2.smt import EMPTY, SparseMerkleTree

Reader = Callable[[bytes], bytes | None]  # leaf key -> raw value (None: absent)
Writes = dict[bytes, bytes | None]  # leaf key -> new raw value (None: delete)


@dataclass(frozen=True, slots=True)
class Credit:
    """A balance leaf increased by `amount` without being read (see `apply_tx(credits=True)`)."""

    amount: int


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


# Keys are hashed from addresses again and again within and across blocks: cache the hot ones.
@lru_cache(maxsize=1 << 16)
def balance_key(account: str, token: str) -> bytes:
    return keccak(b"\x01" + _addr(account) + _addr(token))


@lru_cache(maxsize=1 << 16)
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
    return recover_address(digest, tx.signature) == _addr(tx.sender)


def apply_tx(
    tx: Tx, ctx: BlockContext, read: Reader, signed: bool | None = None, credits: bool = False
) -> tuple[Status, Writes]:
    """The status and leaf writes of `tx`; a failure writes nothing.

    `signed` is `signature_ok(tx, ctx)` when the caller computed it already (executors do so in
    parallel, as it reads no state); None computes it here. With `credits`, a balance the
    transaction only adds to (the receiver's, the sequencer's fee) is not read and comes back as
    a `Credit`: a parallel executor adds these up, so a popular receiver is no conflict. The
    effect is the same; without `credits` every value is absolute.
    """
    if signed is None:
        signed = signature_ok(tx, ctx)
    if isinstance(tx, Deposit):
        if tx.index != _uint(read(DEPOSITS_KEY)):
            return Status.BAD_DEPOSIT_INDEX, {}
        balances: dict = {}
        _credit(balances, read, balance_key(tx.to, tx.token), tx.amount, credits)
        return Status.OK, {DEPOSITS_KEY: _put_uint(tx.index + 1, 8), **_balance_values(balances)}

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
        writes = _move(read, tx.sender, tx.to, tx.token, tx.value, 0, ctx.sequencer, credits)
        if writes is None:
            return Status.INSUFFICIENT_BALANCE, {}
        writes[used] = USED
        return Status.OK, writes

    nonce = nonce_key(tx.sender)
    # The last nonce, 2^64 - 1, is never usable: the next one would not fit the leaf's 8 bytes.
    if tx.nonce != _uint(read(nonce)) or tx.nonce == MAX_U64:
        return Status.BAD_NONCE, {}
    if isinstance(tx, Transfer):
        writes = _move(read, tx.sender, tx.to, tx.token, tx.amount, tx.fee, ctx.sequencer, credits)
    else:  # the amount leaves the L2: burnt here, paid on L1 against the withdrawal leaf
        writes = _move(read, tx.sender, None, tx.token, tx.amount, tx.fee, ctx.sequencer, credits)
        if writes is not None:
            writes[withdrawal_key(tx.sender, tx.nonce)] = withdrawal_value(tx.token, tx.amount, tx.recipient)
    if writes is None:
        return Status.INSUFFICIENT_BALANCE, {}
    writes[nonce] = _put_uint(tx.nonce + 1, 8)
    return Status.OK, writes


def _move(
    read: Reader,
    sender: str,
    to: str | None,
    token: str,
    amount: int,
    fee: int,
    sequencer: str,
    credits: bool,
) -> dict | None:
    """Balance writes moving `amount` to `to` (None: burnt) and `fee` to the sequencer; None if short."""
    source = balance_key(sender, token)
    left = _uint(read(source)) - amount - fee
    if left < 0:
        return None
    writes: dict = {source: left}
    if to is not None:
        _credit(writes, read, balance_key(to, token), amount, credits)
    if fee:
        _credit(writes, read, balance_key(sequencer, token), fee, credits)
    return _balance_values(writes)


def _credit(writes: dict, read: Reader, key: bytes, amount: int, credits: bool) -> None:
    """Adds `amount` to balance `key` in `writes`: to the value there, else blind or read."""
    current = writes.get(key)
    if isinstance(current, int):  # the transaction's own balance (paying oneself): already read
        writes[key] = current + amount
    elif isinstance(current, Credit):
        writes[key] = Credit(current.amount + amount)
    elif credits:
        writes[key] = Credit(amount)
    else:
        writes[key] = _uint(read(key)) + amount


def _balance_values(balances: dict) -> dict:
    return {
        key: value if isinstance(value, Credit) else _put_uint(value, 16) for key, value in balances.items()
    }


# -- a block ------------------------------------------------------------------------------------


@dataclass
class State:
    """L2 state: leaf values by key, and the tree over them (its root is the state root)."""

    tree: SparseMerkleTree = field(default_factory=SparseMerkleTree)
    values: dict[bytes, bytes] = field(default_factory=dict)
    root: bytes = EMPTY
    parent: bytes | None = None  # the root of the state this one was made from (None: made directly)
    changes: Mapping[bytes, bytes | None] | None = None  # the writes that made it from its parent

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
        return State(self.tree, values, root, parent=self.root, changes=writes)


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
