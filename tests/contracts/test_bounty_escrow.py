"""BountyEscrow: task bounties (claim, deliver, accept, validate, dispute, expire) and service
bounties (paid per attested unit of work), in ETH and AgentUSD, and every refusal with its reason.

ETH balances are exact: escrow transactions go with a zero gas price (`_by`), so an account's
balance moves only by what it sends and receives. A refused call is stopped at gas estimation,
so nothing is sent; `refused` checks that nothing moved either way.
"""

from __future__ import annotations

from contextlib import contextmanager

import ape
import pytest
from eth_utils import keccak

from tests.contracts.conftest import ALICE_FUNDS, BOB_FUNDS, USD

ZERO = "0x" + "00" * 20
ETHER = 10**18
STAKE = ETHER // 2
HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
REVIEW = DAY
MAX_TERM = 365 * DAY
MAX_REVIEW_WINDOW = 30 * DAY
MAX_WORKERS = 64
MAX_URI_BYTES = 2048
SPEC = "ipfs://bafy-spec"
WORK_URI = "ipfs://bafy-work"
WORK_HASH = keccak(b"the work")
ZERO_HASH = b"\x00" * 32
CAROL_FUNDS = 100 * USD
GAS = 500_000  # a fixed gas limit: no estimate, so the transaction runs at the timestamp set

TASK, SERVICE = 0, 1
OPEN, CLAIMED, SUBMITTED, REJECTED, DISPUTED, COMPLETED, CLOSED = range(7)


def _by(sender, value: int = 0, **kwargs) -> dict:
    """Transaction arguments: free gas, so ETH balances move only by the value sent and received."""
    return {"sender": sender, "value": value, "gas_price": 0, **kwargs}


def _warp(chain, timestamp: int) -> None:
    """Moves the clock by mining a block at `timestamp`: anvil estimates gas at its own clock."""
    chain.mine(timestamp=timestamp)


def _log(receipt, event) -> dict:
    """The arguments of the one `event` in `receipt`."""
    (log,) = receipt.decode_logs(event)
    return dict(log.event_arguments)


def _bounty(escrow, bounty_id: int) -> dict:
    return dict(escrow.getBounty(bounty_id).items())


def _task(escrow, bounty_id: int) -> dict:
    return dict(escrow.getTask(bounty_id).items())


def _worker(escrow, bounty_id: int, worker) -> dict:
    return dict(escrow.getWorker(bounty_id, worker).items())


def _terms(
    chain,
    arbiter,
    *,
    asset: str = ZERO,
    amount: int = ETHER,
    deadline: int | None = None,
    stake: int = STAKE,
    validator: str = ZERO,
    threshold: int = 0,
    review: int = REVIEW,
    agents_only: bool = False,
    spec: str = SPEC,
) -> tuple:
    """A TaskParams tuple; the deadline defaults to a week ahead."""
    if deadline is None:
        deadline = chain.pending_timestamp + WEEK
    return (asset, amount, deadline, stake, validator, threshold, str(arbiter), review, agents_only, spec)


def _post(escrow, chain, poster, arbiter, *, token=None, **terms) -> int:
    """Posts a task bounty funded by `poster` (ETH, or `token` approved first); returns its id."""
    params = _terms(chain, arbiter, asset=ZERO if token is None else token.address, **terms)
    amount = params[1]
    if token is not None:
        token.approve(escrow, amount, **_by(poster))
    return escrow.createTask(params, **_by(poster, amount if token is None else 0)).return_value


def _claim(escrow, bounty_id: int, claimant, agent_id: int = 0, *, token=None, stake: int = STAKE):
    if token is not None:
        token.approve(escrow, stake, **_by(claimant))
    return escrow.claim(bounty_id, agent_id, **_by(claimant, stake if token is None else 0))


def _service(
    escrow,
    chain,
    poster,
    attester,
    *,
    token=None,
    amount: int = ETHER,
    term: int = WEEK,
    rate: int = ETHER // 10,
    agents_only: bool = False,
) -> int:
    """Posts a service bounty; returns its id."""
    asset = ZERO if token is None else token.address
    if token is not None:
        token.approve(escrow, amount, **_by(poster))
    params = (asset, amount, chain.pending_timestamp + term, attester.address, rate, agents_only, SPEC)
    return escrow.createService(params, **_by(poster, amount if token is None else 0)).return_value


STAGES = ("open", "claimed", "submitted", "rejected", "disputed", "completed", "closed")


def _stage(escrow, chain, stage: str, poster, claimant, arbiter, **terms) -> int:
    """An ETH task bounty brought to `stage` (funded 1 ETH, stake 0.5 ETH); returns its id."""
    bounty_id = _post(escrow, chain, poster, arbiter, **terms)
    if stage == "open":
        return bounty_id
    if stage == "closed":
        escrow.cancel(bounty_id, **_by(poster))
        return bounty_id
    _claim(escrow, bounty_id, claimant)
    if stage == "claimed":
        return bounty_id
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(claimant))
    if stage == "submitted":
        return bounty_id
    if stage == "completed":
        escrow.accept(bounty_id, **_by(poster))
        return bounty_id
    escrow.reject(bounty_id, **_by(poster))
    if stage == "disputed":
        escrow.dispute(bounty_id, **_by(claimant))
    return bounty_id


class Money:
    """ETH or AgentUSD, read and paid the same way by the tests."""

    def __init__(self, token=None):
        self.token = token

    @property
    def address(self) -> str:
        return ZERO if self.token is None else self.token.address

    @property
    def unit(self) -> int:
        return ETHER if self.token is None else USD

    def balance(self, holder) -> int:
        return int(holder.balance) if self.token is None else self.token.balanceOf(holder)

    def balances(self, *holders) -> list[int]:
        return [self.balance(holder) for holder in holders]

    def pay(self, payer, escrow, amount: int) -> dict:
        """Transaction arguments that pay `amount` into the escrow (approving a token first)."""
        if self.token is None:
            return _by(payer, amount)
        self.token.approve(escrow, amount, **_by(payer))
        return _by(payer)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def escrow(project, deployer, registries):
    return deployer.deploy(project.BountyEscrow, registries.identity.address, registries.validation.address)


@pytest.fixture(scope="module")
def attester(project, deployer):
    """Counts units of work; the deployer records them."""
    return deployer.deploy(project.work_attester_mock)


@pytest.fixture(scope="module")
def fee_token(project, deployer):
    """Burns 1% of every transfer."""
    return deployer.deploy(project.fee_on_transfer_token_mock)


@pytest.fixture(params=["eth", "ausd"])
def money(request, token, deployer, carol):
    if request.param == "eth":
        return Money()
    token.mint(carol, CAROL_FUNDS, sender=deployer)
    return Money(token)


def _web3(chain, contract):
    """`contract` as a web3 contract, for batched reads."""
    abi = [
        item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in contract.contract_type.abi
    ]
    return chain.provider.web3.eth.contract(address=contract.address, abi=abi)


@pytest.fixture
def refused(escrow, token, chain, deployer, alice, bob, carol, mallory):
    """`with refused(reason, bounty_id):` expects the revert and checks that nothing moved."""
    w3 = chain.provider.web3
    escrow_, token_ = _web3(chain, escrow), _web3(chain, token)
    holders = [account.address for account in (deployer, alice, bob, carol, mallory)]

    def snapshot(bounty_id: int | None) -> list:
        count = escrow.bountyCount()
        kind = escrow.getBounty(bounty_id).kind if bounty_id is not None and 1 <= bounty_id <= count else None
        with w3.batch_requests() as batch:  # one round trip
            batch.add(escrow_.functions.owed(ZERO))
            batch.add(escrow_.functions.owed(token.address))
            batch.add(w3.eth.get_balance(escrow.address))
            batch.add(token_.functions.balanceOf(escrow.address))
            for holder in holders:
                batch.add(w3.eth.get_balance(holder))
                batch.add(token_.functions.balanceOf(holder))
                batch.add(escrow_.functions.withdrawable(ZERO, holder))
                batch.add(escrow_.functions.withdrawable(token.address, holder))
            if kind is not None:
                batch.add(escrow_.functions.getBounty(bounty_id))
                batch.add(escrow_.functions.remaining(bounty_id))
                if kind == TASK:
                    batch.add(escrow_.functions.getTask(bounty_id))
                else:
                    batch.add(escrow_.functions.getService(bounty_id))
                for holder in holders:
                    batch.add(escrow_.functions.contributionOf(bounty_id, holder))
                    batch.add(escrow_.functions.getWorker(bounty_id, holder))
            return [count, *batch.execute()]

    @contextmanager
    def refused_(reason: str, bounty_id: int | None = None):
        before = snapshot(bounty_id)
        with ape.reverts(reason):
            yield
        assert snapshot(bounty_id) == before

    return refused_


# -- deployment ----------------------------------------------------------------------------------


def test_constructor__registries__starts_empty(escrow):
    assert escrow.bountyCount() == 0
    assert escrow.owed(ZERO) == 0
    assert (escrow.MAX_TERM(), escrow.MAX_REVIEW_WINDOW()) == (MAX_TERM, MAX_REVIEW_WINDOW)
    assert (escrow.MAX_WORKERS(), escrow.MAX_URI_BYTES()) == (MAX_WORKERS, MAX_URI_BYTES)


def test_constructor__registry_not_a_contract__fails(project, deployer, registries, mallory):
    for identity, validation in [
        (mallory.address, registries.validation.address),
        (registries.identity.address, mallory.address),
        (ZERO, ZERO),
    ]:
        with ape.reverts("escrow: registry not a contract"):
            deployer.deploy(project.BountyEscrow, identity, validation)


# -- 1. the life of a task bounty ----------------------------------------------------------------


