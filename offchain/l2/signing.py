"""EIP-712 digests of signed L2 transactions (docs/l2-protocol.md §Signing domains).

Computed directly with keccak (domain separators cached) rather than through a generic
typed-data encoder: signature checks are the costliest part of executing a block.
"""

from __future__ import annotations

from functools import lru_cache

from eth_account import Account

from offchain.chain.eip712 import Eip712Domain
from offchain.hashing import keccak
from offchain.l2.codec import Transfer, TransferWithAuthorization, Withdraw

ROLLUP_NAME, TOKEN_NAME, VERSION = "Agent L2", "Agent L2 Token", "1"

_DOMAIN_TYPE = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
TRANSFER_TYPE = keccak(
    b"Transfer(address from,address to,address token,uint256 amount,uint256 fee,uint64 nonce)"
)
WITHDRAW_TYPE = keccak(
    b"Withdraw(address from,address token,uint256 amount,uint256 fee,address recipient,uint64 nonce)"
)
AUTHORIZATION_TYPE = keccak(
    b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
    b"uint256 validBefore,bytes32 nonce)"
)


def _word(value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    if isinstance(value, str):
        return bytes.fromhex(value[2:]).rjust(32, b"\x00")
    return value.rjust(32, b"\x00")


@lru_cache(maxsize=1024)
def domain_separator(name: str, chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        _DOMAIN_TYPE
        + keccak(name.encode())
        + keccak(VERSION.encode())
        + _word(chain_id)
        + _word(verifying_contract)
    )


def typed_digest(separator: bytes, struct_hash: bytes) -> bytes:
    """EIP-712's `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ structHash)`."""
    return keccak(b"\x19\x01" + separator + struct_hash)


def transfer_digest(tx: Transfer, chain_id: int, inbox: str) -> bytes:
    fields = (tx.sender, tx.to, tx.token, tx.amount, tx.fee, tx.nonce)
    return typed_digest(
        domain_separator(ROLLUP_NAME, chain_id, inbox), keccak(TRANSFER_TYPE + b"".join(map(_word, fields)))
    )


def withdraw_digest(tx: Withdraw, chain_id: int, inbox: str) -> bytes:
    fields = (tx.sender, tx.token, tx.amount, tx.fee, tx.recipient, tx.nonce)
    return typed_digest(
        domain_separator(ROLLUP_NAME, chain_id, inbox), keccak(WITHDRAW_TYPE + b"".join(map(_word, fields)))
    )


def authorization_digest(tx: TransferWithAuthorization, chain_id: int) -> bytes:
    fields = (tx.sender, tx.to, tx.value, tx.valid_after, tx.valid_before, tx.nonce)
    separator = domain_separator(TOKEN_NAME, chain_id, tx.token)
    return typed_digest(separator, keccak(AUTHORIZATION_TYPE + b"".join(map(_word, fields))))


def token_domain(chain_id: int, token: str) -> Eip712Domain:
    """The EIP-712 domain an L2 TransferWithAuthorization of `token` (its L1 address) is signed
    in, as x402 clients and the facilitator name it (the domain `authorization_digest` uses)."""
    return Eip712Domain(name=TOKEN_NAME, version=VERSION, chain_id=chain_id, verifying_contract=token)


def sign(private_key: str | bytes, digest: bytes) -> bytes:
    """r‖s‖v (v 27/28, low s) of `digest`."""
    return bytes(Account.unsafe_sign_hash(digest, private_key).signature)
