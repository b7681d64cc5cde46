// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Contracts
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

// Libraries
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

// Interfaces
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IIdentityRegistry} from "../interfaces/IIdentityRegistry.sol";
import {IValidationRegistry} from "../interfaces/IValidationRegistry.sol";
import {IWorkAttester} from "../interfaces/IWorkAttester.sol";

/// @title BountyEscrow
/// @notice Agents hire agents. A bounty holds ETH or an ERC-20, funded by one funder or many.
///         Task bounty: a claimant stakes, delivers (URI + hash) before the deadline, and is paid
///         when the poster accepts, when the named ERC-8004 validator's response reaches the
///         threshold, or when the poster stays silent past the review window. A rejection can be
///         disputed before a named arbiter. A missed deadline or a lost dispute slashes the stake
///         to those who funded the bounty before the claim (never to the claimant itself). A claim
///         without a stake is not exclusive: the poster may reopen it until the work is submitted.
///         Service bounty: a budget paid per unit of work that a named attester contract counts
///         (e.g. finalized batches per sequencer), at a fixed rate, to up to 64 workers at a time,
///         for work paid out before the term ends, within the budget. Workers may leave; the poster
///         curates (removes a worker the attester has counted nothing for since it joined) and may
///         cancel while no current worker has served.
/// @dev    Money only leaves through `withdraw` (payouts and stakes, credited first) and `refund`
///         (funders' pro-rata share of what a closed bounty did not pay out, plus their share of a
///         slashed stake, the last funder of each taking the rounding dust). `owed[asset]` always
///         equals what the escrow still owes in that asset, and so its balance: fee-on-transfer
///         tokens are refused at funding. No owner, nothing upgradeable. Reverts carry
///         "escrow: ..." reasons.
contract BountyEscrow is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice What a bounty pays for.
    enum Kind {
        Task,
        Service
    }

    /// @notice Where a bounty is in its life. Closed: cancelled, expired or ended; funders refund.
    enum Status {
        Open,
        Claimed,
        Submitted,
        Rejected,
        Disputed,
        Completed,
        Closed
    }

    /// @notice Terms of a new task bounty.
    struct TaskParams {
        address asset; // address(0) for ETH
        uint256 amount; // the poster's own funding
        uint64 deadline; // last moment to submit
        uint256 stake; // what a claimant locks, in the same asset
        address validator; // ERC-8004 validator whose response can accept (zero: none)
        uint8 threshold; // lowest response (0..100) that accepts
        address arbiter; // decides disputes
        uint64 reviewWindow; // seconds the poster has to review, and the claimant to dispute
        bool agentsOnly; // claimant must be a registered ERC-8004 agent (owner or agent wallet)
        string specURI; // what is asked
    }

    /// @notice Terms of a new service bounty.
    struct ServiceParams {
        address asset;
        uint256 amount;
        uint64 termEnd; // no joining after, and the bounty may be closed after
        address attester; // counts units of work per worker
        uint256 rate; // paid per unit
        bool agentsOnly;
        string specURI;
    }

    /// @notice State shared by both kinds.
    struct Bounty {
        Kind kind;
        Status status;
        bool agentsOnly;
        uint64 deadline; // task: submission deadline; service: end of term
        address poster;
        address asset;
        uint256 funded; // all funding received
        uint256 paid; // credited to workers
        uint256 slashed; // stakes added to the funders' pot
        uint256 refunded; // refunded to funders
        uint32 funders; // distinct funders
        uint32 refunds; // funders who took their refund
    }

    /// @notice A task's terms and its claim.
    struct Task {
        uint256 stake;
        address validator;
        uint8 threshold;
        address arbiter;
        uint64 reviewWindow;
        address claimant;
        uint64 submittedAt;
        uint64 rejectedAt;
        uint256 agentId;
        bytes32 validationRequest; // the request a validator must answer: about the deliverable
        uint64 answersFrom; // earliest answer time (registry's lastUpdate) that counts
    }

    /// @notice Who shares a slashed stake: the funders before the claim, the claimant excepted.
    struct StakePool {
        uint256 base; // their funding at the claim
        uint32 sharers; // how many they are
        uint32 refunds; // how many took their share
        uint256 refunded; // stake refunded so far
    }

    /// @notice A service's terms.
    struct Service {
        address attester;
        uint256 rate;
        address[] workers;
    }

    /// @notice A worker of a service bounty.
    struct Worker {
        bool joined;
        bool removed; // by the poster: may not join again
        uint256 agentId;
        uint256 unitsBase; // attested units when joining (earlier work is not paid)
        uint256 unitsPaid;
    }

    /// @notice Longest a deadline or term may lie ahead.
    uint64 public constant MAX_TERM = 365 days;

    /// @notice Longest review window.
    uint64 public constant MAX_REVIEW_WINDOW = 30 days;

    /// @notice Most workers of one service bounty at a time.
    uint256 public constant MAX_WORKERS = 64;

    /// @notice Longest spec or deliverable URI, in bytes.
    uint256 public constant MAX_URI_BYTES = 2048;

    /// @dev ERC-8004 identity registry (for agents-only bounties).
    IIdentityRegistry private immutable _IDENTITY;

    /// @dev ERC-8004 validation registry (for acceptance by a validator).
    IValidationRegistry private immutable _VALIDATION;

    /// @notice Number of bounties created; ids run from 1.
    uint256 public bountyCount;

    /// @notice What the escrow owes in each asset (address(0): ETH); equals its balance.
    mapping(address asset => uint256) public owed;

    /// @notice Payouts and stakes waiting for `withdraw`.
    mapping(address asset => mapping(address account => uint256)) public withdrawable;

    /// @notice What each funder put into a bounty (zeroed when refunded).
    mapping(uint256 id => mapping(address funder => uint256)) public contributionOf;

    mapping(uint256 id => Bounty) private _bounties;
    mapping(uint256 id => Task) private _tasks;
    mapping(uint256 id => Service) private _services;
    mapping(uint256 id => mapping(address worker => Worker)) private _workers;

    /// @dev Slashed stakes' sharers, per task.
    mapping(uint256 id => StakePool) private _stakePools;

    /// @dev Funding given while a staked task was claimed (it has no share of the stake).
    mapping(uint256 id => mapping(address funder => uint256)) private _lateContribution;

    /// @dev Position + 1 of a current worker in its service's list.
    mapping(uint256 id => mapping(address worker => uint256)) private _workerSlot;

    /// @dev Validation requests already bound to a bounty's submission (one request, one bounty).
    mapping(bytes32 requestHash => bool) private _validationTaken;

    event BountyCreated(
        uint256 indexed id, Kind kind, address indexed poster, address indexed asset, uint64 deadline, string specURI
    );
    event Funded(uint256 indexed id, address indexed funder, uint256 amount);
    event Claimed(uint256 indexed id, address indexed claimant, uint256 agentId, uint256 stake);
    event Reopened(uint256 indexed id, address indexed claimant);
    event Submitted(uint256 indexed id, address indexed claimant, string deliverableURI, bytes32 deliverableHash);
    event Rejected(uint256 indexed id, address indexed poster);
    event Disputed(uint256 indexed id, address indexed claimant);
    event Resolved(uint256 indexed id, address indexed arbiter, bool claimantWins);
    event Completed(uint256 indexed id, address indexed claimant, uint256 amount, address by);
    event StakeReturned(uint256 indexed id, address indexed claimant, uint256 amount);
    event StakeSlashed(uint256 indexed id, address indexed claimant, uint256 amount);
    event Joined(uint256 indexed id, address indexed worker, uint256 agentId, uint256 unitsBase);
    event Left(uint256 indexed id, address indexed worker);
    event WorkerRemoved(uint256 indexed id, address indexed worker);
    event PaidOut(uint256 indexed id, address indexed worker, uint256 units, uint256 amount);
    event Closed(uint256 indexed id, uint256 refundable);
    event Refunded(uint256 indexed id, address indexed funder, uint256 amount);
    event Withdrawn(address indexed asset, address indexed account, uint256 amount);

    /// @param identity_ ERC-8004 identity registry.
    /// @param validation_ ERC-8004 validation registry.
    constructor(address identity_, address validation_) {
        require(identity_.code.length != 0 && validation_.code.length != 0, "escrow: registry not a contract");
        _IDENTITY = IIdentityRegistry(identity_);
        _VALIDATION = IValidationRegistry(validation_);
    }

    // -------------------------------------------------------------------------------------------
    // Creating and funding
    // -------------------------------------------------------------------------------------------

    /// @notice Posts a task bounty and funds it (send the ETH along for an ETH bounty).
    /// @param p The terms.
    /// @return id The bounty's id.
    function createTask(TaskParams calldata p) external payable nonReentrant returns (uint256 id) {
        require(p.deadline > block.timestamp && p.deadline <= block.timestamp + MAX_TERM, "escrow: bad deadline");
        require(p.reviewWindow != 0 && p.reviewWindow <= MAX_REVIEW_WINDOW, "escrow: bad review window");
        require(p.threshold <= 100 && (p.validator == address(0) || p.threshold != 0), "escrow: bad threshold");
        require(p.arbiter != address(0) && p.arbiter != msg.sender, "escrow: bad arbiter");
        require(bytes(p.specURI).length <= MAX_URI_BYTES, "escrow: uri too long");
        id = _create(Kind.Task, p.asset, p.deadline, p.agentsOnly, p.specURI);
        Task storage task = _tasks[id];
        task.stake = p.stake;
        task.validator = p.validator;
        task.threshold = p.threshold;
        task.arbiter = p.arbiter;
        task.reviewWindow = p.reviewWindow;
        _fund(id, p.amount);
    }

    /// @notice Posts a service bounty and funds it.
    /// @param p The terms.
    /// @return id The bounty's id.
    function createService(ServiceParams calldata p) external payable nonReentrant returns (uint256 id) {
        require(p.termEnd > block.timestamp && p.termEnd <= block.timestamp + MAX_TERM, "escrow: bad deadline");
        require(p.attester.code.length != 0, "escrow: attester not a contract");
        require(p.rate != 0, "escrow: zero rate");
        require(bytes(p.specURI).length <= MAX_URI_BYTES, "escrow: uri too long");
        id = _create(Kind.Service, p.asset, p.termEnd, p.agentsOnly, p.specURI);
        _services[id].attester = p.attester;
        _services[id].rate = p.rate;
        _fund(id, p.amount);
    }

    /// @notice Adds funds to an open bounty (crowdfunding); refunds are pro rata. Funding a task
    ///         while it is claimed adds to the claimant's pay but has no share of its stake if
    ///         slashed: the stake goes to those who funded before the claim.
    /// @param id The bounty.
    /// @param amount How much (for ETH, send exactly this).
    function fund(uint256 id, uint256 amount) external payable nonReentrant {
        Bounty storage b = _bounty(id);
        require(b.status == Status.Open || b.status == Status.Claimed, "escrow: not fundable");
        require(block.timestamp <= b.deadline, "escrow: deadline passed");
        _fund(id, amount);
        if (b.status == Status.Claimed && _tasks[id].stake != 0) _lateContribution[id][msg.sender] += amount;
    }

    // -------------------------------------------------------------------------------------------
    // Task bounties
    // -------------------------------------------------------------------------------------------

    /// @notice Claims an open task, locking the stake (send it along for an ETH bounty).
    /// @param id The bounty.
    /// @param agentId The claimant's ERC-8004 agent (0 for none, unless the bounty is agents-only).
    function claim(uint256 id, uint256 agentId) external payable nonReentrant {
        Bounty storage b = _kind(id, Kind.Task);
        require(b.status == Status.Open, "escrow: not open");
        require(block.timestamp <= b.deadline, "escrow: deadline passed");
        require(msg.sender != b.poster, "escrow: poster cannot claim");
        Task storage task = _tasks[id];
        require(msg.sender != task.arbiter && msg.sender != task.validator, "escrow: arbiter or validator cannot claim");
        if (b.agentsOnly || agentId != 0) _requireAgent(agentId);
        _pull(b.asset, task.stake);
        owed[b.asset] += task.stake;
        if (task.stake != 0) {
            // A staked claim is never reopened: this is the task's only claim. Its stake, if
            // slashed, goes to the funders so far, pro rata, the claimant's own funding excepted.
            uint256 own = contributionOf[id][msg.sender];
            StakePool storage pool = _stakePools[id];
            pool.base = b.funded - own;
            pool.sharers = own == 0 ? b.funders : b.funders - 1;
        }
        task.claimant = msg.sender;
        task.agentId = agentId;
        b.status = Status.Claimed;
        emit Claimed(id, msg.sender, agentId, task.stake);
    }

    /// @notice The poster reopens a task claimed without a stake, before the work is submitted:
    ///         a claim that risks nothing does not hold the task (anyone may claim it again).
    /// @param id The bounty.
    function reopen(uint256 id) external {
        Bounty storage b = _kind(id, Kind.Task);
        Task storage task = _tasks[id];
        require(b.status == Status.Claimed, "escrow: not claimed");
        require(msg.sender == b.poster, "escrow: not the poster");
        require(task.stake == 0, "escrow: claim is staked");
        address claimant = task.claimant;
        task.claimant = address(0);
        task.agentId = 0;
        b.status = Status.Open;
        emit Reopened(id, claimant);
    }

    /// @notice Delivers the work before the deadline. With a validator named, the validation
    ///         request to answer is the one for this deliverable: the claimant's agent asks the
    ///         validator with `requestURI = deliverableURI` (see `getTask(id).validationRequest`).
    /// @param id The bounty.
    /// @param deliverableURI Where the work is (at most 2048 bytes).
    /// @param deliverableHash Hash of the work (not zero).
    function submit(uint256 id, string calldata deliverableURI, bytes32 deliverableHash) external {
        Bounty storage b = _kind(id, Kind.Task);
        Task storage task = _tasks[id];
        require(b.status == Status.Claimed, "escrow: not claimed");
        require(msg.sender == task.claimant, "escrow: not the claimant");
        require(block.timestamp <= b.deadline, "escrow: deadline passed");
        require(deliverableHash != 0 && bytes(deliverableURI).length <= MAX_URI_BYTES, "escrow: bad deliverable");
        if (task.validator != address(0) && task.agentId != 0) {
            bytes32 request = _VALIDATION.computeRequestHash(task.validator, task.agentId, deliverableURI);
            require(!_validationTaken[request], "escrow: deliverable already submitted to another bounty");
            _validationTaken[request] = true;
            task.validationRequest = request;
            // An answer given in this same second counts only if the request had no answer from
            // this second at submission: timestamps cannot order a submission and an answer of
            // one second, but an answer absent now and present later came after the submission.
            // (A catch for lack of gas is not possible: the 1/64 left could not finish this call.)
            task.answersFrom = uint64(block.timestamp);
            try _VALIDATION.getValidationStatus(request) returns (
                address, uint256, uint8, bytes32, string memory, uint256 lastUpdate
            ) {
                if (lastUpdate >= block.timestamp) task.answersFrom = uint64(block.timestamp) + 1;
            } catch {} // not requested yet: no answer so far
        }
        task.submittedAt = uint64(block.timestamp);
        b.status = Status.Submitted;
        emit Submitted(id, msg.sender, deliverableURI, deliverableHash);
    }

    /// @notice The poster accepts the work: the claimant is paid and gets the stake back.
    /// @param id The bounty.
    function accept(uint256 id) external {
        Bounty storage b = _kind(id, Kind.Task);
        require(b.status == Status.Submitted, "escrow: nothing to accept");
        require(msg.sender == b.poster, "escrow: not the poster");
        _complete(id, b);
    }

    /// @notice Anyone completes the task with the named validator's ERC-8004 response, which
    ///         outranks the poster: it also overturns a rejection, disputed or not.
    /// @dev The request must be the one for this bounty's deliverable (recorded at submission,
    ///      so it names the bounty's validator and the claimant's agent, and bound to this bounty
    ///      alone), its latest answer given after the submission (`answersFrom`), at or above the
    ///      threshold. The answer is read once: a later change does not undo a completion.
    /// @param id The bounty.
    /// @param requestHash The validation request.
    function acceptByValidation(uint256 id, bytes32 requestHash) external {
        Bounty storage b = _kind(id, Kind.Task);
        Task storage task = _tasks[id];
        require(
            b.status == Status.Submitted || b.status == Status.Rejected || b.status == Status.Disputed,
            "escrow: nothing to accept"
        );
        require(task.validator != address(0), "escrow: no validator");
        // The recorded hash already names the validator, the claimant's agent and the deliverable.
        require(requestHash == task.validationRequest && requestHash != 0, "escrow: wrong validation");
        (,, uint8 response,,, uint256 lastUpdate) = _VALIDATION.getValidationStatus(requestHash);
        require(lastUpdate != 0, "escrow: validation not answered");
        require(lastUpdate >= task.answersFrom, "escrow: validation predates submission");
        require(response >= task.threshold, "escrow: below threshold");
        _complete(id, b);
    }

    /// @notice The poster rejects the work within the review window; the claimant may dispute.
    /// @param id The bounty.
    function reject(uint256 id) external {
        Bounty storage b = _kind(id, Kind.Task);
        Task storage task = _tasks[id];
        require(b.status == Status.Submitted, "escrow: nothing to reject");
        require(msg.sender == b.poster, "escrow: not the poster");
        require(block.timestamp <= task.submittedAt + task.reviewWindow, "escrow: review window over");
        task.rejectedAt = uint64(block.timestamp);
        b.status = Status.Rejected;
        emit Rejected(id, msg.sender);
    }

    /// @notice The claimant disputes a rejection, within the review window after it.
    /// @param id The bounty.
    function dispute(uint256 id) external {
        Bounty storage b = _kind(id, Kind.Task);
        Task storage task = _tasks[id];
        require(b.status == Status.Rejected, "escrow: nothing to dispute");
        require(msg.sender == task.claimant, "escrow: not the claimant");
        require(block.timestamp <= task.rejectedAt + task.reviewWindow, "escrow: dispute window over");
        b.status = Status.Disputed;
        emit Disputed(id, msg.sender);
    }

    /// @notice The arbiter settles a dispute: pay the claimant, or slash the stake and close.
    /// @param id The bounty.
    /// @param claimantWins Who is right.
    function resolve(uint256 id, bool claimantWins) external {
        Bounty storage b = _kind(id, Kind.Task);
        require(b.status == Status.Disputed, "escrow: no dispute");
        require(msg.sender == _tasks[id].arbiter, "escrow: not the arbiter");
        emit Resolved(id, msg.sender, claimantWins);
        if (claimantWins) {
            _complete(id, b);
        } else {
            _settleStake(id, b, false);
            _close(id, b);
        }
    }

    /// @notice The poster cancels a task nobody claimed, or a service no current worker has
    ///         served (the attester counted no unit for any of them since it joined); funders can
    ///         then refund. Work paid out before stays paid.
    /// @param id The bounty.
    function cancel(uint256 id) external {
        Bounty storage b = _bounty(id);
        require(b.status == Status.Open, "escrow: not open");
        require(msg.sender == b.poster, "escrow: not the poster");
        if (b.kind == Kind.Service) {
            address[] storage workers = _services[id].workers;
            uint256 count = workers.length; // at most MAX_WORKERS
            for (uint256 i; i < count; ++i) {
                require(!_served(id, workers[i]), "escrow: a worker has served");
            }
        }
        _close(id, b);
    }

    /// @notice Anyone moves a bounty whose clock ran out: an unclaimed task expires; a claimed task
    ///         not delivered in time loses its stake; work the poster left unreviewed is paid; a
    ///         rejection left undisputed (or a dispute the arbiter left undecided for a second
    ///         window) closes with the stake returned; a service past its term closes (work is paid
    ///         by `payOut` while the term runs: the attester does not date units).
    /// @param id The bounty.
    function finalize(uint256 id) external nonReentrant {
        Bounty storage b = _bounty(id);
        if (b.kind == Kind.Service) {
            require(b.status == Status.Open && block.timestamp > b.deadline, "escrow: too early");
            _close(id, b);
            return;
        }
        Task storage task = _tasks[id];
        Status s = b.status;
        if (s == Status.Open && block.timestamp > b.deadline) {
            _close(id, b);
        } else if (s == Status.Claimed && block.timestamp > b.deadline) {
            _settleStake(id, b, false);
            _close(id, b);
        } else if (s == Status.Submitted && block.timestamp > task.submittedAt + task.reviewWindow) {
            _complete(id, b);
        } else if (
            (s == Status.Rejected && block.timestamp > task.rejectedAt + task.reviewWindow)
                || (s == Status.Disputed && block.timestamp > task.rejectedAt + 2 * uint256(task.reviewWindow))
        ) {
            _settleStake(id, b, true);
            _close(id, b);
        } else {
            revert("escrow: too early");
        }
    }

    // -------------------------------------------------------------------------------------------
    // Service bounties
    // -------------------------------------------------------------------------------------------

    /// @notice Joins a service bounty as a worker; only work attested from now on is paid.
    /// @param id The bounty.
    /// @param agentId The worker's ERC-8004 agent (0 for none, unless agents-only).
    function join(uint256 id, uint256 agentId) external {
        Bounty storage b = _kind(id, Kind.Service);
        require(b.status == Status.Open && block.timestamp <= b.deadline, "escrow: not open");
        Worker storage w = _workers[id][msg.sender];
        require(!w.joined, "escrow: already joined");
        require(!w.removed, "escrow: removed by the poster");
        Service storage service = _services[id];
        require(service.workers.length < MAX_WORKERS, "escrow: too many workers");
        if (b.agentsOnly || agentId != 0) _requireAgent(agentId);
        w.joined = true;
        w.agentId = agentId;
        w.unitsBase = IWorkAttester(service.attester).unitsOf(msg.sender);
        w.unitsPaid = 0; // a worker who left and comes back starts afresh
        service.workers.push(msg.sender);
        _workerSlot[id][msg.sender] = service.workers.length;
        emit Joined(id, msg.sender, agentId, w.unitsBase);
    }

    /// @notice A worker leaves a service bounty, freeing its place; while the term runs, what it
    ///         is due is credited first (units the budget cannot pay are given up). It may join
    ///         again later, paid only for work attested from then on.
    /// @param id The bounty.
    function leave(uint256 id) external nonReentrant {
        Bounty storage b = _kind(id, Kind.Service);
        require(b.status == Status.Open, "escrow: not open");
        require(_workers[id][msg.sender].joined, "escrow: not a worker");
        if (block.timestamp <= b.deadline) _payOut(id, b, msg.sender);
        _drop(id, msg.sender);
        emit Left(id, msg.sender);
    }

    /// @notice The poster removes a worker the attester has counted no unit for since it joined
    ///         (curation, e.g. of places taken by idle addresses); it may not join this bounty again.
    /// @param id The bounty.
    /// @param worker The worker.
    function removeWorker(uint256 id, address worker) external {
        Bounty storage b = _kind(id, Kind.Service);
        require(b.status == Status.Open, "escrow: not open");
        require(msg.sender == b.poster, "escrow: not the poster");
        require(_workers[id][worker].joined, "escrow: not a worker");
        require(!_served(id, worker), "escrow: worker has served");
        _workers[id][worker].removed = true;
        _drop(id, worker);
        emit WorkerRemoved(id, worker);
    }

    /// @notice Credits a worker for the units attested since the last payout, within the budget.
    ///         Anyone may call it, until the term ends: units attested later are not paid.
    /// @param id The bounty.
    /// @param worker The worker.
    function payOut(uint256 id, address worker) external nonReentrant {
        Bounty storage b = _kind(id, Kind.Service);
        require(b.status == Status.Open, "escrow: not open");
        require(block.timestamp <= b.deadline, "escrow: term over");
        require(_workers[id][worker].joined, "escrow: not a worker");
        _payOut(id, b, worker);
    }

    // -------------------------------------------------------------------------------------------
    // Money out
    // -------------------------------------------------------------------------------------------

    /// @notice A funder takes back its share of what a closed bounty did not pay out, pro rata to
    ///         its funding, and, if the claim's stake was slashed and it funded before the claim
    ///         (and is not the claimant), its share of the stake, pro rata to that earlier funding.
    ///         The last funder of each takes the rounding dust.
    /// @param id The bounty.
    function refund(uint256 id) external nonReentrant {
        Bounty storage b = _bounty(id);
        require(b.status == Status.Closed, "escrow: not closed");
        uint256 contribution = contributionOf[id][msg.sender];
        require(contribution != 0, "escrow: nothing to refund");
        uint256 late = _lateContribution[id][msg.sender];
        contributionOf[id][msg.sender] = 0;
        if (late != 0) _lateContribution[id][msg.sender] = 0;
        StakePool storage pool = _stakePools[id];
        uint256 pot = b.funded - b.paid;
        uint256 share =
            ++b.refunds == b.funders ? pot - (b.refunded - pool.refunded) : Math.mulDiv(pot, contribution, b.funded);
        if (b.slashed != 0 && contribution != late && msg.sender != _tasks[id].claimant) {
            uint256 stakeShare = ++pool.refunds == pool.sharers
                ? b.slashed - pool.refunded
                : Math.mulDiv(b.slashed, contribution - late, pool.base);
            pool.refunded += stakeShare;
            share += stakeShare;
        }
        b.refunded += share;
        emit Refunded(id, msg.sender, share);
        _send(b.asset, msg.sender, share);
    }

    /// @notice Withdraws the caller's credited payouts and stakes in `asset`.
    /// @param asset The asset (address(0): ETH).
    function withdraw(address asset) external nonReentrant {
        uint256 amount = withdrawable[asset][msg.sender];
        require(amount != 0, "escrow: nothing to withdraw");
        withdrawable[asset][msg.sender] = 0;
        emit Withdrawn(asset, msg.sender, amount);
        _send(asset, msg.sender, amount);
    }

    // -------------------------------------------------------------------------------------------
    // Views
    // -------------------------------------------------------------------------------------------

    /// @notice A bounty's shared state.
    /// @param id The bounty.
    /// @return The bounty.
    function getBounty(uint256 id) external view returns (Bounty memory) {
        return _bounty(id);
    }

    /// @notice A task's terms and claim.
    /// @param id The bounty.
    /// @return The task.
    function getTask(uint256 id) external view returns (Task memory) {
        _kind(id, Kind.Task);
        return _tasks[id];
    }

    /// @notice A service's attester, rate and workers.
    /// @param id The bounty.
    /// @return attester The attester.
    /// @return rate Paid per unit.
    /// @return workers The workers.
    function getService(uint256 id) external view returns (address attester, uint256 rate, address[] memory workers) {
        _kind(id, Kind.Service);
        Service storage s = _services[id];
        return (s.attester, s.rate, s.workers);
    }

    /// @notice A worker of a service bounty.
    /// @param id The bounty.
    /// @param worker The worker.
    /// @return The worker's record.
    function getWorker(uint256 id, address worker) external view returns (Worker memory) {
        return _workers[id][worker];
    }

    /// @notice What a service bounty can still pay out.
    /// @param id The bounty.
    /// @return The remaining budget.
    function remaining(uint256 id) public view returns (uint256) {
        Bounty storage b = _bounty(id);
        return b.status == Status.Closed ? 0 : b.funded - b.paid;
    }

    // -------------------------------------------------------------------------------------------
    // Internal
    // -------------------------------------------------------------------------------------------

    function _create(Kind kind, address asset, uint64 deadline, bool agentsOnly, string calldata specURI)
        private
        returns (uint256 id)
    {
        require(asset == address(0) || asset.code.length != 0, "escrow: asset not a contract");
        id = ++bountyCount;
        Bounty storage b = _bounties[id];
        b.kind = kind;
        b.poster = msg.sender;
        b.asset = asset;
        b.deadline = deadline;
        b.agentsOnly = agentsOnly;
        emit BountyCreated(id, kind, msg.sender, asset, deadline, specURI);
    }

    function _fund(uint256 id, uint256 amount) private {
        require(amount != 0, "escrow: zero amount");
        Bounty storage b = _bounties[id];
        _pull(b.asset, amount);
        owed[b.asset] += amount;
        if (contributionOf[id][msg.sender] == 0) ++b.funders;
        contributionOf[id][msg.sender] += amount;
        b.funded += amount;
        emit Funded(id, msg.sender, amount);
    }

    /// @dev Takes exactly `amount` from the caller; refuses ETH sent to a token bounty and
    ///      tokens that deliver less than asked (fee-on-transfer).
    function _pull(address asset, uint256 amount) private {
        if (asset == address(0)) {
            require(msg.value == amount, "escrow: wrong ETH amount");
            return;
        }
        require(msg.value == 0, "escrow: ETH sent to a token bounty");
        if (amount == 0) return;
        uint256 before = IERC20(asset).balanceOf(address(this));
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        require(IERC20(asset).balanceOf(address(this)) - before == amount, "escrow: token delivered a different amount");
    }

    function _send(address asset, address to, uint256 amount) private {
        owed[asset] -= amount;
        if (asset == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            require(ok, "escrow: ETH transfer failed");
        } else {
            IERC20(asset).safeTransfer(to, amount);
        }
    }

    function _credit(address asset, address to, uint256 amount) private {
        withdrawable[asset][to] += amount;
    }

    /// @dev Pays the claimant everything the bounty holds and returns the stake.
    function _complete(uint256 id, Bounty storage b) private {
        Task storage task = _tasks[id];
        uint256 amount = b.funded + b.slashed - b.paid - b.refunded;
        b.paid += amount;
        b.status = Status.Completed;
        _credit(b.asset, task.claimant, amount);
        emit Completed(id, task.claimant, amount, msg.sender);
        _settleStake(id, b, true);
    }

    function _settleStake(uint256 id, Bounty storage b, bool returned) private {
        Task storage task = _tasks[id];
        uint256 stake = task.stake;
        if (stake == 0) return;
        if (returned) {
            _credit(b.asset, task.claimant, stake);
            emit StakeReturned(id, task.claimant, stake);
        } else {
            b.slashed += stake; // the funders' pot: refunded with the bounty
            emit StakeSlashed(id, task.claimant, stake);
        }
    }

    function _close(uint256 id, Bounty storage b) private {
        b.status = Status.Closed;
        emit Closed(id, b.funded + b.slashed - b.paid);
    }

    function _payOut(uint256 id, Bounty storage b, address worker) private {
        Service storage service = _services[id];
        Worker storage w = _workers[id][worker];
        uint256 attested = IWorkAttester(service.attester).unitsOf(worker);
        uint256 due = attested > w.unitsBase + w.unitsPaid ? attested - w.unitsBase - w.unitsPaid : 0;
        uint256 affordable = (b.funded - b.paid) / service.rate;
        uint256 units = due < affordable ? due : affordable;
        if (units == 0) return;
        uint256 amount = units * service.rate;
        w.unitsPaid += units;
        b.paid += amount;
        _credit(b.asset, worker, amount);
        emit PaidOut(id, worker, units, amount);
    }

    /// @dev Whether the attester counted a unit for `worker` since it joined.
    function _served(uint256 id, address worker) private view returns (bool) {
        return IWorkAttester(_services[id].attester).unitsOf(worker) > _workers[id][worker].unitsBase;
    }

    /// @dev Takes a worker off its service's list (swap with the last, then pop).
    function _drop(uint256 id, address worker) private {
        _workers[id][worker].joined = false;
        address[] storage workers = _services[id].workers;
        uint256 slot = _workerSlot[id][worker];
        address last = workers[workers.length - 1];
        workers[slot - 1] = last;
        _workerSlot[id][last] = slot;
        workers.pop();
        delete _workerSlot[id][worker];
    }

    function _requireAgent(uint256 agentId) private view {
        // getAgentWallet first: it reverts "identity: unknown agent" for an id that does not exist.
        address wallet = _IDENTITY.getAgentWallet(agentId);
        require(msg.sender == wallet || msg.sender == _IDENTITY.ownerOf(agentId), "escrow: not the agent");
    }

    function _bounty(uint256 id) private view returns (Bounty storage b) {
        b = _bounties[id];
        require(b.poster != address(0), "escrow: unknown bounty");
    }

    function _kind(uint256 id, Kind kind) private view returns (Bounty storage b) {
        b = _bounty(id);
        require(b.kind == kind, "escrow: wrong kind");
    }
}
