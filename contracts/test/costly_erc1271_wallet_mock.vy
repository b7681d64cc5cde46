# pragma version ~=0.4.3
"""
@title CostlyERC1271WalletMock
@custom:contract-name CostlyERC1271WalletMock
@license MIT
@notice Test-only contract wallet whose signature check costs what its `work` says: with a
        fixed work of ~240k gas it stands in for a P-256/WebAuthn wallet verified in Solidity
        (valid, only costly); with its work raised after a gas estimate it is a hostile wallet,
        cheap when estimated and costly when run.
"""

from snekmate.utils import ecdsa


# The EOA whose signatures this wallet accepts.
owner: public(address)

# Gas the check burns before it verifies the signature (0: none).
work: public(uint256)

# ERC-1271 magic value of a valid signature.
_MAGIC: constant(bytes4) = 0x1626ba7e


event WorkSet:
    work: uint256


@deploy
def __init__(owner: address, work: uint256):
    """
    @param owner The EOA whose signatures this wallet accepts.
    @param work The gas each signature check burns first.
    """
    self.owner = owner
    self.work = work


@external
def set_work(work: uint256):
    """
    @notice Changes what a check costs (anyone may: this is a test double).
    @param work The gas each signature check burns first.
    """
    self.work = work
    log WorkSet(work=work)


@view
@external
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice ERC-1271: burns `work` gas, then answers whether the owner signed `digest`.
    @param digest The signed digest.
    @param signature A 65-byte ECDSA signature.
    @return The magic value if valid, else zero.
    """
    start: uint256 = msg.gas
    budget: uint256 = self.work
    acc: bytes32 = digest
    for i: uint256 in range(10_000_000):
        if start - msg.gas >= budget:
            break
        acc = keccak256(acc)
    if ecdsa._recover_sig(digest, signature) == self.owner:
        return _MAGIC
    return empty(bytes4)
