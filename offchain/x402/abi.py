"""The slices of our contracts' ABIs the off-chain services call (AgentUSD, BatchSettler)."""

from __future__ import annotations

from eth_utils import keccak


def _fn(
    name: str, inputs: list[tuple[str, str]], outputs: list[str] | None = None, view: bool = False
) -> dict:
    return {
        "type": "function",
        "name": name,
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": t} for t in outputs or []],
        "stateMutability": "view" if view else "nonpayable",
    }


_AUTH = [
    ("from", "address"),
    ("to", "address"),
    ("value", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
]

TOKEN_ABI = [
    _fn("transferWithAuthorization", [*_AUTH, ("signature", "bytes")]),
    _fn("authorizationState", [("authorizer", "address"), ("nonce", "bytes32")], ["bool"], view=True),
    _fn("balanceOf", [("account", "address")], ["uint256"], view=True),
    _fn("name", [], ["string"], view=True),
    _fn("version", [], ["string"], view=True),
    _fn("decimals", [], ["uint8"], view=True),
    _fn(
        "eip712Domain",
        [],
        ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"],
        view=True,
    ),
]

ERC1271_ABI = [_fn("isValidSignature", [("hash", "bytes32"), ("signature", "bytes")], ["bytes4"], view=True)]

SETTLER_ABI = [
    {
        "type": "function",
        "name": "settle",
        "inputs": [
            {"name": "token", "type": "address"},
            {
                "name": "authorizations",
                "type": "tuple[]",
                "components": [
                    {"name": n, "type": t}
                    for n, t in [*_AUTH, ("gasLimit", "uint256"), ("signature", "bytes")]
                ],
            },
        ],
        "outputs": [{"name": "settled", "type": "bool[]"}],
        "stateMutability": "nonpayable",
    }
]

TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
AUTHORIZATION_USED_TOPIC = keccak(text="AuthorizationUsed(address,bytes32)")
AUTHORIZATION_SKIPPED_TOPIC = keccak(text="AuthorizationSkipped(address,uint256,address,bytes32,bytes)")
ERC1271_MAGIC = bytes.fromhex("1626ba7e")


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]
