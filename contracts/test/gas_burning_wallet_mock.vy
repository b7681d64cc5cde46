# pragma version ~=0.4.3
"""
@title GasBurningWalletMock
@custom:contract-name GasBurningWalletMock
@license MIT
@notice Test-only hostile ERC-1271 wallet: checking its signature burns all the gas it is given.
"""


@view
@external
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice Hashes until the gas runs out, then (never) answers.
    @return Never returns normally.
    """
    acc: bytes32 = digest
    for i: uint256 in range(10_000_000):
        acc = keccak256(acc)
    return convert(slice(acc, 0, 4), bytes4)
