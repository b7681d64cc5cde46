"""The bounty market from Python: post, discover from events, claim, deliver, get paid, rate."""

from __future__ import annotations

import pytest

from offchain.errors import ContractReverted, InvalidInput
from offchain.market.escrow import ETH, BountyFeed, Escrow, Kind, ServiceTerms, Status, TaskTerms

DAY = 86_400
REWARD = 10**18


@pytest.fixture
def escrow(deployer, registries):
    return Escrow.deploy(deployer, registries)


def test_task_bounty__posted_discovered_done_paid_and_rated(
    escrow, registries, chain, alice, bob, carol, mallory
):
    poster_agent = registries.register(alice, "ipfs://poster")
    worker_agent = registries.register(bob, "ipfs://worker")
    feed = BountyFeed(escrow)
    terms = TaskTerms(
        amount=REWARD,
        deadline=chain.pending_timestamp + DAY,
        arbiter=mallory.address,
        review_window=DAY,
        stake=REWARD // 10,
        agents_only=True,
        spec_uri="ipfs://build-an-rpc-endpoint",
    )
    bounty = escrow.create_task(alice, terms)
    escrow.fund(carol, bounty, REWARD // 2)

    (found,) = feed.open(Kind.TASK)
    assert (found.id, found.poster, found.funded, found.spec_uri) == (
        bounty,
        alice.address,
        REWARD + REWARD // 2,
        "ipfs://build-an-rpc-endpoint",
    )
    # The worker checks the poster's standing before claiming (no feedback yet: a fresh poster).
    assert registries.summary(poster_agent, [carol.address]).count == 0

    escrow.claim(bob, bounty, worker_agent)
    assert feed.open(Kind.TASK) == [] and feed.bounties[bounty].claimant == bob.address
    escrow.submit(bob, bounty, "ipfs://endpoint-config", b"\x07" * 32)
    escrow.accept(alice, bounty)
    assert feed.sync()[bounty].status == Status.COMPLETED

    before = bob.balance
    paid = escrow.withdraw(bob)
    assert paid == REWARD + REWARD // 2 + REWARD // 10  # the whole pot and the stake back
    assert bob.balance > before

    index = escrow.rate_worker(alice, registries, bounty, 95)
    feedback = registries.read_feedback(worker_agent, alice.address, index)
    assert (feedback.value, feedback.tag1) == (95, "bounty")


def test_service_bounty__workers_paid_per_attested_unit(project, escrow, deployer, chain, alice, bob, carol):
    attester = deployer.deploy(project.work_attester_mock)
    terms = ServiceTerms(
        amount=10 * REWARD, term_end=chain.pending_timestamp + DAY, attester=attester.address, rate=REWARD
    )
    bounty = escrow.create_service(alice, terms)
    escrow.join(bob, bounty)
    escrow.join(carol, bounty)
    attester.record(bob, 3, sender=deployer)
    attester.record(carol, 1, sender=deployer)
    assert escrow.pay_out(deployer, bounty, bob.address) == 3 * REWARD
    assert escrow.pay_out(deployer, bounty, bob.address) == 0  # nothing new attested
    assert escrow.pay_out(deployer, bounty, carol.address) == REWARD
    chain.mine(timestamp=chain.pending_timestamp + DAY + 1)
    attester.record(carol, 5, sender=deployer)  # work attested after the term is not paid
    with pytest.raises(ContractReverted, match="escrow: term over"):
        escrow.pay_out(deployer, bounty, carol.address)
    escrow.finalize(deployer, bounty)
    assert escrow.withdrawable(carol.address) == REWARD
    assert escrow.refund(alice, bounty) == 6 * REWARD
    feed = BountyFeed(escrow)
    view = feed.sync()[bounty]
    assert (
        view.status == Status.CLOSED
        and view.workers == [bob.address, carol.address]
        and view.paid == 4 * REWARD
    )


def test_feed__reopened_task_and_workers_who_leave_or_are_removed(
    project, escrow, deployer, chain, alice, bob, carol, mallory
):
    feed = BountyFeed(escrow)
    free = TaskTerms(
        amount=REWARD, deadline=chain.pending_timestamp + DAY, arbiter=carol.address, review_window=DAY
    )
    task = escrow.create_task(alice, free)  # no stake: the poster may take the task back
    escrow.claim(mallory, task)
    assert feed.sync()[task].claimant == mallory.address
    escrow.reopen(alice, task)
    assert [b.id for b in feed.open(Kind.TASK)] == [task] and feed.bounties[task].claimant is None

    attester = deployer.deploy(project.work_attester_mock)
    terms = ServiceTerms(
        amount=10 * REWARD, term_end=chain.pending_timestamp + DAY, attester=attester.address, rate=REWARD
    )
    service = escrow.create_service(alice, terms)
    for worker in (bob, carol, mallory):
        escrow.join(worker, service)
    attester.record(bob, 2, sender=deployer)
    assert escrow.leave(bob, service) == 2 * REWARD  # paid on the way out
    escrow.remove_worker(alice, service, mallory.address)  # never served: curated out
    with pytest.raises(ContractReverted, match="escrow: removed by the poster"):
        escrow.join(mallory, service)
    assert feed.sync()[service].workers == escrow.workers(service) == [carol.address]
    escrow.cancel(alice, service)  # carol has not served: the poster may end it
    assert feed.sync()[service].status == Status.CLOSED
    assert escrow.refund(alice, service) == 8 * REWARD


def test_client_errors__are_typed_and_readable(escrow, chain, alice, bob, mallory, registries):
    terms = TaskTerms(
        amount=REWARD, deadline=chain.pending_timestamp + DAY, arbiter=mallory.address, review_window=DAY
    )
    bounty = escrow.create_task(alice, terms)
    with pytest.raises(ContractReverted, match="escrow: poster cannot claim"):
        escrow.claim(alice, bounty)
    with pytest.raises(ContractReverted, match="escrow: unknown bounty"):
        escrow.bounty(10**6)
    with pytest.raises(InvalidInput, match="32 bytes"):
        escrow.submit(bob, bounty, "ipfs://x", b"short")
    with pytest.raises(InvalidInput, match="not completed"):
        escrow.rate_worker(alice, registries, bounty, 50)
    assert escrow.bounty(bounty).asset == ETH


def test_task_bounty__completed_by_the_named_validator(
    escrow, registries, chain, alice, bob, mallory, validator
):
    worker_agent = registries.register(bob, "ipfs://worker")
    terms = TaskTerms(
        amount=REWARD,
        deadline=chain.pending_timestamp + DAY,
        arbiter=mallory.address,
        review_window=DAY,
        validator=validator.address,
        threshold=80,
        agents_only=True,
    )
    bounty = escrow.create_task(alice, terms)
    escrow.claim(bob, bounty, worker_agent)
    escrow.submit(bob, bounty, "ipfs://audit-report", b"\x09" * 32)
    # The worker's agent asks the validator about exactly this deliverable.
    request = registries.request_validation(bob, worker_agent, validator.address, "ipfs://audit-report")
    assert request == escrow.validation_request(bounty)
    registries.respond_validation(validator, request, 91, tag="audit")
    escrow.accept_by_validation(mallory, bounty)  # anyone may, once the answer is in
    assert escrow.bounty(bounty).status == Status.COMPLETED
    assert escrow.withdrawable(bob.address) == REWARD
