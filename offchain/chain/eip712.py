"""EIP-712 typed-data digests, with the domain read from the contract itself (ERC-5267)."""

from __future__ import annotations

from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class Eip712Domain(BaseModel):
    """A (name, version, chainId, verifyingContract) EIP-712 domain."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    @classmethod
    def from_eip5267(cls, answer: Any) -> Eip712Domain:
        """From the tuple `eip712Domain()` returns (fields, name, version, chainId, contract, salt, ext)."""
        _, name, version, chain_id, verifying_contract, _, _ = answer
        return cls(
            name=name,
            version=version,
            chain_id=int(chain_id),
            verifying_contract=to_checksum_address(str(verifying_contract)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def typed_digest(
    domain: Eip712Domain, primary_type: str, fields: list[dict[str, str]], message: dict
) -> bytes:
    """keccak256("\\x19\\x01" ‖ domainSeparator ‖ hashStruct(message)): what a signer signs."""
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, primary_type: fields},
            "primaryType": primary_type,
            "domain": domain.as_dict(),
            "message": message,
        }
    )
    return keccak(b"\x19" + signable.version + signable.header + signable.body)
