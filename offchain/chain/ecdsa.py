"""ECDSA signer recovery as the EVM (and OpenZeppelin's ECDSA) accepts it."""

from __future__ import annotations

from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The address that signed `digest` (65-byte r‖s‖v, v 27/28 or 0/1), or None.

    High-s signatures are refused, as OpenZeppelin's ECDSA refuses them on chain.
    """
    if len(signature) != 65:
        return None
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    v = v - 27 if v >= 27 else v
    if v not in (0, 1) or not 0 < s <= SECP256K1_HALF_N or r == 0:
        return None
    try:
        key = keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError):
        return None
    return key.to_checksum_address()