def test_task__created_crowdfunded_claimed_submitted_accepted__pays_claimant_everything(
    escrow, money, chain, deployer, alice, bob, carol
):
    unit = money.unit
    start = money.balances(alice, bob, carol)
    deadline = chain.pending_timestamp + WEEK
    params = _terms(chain, deployer, asset=money.address, amount=10 * unit, deadline=deadline, stake=2 * unit)

    # create: the poster's own funding comes in
    receipt = escrow.createTask(params, **money.pay(alice, escrow, 10 * unit))
    bounty_id = receipt.return_value
    assert bounty_id == 1 == escrow.bountyCount()
    assert _log(receipt, escrow.BountyCreated) == {
        "id": bounty_id,
        "kind": TASK,
        "poster": alice.address,
        "asset": money.address,
        "deadline": deadline,
        "specURI": SPEC,
    }
    assert _log(receipt, escrow.Funded) == {"id": bounty_id, "funder": alice.address, "amount": 10 * unit}
    assert _bounty(escrow, bounty_id) == {
        "kind": TASK,
        "status": OPEN,
        "agentsOnly": False,
        "deadline": deadline,
        "poster": alice.address,
        "asset": money.address,
        "funded": 10 * unit,
        "paid": 0,
        "slashed": 0,
        "refunded": 0,
        "funders": 1,
        "refunds": 0,
    }
    assert _task(escrow, bounty_id) == {
        "stake": 2 * unit,
        "validator": ZERO,
        "threshold": 0,
        "arbiter": deployer.address,
        "reviewWindow": REVIEW,
        "claimant": ZERO,
        "submittedAt": 0,
        "rejectedAt": 0,
        "agentId": 0,
        "validationRequest": ZERO_HASH,
        "answersFrom": 0,
    }
    assert escrow.contributionOf(bounty_id, alice) == 10 * unit
    assert escrow.owed(money.address) == 10 * unit == money.balance(escrow)
    assert escrow.remaining(bounty_id) == 10 * unit

    # crowdfunding by a second funder
    receipt = escrow.fund(bounty_id, 4 * unit, **money.pay(bob, escrow, 4 * unit))
    assert _log(receipt, escrow.Funded) == {"id": bounty_id, "funder": bob.address, "amount": 4 * unit}
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["funded"], bounty["funders"]) == (14 * unit, 2)
    assert escrow.contributionOf(bounty_id, bob) == 4 * unit
    assert escrow.owed(money.address) == 14 * unit == money.balance(escrow)

    # claim, locking the stake
    receipt = escrow.claim(bounty_id, 0, **money.pay(carol, escrow, 2 * unit))
    assert _log(receipt, escrow.Claimed) == {
        "id": bounty_id,
        "claimant": carol.address,
        "agentId": 0,
        "stake": 2 * unit,
    }
    assert _bounty(escrow, bounty_id)["status"] == CLAIMED
    assert _task(escrow, bounty_id)["claimant"] == carol.address
    assert escrow.owed(money.address) == 16 * unit == money.balance(escrow)

    # submit
    receipt = escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    assert _log(receipt, escrow.Submitted) == {
        "id": bounty_id,
        "claimant": carol.address,
        "deliverableURI": WORK_URI,
        "deliverableHash": WORK_HASH,
    }
    assert _bounty(escrow, bounty_id)["status"] == SUBMITTED
    assert _task(escrow, bounty_id)["submittedAt"] == receipt.timestamp

    # accept: all the funding is credited, and the stake returned
    receipt = escrow.accept(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Completed) == {
        "id": bounty_id,
        "claimant": carol.address,
        "amount": 14 * unit,
        "by": alice.address,
    }
    assert _log(receipt, escrow.StakeReturned) == {
        "id": bounty_id,
        "claimant": carol.address,
        "amount": 2 * unit,
    }
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["status"], bounty["paid"], bounty["slashed"]) == (COMPLETED, 14 * unit, 0)
    assert escrow.remaining(bounty_id) == 0
    assert escrow.withdrawable(money.address, carol) == 16 * unit
    assert escrow.owed(money.address) == 16 * unit == money.balance(escrow)  # credited, not yet sent
    assert money.balances(alice, bob, carol) == [
        start[0] - 10 * unit,
        start[1] - 4 * unit,
        start[2] - 2 * unit,
    ]

    # withdraw
    receipt = escrow.withdraw(money.address, **_by(carol))
    assert _log(receipt, escrow.Withdrawn) == {
        "asset": money.address,
        "account": carol.address,
        "amount": 16 * unit,
    }
    assert escrow.withdrawable(money.address, carol) == 0
    assert escrow.owed(money.address) == 0 == money.balance(escrow)
    assert money.balances(alice, bob, carol) == [
        start[0] - 10 * unit,
        start[1] - 4 * unit,
        start[2] + 14 * unit,
    ]


def test_fund__claimed_task__adds_to_the_claimants_pay(escrow, chain, deployer, alice, bob, carol):
    bounty_id = _stage(escrow, chain, "claimed", alice, carol, deployer)
    escrow.fund(bounty_id, ETHER // 4, **_by(bob, ETHER // 4))
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    receipt = escrow.accept(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Completed)["amount"] == ETHER + ETHER // 4
    assert escrow.withdrawable(ZERO, carol) == ETHER + ETHER // 4 + STAKE


def test_claim__stake_zero__claims_without_payment(escrow, money, chain, deployer, alice, carol):
    bounty_id = _post(escrow, chain, alice, deployer, token=money.token, amount=money.unit, stake=0)
    start = money.balance(carol)
    receipt = escrow.claim(bounty_id, 0, **_by(carol))
    assert _log(receipt, escrow.Claimed)["stake"] == 0
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    receipt = escrow.accept(bounty_id, **_by(alice))
    assert not receipt.decode_logs(escrow.StakeReturned)
    escrow.withdraw(money.address, **_by(carol))
    assert money.balance(carol) == start + money.unit
    assert escrow.owed(money.address) == 0 == money.balance(escrow)


# -- 2. acceptance by a validator ----------------------------------------------------------------


def _agent_task(escrow, chain, poster, arbiter, validator, **terms) -> int:
    """An agents-only ETH task that the validator accepts from a response of 80 up."""
    return _post(
        escrow, chain, poster, arbiter, validator=validator.address, threshold=80, agents_only=True, **terms
    )


@pytest.mark.parametrize("claimant_is", ["owner", "wallet"])
def test_accept_by_validation__passing_response_after_submission__completes(
    escrow, registries, chain, agent_id, deployer, alice, bob, carol, validator, mallory, claimant_is
):
    if claimant_is == "wallet":
        registries.set_agent_wallet_with_key(alice, agent_id, carol.private_key)
    claimant = alice if claimant_is == "owner" else carol
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    assert _bounty(escrow, bounty_id)["agentsOnly"] is True

    receipt = _claim(escrow, bounty_id, claimant, agent_id)
    assert _log(receipt, escrow.Claimed)["agentId"] == agent_id
    assert _task(escrow, bounty_id)["agentId"] == agent_id
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(claimant))
    # the request is about the deliverable (made after the submission here): the escrow expects it
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    assert _task(escrow, bounty_id)["validationRequest"] == request
    registries.respond_validation(validator, request, 90, tag="bounty")

    receipt = escrow.acceptByValidation(bounty_id, request, **_by(mallory))  # anyone may
    assert _log(receipt, escrow.Completed) == {
        "id": bounty_id,
        "claimant": claimant.address,
        "amount": ETHER,
        "by": mallory.address,
    }
    assert _log(receipt, escrow.StakeReturned)["amount"] == STAKE
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED
    before = claimant.balance
    escrow.withdraw(ZERO, **_by(claimant))
    assert claimant.balance == before + ETHER + STAKE
    assert escrow.owed(ZERO) == 0 == escrow.balance


@pytest.mark.parametrize("stage", ["rejected", "disputed"])
def test_accept_by_validation__rejected_or_disputed__overturns_the_rejection(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, mallory, stage
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    escrow.reject(bounty_id, **_by(bob))
    if stage == "disputed":
        escrow.dispute(bounty_id, **_by(alice))
    assert _bounty(escrow, bounty_id)["status"] == (REJECTED if stage == "rejected" else DISPUTED)
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 95)

    receipt = escrow.acceptByValidation(bounty_id, request, **_by(mallory))
    assert _log(receipt, escrow.Completed)["amount"] == ETHER
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED
    assert escrow.withdrawable(ZERO, alice) == ETHER + STAKE


def test_accept_by_validation__no_validator__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    bounty_id = _post(escrow, chain, bob, deployer, agents_only=True)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 100)
    with refused("escrow: no validator", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(alice))


def test_accept_by_validation__other_validator_or_other_agent__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, carol, validator, operator, refused
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    other_validator = registries.request_validation(alice, agent_id, operator.address, WORK_URI)
    registries.respond_validation(operator, other_validator, 100)
    other_agent_id = registries.register(carol, "https://agents.example/carol.json")
    other_agent = registries.request_validation(carol, other_agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, other_agent, 100)

    for request in (other_validator, other_agent):
        with refused("escrow: wrong validation", bounty_id):
            escrow.acceptByValidation(bounty_id, request, **_by(alice))


def test_accept_by_validation__request_about_another_deliverable__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    expected = _task(escrow, bounty_id)["validationRequest"]
    with refused("validation: unknown request", bounty_id):  # the right hash, not yet requested
        escrow.acceptByValidation(bounty_id, expected, **_by(alice))
    # same validator, same agent, a passing answer: but about some other work
    other = registries.request_validation(alice, agent_id, validator.address, "ipfs://bafy-other-work")
    registries.respond_validation(validator, other, 100)
    assert other != expected
    for request in (other, ZERO_HASH):
        with refused("escrow: wrong validation", bounty_id):
            escrow.acceptByValidation(bounty_id, request, **_by(alice))

    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    assert request == expected
    registries.respond_validation(validator, request, 100)
    escrow.acceptByValidation(bounty_id, request, **_by(alice))
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED


