// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

/// @title MinimalCloneMock
/// @notice Test-only: deploys EIP-1167 minimal-proxy clones of an implementation, as the
///         RollupFactory does, so that tests can initialize a clone themselves.
contract MinimalCloneMock {
    event Cloned(address indexed implementation, address clone);

    /// @notice Deploys a clone of `implementation`.
    /// @param implementation The contract to clone.
    /// @return instance The clone's address.
    function clone(address implementation) external returns (address instance) {
        instance = Clones.clone(implementation);
        emit Cloned(implementation, instance);
    }
}
