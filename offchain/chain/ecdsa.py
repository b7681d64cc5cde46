"""ECDSA signer recovery as the EVM (and OpenZeppelin's ECDSA) accepts it."""

from __future__ import annotations

from coincurve import PublicKey
from eth_utils import to_checksum_address

from offchain.hashing import keccak

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address that signed `digest` (65-byte r‖s‖v, v 27/28 or 0/1), or None.

    High-s signatures are refused, as OpenZeppelin's ECDSA refuses them on chain.
    """
    if len(signature) != 65 or len(digest) != 32:
        return None
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    v = v - 27 if v >= 27 else v
    if v not in (0, 1) or not 0 < s <= SECP256K1_HALF_N or r == 0:
        return None
    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except (ValueError, TypeError):  # r not on the curve, or no point recovers
        return None
    return keccak(key.format(compressed=False)[1:])[12:]


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The checksummed address that signed `digest`, or None (see `recover_address`)."""
    address = recover_address(digest, signature)
    return None if address is None else to_checksum_address(address)
