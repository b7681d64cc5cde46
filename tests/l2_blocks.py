"""Signed L2 transactions for executor tests: forty keys; the eighth (index 7) is the sequencer's,
the first eight are funded by `deposits`, the other 32 are for blocks without contention."""

from __future__ import annotations

from eth_account import Account

from offchain.hashing import keccak
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Tx, Withdraw
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.stf import BlockContext

CHAIN, INBOX, TOKEN = 7_777, "0x" + "1b" * 20, "0x" + "0a" * 20
KEYS = [keccak(i.to_bytes(4, "big")) for i in range(40)]
ADDRS = [Account.from_key(k).address for k in KEYS]
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer=ADDRS[7])

# Signing is slow: sign each (kind, sender, fields) once and reuse it across examples.
_signed: dict[tuple, Tx] = {}


def signed_tx(
    kind: str,
    sender: int,
    to: int,
    amount: int,
    nonce: int,
    bad_sig: bool = False,
    fee: int = 1,
    window: tuple[int, int] = (0, 2_000),
) -> Tx:
    """A transfer, withdrawal or authorization from account `sender`; `bad_sig` signs with another
    key; `window` is an authorization's (validAfter, validBefore), against blocks at time 1,000."""
    cache_key = (kind, sender, to, amount, nonce, bad_sig, fee, window)
    if cache_key in _signed:
        return _signed[cache_key]
    key = KEYS[(sender + 1) % 8] if bad_sig else KEYS[sender]
    a, b = ADDRS[sender], ADDRS[to]
    tx: Tx
    if kind == "transfer":
        tx = Transfer(a, b, TOKEN, amount, fee, nonce, b"\x00" * 65)
        tx = Transfer(a, b, TOKEN, amount, fee, nonce, sign(key, transfer_digest(tx, CHAIN, INBOX)))
    elif kind == "withdraw":
        tx = Withdraw(a, TOKEN, amount, fee, b, nonce, b"\x00" * 65)
        tx = Withdraw(a, TOKEN, amount, fee, b, nonce, sign(key, withdraw_digest(tx, CHAIN, INBOX)))
    else:
        auth_nonce = keccak(bytes([sender, to, amount % 256, nonce % 256]))
        after, before = window
        tx = TransferWithAuthorization(a, b, TOKEN, amount, after, before, auth_nonce, b"\x00" * 65)
        tx = TransferWithAuthorization(
            a, b, TOKEN, amount, after, before, auth_nonce, sign(key, authorization_digest(tx, CHAIN))
        )
    _signed[cache_key] = tx
    return tx


def deposits(n: int) -> list[Deposit]:
    """Deposits 0 … n-1 of 50 each to accounts 0 … 6 in turn (never to the sequencer)."""
    return [Deposit(i, ADDRS[i % 7], TOKEN, 50) for i in range(n)]
