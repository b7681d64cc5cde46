"""EIP-3009 authorizations: the typed data an x402 `exact` payer signs, and its digests.

One definition of the three structs (TransferWithAuthorization, ReceiveWithAuthorization,
CancelAuthorization) for every signer and verifier in the package; the token's domain is read
on chain (`eip712Domain()`), never guessed.
"""

from __future__ import annotations

import os
from typing import Annotated

from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from offchain.chain.eip712 import Eip712Domain, typed_digest
from offchain.errors import InvalidInput

_AUTH_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
_CANCEL_FIELDS = [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}]

UINT256_MAX = 2**256 - 1


def _address(value: object) -> str:
    try:
        return to_checksum_address(str(value))
    except ValueError:
        raise ValueError(f"not an address: {value!r}") from None


def _uint(value: object) -> int:
    number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if number is None or not 0 <= number <= UINT256_MAX:
        raise ValueError(f"not a uint256: {value!r}")
    return number


def _bytes32(value: object) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else value
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise ValueError("must be 32 bytes (0x + 64 hex digits)")
    return raw


Address = Annotated[str, BeforeValidator(_address)]
# Numbers travel as decimal strings in x402 JSON.
Uint256 = Annotated[int, BeforeValidator(_uint), PlainSerializer(str, return_type=str)]
Bytes32 = Annotated[
    bytes, BeforeValidator(_bytes32), PlainSerializer(lambda b: "0x" + b.hex(), return_type=str)
]


class TransferAuthorization(BaseModel):
    """The fields of an EIP-3009 transfer authorization, as x402 carries them."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    from_: Address = Field(alias="from")
    to: Address
    value: Uint256
    valid_after: Uint256 = Field(alias="validAfter")
    valid_before: Uint256 = Field(alias="validBefore")
    nonce: Bytes32

    def message(self) -> dict:
        return {
            "from": self.from_,
            "to": self.to,
            "value": self.value,
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "nonce": self.nonce,
        }

    def digest(self, domain: Eip712Domain, receive: bool = False) -> bytes:
        """The digest to sign for `transferWithAuthorization` (or `receiveWithAuthorization`)."""
        kind = "ReceiveWithAuthorization" if receive else "TransferWithAuthorization"
        return typed_digest(domain, kind, _AUTH_FIELDS, self.message())

    def as_args(self) -> tuple:
        """Positional arguments of the token's authorization functions, before the signature."""
        return (self.from_, self.to, self.value, self.valid_after, self.valid_before, self.nonce)


def cancel_digest(domain: Eip712Domain, authorizer: str, nonce: bytes) -> bytes:
    return typed_digest(
        domain, "CancelAuthorization", _CANCEL_FIELDS, {"authorizer": authorizer, "nonce": nonce}
    )


def random_nonce() -> bytes:
    """A fresh 32-byte authorization nonce."""
    return os.urandom(32)


def sign_digest(private_key: str | bytes, digest: bytes) -> bytes:
    """A 65-byte r‖s‖v ECDSA signature of `digest` (no prefix: EIP-712 digests are final)."""
    try:
        return bytes(Account.unsafe_sign_hash(digest, private_key).signature)
    except (ValueError, TypeError):
        raise InvalidInput("not a secp256k1 private key") from None


def authorize_transfer(
    private_key: str | bytes,
    domain: Eip712Domain,
    to: str,
    value: int,
    valid_before: int,
    valid_after: int = 0,
    nonce: bytes | None = None,
) -> tuple[TransferAuthorization, bytes]:
    """Signs a transfer of `value` to `to` from the key's address; returns it and its signature."""
    payer = Account.from_key(private_key).address
    auth = TransferAuthorization(
        **{"from": payer},
        to=to,
        value=value,
        validAfter=valid_after,
        validBefore=valid_before,
        nonce=nonce or random_nonce(),
    )
    return auth, sign_digest(private_key, auth.digest(domain))