def test_submit__same_deliverable_to_a_second_validated_bounty__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, carol, validator, mallory, refused
):
    # alice's agent delivers the same work to two bounties naming the same validator: the
    # validation request about it belongs to the first submission only.
    first = _agent_task(escrow, chain, bob, deployer, validator)
    second = _agent_task(escrow, chain, carol, deployer, validator)
    for bounty_id in (first, second):
        _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(first, WORK_URI, WORK_HASH, **_by(alice))
    with refused("escrow: deliverable already submitted to another bounty", second):
        escrow.submit(second, WORK_URI, WORK_HASH, **_by(alice))
    escrow.submit(second, WORK_URI + "#bounty-2", WORK_HASH, **_by(alice))  # a distinct deliverable is fine

    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 100)
    with refused("escrow: wrong validation", second):
        escrow.acceptByValidation(second, request, **_by(mallory))
    escrow.acceptByValidation(first, request, **_by(mallory))
    assert _bounty(escrow, first)["status"] == COMPLETED


def test_accept_by_validation__not_answered_yet__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    with refused("escrow: validation not answered", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(alice))


def test_accept_by_validation__claimant_without_agent__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    # not agents-only: alice claims as herself (agentId 0), so no validation can be about her agent
    bounty_id = _post(escrow, chain, bob, deployer, validator=validator.address, threshold=80)
    _claim(escrow, bounty_id, alice)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    assert _task(escrow, bounty_id)["validationRequest"] == ZERO_HASH  # nothing to validate
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 100)
    with refused("escrow: wrong validation", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(alice))


def test_accept_by_validation__response_predates_submission__fails_until_answered_again(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    # requested (and answered) before the submission: the same request, but the answer is too old
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 100)
    answered = registries.validation_status(request).last_update
    _warp(chain, answered + 60)
    receipt = escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    assert receipt.timestamp > answered
    with refused("escrow: validation predates submission", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(alice))

    registries.respond_validation(validator, request, 100)  # a later answer replaces the earlier one
    escrow.acceptByValidation(bounty_id, request, **_by(alice))
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED


def test_accept_by_validation__below_threshold__fails_and_threshold_itself_passes(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    for response in (0, 79):
        registries.respond_validation(validator, request, response)
        with refused("escrow: below threshold", bounty_id):
            escrow.acceptByValidation(bounty_id, request, **_by(alice))

    registries.respond_validation(validator, request, 80)
    escrow.acceptByValidation(bounty_id, request, **_by(alice))
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED


def test_accept_by_validation__nothing_submitted__fails(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, refused
):
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 100)
    for stage in ("open", "claimed", "completed", "closed"):
        bounty_id = _post(escrow, chain, bob, deployer, validator=validator.address, threshold=80)
        if stage == "closed":
            escrow.cancel(bounty_id, **_by(bob))
        elif stage != "open":
            _claim(escrow, bounty_id, alice, agent_id)
        if stage == "completed":
            escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
            escrow.accept(bounty_id, **_by(bob))
        with refused("escrow: nothing to accept", bounty_id):
            escrow.acceptByValidation(bounty_id, request, **_by(alice))


# -- 3. review, dispute, resolution --------------------------------------------------------------


def _disputable(escrow, chain, deployer, alice, bob, carol) -> int:
    """Alice posts 2 ETH, bob adds 1 ETH, carol claims (stake 0.5 ETH) and submits."""
    bounty_id = _post(escrow, chain, alice, deployer, amount=2 * ETHER)
    escrow.fund(bounty_id, ETHER, **_by(bob, ETHER))
    _claim(escrow, bounty_id, carol)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    return bounty_id


def test_resolve__claimant_wins__pays_claimant_and_returns_stake(escrow, chain, deployer, alice, bob, carol):
    start = [alice.balance, bob.balance, carol.balance]
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)

    receipt = escrow.reject(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Rejected) == {"id": bounty_id, "poster": alice.address}
    assert _bounty(escrow, bounty_id)["status"] == REJECTED
    assert _task(escrow, bounty_id)["rejectedAt"] == receipt.timestamp
    receipt = escrow.dispute(bounty_id, **_by(carol))
    assert _log(receipt, escrow.Disputed) == {"id": bounty_id, "claimant": carol.address}
    assert _bounty(escrow, bounty_id)["status"] == DISPUTED

    receipt = escrow.resolve(bounty_id, True, **_by(deployer))
    assert _log(receipt, escrow.Resolved) == {
        "id": bounty_id,
        "arbiter": deployer.address,
        "claimantWins": True,
    }
    assert _log(receipt, escrow.Completed) == {
        "id": bounty_id,
        "claimant": carol.address,
        "amount": 3 * ETHER,
        "by": deployer.address,
    }
    assert _log(receipt, escrow.StakeReturned)["amount"] == STAKE
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED
    escrow.withdraw(ZERO, **_by(carol))
    assert [alice.balance, bob.balance, carol.balance] == [
        start[0] - 2 * ETHER,
        start[1] - ETHER,
        start[2] + 3 * ETHER,
    ]
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_resolve__poster_wins__slashes_stake_and_funders_refund_it_pro_rata(
    escrow, chain, deployer, alice, bob, carol
):
    start = [alice.balance, bob.balance, carol.balance]
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)
    escrow.reject(bounty_id, **_by(alice))
    escrow.dispute(bounty_id, **_by(carol))

    receipt = escrow.resolve(bounty_id, False, **_by(deployer))
    pot = 3 * ETHER + STAKE
    assert not _log(receipt, escrow.Resolved)["claimantWins"]
    assert _log(receipt, escrow.StakeSlashed) == {"id": bounty_id, "claimant": carol.address, "amount": STAKE}
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": pot}
    assert not receipt.decode_logs(escrow.Completed)
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["status"], bounty["slashed"], bounty["paid"]) == (CLOSED, STAKE, 0)
    assert escrow.withdrawable(ZERO, carol) == 0

    alice_share = pot * 2 // 3  # 2 of 3 ETH funded, rounded down
    receipt = escrow.refund(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Refunded) == {"id": bounty_id, "funder": alice.address, "amount": alice_share}
    receipt = escrow.refund(bounty_id, **_by(bob))  # the last funder takes the dust
    assert _log(receipt, escrow.Refunded)["amount"] == pot - alice_share
    assert pot - alice_share == pot // 3 + 1
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["refunded"], bounty["refunds"]) == (pot, 2)
    assert escrow.contributionOf(bounty_id, alice) == 0 == escrow.contributionOf(bounty_id, bob)
    assert [alice.balance, bob.balance, carol.balance] == [
        start[0] - 2 * ETHER + alice_share,
        start[1] - ETHER + pot - alice_share,
        start[2] - STAKE,
    ]
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_finalize__rejection_left_undisputed__closes_and_returns_stake(
    escrow, chain, deployer, alice, bob, carol, mallory, refused
):
    start = [alice.balance, bob.balance, carol.balance]
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)
    rejected_at = escrow.reject(bounty_id, **_by(alice)).timestamp
    _warp(chain, rejected_at + REVIEW - 60)
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))

    _warp(chain, rejected_at + REVIEW + 1)
    with refused("escrow: dispute window over", bounty_id):
        escrow.dispute(bounty_id, **_by(carol))
    receipt = escrow.finalize(bounty_id, **_by(mallory))
    assert _log(receipt, escrow.StakeReturned) == {
        "id": bounty_id,
        "claimant": carol.address,
        "amount": STAKE,
    }
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 3 * ETHER}
    assert _bounty(escrow, bounty_id)["status"] == CLOSED
    escrow.withdraw(ZERO, **_by(carol))
    for funder in (alice, bob):
        escrow.refund(bounty_id, **_by(funder))
    assert [alice.balance, bob.balance, carol.balance] == start
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_finalize__dispute_undecided_for_two_windows__closes_and_returns_stake(
    escrow, chain, deployer, alice, bob, carol, mallory, refused
):
    start = [alice.balance, bob.balance, carol.balance]
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)
    rejected_at = escrow.reject(bounty_id, **_by(alice)).timestamp
    escrow.dispute(bounty_id, **_by(carol))
    _warp(chain, rejected_at + 2 * REVIEW - 60)  # past one window, not two
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))

    _warp(chain, rejected_at + 2 * REVIEW + 1)
    receipt = escrow.finalize(bounty_id, **_by(mallory))
    assert _log(receipt, escrow.StakeReturned)["amount"] == STAKE
    assert _log(receipt, escrow.Closed)["refundable"] == 3 * ETHER
    with refused("escrow: no dispute", bounty_id):
        escrow.resolve(bounty_id, False, **_by(deployer))
    escrow.withdraw(ZERO, **_by(carol))
    for funder in (alice, bob):
        escrow.refund(bounty_id, **_by(funder))
    assert [alice.balance, bob.balance, carol.balance] == start
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_finalize__poster_silent_past_review_window__pays_claimant(
    escrow, chain, deployer, alice, bob, carol, mallory, refused
):
    start = carol.balance
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)
    submitted_at = _task(escrow, bounty_id)["submittedAt"]
    chain.pending_timestamp = submitted_at + REVIEW  # the window's last second: still the poster's
    with ape.reverts("escrow: too early"):
        escrow.finalize(bounty_id, **_by(mallory, gas_limit=GAS))
    assert _bounty(escrow, bounty_id)["status"] == SUBMITTED

    chain.pending_timestamp = submitted_at + REVIEW + 1
    receipt = escrow.finalize(bounty_id, **_by(mallory, gas_limit=GAS))
    assert _log(receipt, escrow.Completed) == {
        "id": bounty_id,
        "claimant": carol.address,
        "amount": 3 * ETHER,
        "by": mallory.address,
    }
    assert _log(receipt, escrow.StakeReturned)["amount"] == STAKE
    with refused("escrow: nothing to reject", bounty_id):
        escrow.reject(bounty_id, **_by(alice))
    escrow.withdraw(ZERO, **_by(carol))
    assert carol.balance == start + 3 * ETHER


