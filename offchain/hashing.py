"""keccak256, from the C implementation that is fastest here.

`eth_hash.auto` picks pycryptodome when both are installed, at about 3.6 µs a call against
0.8 µs for pysha3 on this machine; the L2's tree and signature checks hash millions of times.
"""

from __future__ import annotations

from functools import lru_cache

from sha3 import keccak_256


def keccak(data: bytes) -> bytes:
    return keccak_256(data).digest()


@lru_cache(maxsize=1 << 16)
def checksum_address(raw: bytes) -> str:
    """The EIP-55 form of a 20-byte address: a hex digit is upper case where the keccak of the
    lower-case hex has a nibble of 8 or more. Cached: a batch names the same accounts again and
    again, and eth_utils' version costs about ten times as much."""
    digits = raw.hex()
    hashed = keccak(digits.encode()).hex()
    return "0x" + "".join(c.upper() if h >= "8" else c for c, h in zip(digits, hashed, strict=False))
