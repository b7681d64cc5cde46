// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IValidationRegistry
/// @notice What the escrow reads of the ERC-8004 validation registry.
interface IValidationRegistry {
    function computeRequestHash(address validatorAddress, uint256 agentId, string calldata requestURI)
        external
        view
        returns (bytes32);

    function getValidationStatus(bytes32 requestHash)
        external
        view
        returns (
            address validatorAddress,
            uint256 agentId,
            uint8 response,
            bytes32 responseHash,
            string memory tag,
            uint256 lastUpdate
        );
}
