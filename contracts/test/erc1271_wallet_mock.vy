# pragma version ~=0.4.3
"""
@title ERC1271WalletMock
@custom:contract-name ERC1271WalletMock
@license MIT
@notice Test-only contract wallet: a signature is valid when its single owner
        signed the digest. Stands in for a smart account in identity tests.
"""

from snekmate.utils import ecdsa


# The EOA whose signatures this wallet accepts.
owner: public(address)

# ERC-1271 magic value of a valid signature.
_MAGIC: constant(bytes4) = 0x1626ba7e


@deploy
def __init__(owner: address):
    """
    @param owner The EOA whose signatures this wallet accepts.
    """
    self.owner = owner


@view
@external
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice ERC-1271: whether the owner signed `digest`.
    @param digest The signed digest.
    @param signature A 65-byte ECDSA signature.
    @return The magic value if valid, else zero.
    """
    if ecdsa._recover_sig(digest, signature) == self.owner:
        return _MAGIC
    return empty(bytes4)
