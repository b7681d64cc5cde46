"""BountyEscrow against hostile parties: reentrant ERC-20 and ETH receivers, odd tokens."""

from __future__ import annotations

import ape
import pytest

ETH = "0x" + "00" * 20
DAY = 86_400
REWARD = 10**18
STAKE = 10**17


@pytest.fixture
def escrow(project, deployer, registries):
    return deployer.deploy(project.BountyEscrow, registries.identity.address, registries.validation.address)


def _task(asset=ETH, amount=REWARD, stake=STAKE, *, chain, arbiter):
    return (
        asset,
        amount,
        chain.pending_timestamp + DAY,
        stake,
        ETH,
        0,
        arbiter.address,
        DAY,
        False,
        "ipfs://spec",
    )


def test_eth_receiver_reentering_withdraw__is_paid_once(project, escrow, chain, alice, mallory, deployer):
    attacker = deployer.deploy(project.reentrant_receiver_mock, escrow.address)
    deployer.transfer(attacker, STAKE)
    task_id = escrow.bountyCount() + 1
    escrow.createTask(_task(chain=chain, arbiter=mallory), sender=alice, value=REWARD)
    attacker.act(escrow.claim.encode_input(task_id, 0), STAKE, sender=deployer)
    attacker.act(escrow.submit.encode_input(task_id, "ipfs://work", b"\x01" * 32), 0, sender=deployer)
    escrow.accept(task_id, sender=alice)
    assert escrow.withdrawable(ETH, attacker) == REWARD + STAKE

    attacker.arm(escrow.withdraw.encode_input(ETH), sender=deployer)
    before = chain.provider.get_balance(attacker.address)
    attacker.act(escrow.withdraw.encode_input(ETH), 0, sender=deployer)
    assert attacker.reentered() is False
    assert chain.provider.get_balance(attacker.address) - before == REWARD + STAKE
    assert escrow.withdrawable(ETH, attacker) == 0
    assert escrow.owed(ETH) == chain.provider.get_balance(escrow.address) == 0


def test_eth_receiver_reentering_refund__is_refunded_once(project, escrow, chain, alice, mallory, deployer):
    attacker = deployer.deploy(project.reentrant_receiver_mock, escrow.address)
    deployer.transfer(attacker, REWARD)
    task_id = escrow.bountyCount() + 1
    escrow.createTask(_task(chain=chain, arbiter=mallory), sender=alice, value=REWARD)
    attacker.act(escrow.fund.encode_input(task_id, REWARD), REWARD, sender=deployer)
    escrow.cancel(task_id, sender=alice)

    attacker.arm(escrow.refund.encode_input(task_id), sender=deployer)
    before = chain.provider.get_balance(attacker.address)
    attacker.act(escrow.refund.encode_input(task_id), 0, sender=deployer)
    assert attacker.reentered() is False
    assert chain.provider.get_balance(attacker.address) - before == REWARD  # half the pot, once
    escrow.refund(task_id, sender=alice)
    assert escrow.owed(ETH) == chain.provider.get_balance(escrow.address) == 0


def test_token_reentering_during_withdraw__is_blocked(project, escrow, chain, alice, bob, mallory, deployer):
    token = deployer.deploy(project.reentrant_token_mock)
    token.mint(alice, 3 * REWARD, sender=deployer)
    token.mint(bob, STAKE, sender=deployer)
    token.approve(escrow, 3 * REWARD, sender=alice)
    token.approve(escrow, STAKE, sender=bob)
    first = escrow.bountyCount() + 1
    escrow.createTask(_task(token.address, chain=chain, arbiter=mallory), sender=alice)
    second = first + 1
    escrow.createTask(
        (token.address, REWARD, chain.pending_timestamp + 60, 0, ETH, 0, mallory.address, DAY, False, ""),
        sender=alice,
    )
    escrow.claim(first, 0, sender=bob)
    escrow.submit(first, "ipfs://work", b"\x01" * 32, sender=bob)
    escrow.accept(first, sender=alice)
    chain.mine(timestamp=chain.pending_timestamp + 120)

    # While paying bob, the token calls back into the escrow (finalize the expired second bounty).
    token.arm(escrow.address, escrow.finalize.encode_input(second), sender=deployer)
    escrow.withdraw(token, sender=bob)
    assert token.reentered() is False
    assert token.balanceOf(bob) == REWARD + STAKE
    assert escrow.getBounty(second).status == 0  # the reentrant finalize did not happen
    escrow.finalize(second, sender=bob)  # outside a transfer it works
    assert escrow.getBounty(second).status == 6
    assert escrow.owed(token) == token.balanceOf(escrow)


def test_fee_on_transfer_token__is_refused_at_funding(project, escrow, chain, alice, mallory, deployer):
    token = deployer.deploy(project.fee_on_transfer_token_mock)
    token.mint(alice, REWARD, sender=deployer)
    token.approve(escrow, REWARD, sender=alice)
    count = escrow.bountyCount()
    with ape.reverts("escrow: token delivered a different amount"):
        escrow.createTask(_task(token.address, chain=chain, arbiter=mallory), sender=alice)
    assert escrow.bountyCount() == count and token.balanceOf(alice) == REWARD and escrow.owed(token) == 0
