// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IWorkAttester
/// @notice A contract that counts units of work per worker (e.g. finalized batches per sequencer).
interface IWorkAttester {
    /// @notice Units of work `worker` has done so far; never decreases.
    function unitsOf(address worker) external view returns (uint256);
}
