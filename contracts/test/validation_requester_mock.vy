# pragma version ~=0.4.3
"""
@title ValidationRequesterMock
@custom:contract-name ValidationRequesterMock
@license MIT
@notice Test helper: an operator of an agent that makes many validation
        requests in one transaction (URIs `<prefix><n>`), as a busy agent does
        over its life.
"""


interface IValidationRegistry:
    def computeRequestHash(validatorAddress: address, agentId: uint256, requestURI: String[2048]) -> bytes32: view
    def validationRequest(
        validatorAddress: address, agentId: uint256, requestURI: String[2048], requestHash: bytes32
    ): nonpayable


# Most requests made in one call.
MAX_BATCH: constant(uint256) = 512


@external
def requestMany(
    registry: address, validator: address, agentId: uint256, prefix: String[64], first: uint256, count: uint256
):
    """
    @notice Requests validation of `<prefix><first>` to `<prefix><first + count - 1>`.
    @param registry The validation registry.
    @param validator The validator named.
    @param agentId The agent (this contract must be its operator).
    @param prefix Start of each request URI.
    @param first Number of the first request.
    @param count How many (at most 512).
    """
    assert count <= MAX_BATCH, "requester: batch too large"
    for i: uint256 in range(count, bound=MAX_BATCH):
        uri: String[2048] = concat(prefix, uint2str(first + i))
        request_hash: bytes32 = staticcall IValidationRegistry(registry).computeRequestHash(validator, agentId, uri)
        extcall IValidationRegistry(registry).validationRequest(validator, agentId, uri, request_hash)
