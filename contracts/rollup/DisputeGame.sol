// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Contracts
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

// Interfaces
import {IInbox, ISequencerSet, RollupParams} from "../interfaces/IRollup.sol";

/// @notice What the game reads of the inbox beyond the hooks of IInbox.
interface IInboxView {
    struct Claim {
        bytes32 root;
        address proposer;
        uint64 proposedAt;
        uint32 openDisputes;
    }

    function claimCount() external view returns (uint256);
    function claimOf(uint256 index) external view returns (Claim memory);
    function preStateRoot(uint256 index) external view returns (bytes32);
    function batchHashOf(uint256 index) external view returns (bytes32);
}

/// @notice The one-step verifier (OneStepVerifier.sol).
interface IOneStepVerifier {
    function verifyStep(
        bytes32 batchHash,
        bytes calldata preimage,
        uint256 disputedIndex,
        bytes32 agreedRoot,
        uint64 chainId,
        address inbox,
        bytes calldata proof
    ) external pure returns (uint8 status, bytes32 postRoot);
}

/// @title DisputeGame
/// @notice The interactive fraud proof of one rollup (docs/l2-protocol.md §Dispute game). Within a
///         root claim's challenge window anyone may open a game on it with the challenger bond.
///         The claim's proposer defends: over the batch's trace (the state roots after each of
///         its n transactions) it reveals the roots that cut the disputed interval into
///         `ARITY` parts; the challenger names the first part it disputes; at width one the
///         one-step verifier replays the transaction and decides. Each side has a chess clock of
///         `disputeClock` seconds; a side that runs out loses.
/// @dev    Challenger wins: the claim and every later one are removed (the data stays), the
///         proposer's stake is slashed through the sequencer set (a share to the challenger, the
///         rest burnt) and it is ejected; a bonded claim's bond and the challenger's own go to
///         the challenger. Defender wins: the challenger's bond goes to the defender. A game on a
///         claim that another game removed ends moot, its bond returned. Payouts are credited
///         and pulled (`withdrawCredit`). A clone per rollup (RollupFactory); the verifier and
///         the arity are the implementation's immutables. Reverts carry "game: ..." reasons.
contract DisputeGame is Initializable, ReentrancyGuardTransient {
    /// @notice Where a game stands.
    enum Outcome {
        None,
        Open,
        DefenderWon,
        ChallengerWon,
        Moot
    }

    /// @notice One game: the disputed interval (lo, hi] of the trace, with the agreed root after
    ///         `lo` transactions and the defender's root after `hi`.
    struct Game {
        address challenger;
        uint32 lo;
        uint32 hi;
        uint32 txCount;
        address defender;
        uint64 claimIndex;
        Outcome outcome;
        bool defenderToMove; // true: roots are due; false: a pick, or the step at width one
        // The clocks share a slot with the move count, which every move changes: a move then
        // costs the same gas in any second (an estimate in the second of the last move would
        // otherwise see a no-op write of the clocks and fall 2,900 gas short).
        uint64 lastMoveAt;
        uint64 defenderUsed;
        uint64 challengerUsed;
        uint32 moves; // reveals and picks so far
        uint64 proposedAt;
        bytes32 rootLo;
        bytes32 rootHi;
        bytes32 revealed; // keccak256 of the roots revealed for the current interval
        bytes32 claimRoot;
        bytes32 batchHash;
    }

    /// @notice The one-step verifier every clone uses.
    IOneStepVerifier public immutable verifier;

    /// @notice Parts a reveal cuts the disputed interval into (2: bisection).
    uint256 public immutable ARITY;

    /// @notice Most parts a game may cut into.
    uint256 public constant MAX_ARITY = 64;

    /// @notice The rollup's inbox.
    address public inbox;

    /// @notice The rollup's sequencer set.
    ISequencerSet public sequencerSet;

    /// @notice The rollup's L2 chain id (the signing domain of its transactions).
    uint64 public chainId;

    /// @notice Seconds on each side's clock.
    uint64 public disputeClock;

    /// @notice Wei a challenger locks to open a game.
    uint256 public challengerBond;

    /// @notice Games opened so far (ids are 0 … gameCount - 1).
    uint256 public gameCount;

    /// @notice Wei owed to each account (pulled with `withdrawCredit`).
    mapping(address account => uint256) public credits;

    mapping(uint256 gameId => Game) private _games;

    event GameOpened(
        uint256 indexed gameId,
        uint256 indexed claimIndex,
        address indexed challenger,
        address defender,
        bytes32 preStateRoot,
        bytes32 claimedRoot,
        uint32 txCount
    );
    event RootsRevealed(uint256 indexed gameId, uint32 lo, uint32 hi, bytes32[] roots);
    event PartPicked(uint256 indexed gameId, uint32 lo, uint32 hi, bytes32 rootLo, bytes32 rootHi);
    event StepProven(uint256 indexed gameId, uint32 index, uint8 status, bytes32 postRoot);
    event GameResolved(uint256 indexed gameId, Outcome outcome, uint256 slashed, uint256 forfeitedBond);
    event Credited(address indexed account, uint256 amount);
    event CreditWithdrawn(address indexed account, uint256 amount);

    /// @param verifier_ The one-step verifier.
    /// @param arity Parts per reveal (2 … MAX_ARITY).
    constructor(address verifier_, uint256 arity) {
        require(verifier_.code.length != 0, "game: verifier not a contract");
        require(arity >= 2 && arity <= MAX_ARITY, "game: bad arity");
        verifier = IOneStepVerifier(verifier_);
        ARITY = arity;
        _disableInitializers();
    }

    /// @notice Sets up a rollup's game; called once by the factory that cloned it.
    /// @param p The rollup's parameters.
    /// @param inbox_ The rollup's inbox.
    /// @param sequencerSet_ The rollup's sequencer set.
    function initialize(RollupParams calldata p, address inbox_, address sequencerSet_) external initializer {
        require(p.disputeClock != 0, "game: zero clock");
        require(p.challengerBond != 0, "game: zero bond");
        inbox = inbox_;
        sequencerSet = ISequencerSet(sequencerSet_);
        chainId = p.chainId;
        disputeClock = p.disputeClock;
        challengerBond = p.challengerBond;
    }

    /// @notice Only the inbox sends ETH (a removed claim's forfeited bond).
    receive() external payable {
        require(msg.sender == inbox, "game: unexpected ETH");
    }

    // -------------------------------------------------------------------------------------------
    // Moves
    // -------------------------------------------------------------------------------------------

    /// @notice Disputes the standing claim of batch `claimIndex`, with the challenger bond. The
    ///         claim of a batch with no transactions is decided at once (it must equal the root
    ///         before it).
    /// @param claimIndex The batch whose root claim is disputed.
    /// @param preimage The batch hash's preimage (it gives the transaction count).
    /// @return gameId The new game.
    function open(uint256 claimIndex, bytes calldata preimage)
        external
        payable
        nonReentrant
        returns (uint256 gameId)
    {
        require(msg.value == challengerBond, "game: wrong bond");
        require(claimIndex < IInboxView(inbox).claimCount(), "game: no such claim");
        IInboxView.Claim memory claim = IInboxView(inbox).claimOf(claimIndex);
        require(msg.sender != claim.proposer, "game: proposer cannot challenge itself");
        bytes32 batchHash = IInboxView(inbox).batchHashOf(claimIndex);
        require(preimage.length == 120 && keccak256(preimage) == batchHash, "game: bad batch preimage");
        uint32 txCount = uint32(bytes4(preimage[96:100]));
        bytes32 preRoot = IInboxView(inbox).preStateRoot(claimIndex);
        if (txCount == 0) require(claim.root != preRoot, "game: an empty batch keeps its root");

        gameId = gameCount++;
        Game storage g = _games[gameId];
        g.challenger = msg.sender;
        g.lastMoveAt = uint64(block.timestamp);
        g.defender = claim.proposer;
        g.hi = txCount;
        g.txCount = txCount;
        g.outcome = Outcome.Open;
        g.defenderToMove = txCount > 1;
        g.rootLo = preRoot;
        g.rootHi = claim.root;
        g.claimIndex = uint64(claimIndex);
        g.proposedAt = claim.proposedAt;
        g.claimRoot = claim.root;
        g.batchHash = batchHash;
        IInbox(inbox).noteDispute(claimIndex, true); // refuses a claim past its window or final
        sequencerSet.noteDispute(claim.proposer, true);
        emit GameOpened(gameId, claimIndex, msg.sender, claim.proposer, preRoot, claim.root, txCount);
        if (txCount == 0) _resolve(gameId, g, Outcome.ChallengerWon);
    }

    /// @notice The defender reveals the roots after each cut point inside the disputed interval
    ///         (`cutPoints` gives them): `parts - 1` roots, `parts = min(ARITY, hi - lo)`.
    /// @param gameId The game.
    /// @param roots The state roots after each inner cut point, in order.
    function reveal(uint256 gameId, bytes32[] calldata roots) external nonReentrant {
        Game storage g = _open(gameId);
        require(msg.sender == g.defender, "game: not the defender");
        require(g.defenderToMove, "game: not the defender's move");
        require(roots.length == _parts(g.lo, g.hi) - 1, "game: wrong root count");
        g.defenderUsed = _tick(g, g.defenderUsed);
        ++g.moves;
        g.revealed = keccak256(abi.encodePacked(roots));
        g.defenderToMove = false;
        emit RootsRevealed(gameId, g.lo, g.hi, roots);
    }

    /// @notice The challenger names the first part it disputes: it agrees with the root at the
    ///         part's start and disputes the root at its end.
    /// @param gameId The game.
    /// @param roots The roots the defender revealed (as in its RootsRevealed event).
    /// @param part The part, 0 … parts - 1.
    function pick(uint256 gameId, bytes32[] calldata roots, uint256 part) external nonReentrant {
        Game storage g = _open(gameId);
        require(msg.sender == g.challenger, "game: not the challenger");
        require(!g.defenderToMove && g.hi - g.lo > 1, "game: not the challenger's pick");
        require(keccak256(abi.encodePacked(roots)) == g.revealed, "game: not the revealed roots");
        uint256 parts = roots.length + 1;
        require(part < parts, "game: no such part");
        g.challengerUsed = _tick(g, g.challengerUsed);
        ++g.moves;
        (uint256 lo, uint256 hi) = (g.lo, g.hi);
        if (part != 0) g.rootLo = roots[part - 1];
        if (part + 1 != parts) g.rootHi = roots[part];
        g.lo = uint32(lo + part * (hi - lo) / parts);
        g.hi = uint32(lo + (part + 1) * (hi - lo) / parts);
        g.defenderToMove = g.hi - g.lo > 1;
        emit PartPicked(gameId, g.lo, g.hi, g.rootLo, g.rootHi);
    }

    /// @notice At width one, the one-step proof of transaction `lo` decides: the defender wins if
    ///         the verifier's root is its root after it, else the challenger wins. Anyone may send
    ///         it while the challenger's clock runs; a proof the verifier rejects decides nothing.
    /// @param gameId The game.
    /// @param preimage The batch hash's preimage.
    /// @param proof The one-step proof (docs/l2-protocol.md §One-step proof: the whole step).
    function step(uint256 gameId, bytes calldata preimage, bytes calldata proof) external nonReentrant {
        Game storage g = _open(gameId);
        require(g.hi - g.lo == 1 && !g.defenderToMove, "game: not at one step");
        require(
            block.timestamp - g.lastMoveAt + g.challengerUsed <= disputeClock, "game: the challenger's clock ran out"
        );
        (uint8 status, bytes32 postRoot) =
            verifier.verifyStep(g.batchHash, preimage, g.lo, g.rootLo, chainId, inbox, proof);
        emit StepProven(gameId, g.lo, status, postRoot);
        _resolve(gameId, g, postRoot == g.rootHi ? Outcome.DefenderWon : Outcome.ChallengerWon);
    }

    /// @notice Ends a game whose side to move has used up its clock: the other side wins.
    /// @param gameId The game.
    function timeout(uint256 gameId) external nonReentrant {
        Game storage g = _open(gameId);
        uint256 used = g.defenderToMove ? g.defenderUsed : g.challengerUsed;
        require(block.timestamp - g.lastMoveAt + used > disputeClock, "game: clock still running");
        _resolve(gameId, g, g.defenderToMove ? Outcome.ChallengerWon : Outcome.DefenderWon);
    }

    /// @notice Ends a game whose claim no longer stands (another game removed it): moot, the
    ///         challenger's bond back.
    /// @param gameId The game.
    function close(uint256 gameId) external nonReentrant {
        Game storage g = _open(gameId);
        require(!_stands(g), "game: claim stands");
        _resolve(gameId, g, Outcome.Moot);
    }

    /// @notice Sends the caller the ETH credited to it.
    function withdrawCredit() external nonReentrant {
        uint256 amount = credits[msg.sender];
        require(amount != 0, "game: nothing to withdraw");
        credits[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "game: transfer failed");
    }

    // -------------------------------------------------------------------------------------------
    // Views
    // -------------------------------------------------------------------------------------------

    /// @notice Game `gameId` (reverts for an id never opened).
    function getGame(uint256 gameId) external view returns (Game memory) {
        require(gameId < gameCount, "game: no such game");
        return _games[gameId];
    }

    /// @notice The cut points of the game's disputed interval: lo, the inner points whose roots
    ///         the defender reveals, hi.
    function cutPoints(uint256 gameId) external view returns (uint256[] memory points) {
        require(gameId < gameCount, "game: no such game");
        Game storage g = _games[gameId];
        uint256 parts = _parts(g.lo, g.hi);
        points = new uint256[](parts + 1);
        for (uint256 j = 0; j <= parts; ++j) {
            points[j] = g.lo + j * (g.hi - g.lo) / parts;
        }
    }

    // -------------------------------------------------------------------------------------------
    // Internals
    // -------------------------------------------------------------------------------------------

    function _open(uint256 gameId) private view returns (Game storage g) {
        require(gameId < gameCount, "game: no such game");
        g = _games[gameId];
        require(g.outcome == Outcome.Open, "game: over");
    }

    function _parts(uint256 lo, uint256 hi) private view returns (uint256) {
        uint256 width = hi - lo;
        return width < ARITY ? width : ARITY;
    }

    /// @dev Charges the mover the time since the last move; reverts if its clock ran out.
    function _tick(Game storage g, uint64 used) private returns (uint64) {
        uint256 total = uint256(used) + block.timestamp - g.lastMoveAt;
        require(total <= disputeClock, "game: clock ran out");
        g.lastMoveAt = uint64(block.timestamp);
        return uint64(total);
    }

    /// @dev Whether the claim the game disputes is still the claim at its index.
    function _stands(Game storage g) private view returns (bool) {
        uint256 index = g.claimIndex;
        if (index >= IInboxView(inbox).claimCount()) return false;
        IInboxView.Claim memory claim = IInboxView(inbox).claimOf(index);
        return claim.proposedAt == g.proposedAt && claim.root == g.claimRoot && claim.proposer == g.defender;
    }

    /// @dev Ends the game with `outcome` (moot whatever it is if the claim no longer stands).
    function _resolve(uint256 gameId, Game storage g, Outcome outcome) private {
        if (!_stands(g)) outcome = Outcome.Moot;
        g.outcome = outcome;
        address defender = g.defender;
        uint256 slashed;
        uint256 forfeited;
        sequencerSet.noteDispute(defender, false);
        if (outcome == Outcome.ChallengerWon) {
            forfeited = IInbox(inbox).removeClaimsFrom(g.claimIndex);
            slashed = sequencerSet.slash(defender, g.challenger);
            _credit(g.challenger, challengerBond + forfeited);
        } else if (outcome == Outcome.DefenderWon) {
            IInbox(inbox).noteDispute(g.claimIndex, false);
            _credit(defender, challengerBond);
        } else {
            _credit(g.challenger, challengerBond);
        }
        emit GameResolved(gameId, outcome, slashed, forfeited);
    }

    function _credit(address account, uint256 amount) private {
        credits[account] += amount;
        emit Credited(account, amount);
    }
}