def test_reject__last_second_of_review_window__rejects(escrow, chain, deployer, alice, bob, carol):
    bounty_id = _disputable(escrow, chain, deployer, alice, bob, carol)
    submitted_at = _task(escrow, bounty_id)["submittedAt"]
    chain.pending_timestamp = submitted_at + REVIEW
    receipt = escrow.reject(bounty_id, **_by(alice, gas_limit=GAS))
    assert receipt.timestamp == submitted_at + REVIEW
    assert _bounty(escrow, bounty_id)["status"] == REJECTED


# -- 4. deadlines and cancelling -----------------------------------------------------------------


def test_finalize__unclaimed_past_deadline__closes_and_refunds_each_funder(
    escrow, token, chain, deployer, alice, bob, carol, mallory, refused
):
    token.mint(carol, CAROL_FUNDS, sender=deployer)
    amounts = {alice: 50 * USD + 1, bob: 30 * USD, carol: 20 * USD + 7}
    pot = sum(amounts.values())
    deadline = chain.pending_timestamp + DAY
    bounty_id = _post(escrow, chain, alice, deployer, token=token, amount=amounts[alice], deadline=deadline)
    for funder in (bob, carol):
        token.approve(escrow, amounts[funder], **_by(funder))
        escrow.fund(bounty_id, amounts[funder], **_by(funder))
    assert _bounty(escrow, bounty_id)["funders"] == 3
    _warp(chain, deadline - 60)
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))

    _warp(chain, deadline + 1)
    receipt = escrow.finalize(bounty_id, **_by(mallory))
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": pot}
    refunded = 0
    for funder in (carol, alice, bob):
        receipt = escrow.refund(bounty_id, **_by(funder))
        assert _log(receipt, escrow.Refunded) == {
            "id": bounty_id,
            "funder": funder.address,
            "amount": amounts[funder],
        }
        refunded += amounts[funder]
    bounty = _bounty(escrow, bounty_id)
    assert bounty["refunded"] == refunded == pot
    assert bounty["refunds"] == 3
    assert [token.balanceOf(a) for a in (alice, bob, carol)] == [ALICE_FUNDS, BOB_FUNDS, CAROL_FUNDS]
    assert escrow.owed(token) == 0 == token.balanceOf(escrow)


def test_finalize__claimed_not_submitted_past_deadline__slashes_stake_to_funders(
    escrow, token, chain, deployer, alice, bob, carol, mallory
):
    token.mint(carol, CAROL_FUNDS, sender=deployer)
    token.mint(mallory, 7, sender=deployer)
    deadline = chain.pending_timestamp + DAY
    bounty_id = _post(escrow, chain, alice, deployer, token=token, amount=100, stake=7, deadline=deadline)
    for funder, amount in ((bob, 70), (carol, 30)):
        token.approve(escrow, amount, **_by(funder))
        escrow.fund(bounty_id, amount, **_by(funder))
    _claim(escrow, bounty_id, mallory, token=token, stake=7)

    _warp(chain, deadline + 1)
    receipt = escrow.finalize(bounty_id, **_by(deployer))
    assert _log(receipt, escrow.StakeSlashed) == {"id": bounty_id, "claimant": mallory.address, "amount": 7}
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 207}
    assert not receipt.decode_logs(escrow.StakeReturned)
    # pro rata of 207 over 100/70/30: 103.5, 72.45 rounded down; the last funder takes the dust
    for funder, share in ((alice, 103), (bob, 72), (carol, 32)):
        assert _log(escrow.refund(bounty_id, **_by(funder)), escrow.Refunded)["amount"] == share
    assert _bounty(escrow, bounty_id)["refunded"] == 207
    assert [token.balanceOf(a) for a in (alice, bob, carol, mallory)] == [
        ALICE_FUNDS + 3,
        BOB_FUNDS + 2,
        CAROL_FUNDS + 2,
        0,
    ]
    assert escrow.owed(token) == 0 == token.balanceOf(escrow)


def test_claim__last_second_before_deadline__claims_and_one_later_fails(
    escrow, chain, deployer, alice, carol, mallory
):
    deadline = chain.pending_timestamp + DAY
    first = _post(escrow, chain, alice, deployer, deadline=deadline)
    second = _post(escrow, chain, alice, deployer, deadline=deadline)
    chain.pending_timestamp = deadline
    receipt = escrow.claim(first, 0, **_by(carol, STAKE, gas_limit=GAS))
    assert receipt.timestamp == deadline
    assert _bounty(escrow, first)["status"] == CLAIMED
    chain.pending_timestamp = deadline + 1
    with ape.reverts("escrow: deadline passed"):
        escrow.claim(second, 0, **_by(mallory, STAKE, gas_limit=GAS))
    assert _bounty(escrow, second)["status"] == OPEN
    assert escrow.owed(ZERO) == 2 * ETHER + STAKE == escrow.balance


def test_cancel__open_task__closes_and_refunds_funders(
    escrow, money, chain, deployer, alice, bob, carol, refused
):
    start = money.balances(alice, bob)
    unit = money.unit
    bounty_id = _post(escrow, chain, alice, deployer, token=money.token, amount=3 * unit, stake=unit)
    escrow.fund(bounty_id, unit, **money.pay(bob, escrow, unit))

    receipt = escrow.cancel(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 4 * unit}
    assert _bounty(escrow, bounty_id)["status"] == CLOSED
    assert escrow.remaining(bounty_id) == 0
    payment = money.pay(carol, escrow, unit)
    with refused("escrow: not open", bounty_id):
        escrow.claim(bounty_id, 0, **payment)
    for funder in (alice, bob):
        escrow.refund(bounty_id, **_by(funder))
    assert money.balances(alice, bob) == start
    assert escrow.owed(money.address) == 0 == money.balance(escrow)


# -- 5. service bounties -------------------------------------------------------------------------


def test_service__joined_paid_out_capped_finalized__pays_attested_work_within_budget(
    escrow, money, attester, chain, deployer, alice, bob, carol, mallory, refused
):
    unit = money.unit
    start = money.balances(alice, bob, carol)
    term_end = chain.pending_timestamp + WEEK
    params = (money.address, 100 * unit, term_end, attester.address, 3 * unit, False, SPEC)
    receipt = escrow.createService(params, **money.pay(alice, escrow, 100 * unit))
    bounty_id = receipt.return_value
    assert _log(receipt, escrow.BountyCreated) == {
        "id": bounty_id,
        "kind": SERVICE,
        "poster": alice.address,
        "asset": money.address,
        "deadline": term_end,
        "specURI": SPEC,
    }
    assert _log(receipt, escrow.Funded) == {"id": bounty_id, "funder": alice.address, "amount": 100 * unit}
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["kind"], bounty["status"], bounty["deadline"], bounty["funded"]) == (
        SERVICE,
        OPEN,
        term_end,
        100 * unit,
    )
    assert escrow.getService(bounty_id) == (attester.address, 3 * unit, [])
    assert escrow.remaining(bounty_id) == 100 * unit

    # work before joining is not paid
    attester.record(bob, 5, sender=deployer)
    receipt = escrow.join(bounty_id, 0, **_by(bob))
    assert _log(receipt, escrow.Joined) == {
        "id": bounty_id,
        "worker": bob.address,
        "agentId": 0,
        "unitsBase": 5,
    }
    receipt = escrow.join(bounty_id, 0, **_by(carol))
    assert _log(receipt, escrow.Joined)["unitsBase"] == 0
    assert escrow.getService(bounty_id) == (attester.address, 3 * unit, [bob.address, carol.address])
    assert _worker(escrow, bounty_id, bob) == {
        "joined": True,
        "removed": False,
        "agentId": 0,
        "unitsBase": 5,
        "unitsPaid": 0,
    }

    # units since joining, at the rate
    attester.record(bob, 10, sender=deployer)
    receipt = escrow.payOut(bounty_id, bob, **_by(mallory))  # anyone may
    assert _log(receipt, escrow.PaidOut) == {
        "id": bounty_id,
        "worker": bob.address,
        "units": 10,
        "amount": 30 * unit,
    }
    assert _worker(escrow, bounty_id, bob)["unitsPaid"] == 10
    assert escrow.withdrawable(money.address, bob) == 30 * unit
    assert escrow.remaining(bounty_id) == 70 * unit
    receipt = escrow.payOut(bounty_id, bob, **_by(mallory))  # nothing new: nothing paid
    assert not receipt.decode_logs(escrow.PaidOut)
    assert escrow.withdrawable(money.address, bob) == 30 * unit

    # the budget caps the payout: 30 units due, 70 / 3 = 23 affordable
    attester.record(carol, 30, sender=deployer)
    receipt = escrow.payOut(bounty_id, carol, **_by(carol))
    assert _log(receipt, escrow.PaidOut) == {
        "id": bounty_id,
        "worker": carol.address,
        "units": 23,
        "amount": 69 * unit,
    }
    assert escrow.remaining(bounty_id) == unit
    assert not escrow.payOut(bounty_id, carol, **_by(carol)).decode_logs(escrow.PaidOut)

    # crowdfunding tops the budget up: the 7 units still due are paid as far as it goes
    escrow.fund(bounty_id, 11 * unit, **money.pay(bob, escrow, 11 * unit))
    assert escrow.remaining(bounty_id) == 12 * unit
    attester.record(bob, 1, sender=deployer)
    _warp(chain, term_end - 60)
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))
    receipt = escrow.payOut(bounty_id, bob, **_by(mallory))
    assert _log(receipt, escrow.PaidOut) == {
        "id": bounty_id,
        "worker": bob.address,
        "units": 1,
        "amount": 3 * unit,
    }
    chain.pending_timestamp = term_end  # the term's last second still pays
    receipt = escrow.payOut(bounty_id, carol, **_by(mallory, gas_limit=GAS))
    assert receipt.timestamp == term_end
    assert _log(receipt, escrow.PaidOut) == {
        "id": bounty_id,
        "worker": carol.address,
        "units": 3,
        "amount": 9 * unit,
    }

    # after the term: no joining, no payout (work attested now is not paid), finalize just closes
    _warp(chain, term_end + 1)
    attester.record(carol, 2, sender=deployer)
    with refused("escrow: not open", bounty_id):
        escrow.join(bounty_id, 0, **_by(mallory))
    with refused("escrow: term over", bounty_id):
        escrow.payOut(bounty_id, carol, **_by(carol))
    receipt = escrow.finalize(bounty_id, **_by(mallory))
    assert not receipt.decode_logs(escrow.PaidOut)
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 0}
    bounty = _bounty(escrow, bounty_id)
    assert (bounty["status"], bounty["paid"], bounty["funded"]) == (CLOSED, 111 * unit, 111 * unit)
    assert _worker(escrow, bounty_id, carol)["unitsPaid"] == 26  # 4 of the 30 units (and 2 late) never paid
    assert escrow.remaining(bounty_id) == 0
    with refused("escrow: not open", bounty_id):
        escrow.payOut(bounty_id, carol, **_by(carol))

    for worker in (bob, carol):
        escrow.withdraw(money.address, **_by(worker))
    for funder in (alice, bob):  # nothing was left: each refund is zero
        assert _log(escrow.refund(bounty_id, **_by(funder)), escrow.Refunded)["amount"] == 0
    assert money.balances(alice, bob, carol) == [
        start[0] - 100 * unit,
        start[1] - 11 * unit + 33 * unit,
        start[2] + 78 * unit,
    ]
    assert escrow.owed(money.address) == 0 == money.balance(escrow)


