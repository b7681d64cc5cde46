// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Contracts
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

// Libraries
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SparseMerkle} from "./lib/SparseMerkle.sol";

// Interfaces
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IInbox, ISequencerSet, RollupParams} from "../interfaces/IRollup.sol";
import {IWorkAttester} from "../interfaces/IWorkAttester.sol";

/// @title Inbox
/// @notice The L1 home of one rollup: batches of L2 transactions, the root claims beside them,
///         the queue of deposits and forced records, finality, and withdrawals.
/// @dev    Data and claims apart (docs/l2-protocol.md §Batches, §Queue): a batch's data is decoded
///         and committed at append (its hash chained into `batchHashOf`) and is never removed; the
///         post-state root is a claim stored beside it, which the dispute game can remove (with
///         every later claim) and any bonded proposer can make again. Deposits and L2 records sent
///         from L1 wait in one first-in first-out queue that batches consume in order; an entry
///         older than the force-inclusion delay must come first in the next batch. A deployed
///         clone per rollup (RollupFactory); no owner. Reverts carry "inbox: ..." reasons.
contract Inbox is Initializable, ReentrancyGuardTransient, IInbox, IWorkAttester {
    using SafeERC20 for IERC20;

    /// @notice A root claim: the post-state root of a batch and who backs it.
    struct Claim {
        bytes32 root;
        address proposer;
        uint64 proposedAt;
        uint32 openDisputes;
    }

    /// @notice Batch format version (the data's first byte).
    uint8 public constant VERSION = 1;

    /// @notice Most transactions in one batch (over all its blocks).
    uint256 public constant MAX_TXS_PER_BATCH = 2048;

    /// @notice Most blocks in one batch.
    uint256 public constant MAX_BLOCKS_PER_BATCH = 1024;

    /// @notice Most a token's deposits minus withdrawals may add up to (a balance is 16 bytes on L2).
    uint256 public constant TOKEN_CAP = type(uint128).max;

    /// @notice Most claims `finalize` settles in one call.
    uint256 public constant MAX_FINALIZE = 256;

    /// @notice Where ETH is named as a token.
    address public constant ETH = address(0);

    /// @dev Record kinds and lengths (docs/l2-protocol.md §Transactions).
    uint8 private constant _DEPOSIT = 1;
    uint256 private constant _DEPOSIT_LENGTH = 65;
    uint256 private constant _TRANSFER_LENGTH = 166;
    uint256 private constant _AUTHORIZATION_LENGTH = 190;

    /// @notice The rollup's parameters (RollupFactory).
    RollupParams public params;

    /// @notice The rollup's operators and slot schedule.
    ISequencerSet public sequencerSet;

    /// @notice The only caller that may remove claims and count disputes (zero: none yet).
    address public disputeGame;

    /// @notice Batches appended so far; batch i's data is committed in `batchHashOf[i]`.
    uint256 public batchCount;

    /// @notice L2 blocks appended so far (block k of a batch is number `l2BlockCount` before it + k).
    uint64 public l2BlockCount;

    /// @notice Timestamp of the last L2 block appended (0 before the first batch).
    uint64 public lastL2Timestamp;

    /// @notice L1 time of the last batch appended by a slot's leader (creation time before any).
    uint64 public lastSequencerBatchAt;

    /// @notice Claims 0 … claimCount-1 stand; a claim is made only after the one before it.
    uint256 public claimCount;

    /// @notice Claims 0 … finalizedCount-1 are final.
    uint256 public finalizedCount;

    /// @notice Queue entries 0 … queueLength-1 exist; batches consumed 0 … queueHead-1.
    uint256 public queueLength;

    /// @notice The next queue entry a batch must carry.
    uint256 public queueHead;

    /// @notice Deposits made so far (a deposit record's index).
    uint64 public depositCount;

    /// @notice What the inbox holds for L2 of each token (deposits minus paid withdrawals).
    mapping(address token => uint256) public held;

    /// @notice keccak256(previous batch hash ‖ keccak256(data) ‖ txRoot ‖ txCount(4) ‖ poster(20)).
    mapping(uint256 index => bytes32) public batchHashOf;

    /// @notice ETH owed to an account (bonds released, withdrawals its address refused).
    mapping(address account => uint256) public credits;

    /// @notice Withdrawal leaves already paid, by leaf key.
    mapping(bytes32 key => bool) public withdrawn;

    /// @notice Final claims per proposer (the work a sequencer bounty pays for).
    mapping(address proposer => uint256) public finalBatchesOf;

    /// @notice ETH bond behind a claim (zero: backed by the proposer's stake).
    mapping(uint256 index => uint256) public bondOf;

    mapping(uint256 index => Claim) private _claims;
    mapping(uint256 index => bytes32) private _queueHash;
    mapping(uint256 index => uint64) private _queueTime;

    event BatchAppended(
        uint256 indexed index,
        address indexed poster,
        bytes32 batchHash,
        bytes32 dataHash,
        bytes32 txRoot,
        uint32 txCount,
        uint64 firstL2Block,
        uint16 blockCount,
        uint256 queueHead
    );
    event RootClaimed(uint256 indexed index, address indexed proposer, bytes32 root, uint256 bond);
    event ClaimsRemoved(uint256 indexed fromIndex, uint256 removed, uint256 forfeitedBond);
    event ClaimFinalized(uint256 indexed index, address indexed proposer, bytes32 root);
    event DisputeNoted(uint256 indexed index, bool opened, uint32 openDisputes);
    event Deposited(
        uint256 indexed queueIndex, uint64 depositIndex, address indexed to, address indexed token, uint128 amount
    );
    event RecordQueued(uint256 indexed queueIndex, address indexed sender, bytes record);
    event WithdrawalFinalized(
        bytes32 indexed key, address indexed recipient, address indexed token, uint256 amount, uint256 batchIndex
    );
    event Credited(address indexed account, uint256 amount);
    event CreditWithdrawn(address indexed account, uint256 amount);

    modifier onlyDisputeGame() {
        require(msg.sender == disputeGame && msg.sender != address(0), "inbox: not dispute game");
        _;
    }

    constructor() {
        _disableInitializers();
    }

    /// @notice Sets up a rollup's inbox; called once by the factory that cloned it.
    /// @param p The rollup's parameters.
    /// @param sequencerSet_ The rollup's sequencer set.
    /// @param disputeGame_ The rollup's dispute game (zero: claims cannot be disputed).
    function initialize(RollupParams calldata p, address sequencerSet_, address disputeGame_) external initializer {
        require(sequencerSet_.code.length != 0, "inbox: sequencer set not a contract");
        require(p.challengeWindow != 0 && p.escapeDelay != 0 && p.forceInclusionDelay != 0, "inbox: zero delay");
        require(p.forceInclusionDelay < p.escapeDelay, "inbox: force inclusion after escape");
        require(p.maxTimestampLag != 0, "inbox: zero timestamp lag");
        require(p.proposerBond != 0, "inbox: zero proposer bond");
        params = p;
        sequencerSet = ISequencerSet(sequencerSet_);
        disputeGame = disputeGame_;
        lastSequencerBatchAt = uint64(block.timestamp);
    }

    // -------------------------------------------------------------------------------------------
    // Deposits and forced records
    // -------------------------------------------------------------------------------------------

    /// @notice Deposits the ETH sent to `to` on L2 (queued; credited when a batch carries it).
    /// @param to The L2 account credited.
    /// @return queueIndex The deposit's place in the queue.
    function depositETH(address to) external payable nonReentrant returns (uint256 queueIndex) {
        return _deposit(to, ETH, msg.value);
    }

    /// @notice Deposits `amount` of `token` to `to` on L2; the inbox must be approved for it.
    ///         Fee-on-transfer tokens are refused (the inbox must receive exactly `amount`).
    /// @param token The ERC-20 deposited.
    /// @param to The L2 account credited.
    /// @param amount The amount, in the token's smallest unit.
    /// @return queueIndex The deposit's place in the queue.
    function depositERC20(address token, address to, uint256 amount)
        external
        nonReentrant
        returns (uint256 queueIndex)
    {
        require(token != ETH && token.code.length != 0, "inbox: token not a contract");
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        require(IERC20(token).balanceOf(address(this)) - before == amount, "inbox: fee-on-transfer token");
        return _deposit(to, token, amount);
    }

    /// @notice Queues a signed L2 record (Transfer, TransferWithAuthorization or Withdraw) from
    ///         L1, paying L1 gas, so that no sequencer can leave it out past the force-inclusion
    ///         delay. Its signature and effect are the L2's matter: a bad one fails there.
    /// @param record The record, exactly as a batch carries it.
    /// @return queueIndex The record's place in the queue.
    function enqueueRecord(bytes calldata record) external returns (uint256 queueIndex) {
        require(record.length != 0, "inbox: bad record");
        uint8 kind = uint8(record[0]);
        require(kind != _DEPOSIT && _recordLength(kind) == record.length, "inbox: bad record");
        queueIndex = _enqueue(keccak256(record));
        emit RecordQueued(queueIndex, msg.sender, record);
    }

    // -------------------------------------------------------------------------------------------
    // Batches and claims
    // -------------------------------------------------------------------------------------------

    /// @notice Appends a batch of L2 blocks (docs/l2-protocol.md §Batches) with the post-state
    ///         root its poster claims. Only the current slot's leader may append, or anyone once
    ///         no leader has appended for the escape delay. The data is decoded and checked here
    ///         (format, time, queue); it is canonical once appended. A nonzero root is a claim:
    ///         backed by the poster's stake if it is an operator of the set, else by the proposer
    ///         bond sent along. A zero root appends data only (a later `proposeRoot` claims it).
    /// @param data The batch data.
    /// @param claimedRoot The post-state root claimed, or zero for none.
    /// @return index The batch's index.
    function appendBatch(bytes calldata data, bytes32 claimedRoot)
        external
        payable
        nonReentrant
        returns (uint256 index)
    {
        address leader = sequencerSet.currentLeader();
        bool byLeader = leader != address(0) && msg.sender == leader;
        require(
            byLeader || block.timestamp > uint256(lastSequencerBatchAt) + params.escapeDelay, "inbox: not the leader"
        );
        (bytes32 txRoot, uint256 txCount, uint256 blockCount, uint64 lastTimestamp) = _readBatch(data);

        index = batchCount;
        bytes32 dataHash = keccak256(data);
        bytes32 batchHash = keccak256(
            abi.encodePacked(
                index == 0 ? bytes32(0) : batchHashOf[index - 1], dataHash, txRoot, uint32(txCount), msg.sender
            )
        );
        batchHashOf[index] = batchHash;
        batchCount = index + 1;
        uint64 firstBlock = l2BlockCount;
        l2BlockCount = firstBlock + uint64(blockCount);
        lastL2Timestamp = lastTimestamp;
        if (byLeader) lastSequencerBatchAt = uint64(block.timestamp);
        emit BatchAppended(
            index, msg.sender, batchHash, dataHash, txRoot, uint32(txCount), firstBlock, uint16(blockCount), queueHead
        );

        if (claimedRoot != bytes32(0)) {
            require(claimCount == index, "inbox: claims await re-proposal");
            _claim(index, claimedRoot, byLeader);
        } else {
            require(msg.value == 0, "inbox: value without a claim");
        }
    }

    /// @notice Claims the post-state root of batch `index`, the first batch without a standing
    ///         claim (after a dispute removed claims, or after a data-only append). Backed by the
    ///         caller's stake if it is an active operator of the set, else by the proposer bond
    ///         sent along.
    /// @param index The batch.
    /// @param root The post-state root claimed.
    function proposeRoot(uint256 index, bytes32 root) external payable nonReentrant {
        require(index == claimCount && index < batchCount, "inbox: not the next claim");
        require(root != bytes32(0), "inbox: zero root");
        _claim(index, root, false);
    }

    /// @notice Makes every standing claim final whose challenge window has passed with no open
    ///         dispute, in order, up to `maxCount` of them; their bonds are credited back and
    ///         each counts as a final batch of its proposer. Anyone may call it.
    /// @param maxCount Most claims to finalize (at most MAX_FINALIZE).
    /// @return count Claims finalized.
    function finalize(uint256 maxCount) external returns (uint256 count) {
        require(maxCount != 0 && maxCount <= MAX_FINALIZE, "inbox: bad finalize count");
        uint256 next = finalizedCount;
        uint256 window = params.challengeWindow;
        while (count < maxCount && next < claimCount) {
            Claim storage claim = _claims[next];
            if (claim.openDisputes != 0 || block.timestamp < uint256(claim.proposedAt) + window) break;
            uint256 bond = bondOf[next];
            if (bond != 0) {
                bondOf[next] = 0;
                _credit(claim.proposer, bond);
            }
            finalBatchesOf[claim.proposer] += 1;
            emit ClaimFinalized(next, claim.proposer, claim.root);
            unchecked {
                ++next;
                ++count;
            }
        }
        finalizedCount = next;
    }

    /// @notice Releases the bond of a removed claim that was not the one proven wrong (its
    ///         proposer built on a root that was removed, through no fault of its own).
    /// @param index The batch whose removed claim had the bond.
    function releaseBond(uint256 index) external {
        require(index >= claimCount, "inbox: claim stands");
        uint256 bond = bondOf[index];
        require(bond != 0, "inbox: no bond");
        bondOf[index] = 0;
        _credit(_claims[index].proposer, bond);
    }

    // -------------------------------------------------------------------------------------------
    // Dispute game hooks
    // -------------------------------------------------------------------------------------------

    /// @inheritdoc IInbox
    function noteDispute(uint256 index, bool opened) external onlyDisputeGame {
        Claim storage claim = _claims[index];
        if (opened) {
            require(
                index >= finalizedCount && index < claimCount
                    && block.timestamp < uint256(claim.proposedAt) + params.challengeWindow,
                "inbox: claim not disputable"
            );
            claim.openDisputes += 1;
        } else {
            require(claim.openDisputes != 0, "inbox: no open dispute");
            claim.openDisputes -= 1;
        }
        emit DisputeNoted(index, opened, claim.openDisputes);
    }

    /// @inheritdoc IInbox
    function removeClaimsFrom(uint256 index) external onlyDisputeGame nonReentrant returns (uint256 forfeitedBond) {
        require(index >= finalizedCount && index < claimCount, "inbox: claim not removable");
        uint256 removed = claimCount - index;
        claimCount = index;
        forfeitedBond = bondOf[index];
        if (forfeitedBond != 0) {
            bondOf[index] = 0;
            (bool ok,) = msg.sender.call{value: forfeitedBond}("");
            require(ok, "inbox: bond transfer failed");
        }
        emit ClaimsRemoved(index, removed, forfeitedBond);
    }

    // -------------------------------------------------------------------------------------------
    // Withdrawals and credits
    // -------------------------------------------------------------------------------------------

    /// @notice Pays an L2 withdrawal on L1, once, against the root of a final claim, with a
    ///         proof of its withdrawal leaf (docs/l2-protocol.md §State leaves). Anyone may call
    ///         it; the funds go to the recipient the leaf names.
    /// @param batchIndex A batch whose claim is final.
    /// @param account The L2 account that withdrew.
    /// @param nonce Its nonce when it withdrew.
    /// @param token The token (zero: ETH).
    /// @param amount The amount.
    /// @param recipient The L1 recipient.
    /// @param proof The state-tree proof of the leaf under the claim's root.
    function finalizeWithdrawal(
        uint256 batchIndex,
        address account,
        uint64 nonce,
        address token,
        uint128 amount,
        address recipient,
        bytes calldata proof
    ) external nonReentrant {
        require(batchIndex < finalizedCount, "inbox: claim not final");
        bytes32 key = keccak256(abi.encodePacked(uint8(4), account, nonce));
        require(!withdrawn[key], "inbox: already withdrawn");
        bytes32 valueHash = keccak256(abi.encodePacked(token, amount, recipient));
        require(
            SparseMerkle.verify(_claims[batchIndex].root, key, true, valueHash, proof), "inbox: bad withdrawal proof"
        );
        withdrawn[key] = true;
        held[token] -= amount;
        emit WithdrawalFinalized(key, recipient, token, amount, batchIndex);
        if (token == ETH) {
            (bool ok,) = recipient.call{value: amount}("");
            if (!ok) _credit(recipient, amount); // a refusing recipient pulls it later
        } else {
            IERC20(token).safeTransfer(recipient, amount);
        }
    }

    /// @notice Sends the caller the ETH credited to it.
    function withdrawCredit() external nonReentrant {
        uint256 amount = credits[msg.sender];
        require(amount != 0, "inbox: nothing to withdraw");
        credits[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "inbox: transfer failed");
    }

    // -------------------------------------------------------------------------------------------
    // Views
    // -------------------------------------------------------------------------------------------

    /// @notice The claim beside batch `index` (stale data past `claimCount`).
    function claimOf(uint256 index) external view returns (Claim memory) {
        return _claims[index];
    }

    /// @notice The state root batch `index` starts from: the claim before it, or the empty
    ///         tree's root for the first batch.
    function preStateRoot(uint256 index) external view returns (bytes32) {
        require(index <= claimCount, "inbox: no claim before");
        return index == 0 ? bytes32(0) : _claims[index - 1].root;
    }

    /// @notice Whether the claim of batch `index` is final.
    function isFinal(uint256 index) external view returns (bool) {
        return index < finalizedCount;
    }

    /// @notice The hash of queue entry `index` (keccak256 of its record) and when it was queued.
    function queueEntry(uint256 index) external view returns (bytes32 recordHash, uint64 queuedAt) {
        require(index < queueLength, "inbox: no such entry");
        return (_queueHash[index], _queueTime[index]);
    }

    /// @notice Whether anyone may append now (no leader batch for the escape delay).
    function escapeOpen() external view returns (bool) {
        return block.timestamp > uint256(lastSequencerBatchAt) + params.escapeDelay;
    }

    /// @inheritdoc IWorkAttester
    function unitsOf(address worker) external view returns (uint256) {
        return finalBatchesOf[worker];
    }

    // -------------------------------------------------------------------------------------------
    // Internals
    // -------------------------------------------------------------------------------------------

    function _deposit(address to, address token, uint256 amount) private returns (uint256 queueIndex) {
        require(to != address(0), "inbox: zero recipient");
        require(amount != 0, "inbox: zero amount");
        uint256 total = held[token] + amount;
        require(total <= TOKEN_CAP, "inbox: token cap");
        held[token] = total;
        uint64 depositIndex = depositCount;
        depositCount = depositIndex + 1;
        bytes32 recordHash = keccak256(abi.encodePacked(_DEPOSIT, depositIndex, to, token, uint128(amount)));
        queueIndex = _enqueue(recordHash);
        emit Deposited(queueIndex, depositIndex, to, token, uint128(amount));
    }

    function _enqueue(bytes32 recordHash) private returns (uint256 queueIndex) {
        queueIndex = queueLength;
        _queueHash[queueIndex] = recordHash;
        _queueTime[queueIndex] = uint64(block.timestamp);
        queueLength = queueIndex + 1;
    }

    function _claim(uint256 index, bytes32 root, bool byLeader) private {
        uint256 bond;
        if (byLeader || sequencerSet.isActive(msg.sender)) {
            require(msg.value == 0, "inbox: stake backs this claim");
            sequencerSet.noteClaim(msg.sender);
        } else {
            require(msg.value == params.proposerBond, "inbox: wrong bond");
            bond = msg.value;
        }
        uint256 oldBond = bondOf[index];
        if (oldBond != 0) _credit(_claims[index].proposer, oldBond); // a removed claim's bond
        bondOf[index] = bond;
        _claims[index] = Claim(root, msg.sender, uint64(block.timestamp), 0);
        claimCount = index + 1;
        emit RootClaimed(index, msg.sender, root, bond);
    }

    function _credit(address account, uint256 amount) private {
        credits[account] += amount;
        emit Credited(account, amount);
    }

    /// @dev Decodes the batch with every check of the spec, checks its time and queue entries,
    ///      consumes the queue entries it carries and returns its tx root and counts.
    function _readBatch(bytes calldata data)
        private
        returns (bytes32 txRoot, uint256 txCount, uint256 blockCount, uint64 lastTimestamp)
    {
        require(data.length != 0, "inbox: empty batch");
        require(uint8(data[0]) == VERSION, "inbox: unknown version");
        require(data.length >= 3, "inbox: header truncated");
        blockCount = _read(data, 1, 2);
        require(blockCount != 0 && blockCount <= MAX_BLOCKS_PER_BATCH, "inbox: bad block count");

        _Queue memory queue = _openQueue();
        uint256 scratch;
        uint256 leaves;
        assembly ("memory-safe") {
            scratch := mload(0x40) // 8-byte timestamp ‖ record (at most 198 bytes)
            leaves := add(scratch, 256)
            // Reserve room for the most leaves (costs nothing until touched); shrunk at the end.
            mstore(0x40, add(leaves, mul(MAX_TXS_PER_BATCH, 32)))
        }
        uint256 offset = 3;
        uint64 timestamp;
        for (uint256 b; b < blockCount; ++b) {
            require(offset + 10 <= data.length, "inbox: block header truncated");
            uint64 blockTime = uint64(_read(data, offset, 8));
            uint256 records = _read(data, offset + 8, 2);
            offset += 10;
            if (b == 0) {
                require(blockTime >= lastL2Timestamp, "inbox: batch before the previous");
                require(blockTime + uint256(params.maxTimestampLag) >= block.timestamp, "inbox: batch lags L1");
            } else {
                require(blockTime >= timestamp, "inbox: timestamps out of order");
            }
            timestamp = blockTime;
            txCount += records;
            require(txCount <= MAX_TXS_PER_BATCH, "inbox: too many transactions");
            for (uint256 j; j < records; ++j) {
                require(offset < data.length, "inbox: record truncated");
                uint8 kind = uint8(data[offset]);
                uint256 length = _recordLength(kind);
                require(length != 0, "inbox: unknown record kind");
                require(offset + length <= data.length, "inbox: record truncated");
                bytes32 leaf;
                bytes32 recordHash;
                assembly ("memory-safe") {
                    mstore(scratch, shl(192, blockTime))
                    calldatacopy(add(scratch, 8), add(data.offset, offset), length)
                    leaf := keccak256(scratch, add(length, 8))
                    mstore(add(leaves, mul(sub(txCount, sub(records, j)), 32)), leaf)
                }
                if (kind == _DEPOSIT || queue.nextHash != bytes32(0) || queue.overdue) {
                    assembly ("memory-safe") {
                        recordHash := keccak256(add(scratch, 8), length)
                    }
                    _matchQueue(queue, kind, recordHash);
                }
                offset += length;
            }
        }
        require(offset == data.length, "inbox: trailing bytes");
        require(timestamp <= block.timestamp, "inbox: batch in the future");
        require(!queue.overdue || queue.consumed != 0, "inbox: overdue queue entry left out");
        queueHead = queue.head;
        lastTimestamp = timestamp;
        txRoot = _merkleRoot(leaves, txCount);
        assembly ("memory-safe") {
            mstore(0x40, add(leaves, mul(txCount, 32)))
        }
    }

    /// @dev The queue as a batch consumes it: its head, the head's hash (zero past the end) and
    ///      whether the head is overdue. Entries are queued in time order, so the overdue ones
    ///      are a prefix: once a head is not overdue, no later one is.
    struct _Queue {
        uint256 head;
        bytes32 nextHash;
        bool overdue;
        uint256 consumed;
    }

    function _openQueue() private view returns (_Queue memory queue) {
        queue.head = queueHead;
        _loadHead(queue, true);
    }

    function _loadHead(_Queue memory queue, bool checkTime) private view {
        if (queue.head < queueLength) {
            queue.nextHash = _queueHash[queue.head];
            queue.overdue =
                checkTime && block.timestamp > uint256(_queueTime[queue.head]) + params.forceInclusionDelay;
        } else {
            queue.nextHash = bytes32(0);
            queue.overdue = false;
        }
    }

    /// @dev A deposit record must be the queue's next entry; any other record consumes the next
    ///      entry when it is that entry; while the head is overdue, every record must be it.
    function _matchQueue(_Queue memory queue, uint8 kind, bytes32 recordHash) private view {
        if (queue.nextHash == recordHash && recordHash != bytes32(0)) {
            queue.head += 1;
            queue.consumed += 1;
            _loadHead(queue, queue.overdue);
        } else {
            require(kind != _DEPOSIT, "inbox: deposit not next in queue");
            require(!queue.overdue, "inbox: overdue queue entry left out");
        }
    }

    /// @dev Root of the padded binary tree over `n` leaves stored from `leaves` (overwritten).
    function _merkleRoot(uint256 leaves, uint256 n) private pure returns (bytes32 root) {
        if (n == 0) return bytes32(0);
        uint256 width = 1;
        while (width < n) width <<= 1;
        assembly ("memory-safe") {
            // Zero the padding: memory past the free pointer may hold leftovers.
            for { let i := n } lt(i, width) { i := add(i, 1) } { mstore(add(leaves, mul(i, 32)), 0) }
            for {} gt(width, 1) { width := shr(1, width) } {
                for { let i := 0 } lt(i, shr(1, width)) { i := add(i, 1) } {
                    mstore(add(leaves, mul(i, 32)), keccak256(add(leaves, mul(i, 64)), 64))
                }
            }
            root := mload(leaves)
        }
    }

    function _recordLength(uint8 kind) private pure returns (uint256) {
        if (kind == _DEPOSIT) return _DEPOSIT_LENGTH;
        if (kind == 2 || kind == 4) return _TRANSFER_LENGTH;
        if (kind == 3) return _AUTHORIZATION_LENGTH;
        return 0;
    }

    /// @dev `size` bytes (at most 32) of `data` from `offset`, big-endian; the caller checked bounds.
    function _read(bytes calldata data, uint256 offset, uint256 size) private pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := shr(sub(256, mul(size, 8)), calldataload(add(data.offset, offset)))
        }
    }
}
