"""Signed soft confirmations: a sequencer's promise that a transaction is in a block it will post.

A confirmation names the L2 transaction (`keccak256(record)`), the L2 block number and the
position in that block, signed with EIP-712 in the rollup's domain (the domain of Transfer and
Withdraw, docs/l2-protocol.md §Signing domains). Anyone holding one can show that the sequencer
promised it: if the posted batches put something else at that place, the signature is the
evidence of a broken promise.
"""

from __future__ import annotations

from typing import Any

from coincurve import PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from offchain.chain.ecdsa import recover_signer
from offchain.errors import ConfigError
from offchain.hashing import keccak
from offchain.l2.signing import ROLLUP_NAME, domain_separator, typed_digest

CONFIRMATION_TYPE = keccak(b"SoftConfirmation(bytes32 txHash,uint64 l2Block,uint32 position)")


def tx_hash(record: bytes) -> bytes:
    """The L2 transaction hash: keccak256 of its record."""
    return keccak(record)


class SoftConfirmation(BaseModel):
    """A sequencer's signed promise of a transaction's place (the API's wire model)."""

    model_config = ConfigDict(frozen=True)

    chain_id: int = Field(ge=1, lt=2**64)
    inbox: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    tx_hash: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    l2_block: int = Field(ge=0, lt=2**64)
    position: int = Field(ge=0, lt=2**32)
    sequencer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    signature: str = Field(pattern=r"^0x[0-9a-f]{130}$")

    def digest(self) -> bytes:
        return confirmation_digest(
            self.chain_id, self.inbox, bytes.fromhex(self.tx_hash[2:]), self.l2_block, self.position
        )

    def signer(self) -> str | None:
        """Who signed it (None for no valid signature)."""
        return recover_signer(self.digest(), bytes.fromhex(self.signature[2:]))

    def is_valid(self) -> bool:
        signer = self.signer()
        return signer is not None and signer.lower() == self.sequencer.lower()


def confirmation_digest(chain_id: int, inbox: str, txn_hash: bytes, l2_block: int, position: int) -> bytes:
    struct = CONFIRMATION_TYPE + txn_hash + l2_block.to_bytes(32, "big") + position.to_bytes(32, "big")
    return typed_digest(domain_separator(ROLLUP_NAME, chain_id, inbox), keccak(struct))


class ConfirmationSigner:
    """Signs confirmation digests with the operator's key: in process with libsecp256k1 when the
    account holds its key in memory (ape's test accounts, 27 µs a signature), else through the
    account's own signer (a keyfile account, ~130 µs)."""

    def __init__(self, account: Any):
        self.account = account
        self.address = str(account.address)
        secret = getattr(account, "private_key", None)
        self._key = PrivateKey(bytes.fromhex(str(secret).removeprefix("0x"))) if secret else None

    def sign(self, digest: bytes) -> bytes:
        """r‖s‖v (v 27/28, low s: libsecp256k1 normalizes) of `digest`."""
        if self._key is not None:
            signature = self._key.sign_recoverable(digest, hasher=None)
            return signature[:64] + bytes([signature[64] + 27])
        signed = self.account.sign_raw_msghash(digest)
        if signed is None:
            raise ConfigError(f"account {self.address} cannot sign a message hash")
        return bytes(signed.r).rjust(32, b"\x00") + bytes(signed.s).rjust(32, b"\x00") + bytes([signed.v])


def confirm(
    signer: ConfirmationSigner, chain_id: int, inbox: str, record: bytes, l2_block: int, position: int
) -> SoftConfirmation:
    """`signer`'s confirmation that `record` is transaction `position` of `l2_block`."""
    txn_hash = tx_hash(record)
    signature = signer.sign(confirmation_digest(chain_id, inbox, txn_hash, l2_block, position))
    return SoftConfirmation(
        chain_id=chain_id,
        inbox=inbox,
        tx_hash="0x" + txn_hash.hex(),
        l2_block=l2_block,
        position=position,
        sequencer=signer.address,
        signature="0x" + signature.hex(),
    )