def test_service__term_over_with_budget_left__funders_refund_all_not_paid_out_in_the_term(
    escrow, token, attester, chain, deployer, alice, bob, carol, mallory, refused
):
    bounty_id = _service(escrow, chain, alice, attester, token=token, amount=60 * USD, rate=2 * USD)
    token.approve(escrow, 30 * USD, **_by(bob))
    escrow.fund(bounty_id, 30 * USD, **_by(bob))
    escrow.join(bounty_id, 0, **_by(carol))
    escrow.join(bounty_id, 0, **_by(mallory))
    attester.record(carol, 10, sender=deployer)
    escrow.payOut(bounty_id, carol, **_by(carol))
    attester.record(mallory, 5, sender=deployer)
    escrow.payOut(bounty_id, mallory, **_by(carol))
    attester.record(carol, 3, sender=deployer)  # attested in the term, but not paid out in it

    _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 1)
    with refused("escrow: term over", bounty_id):
        escrow.payOut(bounty_id, carol, **_by(carol))
    receipt = escrow.finalize(bounty_id, **_by(deployer))
    assert not receipt.decode_logs(escrow.PaidOut)  # closing pays no one
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 60 * USD}
    assert _log(escrow.refund(bounty_id, **_by(alice)), escrow.Refunded)["amount"] == 40 * USD
    assert _log(escrow.refund(bounty_id, **_by(bob)), escrow.Refunded)["amount"] == 20 * USD
    for worker in (carol, mallory):
        escrow.withdraw(token, **_by(worker))
    assert [token.balanceOf(a) for a in (alice, bob, carol, mallory)] == [
        ALICE_FUNDS - 20 * USD,
        BOB_FUNDS - 10 * USD,
        20 * USD,
        10 * USD,
    ]
    assert escrow.owed(token) == 0 == token.balanceOf(escrow)


def test_join__agents_only__needs_owner_or_wallet_of_the_agent(
    escrow, attester, registries, chain, agent_id, alice, bob, carol, deployer, refused
):
    bounty_id = _service(escrow, chain, deployer, attester, agents_only=True)
    for sender, agent, reason in (
        (bob, agent_id, "escrow: not the agent"),
        (bob, 0, "identity: unknown agent"),
        (bob, 999, "identity: unknown agent"),
    ):
        with refused(reason, bounty_id):
            escrow.join(bounty_id, agent, **_by(sender))
    receipt = escrow.join(bounty_id, agent_id, **_by(alice))
    assert _log(receipt, escrow.Joined)["agentId"] == agent_id
    registries.set_agent_wallet_with_key(alice, agent_id, carol.private_key)
    escrow.join(bounty_id, agent_id, **_by(carol))
    assert _worker(escrow, bounty_id, carol)["agentId"] == agent_id


# -- 6. refusals ---------------------------------------------------------------------------------


def test_create_task__limits__accepted(escrow, chain, deployer, alice):
    deadline = chain.pending_timestamp + MAX_TERM - HOUR
    bounty_id = _post(
        escrow,
        chain,
        alice,
        deployer,
        deadline=deadline,
        review=MAX_REVIEW_WINDOW,
        threshold=100,
        spec="x" * MAX_URI_BYTES,
        stake=0,
    )
    task = _task(escrow, bounty_id)
    assert (task["reviewWindow"], task["threshold"]) == (MAX_REVIEW_WINDOW, 100)
    assert _bounty(escrow, bounty_id)["deadline"] == deadline


@pytest.mark.parametrize(
    ("terms", "reason"),
    [
        ({"deadline": "now"}, "escrow: bad deadline"),
        ({"deadline": "past"}, "escrow: bad deadline"),
        ({"deadline": "beyond"}, "escrow: bad deadline"),
        ({"review": 0}, "escrow: bad review window"),
        ({"review": MAX_REVIEW_WINDOW + 1}, "escrow: bad review window"),
        ({"threshold": 101}, "escrow: bad threshold"),
        ({"validator": "eoa", "threshold": 0}, "escrow: bad threshold"),
        ({"arbiter": ZERO}, "escrow: bad arbiter"),
        ({"arbiter": "poster"}, "escrow: bad arbiter"),
        ({"spec": "x" * (MAX_URI_BYTES + 1)}, "escrow: uri too long"),
        ({"asset": "eoa"}, "escrow: asset not a contract"),
        ({"amount": 0}, "escrow: zero amount"),
    ],
)
def test_create_task__bad_terms__fails(escrow, chain, deployer, alice, mallory, terms, reason, refused):
    now = chain.blocks.head.timestamp  # the next block is later
    symbols = {
        "now": now,
        "past": now - 1,
        "beyond": chain.pending_timestamp + MAX_TERM + HOUR,
        "poster": alice.address,
        "eoa": mallory.address,
    }
    terms = {
        key: symbols.get(value, value) if isinstance(value, str) else value for key, value in terms.items()
    }
    arbiter = terms.pop("arbiter", deployer.address)
    params = _terms(chain, arbiter, **terms)
    value = params[1] if params[0] == ZERO else 0
    with refused(reason):
        escrow.createTask(params, **_by(alice, value))


def test_create_task__eth_amount_mismatch__fails(escrow, token, chain, deployer, alice, refused):
    params = _terms(chain, deployer)
    for value in (0, ETHER + 1):
        with refused("escrow: wrong ETH amount"):
            escrow.createTask(params, **_by(alice, value))
    token.approve(escrow, USD, **_by(alice))
    with refused("escrow: ETH sent to a token bounty"):
        escrow.createTask(_terms(chain, deployer, asset=token.address, amount=USD), **_by(alice, 1))


def test_create__fee_on_transfer_token__fails(escrow, fee_token, attester, chain, deployer, alice, refused):
    fee_token.mint(alice, 1000, **_by(alice))
    fee_token.approve(escrow, 1000, **_by(alice))
    with refused("escrow: token delivered a different amount"):
        escrow.createTask(_terms(chain, deployer, asset=fee_token.address, amount=1000), **_by(alice))
    service = (fee_token.address, 1000, chain.pending_timestamp + WEEK, attester.address, 1, False, SPEC)
    with refused("escrow: token delivered a different amount"):
        escrow.createService(service, **_by(alice))
    assert fee_token.balanceOf(alice) == 1000


def test_create_service__bad_terms__fails(escrow, attester, chain, alice, mallory, refused):
    now = chain.blocks.head.timestamp
    week = chain.pending_timestamp + WEEK

    def terms(**changes):
        base = {
            "asset": ZERO,
            "amount": ETHER,
            "termEnd": week,
            "attester": attester.address,
            "rate": 1,
            "agentsOnly": False,
            "specURI": SPEC,
        }
        return tuple({**base, **changes}.values())

    for params, value, reason in [
        (terms(termEnd=now), ETHER, "escrow: bad deadline"),
        (terms(termEnd=chain.pending_timestamp + MAX_TERM + HOUR), ETHER, "escrow: bad deadline"),
        (terms(attester=mallory.address), ETHER, "escrow: attester not a contract"),
        (terms(rate=0), ETHER, "escrow: zero rate"),
        (terms(specURI="x" * (MAX_URI_BYTES + 1)), ETHER, "escrow: uri too long"),
        (terms(asset=mallory.address), 0, "escrow: asset not a contract"),
        (terms(amount=0), 0, "escrow: zero amount"),
        (terms(), ETHER - 1, "escrow: wrong ETH amount"),
    ]:
        with refused(reason):
            escrow.createService(params, **_by(alice, value))


