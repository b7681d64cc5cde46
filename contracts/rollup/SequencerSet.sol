// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Contracts
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

// Libraries
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

// Interfaces
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IIdentityRegistry} from "../interfaces/IIdentityRegistry.sol";
import {ISequencerSet, RollupParams} from "../interfaces/IRollup.sol";

/// @title SequencerSet
/// @notice The operators of one rollup instance and their slot schedule. An operator stakes the
///         rollup's stake token (at least `minStake`) for an ERC-8004 agent it owns or whose agent
///         wallet it is. Time is cut into slots of `slotLength` L1 blocks and epochs of
///         `slotsPerEpoch` slots. Each slot's leader is a stake-weighted pick from its epoch's
///         seed, which the L1 block just before the epoch fixes; stakes count from the epoch
///         after next, so every stake table is fixed before the seed that draws from it is known.
///         A slot whose pick was ejected passes to the next eligible operator in list order.
///         Exit is delayed, and the stake stays slashable by the rollup's dispute game until
///         it is withdrawn.
/// @dev    Deployed as a minimal-proxy clone by the RollupFactory and initialized once; the
///         implementation itself cannot be initialized. Operators live in a fixed array of
///         `MAX_OPERATORS` packed entries (stake and eligibility in one storage slot each), so
///         `leaderOf` reads each live entry once. A withdrawn operator leaves a hole that the
///         next join fills: no entry ever moves, so the picks of the current epoch never change
///         when someone leaves. No owner, nothing upgradeable. Reverts carry "sequencer: ..."
///         reasons.
contract SequencerSet is ISequencerSet, Initializable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice What the leader draw needs of an operator, packed in one storage slot.
    struct Entry {
        uint128 stake; // staked amount, the operator's weight in the draw (kept after a slash)
        uint40 eligibleFrom; // first epoch the operator is drawn in
        uint40 exitEpoch; // first epoch it is no longer drawn in (0: no exit yet)
        bool ejected; // slashed: never leads again, banned from joining
    }

    /// @notice The rest of an operator's state.
    struct Operator {
        uint256 agentId;
        uint64 exitRequestedAt; // timestamp of the exit request (0: none)
        uint64 lastClaimAt; // timestamp of its latest root claim (noteClaim)
        uint32 openDisputes; // disputes against it still open (noteDispute)
        uint8 position; // index in the entry array plus one (0: not in the set)
    }

    /// @notice An operator as `getOperator` returns it.
    struct OperatorInfo {
        uint256 agentId;
        uint256 stake; // staked amount; for an ejected operator, what was taken from it
        uint64 eligibleFrom;
        uint64 exitEpoch;
        uint64 exitRequestedAt;
        uint64 lastClaimAt;
        uint32 openDisputes;
        bool ejected;
    }

    /// @notice Most operator records in the set at once (withdrawn and pruned ones free theirs).
    uint256 public constant MAX_OPERATORS = 64;

    /// @notice Most past epochs whose seed one call records (a bound on the catch-up loop).
    uint256 public constant MAX_SEED_CATCHUP = 4;

    /// @notice Where the non-challenger part of a slashed stake goes.
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    /// @notice L1 block of initialization: slot 0 starts there.
    uint64 public genesisBlock;

    /// @notice L1 blocks per slot.
    uint64 public slotLength;

    /// @notice Slots per epoch.
    uint64 public slotsPerEpoch;

    /// @dev First epoch whose seed `_recordSeeds` has not looked at yet.
    uint64 private _nextSeedEpoch;

    /// @dev Bit i set: entry i holds an operator.
    uint64 private _used;

    /// @notice Seconds from an exit request to the withdrawal of the stake.
    uint64 public exitDelay;

    /// @notice Seconds a root claim may be disputed (a stake stays this long after a claim).
    uint64 public challengeWindow;

    /// @notice Share of a slashed stake paid to the challenger, in basis points.
    uint16 public challengerShareBps;

    /// @notice The ERC-20 operators stake.
    IERC20 public stakeToken;

    /// @notice Least stake of an operator.
    uint256 public minStake;

    /// @notice The ERC-8004 identity registry operators' agents live in.
    IIdentityRegistry public identityRegistry;

    /// @notice The rollup's inbox (calls `noteClaim`).
    address public inbox;

    /// @notice The rollup's dispute game (calls `noteDispute` and `slash`; zero: none yet).
    address public disputeGame;

    /// @notice The operator that joined for each agent (zero: none).
    mapping(uint256 agentId => address) public operatorOfAgent;

    /// @notice Addresses slashed once: they may never join again.
    mapping(address account => bool) public banned;

    Entry[64] private _entries;
    address[64] private _addresses;
    mapping(address operator => Operator) private _operators;
    mapping(uint256 epoch => bytes32) private _seeds;

    event Joined(address indexed operator, uint256 indexed agentId, uint256 stake, uint256 eligibleFrom);
    event ExitRequested(address indexed operator, uint256 exitEpoch);
    event Withdrawn(address indexed operator, uint256 indexed agentId, uint256 amount);
    event Pruned(address indexed operator, uint256 indexed agentId);
    event Slashed(address indexed operator, address indexed challenger, uint256 toChallenger, uint256 burnt);
    event SeedRecorded(uint256 indexed epoch, bytes32 seed);
    event ClaimNoted(address indexed operator, uint256 at);
    event DisputeNoted(address indexed operator, bool opened, uint256 openDisputes);

    /// @dev The implementation is only a template for clones.
    constructor() {
        _disableInitializers();
    }

    // -------------------------------------------------------------------------------------------
    // Set-up
    // -------------------------------------------------------------------------------------------

    /// @notice Sets the rollup's parameters, once (the factory calls it on a fresh clone).
    /// @dev Records the seed of epoch 0 (from the block before this one).
    /// @param params The rollup's parameters (stake token, minimum stake, slot length, slots per
    ///        epoch, exit delay, challenge window and challenger share are used here).
    /// @param identityRegistry_ The ERC-8004 identity registry.
    /// @param inbox_ The rollup's inbox.
    /// @param disputeGame_ The rollup's dispute game (zero: slashing not yet possible).
    function initialize(
        RollupParams calldata params,
        address identityRegistry_,
        address inbox_,
        address disputeGame_
    ) external initializer {
        require(params.stakeToken != address(0), "sequencer: no stake token");
        require(params.minStake != 0, "sequencer: zero min stake");
        require(params.minStake <= type(uint128).max, "sequencer: min stake too large");
        require(params.slotLength >= 1, "sequencer: zero slot length");
        require(params.slotsPerEpoch >= 1, "sequencer: zero slots per epoch");
        require(params.challengerShareBps <= 10_000, "sequencer: share above 100%");
        require(params.exitDelay >= params.challengeWindow, "sequencer: exit delay below challenge window");
        require(identityRegistry_ != address(0) && inbox_ != address(0), "sequencer: zero address");
        genesisBlock = uint64(block.number);
        slotLength = params.slotLength;
        slotsPerEpoch = params.slotsPerEpoch;
        _nextSeedEpoch = 1;
        exitDelay = params.exitDelay;
        challengeWindow = params.challengeWindow;
        challengerShareBps = params.challengerShareBps;
        stakeToken = IERC20(params.stakeToken);
        minStake = params.minStake;
        identityRegistry = IIdentityRegistry(identityRegistry_);
        inbox = inbox_;
        disputeGame = disputeGame_;
        bytes32 seed = keccak256(abi.encode(blockhash(block.number - 1), uint256(0), address(this)));
        _seeds[0] = seed;
        emit SeedRecorded(0, seed);
    }

    // -------------------------------------------------------------------------------------------
    // Operators
    // -------------------------------------------------------------------------------------------

    /// @notice Stakes `amount` of the stake token (approve it first) for ERC-8004 agent
    ///         `agentId`, of which the caller is the owner or the agent wallet. The caller is
    ///         drawn as a leader from epoch `currentEpoch() + 2`.
    /// @param agentId The agent (one operator per agent).
    /// @param amount The stake (at least `minStake`).
    function join(uint256 agentId, uint256 amount) external nonReentrant {
        require(!banned[msg.sender], "sequencer: banned");
        Operator storage op = _operators[msg.sender];
        require(op.position == 0, "sequencer: already joined");
        require(operatorOfAgent[agentId] == address(0), "sequencer: agent taken");
        require(_controlsAgent(msg.sender, agentId), "sequencer: not agent owner or wallet");
        require(amount >= minStake, "sequencer: stake below minimum");
        require(amount <= type(uint128).max, "sequencer: stake too large");
        uint64 used = _used;
        require(used != type(uint64).max, "sequencer: set full");
        _recordSeeds();

        uint256 index = _lowestZeroBit(used);
        uint256 eligibleFrom = currentEpoch() + 2;
        _used = used | uint64(1 << index);
        _entries[index] =
            Entry({stake: uint128(amount), eligibleFrom: uint40(eligibleFrom), exitEpoch: 0, ejected: false});
        _addresses[index] = msg.sender;
        op.agentId = agentId;
        op.position = uint8(index + 1);
        operatorOfAgent[agentId] = msg.sender;

        IERC20 token = stakeToken;
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        require(token.balanceOf(address(this)) - before == amount, "sequencer: fee-on-transfer token");
        emit Joined(msg.sender, agentId, amount, eligibleFrom);
    }

    /// @notice Asks to leave: the caller is no longer drawn from epoch `currentEpoch() + 2`, and
    ///         may withdraw its stake after the exit delay (see `withdraw`).
    function requestExit() external {
        (Entry storage entry, Operator storage op) = _operator(msg.sender);
        require(!entry.ejected, "sequencer: ejected");
        require(entry.exitEpoch == 0, "sequencer: exit already requested");
        _recordSeeds();
        uint256 exitEpoch = currentEpoch() + 2;
        entry.exitEpoch = uint40(exitEpoch);
        op.exitRequestedAt = uint64(block.timestamp);
        emit ExitRequested(msg.sender, exitEpoch);
    }

    /// @notice Pays the caller's stake back and removes it from the set (its agent becomes free).
    ///         Only once its exit epoch has begun, `exitDelay` after the exit request, more than
    ///         `challengeWindow` after its last root claim, and with no dispute open against it.
    /// @return amount The stake paid back.
    function withdraw() external nonReentrant returns (uint256 amount) {
        (Entry storage entry, Operator storage op) = _operator(msg.sender);
        require(!entry.ejected, "sequencer: ejected");
        require(entry.exitEpoch != 0, "sequencer: no exit requested");
        require(block.timestamp >= uint256(op.exitRequestedAt) + exitDelay, "sequencer: exit delay not passed");
        require(block.timestamp > uint256(op.lastClaimAt) + challengeWindow, "sequencer: claim in challenge window");
        require(currentEpoch() >= entry.exitEpoch, "sequencer: exit epoch not begun");
        require(op.openDisputes == 0, "sequencer: dispute open");
        _recordSeeds();
        amount = entry.stake;
        uint256 agentId = op.agentId;
        _remove(msg.sender, op);
        stakeToken.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, agentId, amount);
    }

    /// @notice Removes an ejected operator from the set once it is no longer drawn (its exit
    ///         epoch has begun), freeing its place and its agent. Anyone may call it; the
    ///         address stays banned.
    /// @param operator The ejected operator.
    function prune(address operator) external nonReentrant {
        (Entry storage entry, Operator storage op) = _operator(operator);
        require(entry.ejected, "sequencer: not ejected");
        require(currentEpoch() >= entry.exitEpoch, "sequencer: exit epoch not begun");
        uint256 agentId = op.agentId;
        _remove(operator, op);
        emit Pruned(operator, agentId);
    }

    // -------------------------------------------------------------------------------------------
    // Hooks of the inbox and the dispute game
    // -------------------------------------------------------------------------------------------

    /// @inheritdoc ISequencerSet
    /// @dev Records the time for any address (a proposer that joins later is held by it too).
    function noteClaim(address operator) external {
        require(msg.sender == inbox, "sequencer: not inbox");
        _operators[operator].lastClaimAt = uint64(block.timestamp);
        emit ClaimNoted(operator, block.timestamp);
    }

    /// @inheritdoc ISequencerSet
    /// @dev A close with no dispute open leaves the count at zero (the game may call it safely).
    function noteDispute(address operator, bool opened) external {
        require(msg.sender == disputeGame, "sequencer: not dispute game");
        Operator storage op = _operators[operator];
        uint32 open = op.openDisputes;
        if (opened) open += 1;
        else if (open != 0) open -= 1;
        op.openDisputes = open;
        emit DisputeNoted(operator, opened, open);
    }

    /// @inheritdoc ISequencerSet
    /// @dev The operator keeps its weight in the draw until `currentEpoch() + 2` (or its earlier
    ///      exit epoch), so that no stake table whose seed may be known changes; the slots it is
    ///      drawn for pass to the next pick. Returns 0 and moves nothing for an address that is
    ///      not in the set or was slashed already. A zero challenger's share is burnt too.
    function slash(address operator, address challenger) external nonReentrant returns (uint256 amount) {
        require(msg.sender == disputeGame, "sequencer: not dispute game");
        uint256 position = _operators[operator].position;
        if (position == 0) return 0;
        Entry storage entry = _entries[position - 1];
        if (entry.ejected) return 0;
        _recordSeeds();
        amount = entry.stake;
        uint256 lastEpoch = currentEpoch() + 2;
        if (entry.exitEpoch == 0 || entry.exitEpoch > lastEpoch) entry.exitEpoch = uint40(lastEpoch);
        entry.ejected = true;
        banned[operator] = true;
        uint256 toChallenger = challenger == address(0) ? 0 : amount * challengerShareBps / 10_000;
        uint256 burnt = amount - toChallenger;
        IERC20 token = stakeToken;
        if (toChallenger != 0) token.safeTransfer(challenger, toChallenger);
        if (burnt != 0) token.safeTransfer(BURN_ADDRESS, burnt);
        emit Slashed(operator, challenger, toChallenger, burnt);
    }

    // -------------------------------------------------------------------------------------------
    // Leader election
    // -------------------------------------------------------------------------------------------

    /// @inheritdoc ISequencerSet
    function currentLeader() external returns (address) {
        _recordSeeds();
        uint256 slot = currentSlot();
        uint256 epoch = slot / slotsPerEpoch;
        return _leader(slot, epoch, seedOf(epoch));
    }

    /// @inheritdoc ISequencerSet
    /// @dev The answer for a past slot uses today's set (withdrawn operators are gone, ejected
    ///      ones no longer lead) and, once its seed is older than 256 blocks and was never
    ///      recorded, the fallback seed; it is binding for the slots of the current epoch.
    function leaderOf(uint256 slot) external view returns (address) {
        uint256 epoch = slot / slotsPerEpoch;
        return _leader(slot, epoch, seedOf(epoch));
    }

    /// @notice The seed of `epoch`: recorded, else from the hash of the L1 block before the
    ///         epoch's first block while that hash is available, else the (predictable)
    ///         fallback of an idle chain. Reverts for an epoch that has not begun.
    /// @param epoch The epoch.
    /// @return The seed.
    function seedOf(uint256 epoch) public view returns (bytes32) {
        bytes32 seed = _seeds[epoch];
        if (seed != 0) return seed;
        uint256 start = epochStartBlock(epoch);
        require(start <= block.number, "sequencer: seed not fixed");
        bytes32 hash = blockhash(start - 1);
        return keccak256(abi.encode(hash, epoch, address(this)));
    }

    /// @inheritdoc ISequencerSet
    function currentSlot() public view returns (uint256) {
        return (block.number - genesisBlock) / slotLength;
    }

    /// @notice The epoch of the current L1 block.
    /// @return The epoch.
    function currentEpoch() public view returns (uint256) {
        return currentSlot() / slotsPerEpoch;
    }

    /// @notice The first L1 block of `epoch`.
    /// @param epoch The epoch.
    /// @return The block number.
    function epochStartBlock(uint256 epoch) public view returns (uint256) {
        return genesisBlock + epoch * slotsPerEpoch * slotLength;
    }

    /// @notice The total weight of the draw in `epoch`: the stakes of the operators in the set
    ///         that are drawn in it (ejected ones included).
    /// @param epoch The epoch.
    /// @return total The total stake.
    function totalStakeAt(uint256 epoch) external view returns (uint256 total) {
        uint256 used = _used;
        for (uint256 i; used != 0; ++i) {
            if (used & 1 != 0) {
                Entry memory entry = _entries[i];
                if (_drawn(entry, epoch)) total += entry.stake;
            }
            used >>= 1;
        }
    }

    // -------------------------------------------------------------------------------------------
    // Views
    // -------------------------------------------------------------------------------------------

    /// @inheritdoc ISequencerSet
    function isActive(address operator) external view returns (bool) {
        uint256 position = _operators[operator].position;
        if (position == 0) return false;
        Entry memory entry = _entries[position - 1];
        return !entry.ejected && entry.exitEpoch == 0;
    }

    /// @notice An operator's record (all zero for an address not in the set).
    /// @param operator The operator.
    /// @return info Its agent, stake, eligibility, exit, last claim, open disputes, ejection.
    function getOperator(address operator) external view returns (OperatorInfo memory info) {
        Operator memory op = _operators[operator];
        info.lastClaimAt = op.lastClaimAt;
        info.openDisputes = op.openDisputes;
        if (op.position == 0) return info;
        Entry memory entry = _entries[op.position - 1];
        info.agentId = op.agentId;
        info.stake = entry.stake;
        info.eligibleFrom = entry.eligibleFrom;
        info.exitEpoch = entry.exitEpoch;
        info.exitRequestedAt = op.exitRequestedAt;
        info.ejected = entry.ejected;
    }

    /// @notice The operators in the set, in draw order.
    /// @return list Their addresses.
    function operators() external view returns (address[] memory list) {
        uint64 used = _used;
        list = new address[](_popCount(used));
        uint256 n;
        for (uint256 i; used != 0; ++i) {
            if (used & 1 != 0) list[n++] = _addresses[i];
            used >>= 1;
        }
    }

    /// @notice How many operators are in the set (ejected ones until pruned).
    /// @return The count.
    function operatorCount() external view returns (uint256) {
        return _popCount(_used);
    }

    // -------------------------------------------------------------------------------------------
    // Internals
    // -------------------------------------------------------------------------------------------

    /// @dev Records the seeds of the epochs begun since the last call while their L1 block hash
    ///      is still available (the last `MAX_SEED_CATCHUP` of them at most: older ones only
    ///      matter to views of past slots). A seed whose hash is gone is left to the fallback.
    function _recordSeeds() private {
        uint256 next = _nextSeedEpoch;
        uint256 current = currentEpoch();
        if (next > current) return;
        uint256 from = current + 1 - next > MAX_SEED_CATCHUP ? current + 1 - MAX_SEED_CATCHUP : next;
        for (uint256 epoch = from; epoch <= current; ++epoch) {
            bytes32 hash = blockhash(epochStartBlock(epoch) - 1);
            if (hash == 0) continue;
            bytes32 seed = keccak256(abi.encode(hash, epoch, address(this)));
            _seeds[epoch] = seed;
            emit SeedRecorded(epoch, seed);
        }
        _nextSeedEpoch = uint64(current + 1);
    }

    /// @dev The stake-weighted pick of `slot` in `epoch`: one read of each live entry, the
    ///      cumulative weights kept in memory; an ejected pick passes to the next operator that
    ///      is drawn in `epoch` and not ejected, in entry order, cyclically.
    function _leader(uint256 slot, uint256 epoch, bytes32 seed) private view returns (address) {
        uint256[64] memory cumulative;
        uint256 total;
        uint256 pickable; // bit i: entry i may lead in `epoch`
        uint256 used = _used;
        unchecked {
            for (uint256 i; used != 0; ++i) {
                if (used & 1 != 0) {
                    // One SLOAD per entry, decoded by hand: Entry's storage layout, lowest bits
                    // first, is stake (128 bits), eligibleFrom (40), exitEpoch (40), ejected (8).
                    uint256 word;
                    assembly ("memory-safe") {
                        word := sload(add(_entries.slot, i))
                    }
                    uint256 eligibleFrom = uint40(word >> 128);
                    uint256 exitEpoch = uint40(word >> 168);
                    if (eligibleFrom <= epoch && (exitEpoch == 0 || epoch < exitEpoch)) {
                        total += uint128(word); // at most 64 * (2^128 - 1): no overflow
                        if (uint8(word >> 208) == 0) pickable |= 1 << i;
                    }
                }
                cumulative[i] = total;
                used >>= 1;
            }
        }
        if (pickable == 0) return address(0);
        uint256 draw = uint256(keccak256(abi.encode(seed, slot))) % total;
        uint256 picked;
        while (cumulative[picked] <= draw) ++picked; // cumulative reaches total > draw
        uint256 fromPick = pickable >> picked; // bit 0: the pick itself
        picked = fromPick != 0 ? picked + _lowestSetBit(fromPick) : _lowestSetBit(pickable);
        return _addresses[picked];
    }

    /// @dev Whether `entry` is in the draw of `epoch`.
    function _drawn(Entry memory entry, uint256 epoch) private pure returns (bool) {
        return entry.eligibleFrom <= epoch && (entry.exitEpoch == 0 || epoch < entry.exitEpoch);
    }

    /// @dev The live entry and the record of `operator`; reverts if it is not in the set.
    function _operator(address operator) private view returns (Entry storage entry, Operator storage op) {
        op = _operators[operator];
        uint256 position = op.position;
        require(position != 0, "sequencer: not an operator");
        entry = _entries[position - 1];
    }

    /// @dev Empties `operator`'s entry (no other entry moves) and frees its agent.
    function _remove(address operator, Operator storage op) private {
        uint256 index = op.position - 1;
        _used &= ~uint64(1 << index);
        delete _entries[index];
        delete _addresses[index];
        delete operatorOfAgent[op.agentId];
        delete _operators[operator];
    }

    /// @dev Whether `account` is the owner or the agent wallet of `agentId`.
    function _controlsAgent(address account, uint256 agentId) private view returns (bool) {
        IIdentityRegistry registry = identityRegistry;
        try registry.ownerOf(agentId) returns (address owner) {
            if (owner == account) return true;
        } catch {
            revert("sequencer: unknown agent");
        }
        return registry.getAgentWallet(agentId) == account;
    }

    /// @dev Index of the lowest zero bit of a bitmap that is not all ones.
    function _lowestZeroBit(uint64 bits) private pure returns (uint256) {
        return _lowestSetBit(~uint256(bits));
    }

    /// @dev Index of the lowest set bit of a nonzero word.
    function _lowestSetBit(uint256 bits) private pure returns (uint256) {
        unchecked {
            return Math.log2(bits & (~bits + 1));
        }
    }

    /// @dev Number of set bits.
    function _popCount(uint64 bits) private pure returns (uint256 n) {
        while (bits != 0) {
            bits &= bits - 1;
            ++n;
        }
    }
}
