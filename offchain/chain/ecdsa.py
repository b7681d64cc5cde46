"""ECDSA signer recovery as the EVM (and OpenZeppelin's ECDSA) accepts it."""

from __future__ import annotations

from coincurve import PublicKey
from eth_utils import to_checksum_address

from offchain.hashing import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address that signed `digest` (65-byte r‖s‖v), or None.

    Exactly what OpenZeppelin's ECDSA and the one-step verifier accept on chain: v 27 or 28 (the
    ecrecover precompile answers nothing for 0 or 1), 0 < r < n and 0 < s <= n/2 (low s); anything
    else is no signature (and a failed recovery is never the zero address: it is None), so that off-chain and
    on-chain checks (the x402 facilitator against the token, the STF against the one-step
    verifier) never disagree.
    """
    if len(signature) != 65 or len(digest) != 32:
        return None
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_HALF_N:
        return None
    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([v - 27]), digest, hasher=None)
    except (ValueError, TypeError):  # r not on the curve, or no point recovers
        return None
    return keccak(key.format(compressed=False)[1:])[12:]


def recover_signer(digest: bytes, signature: bytes) -> str | None:
    """The checksummed address that signed `digest`, or None (see `recover_address`)."""
    address = recover_address(digest, signature)
    return None if address is None else to_checksum_address(address)