def test_fund__refused__fails(escrow, attester, chain, deployer, alice, bob, carol, refused):
    with refused("escrow: unknown bounty"):
        escrow.fund(99, ETHER, **_by(bob, ETHER))
    open_id = _stage(escrow, chain, "open", alice, carol, deployer)
    with refused("escrow: zero amount", open_id):
        escrow.fund(open_id, 0, **_by(bob))
    with refused("escrow: wrong ETH amount", open_id):
        escrow.fund(open_id, ETHER, **_by(bob, ETHER - 1))
    for stage in ("submitted", "closed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: not fundable", bounty_id):
            escrow.fund(bounty_id, ETHER, **_by(bob, ETHER))
    service_id = _service(escrow, chain, alice, attester)
    _warp(chain, max(_bounty(escrow, i)["deadline"] for i in (open_id, service_id)) + 1)
    for bounty_id in (open_id, service_id):
        with refused("escrow: deadline passed", bounty_id):
            escrow.fund(bounty_id, ETHER, **_by(bob, ETHER))


def test_claim__refused__fails(
    escrow, token, attester, chain, agent_id, deployer, alice, bob, carol, refused
):
    service_id = _service(escrow, chain, alice, attester)
    with refused("escrow: wrong kind", service_id):
        escrow.claim(service_id, 0, **_by(carol, STAKE))
    with refused("escrow: unknown bounty"):
        escrow.claim(99, 0, **_by(carol, STAKE))
    for stage in ("claimed", "completed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: not open", bounty_id):
            escrow.claim(bounty_id, 0, **_by(bob, STAKE))

    bounty_id = _post(escrow, chain, alice, deployer)
    with refused("escrow: poster cannot claim", bounty_id):
        escrow.claim(bounty_id, 0, **_by(alice, STAKE))
    with refused("escrow: not the agent", bounty_id):  # not agents-only, but naming alice's agent
        escrow.claim(bounty_id, agent_id, **_by(bob, STAKE))
    for value in (0, STAKE + 1):
        with refused("escrow: wrong ETH amount", bounty_id):
            escrow.claim(bounty_id, 0, **_by(bob, value))

    agents_only = _post(escrow, chain, carol, deployer, agents_only=True)
    with refused("escrow: not the agent", agents_only):  # someone else's agent
        escrow.claim(agents_only, agent_id, **_by(bob, STAKE))
    for unknown in (0, 999):  # no agent at all, or an agent that does not exist
        with refused("identity: unknown agent", agents_only):
            escrow.claim(agents_only, unknown, **_by(bob, STAKE))

    token_id = _post(escrow, chain, alice, deployer, token=token, amount=USD, stake=USD)
    token.approve(escrow, USD, **_by(bob))
    with refused("escrow: ETH sent to a token bounty", token_id):
        escrow.claim(token_id, 0, **_by(bob, 1))

    deadline = _bounty(escrow, bounty_id)["deadline"]
    _warp(chain, deadline + 1)
    with refused("escrow: deadline passed", bounty_id):
        escrow.claim(bounty_id, 0, **_by(bob, STAKE))


def test_claim__arbiter_or_validator__fails(escrow, chain, deployer, alice, carol, validator, refused):
    # the lowest threshold a validator may be given (0 would accept any answer)
    bounty_id = _post(escrow, chain, alice, deployer, validator=validator.address, threshold=1)
    assert _task(escrow, bounty_id)["threshold"] == 1
    for judge in (deployer, validator):  # they decide the claim: they cannot make it
        with refused("escrow: arbiter or validator cannot claim", bounty_id):
            escrow.claim(bounty_id, 0, **_by(judge, STAKE))
    _claim(escrow, bounty_id, carol)
    assert _bounty(escrow, bounty_id)["status"] == CLAIMED


def test_submit__refused__fails(escrow, attester, chain, deployer, alice, carol, mallory, refused):
    service_id = _service(escrow, chain, alice, attester)
    with refused("escrow: wrong kind", service_id):
        escrow.submit(service_id, WORK_URI, WORK_HASH, **_by(carol))
    for stage in ("open", "submitted"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: not claimed", bounty_id):
            escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    bounty_id = _stage(escrow, chain, "claimed", alice, carol, deployer)
    with refused("escrow: not the claimant", bounty_id):
        escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(mallory))
    for uri, digest in ((WORK_URI, b"\x00" * 32), ("x" * (MAX_URI_BYTES + 1), WORK_HASH)):
        with refused("escrow: bad deliverable", bounty_id):
            escrow.submit(bounty_id, uri, digest, **_by(carol))
    _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 1)
    with refused("escrow: deadline passed", bounty_id):
        escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))


def test_accept__refused__fails(escrow, attester, chain, deployer, alice, carol, refused):
    service_id = _service(escrow, chain, alice, attester)
    with refused("escrow: wrong kind", service_id):
        escrow.accept(service_id, **_by(alice))
    for stage in ("claimed", "rejected"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: nothing to accept", bounty_id):
            escrow.accept(bounty_id, **_by(alice))
    bounty_id = _stage(escrow, chain, "submitted", alice, carol, deployer)
    for sender in (carol, deployer):
        with refused("escrow: not the poster", bounty_id):
            escrow.accept(bounty_id, **_by(sender))


def test_reject__refused__fails(escrow, chain, deployer, alice, carol, refused):
    for stage in ("claimed", "rejected"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: nothing to reject", bounty_id):
            escrow.reject(bounty_id, **_by(alice))
    bounty_id = _stage(escrow, chain, "submitted", alice, carol, deployer)
    with refused("escrow: not the poster", bounty_id):
        escrow.reject(bounty_id, **_by(carol))
    _warp(chain, _task(escrow, bounty_id)["submittedAt"] + REVIEW + 1)
    with refused("escrow: review window over", bounty_id):
        escrow.reject(bounty_id, **_by(alice))
    escrow.accept(bounty_id, **_by(alice))  # a late acceptance is still the poster's to give
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED


def test_dispute__refused__fails(escrow, chain, deployer, alice, carol, refused):
    for stage in ("submitted", "disputed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: nothing to dispute", bounty_id):
            escrow.dispute(bounty_id, **_by(carol))
    bounty_id = _stage(escrow, chain, "rejected", alice, carol, deployer)
    with refused("escrow: not the claimant", bounty_id):
        escrow.dispute(bounty_id, **_by(alice))
    _warp(chain, _task(escrow, bounty_id)["rejectedAt"] + REVIEW + 1)
    with refused("escrow: dispute window over", bounty_id):
        escrow.dispute(bounty_id, **_by(carol))


def test_resolve__refused__fails(escrow, chain, deployer, alice, carol, refused):
    for stage in ("rejected", "completed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: no dispute", bounty_id):
            escrow.resolve(bounty_id, True, **_by(deployer))
    bounty_id = _stage(escrow, chain, "disputed", alice, carol, deployer)
    for sender, claimant_wins in ((alice, False), (carol, True)):
        with refused("escrow: not the arbiter", bounty_id):
            escrow.resolve(bounty_id, claimant_wins, **_by(sender))


def test_cancel__refused__fails(escrow, attester, chain, deployer, alice, bob, carol, mallory, refused):
    with refused("escrow: unknown bounty"):
        escrow.cancel(99, **_by(alice))
    service_id = _service(escrow, chain, alice, attester)
    escrow.join(service_id, 0, **_by(bob))
    with refused("escrow: not the poster", service_id):
        escrow.cancel(service_id, **_by(mallory))
    attester.record(bob, 1, sender=deployer)  # bob serves: the poster is held to the term
    with refused("escrow: a worker has served", service_id):
        escrow.cancel(service_id, **_by(alice))
    _warp(chain, _bounty(escrow, service_id)["deadline"] + 1)
    escrow.finalize(service_id, **_by(mallory))
    with refused("escrow: not open", service_id):
        escrow.cancel(service_id, **_by(alice))
    for stage in ("claimed", "closed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: not open", bounty_id):
            escrow.cancel(bounty_id, **_by(alice))
    bounty_id = _stage(escrow, chain, "open", alice, carol, deployer)
    with refused("escrow: not the poster", bounty_id):
        escrow.cancel(bounty_id, **_by(mallory))


@pytest.mark.parametrize("stage", STAGES)
def test_finalize__before_its_clock_runs_out__too_early(
    escrow, chain, deployer, alice, carol, mallory, stage, refused
):
    bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))
    if stage in ("completed", "closed"):  # final: never finalized, however late
        _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 3 * REVIEW)
        with refused("escrow: too early", bounty_id):
            escrow.finalize(bounty_id, **_by(mallory))


def test_finalize__service_refused__fails(escrow, attester, chain, alice, mallory, refused):
    with refused("escrow: unknown bounty"):
        escrow.finalize(99, **_by(mallory))
    bounty_id = _service(escrow, chain, alice, attester)
    with refused("escrow: too early", bounty_id):
        escrow.finalize(bounty_id, **_by(mallory))
    _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 1)
    escrow.finalize(bounty_id, **_by(mallory))
    with refused("escrow: too early", bounty_id):  # closed already
        escrow.finalize(bounty_id, **_by(mallory))


def test_join_and_pay_out__refused__fail(escrow, attester, chain, deployer, alice, bob, carol, refused):
    task_id = _stage(escrow, chain, "open", alice, carol, deployer)
    with refused("escrow: wrong kind", task_id):
        escrow.join(task_id, 0, **_by(bob))
    with refused("escrow: wrong kind", task_id):
        escrow.payOut(task_id, bob, **_by(bob))
    with refused("escrow: unknown bounty"):
        escrow.join(99, 0, **_by(bob))
    bounty_id = _service(escrow, chain, alice, attester)
    escrow.join(bounty_id, 0, **_by(bob))
    with refused("escrow: already joined", bounty_id):
        escrow.join(bounty_id, 0, **_by(bob))
    with refused("escrow: not a worker", bounty_id):
        escrow.payOut(bounty_id, carol, **_by(carol))


