// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Libraries
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

// Interfaces
import {RollupParams, ISequencerSet} from "../interfaces/IRollup.sol";

/// @notice How the factory initializes an inbox clone.
interface IInboxInit {
    function initialize(RollupParams calldata p, address sequencerSet, address disputeGame) external;
}

/// @notice How the factory initializes a dispute game clone (the dispute issue's contract).
interface IDisputeGameInit {
    function initialize(RollupParams calldata p, address inbox, address sequencerSet) external;
}

/// @title RollupFactory
/// @notice Spins up a rollup in one transaction: an Inbox, a SequencerSet and (once its
///         implementation exists) a DisputeGame, each a minimal-proxy clone of an implementation
///         deployed once, wired to each other and initialized with the rollup's parameters.
/// @dev    No owner and no upgrade path: a clone's code is its implementation's forever. Each L2
///         chain id is taken once per factory. Reverts carry "factory: ..." reasons.
contract RollupFactory {
    /// @notice One rollup instance.
    struct Rollup {
        uint64 chainId;
        address inbox;
        address sequencerSet;
        address disputeGame;
        address creator;
        uint64 createdAt;
    }

    /// @notice Most rollups one factory lists (the list view stays bounded).
    uint256 public constant MAX_ROLLUPS = 4096;

    /// @notice Most rollups `rollups` returns per call.
    uint256 public constant PAGE = 256;

    /// @notice The implementations every instance clones.
    address public immutable inboxImplementation;
    address public immutable sequencerSetImplementation;
    address public immutable disputeGameImplementation;

    /// @notice The ERC-8004 identity registry operators prove their agent with.
    address public immutable identityRegistry;

    Rollup[] private _rollups;

    /// @notice Index + 1 of the rollup of each L2 chain id (0: none).
    mapping(uint64 chainId => uint256) private _byChainId;

    event RollupCreated(
        uint64 indexed chainId,
        address indexed inbox,
        address sequencerSet,
        address disputeGame,
        address indexed creator,
        RollupParams params
    );

    /// @param inbox_ Inbox implementation.
    /// @param sequencerSet_ SequencerSet implementation.
    /// @param disputeGame_ DisputeGame implementation (zero until the dispute game is deployed:
    ///        claims of such rollups cannot be disputed).
    /// @param identityRegistry_ ERC-8004 identity registry.
    constructor(address inbox_, address sequencerSet_, address disputeGame_, address identityRegistry_) {
        require(
            inbox_.code.length != 0 && sequencerSet_.code.length != 0 && identityRegistry_.code.length != 0,
            "factory: not a contract"
        );
        require(disputeGame_ == address(0) || disputeGame_.code.length != 0, "factory: not a contract");
        inboxImplementation = inbox_;
        sequencerSetImplementation = sequencerSet_;
        disputeGameImplementation = disputeGame_;
        identityRegistry = identityRegistry_;
    }

    /// @notice Deploys a rollup with parameters `p` (its chain id must be new to this factory).
    /// @param p The rollup's parameters; the inbox and sequencer set check their own.
    /// @return inbox The rollup's inbox.
    /// @return sequencerSet The rollup's sequencer set.
    /// @return disputeGame The rollup's dispute game (zero if the factory has none).
    function createRollup(RollupParams calldata p)
        external
        returns (address inbox, address sequencerSet, address disputeGame)
    {
        require(p.chainId != 0, "factory: zero chain id");
        require(_byChainId[p.chainId] == 0, "factory: chain id taken");
        require(_rollups.length < MAX_ROLLUPS, "factory: too many rollups");
        inbox = Clones.clone(inboxImplementation);
        sequencerSet = Clones.clone(sequencerSetImplementation);
        if (disputeGameImplementation != address(0)) {
            disputeGame = Clones.clone(disputeGameImplementation);
            IDisputeGameInit(disputeGame).initialize(p, inbox, sequencerSet);
        }
        ISequencerSet(sequencerSet).initialize(p, identityRegistry, inbox, disputeGame);
        IInboxInit(inbox).initialize(p, sequencerSet, disputeGame);
        _rollups.push(Rollup(p.chainId, inbox, sequencerSet, disputeGame, msg.sender, uint64(block.timestamp)));
        _byChainId[p.chainId] = _rollups.length;
        emit RollupCreated(p.chainId, inbox, sequencerSet, disputeGame, msg.sender, p);
    }

    /// @notice Number of rollups created.
    function rollupCount() external view returns (uint256) {
        return _rollups.length;
    }

    /// @notice Rollups `start` … `start + PAGE - 1` (fewer at the end).
    function rollups(uint256 start) external view returns (Rollup[] memory page) {
        uint256 end = start + PAGE;
        if (end > _rollups.length) end = _rollups.length;
        if (start >= end) return page;
        page = new Rollup[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = _rollups[i];
        }
    }

    /// @notice The rollup of L2 chain `chainId` (reverts if none).
    function rollupOf(uint64 chainId) external view returns (Rollup memory) {
        uint256 at = _byChainId[chainId];
        require(at != 0, "factory: unknown chain id");
        return _rollups[at - 1];
    }
}
