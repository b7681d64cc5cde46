// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

/// @notice The parameters of one rollup instance, fixed at creation (RollupFactory.createRollup).
/// @dev    Times are in seconds except slots, which count L1 blocks. Bonds are in wei (ETH);
///         stakes are in `stakeToken`.
struct RollupParams {
    uint64 chainId; // L2 chain id, unique per factory
    address stakeToken; // the ERC-20 sequencers stake
    uint256 minStake; // least stake of an operator
    uint64 slotLength; // L1 blocks per slot
    uint64 slotsPerEpoch; // slots per leader-election epoch (one seed and one stake table each)
    uint64 exitDelay; // seconds from an exit request to the stake's withdrawal (>= challengeWindow)
    uint64 challengeWindow; // seconds a root claim may be disputed
    uint64 forceInclusionDelay; // seconds a queue entry may wait before the next batch must carry it
    uint64 escapeDelay; // seconds without a sequencer's batch before anyone may append
    uint64 maxTimestampLag; // seconds a batch's first block may lag the L1 block appending it
    uint256 proposerBond; // wei backing a root claim of a proposer outside the sequencer set
    uint256 challengerBond; // wei a challenger locks to open a dispute
    uint16 challengerShareBps; // share of a slashed stake paid to the challenger; the rest is burnt
    uint64 disputeClock; // seconds on each side's chess clock in a dispute
}

/// @title ISequencerSet
/// @notice The operators of one rollup: stakes tied to ERC-8004 agents, and the slot schedule.
interface ISequencerSet {
    function initialize(RollupParams calldata params, address identityRegistry, address inbox, address disputeGame)
        external;

    /// @notice The slot of the current L1 block.
    function currentSlot() external view returns (uint256);

    /// @notice The leader of `slot` (reverts if its epoch's seed is not fixed yet).
    function leaderOf(uint256 slot) external view returns (address);

    /// @notice Fixes the seeds that are due and returns the current slot's leader (zero if none).
    function currentLeader() external returns (address);

    /// @notice Whether `operator` stakes, has not asked to exit and was not ejected.
    function isActive(address operator) external view returns (bool);

    /// @notice Called by the inbox whenever `operator` makes a root claim (its stake then stays
    ///         until that claim's challenge window has passed).
    function noteClaim(address operator) external;

    /// @notice Called by the dispute game: a dispute against `operator` opened or closed.
    function noteDispute(address operator, bool opened) external;

    /// @notice Called by the dispute game when `operator` lost: its stake is taken (a share to
    ///         `challenger`, the rest burnt) and it is ejected. Returns the amount taken.
    function slash(address operator, address challenger) external returns (uint256);
}

/// @title IInbox
/// @notice What the dispute game needs of a rollup's inbox.
interface IInbox {
    /// @notice Called by the dispute game: a dispute on claim `batchIndex` opened or closed.
    function noteDispute(uint256 batchIndex, bool opened) external;

    /// @notice Called by the dispute game when claim `batchIndex` was proven wrong: it and every
    ///         later claim are removed (the batches' data stays). The removed claim's bond, if it
    ///         had one, is sent to the game; later claims' bonds go back to their proposers.
    function removeClaimsFrom(uint256 batchIndex) external returns (uint256 forfeitedBond);
}