def test_join__sixty_fifth_worker__too_many_workers(escrow, attester, accounts, chain, alice, bob, refused):
    # fresh accounts hold no ETH: with a zero gas price they need none
    bounty_id = _service(escrow, chain, alice, attester)
    for _ in range(MAX_WORKERS):
        escrow.join(bounty_id, 0, **_by(accounts.generate_test_account()))
    assert len(escrow.getService(bounty_id)[2]) == MAX_WORKERS
    with refused("escrow: too many workers", bounty_id):
        escrow.join(bounty_id, 0, **_by(bob))


def test_refund__refused__fails(escrow, attester, chain, deployer, alice, bob, carol, refused):
    with refused("escrow: unknown bounty"):
        escrow.refund(99, **_by(alice))
    for stage in ("open", "completed"):
        bounty_id = _stage(escrow, chain, stage, alice, carol, deployer)
        with refused("escrow: not closed", bounty_id):
            escrow.refund(bounty_id, **_by(alice))
    service_id = _service(escrow, chain, alice, attester)
    with refused("escrow: not closed", service_id):
        escrow.refund(service_id, **_by(alice))

    bounty_id = _stage(escrow, chain, "closed", alice, carol, deployer)
    with refused("escrow: nothing to refund", bounty_id):  # never funded it
        escrow.refund(bounty_id, **_by(bob))
    escrow.refund(bounty_id, **_by(alice))
    with refused("escrow: nothing to refund", bounty_id):  # twice
        escrow.refund(bounty_id, **_by(alice))


def test_withdraw__nothing_credited__fails(escrow, token, chain, deployer, alice, carol, refused):
    with refused("escrow: nothing to withdraw"):
        escrow.withdraw(ZERO, **_by(carol))
    bounty_id = _stage(escrow, chain, "completed", alice, carol, deployer)
    with refused("escrow: nothing to withdraw", bounty_id):  # credited in ETH, not in the token
        escrow.withdraw(token, **_by(carol))
    with refused("escrow: nothing to withdraw", bounty_id):  # the poster is owed nothing
        escrow.withdraw(ZERO, **_by(alice))
    escrow.withdraw(ZERO, **_by(carol))
    with refused("escrow: nothing to withdraw", bounty_id):  # twice
        escrow.withdraw(ZERO, **_by(carol))


def test_views__unknown_bounty_or_wrong_kind__fail(escrow, attester, chain, deployer, alice, carol):
    task_id = _stage(escrow, chain, "open", alice, carol, deployer)
    service_id = _service(escrow, chain, alice, attester)
    with ape.reverts("escrow: wrong kind"):
        escrow.getTask(service_id)
    with ape.reverts("escrow: wrong kind"):
        escrow.getService(task_id)
    for view in (escrow.getBounty, escrow.getTask, escrow.getService, escrow.remaining):
        with ape.reverts("escrow: unknown bounty"):
            view(99)


# -- 9. findings of the outside review (issue 10) and the decisions around them -------------------


def test_refund__slashed_stake__goes_to_the_funders_before_the_claim_never_back_to_the_claimant(
    escrow, money, chain, deployer, alice, bob, carol
):
    # Finding 1: carol claims, then funds the bounty heavily just before missing her deadline, to
    # take most of her own slashed stake back pro rata. Bob funds late too, in good faith.
    unit = money.unit
    deadline = chain.pending_timestamp + WEEK
    params = _terms(chain, deployer, asset=money.address, amount=2 * unit, deadline=deadline, stake=unit)
    bounty_id = escrow.createTask(params, **money.pay(alice, escrow, 2 * unit)).return_value
    escrow.claim(bounty_id, 0, **money.pay(carol, escrow, unit))
    _warp(chain, deadline - 60)
    escrow.fund(bounty_id, 18 * unit, **money.pay(carol, escrow, 18 * unit))
    escrow.fund(bounty_id, unit, **money.pay(bob, escrow, unit))
    _warp(chain, deadline + 1)
    receipt = escrow.finalize(bounty_id, **_by(deployer))
    assert _log(receipt, escrow.StakeSlashed)["amount"] == unit

    # each gets back exactly what it put in, and alice, the only funder before the claim, the stake
    refunds = {}
    for who in (carol, bob, alice):
        refunds[who.address] = _log(escrow.refund(bounty_id, **_by(who)), escrow.Refunded)["amount"]
    assert refunds == {carol.address: 18 * unit, bob.address: unit, alice.address: 3 * unit}
    assert escrow.owed(money.address) == 0 == money.balance(escrow)


def test_refund__slashed_stake__claimants_own_funding_before_the_claim_has_no_share(
    escrow, chain, deployer, alice, bob, carol
):
    # carol funds before claiming (1 of 4 ETH) and then misses the deadline: the stake goes to
    # alice and bob in proportion 1 : 2; carol gets back her funding, not a wei of her stake.
    deadline = chain.pending_timestamp + WEEK
    bounty_id = _post(escrow, chain, alice, deployer, deadline=deadline, stake=3 * 10**17)
    escrow.fund(bounty_id, 2 * ETHER, **_by(bob, 2 * ETHER))
    escrow.fund(bounty_id, ETHER, **_by(carol, ETHER))
    _claim(escrow, bounty_id, carol, stake=3 * 10**17)
    _warp(chain, deadline + 1)
    escrow.finalize(bounty_id, **_by(deployer))
    got = {}
    for who in (alice, carol, bob):
        got[who.address] = _log(escrow.refund(bounty_id, **_by(who)), escrow.Refunded)["amount"]
    assert got == {alice.address: ETHER + 10**17, bob.address: 2 * ETHER + 2 * 10**17, carol.address: ETHER}
    assert _bounty(escrow, bounty_id)["refunded"] == 4 * ETHER + 3 * 10**17
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_service__places_taken_by_idle_workers__poster_removes_them_and_the_real_worker_joins(
    escrow, attester, accounts, chain, deployer, alice, bob, refused
):
    # Finding 2: 64 fresh addresses join at no cost and the real worker is refused.
    bounty_id = _service(escrow, chain, alice, attester)
    fakes = [accounts.generate_test_account() for _ in range(MAX_WORKERS)]
    for fake in fakes:
        escrow.join(bounty_id, 0, **_by(fake))
    with refused("escrow: too many workers", bounty_id):
        escrow.join(bounty_id, 0, **_by(bob))

    receipt = escrow.removeWorker(bounty_id, fakes[3], **_by(alice))
    assert _log(receipt, escrow.WorkerRemoved) == {"id": bounty_id, "worker": fakes[3].address}
    assert _worker(escrow, bounty_id, fakes[3])["removed"] is True
    workers = escrow.getService(bounty_id)[2]
    assert len(workers) == MAX_WORKERS - 1 and fakes[3].address not in workers
    assert workers[3] == fakes[-1].address  # the last one took its place
    with refused("escrow: removed by the poster", bounty_id):
        escrow.join(bounty_id, 0, **_by(fakes[3]))
    escrow.join(bounty_id, 0, **_by(bob))

    attester.record(bob, 3, sender=deployer)  # bob serves: he is no longer the poster's to remove
    with refused("escrow: worker has served", bounty_id):
        escrow.removeWorker(bounty_id, bob, **_by(alice))
    escrow.payOut(bounty_id, bob, **_by(bob))
    assert escrow.withdrawable(ZERO, bob) == 3 * ETHER // 10


def test_cancel__service_no_current_worker_serves__closes_and_funders_refund(
    escrow, attester, accounts, chain, deployer, alice, bob, carol
):
    # Finding 2, the way out: idle workers cannot hold the budget until the term ends.
    bounty_id = _service(escrow, chain, alice, attester)
    escrow.fund(bounty_id, ETHER, **_by(bob, ETHER))
    escrow.join(bounty_id, 0, **_by(carol))
    attester.record(carol, 2, sender=deployer)
    escrow.leave(bounty_id, **_by(carol))  # served, was paid, and left: no one serves now
    assert escrow.withdrawable(ZERO, carol) == 2 * ETHER // 10
    for _ in range(3):
        escrow.join(bounty_id, 0, **_by(accounts.generate_test_account()))

    receipt = escrow.cancel(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Closed) == {"id": bounty_id, "refundable": 2 * ETHER - 2 * ETHER // 10}
    assert _bounty(escrow, bounty_id)["status"] == CLOSED
    alice_refund = _log(escrow.refund(bounty_id, **_by(alice)), escrow.Refunded)["amount"]
    bob_refund = _log(escrow.refund(bounty_id, **_by(bob)), escrow.Refunded)["amount"]
    assert alice_refund == bob_refund == (2 * ETHER - 2 * ETHER // 10) // 2
    escrow.withdraw(ZERO, **_by(carol))
    assert escrow.owed(ZERO) == 0 == escrow.balance


def test_leave__credits_what_is_due_frees_the_place_and_a_return_starts_afresh(
    escrow, attester, chain, deployer, alice, bob, carol
):
    bounty_id = _service(escrow, chain, alice, attester)
    escrow.join(bounty_id, 0, **_by(bob))
    escrow.join(bounty_id, 0, **_by(carol))
    attester.record(bob, 4, sender=deployer)
    receipt = escrow.leave(bounty_id, **_by(bob))
    assert _log(receipt, escrow.PaidOut) == {
        "id": bounty_id,
        "worker": bob.address,
        "units": 4,
        "amount": 4 * ETHER // 10,
    }
    assert _log(receipt, escrow.Left) == {"id": bounty_id, "worker": bob.address}
    assert escrow.getService(bounty_id)[2] == [carol.address]
    assert _worker(escrow, bounty_id, bob)["joined"] is False

    attester.record(bob, 2, sender=deployer)  # done while away: never paid
    escrow.join(bounty_id, 0, **_by(bob))
    assert _worker(escrow, bounty_id, bob) == {
        "joined": True,
        "removed": False,
        "agentId": 0,
        "unitsBase": 6,
        "unitsPaid": 0,
    }
    attester.record(bob, 1, sender=deployer)
    escrow.payOut(bounty_id, bob, **_by(bob))
    assert escrow.withdrawable(ZERO, bob) == 5 * ETHER // 10

    _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 1)  # after the term: leaves, nothing paid
    attester.record(carol, 1, sender=deployer)
    receipt = escrow.leave(bounty_id, **_by(carol))
    assert not list(receipt.decode_logs(escrow.PaidOut))
    assert escrow.getService(bounty_id)[2] == [bob.address]


def test_leave_and_remove_worker__refused__fail(
    escrow, attester, chain, deployer, alice, bob, carol, mallory, refused
):
    task_id = _stage(escrow, chain, "open", alice, carol, deployer)
    with refused("escrow: wrong kind", task_id):
        escrow.leave(task_id, **_by(bob))
    with refused("escrow: wrong kind", task_id):
        escrow.removeWorker(task_id, bob, **_by(alice))
    with refused("escrow: unknown bounty"):
        escrow.leave(99, **_by(bob))
    bounty_id = _service(escrow, chain, alice, attester)
    escrow.join(bounty_id, 0, **_by(bob))
    with refused("escrow: not a worker", bounty_id):
        escrow.leave(bounty_id, **_by(carol))
    with refused("escrow: not a worker", bounty_id):
        escrow.removeWorker(bounty_id, carol, **_by(alice))
    with refused("escrow: not the poster", bounty_id):
        escrow.removeWorker(bounty_id, bob, **_by(mallory))
    _warp(chain, _bounty(escrow, bounty_id)["deadline"] + 1)
    escrow.finalize(bounty_id, **_by(mallory))
    with refused("escrow: not open", bounty_id):
        escrow.leave(bounty_id, **_by(bob))
    with refused("escrow: not open", bounty_id):
        escrow.removeWorker(bounty_id, bob, **_by(alice))


def test_reopen__claim_without_stake__poster_reopens_and_another_claims(
    escrow, chain, deployer, alice, carol, mallory
):
    # Finding 3: mallory claims a stake-free task first, to sit on it until the deadline.
    bounty_id = _post(escrow, chain, alice, deployer, stake=0)
    _claim(escrow, bounty_id, mallory, stake=0)
    receipt = escrow.reopen(bounty_id, **_by(alice))
    assert _log(receipt, escrow.Reopened) == {"id": bounty_id, "claimant": mallory.address}
    assert _bounty(escrow, bounty_id)["status"] == OPEN
    assert (_task(escrow, bounty_id)["claimant"], _task(escrow, bounty_id)["agentId"]) == (ZERO, 0)

    _claim(escrow, bounty_id, carol, stake=0)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(carol))
    escrow.accept(bounty_id, **_by(alice))
    assert escrow.withdrawable(ZERO, carol) == ETHER


def test_reopen__refused__fails(escrow, attester, chain, deployer, alice, carol, mallory, refused):
    with refused("escrow: unknown bounty"):
        escrow.reopen(99, **_by(alice))
    service_id = _service(escrow, chain, alice, attester)
    with refused("escrow: wrong kind", service_id):
        escrow.reopen(service_id, **_by(alice))
    staked = _stage(escrow, chain, "claimed", alice, carol, deployer)  # the stake buys the claim
    with refused("escrow: claim is staked", staked):
        escrow.reopen(staked, **_by(alice))
    free = _post(escrow, chain, alice, deployer, stake=0)
    with refused("escrow: not claimed", free):
        escrow.reopen(free, **_by(alice))
    _claim(escrow, free, carol, stake=0)
    with refused("escrow: not the poster", free):
        escrow.reopen(free, **_by(mallory))
    escrow.submit(free, WORK_URI, WORK_HASH, **_by(carol))
    with refused("escrow: not claimed", free):  # delivered: the poster reviews it instead
        escrow.reopen(free, **_by(alice))


def test_accept_by_validation__agent_with_1024_earlier_requests__still_pays(
    project, escrow, registries, identity, chain, agent_id, deployer, alice, bob, validator, mallory
):
    # Finding 7: a busy agent's 1025th validation request must still be possible.
    requester = deployer.deploy(project.validation_requester_mock)
    identity.setApprovalForAll(requester, True, sender=alice)
    for first in range(0, 1024, 128):
        requester.requestMany(
            registries.validation, validator, agent_id, "ipfs://busy/", first, 128, sender=alice
        )
    assert registries.validation.getAgentRequestCount(agent_id) == 1024

    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 90)
    escrow.acceptByValidation(bounty_id, request, **_by(mallory))
    assert escrow.withdrawable(ZERO, alice) == ETHER + STAKE


def test_refund__amounts_whose_product_overflows_256_bits__refunds_exactly(
    project, escrow, chain, deployer, alice, bob
):
    # Finding 8: pot * contribution overflowed, and then no one could refund.
    big = deployer.deploy(project.large_supply_token_mock)
    amounts = {alice: 2**200, bob: 3 * 2**200}
    for who, amount in amounts.items():
        big.mint(who, amount, sender=deployer)
        big.approve(escrow, amount, **_by(who))
    bounty_id = escrow.createTask(
        _terms(chain, deployer, asset=big.address, amount=amounts[alice]), **_by(alice)
    ).return_value
    escrow.fund(bounty_id, amounts[bob], **_by(bob))
    escrow.cancel(bounty_id, **_by(alice))
    for who, amount in amounts.items():
        assert _log(escrow.refund(bounty_id, **_by(who)), escrow.Refunded)["amount"] == amount
        assert big.balanceOf(who) == amount
    assert escrow.owed(big.address) == 0 == big.balanceOf(escrow)


def _one_block(chain, *sends) -> list:
    """Sends each call (a function taking ape transaction arguments) into one block; the receipts."""
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [send(required_confirmations=0, gas_limit=GAS).txn_hash for send in sends]
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    chain.mine()
    receipts = [chain.provider.get_receipt(txn_hash) for txn_hash in hashes]
    assert len({receipt.block_number for receipt in receipts}) == 1
    assert all(not receipt.failed for receipt in receipts)
    return receipts


def test_accept_by_validation__answer_in_the_submission_second__counts_only_if_given_after_it(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, mallory, refused
):
    # Decision: an answer given in the second of the submission counts if the request had no
    # answer from that second when the work was submitted (it came after); otherwise it may
    # predate the submission and the validator answers again.
    validation = registries.validation
    before = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, before, alice, agent_id)
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    _one_block(
        chain,
        lambda **tx: validation.validationResponse(request, 100, "", ZERO_HASH, "", sender=validator, **tx),
        lambda **tx: escrow.submit(before, WORK_URI, WORK_HASH, sender=alice, **tx),
    )
    submitted_at = _task(escrow, before)["submittedAt"]
    assert registries.validation_status(request).last_update == submitted_at
    assert _task(escrow, before)["answersFrom"] == submitted_at + 1
    with refused("escrow: validation predates submission", before):
        escrow.acceptByValidation(before, request, **_by(mallory))

    after = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, after, alice, agent_id)
    uri = WORK_URI + "#after"
    request = bytes(validation.computeRequestHash(validator, agent_id, uri))
    nonce = alice.nonce  # alice sends two transactions into the block
    _one_block(
        chain,
        lambda **tx: escrow.submit(after, uri, WORK_HASH, sender=alice, nonce=nonce, **tx),
        lambda **tx: validation.validationRequest(
            validator, agent_id, uri, request, sender=alice, nonce=nonce + 1, **tx
        ),
        lambda **tx: validation.validationResponse(request, 100, "", ZERO_HASH, "", sender=validator, **tx),
    )
    assert _task(escrow, after)["answersFrom"] == _task(escrow, after)["submittedAt"]
    escrow.acceptByValidation(after, request, **_by(mallory))
    assert _bounty(escrow, after)["status"] == COMPLETED


def test_accept_by_validation__answer_changed_after_completion__payout_stands(
    escrow, registries, chain, agent_id, deployer, alice, bob, validator, mallory, refused
):
    # Decision: the answer is read when the bounty completes; a later change undoes nothing (it
    # stays in the registry for reputation). Before completion, the latest answer counts.
    bounty_id = _agent_task(escrow, chain, bob, deployer, validator)
    _claim(escrow, bounty_id, alice, agent_id)
    escrow.submit(bounty_id, WORK_URI, WORK_HASH, **_by(alice))
    request = registries.request_validation(alice, agent_id, validator.address, WORK_URI)
    registries.respond_validation(validator, request, 90)
    registries.respond_validation(validator, request, 10)  # changed its mind before anyone accepted
    with refused("escrow: below threshold", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(mallory))
    registries.respond_validation(validator, request, 85)
    escrow.acceptByValidation(bounty_id, request, **_by(mallory))

    registries.respond_validation(validator, request, 0)  # and again, after the payout
    assert _bounty(escrow, bounty_id)["status"] == COMPLETED
    assert escrow.withdrawable(ZERO, alice) == ETHER + STAKE
    with refused("escrow: nothing to accept", bounty_id):
        escrow.acceptByValidation(bounty_id, request, **_by(mallory))
