"""Two sequencers take turns: each accepts and posts only in the slots it leads, builds on what
the other posted, and a replica node reaches the roots both claimed."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from offchain.node.replica import ReplicaNode
from offchain.sequencer.api import create_app as sequencer_app
from offchain.sequencer.confirmation import SoftConfirmation
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import NotLeader, Schedule, SequencerService, SlotClosing
from offchain.serving import BackgroundServer
from offchain.x402.facilitator import Facilitator
from offchain.x402.sequencer_settlement import SequencerSettlement
from offchain.x402.store import PaymentStore, State
from tests.contracts.dispute.conftest import CHAIN_ID, KEYS, STAKE, USERS
from tests.services.test_sequencer_core import _transfer
from tests.services.test_x402_l2 import FUNDS, PRICE, _request, price_on_l2


@pytest.fixture
def second(accounts, deployer, registries, stake, sequencer_set, chain, sequencer):
    account = accounts[10]
    agent_id = registries.register(account, "data:application/json,{}")
    stake.mint(account, STAKE, sender=deployer)
    stake.approve(sequencer_set.address, STAKE, sender=account)
    sequencer_set.join(agent_id, STAKE, sender=account, gas_limit=1_000_000)
    chain.mine(2 * 4 * 64)
    return account


def test_two_sequencers__take_turns_and_a_node_agrees(
    chain, inbox, sequencer_set, sequencer, second, first_batch, tmp_path
):
    services = {
        account.address: SequencerService(
            Sequencer(account, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp),
            Schedule(sequencer_set),
            post_interval=0.0,
        )
        for account in (sequencer, second)
    }
    schedule = Schedule(sequencer_set)
    posted = {address: [] for address in services}
    sent = 0
    for _ in range(48):
        if schedule.view().blocks_left == 0:  # a slot's last block admits nothing
            chain.mine(1)
        leader = schedule.leader(schedule.next_slot()[0])
        for address, service in services.items():
            if address != leader:
                with pytest.raises(NotLeader):
                    service.submit(_transfer(inbox, 0, 1, 1, sent))
        services[leader].submit(_transfer(inbox, 0, 1, 1, sent))
        sent += 1
        index = services[leader].step()
        if index is None:  # the slot's first block: its leader posts from the next one
            chain.mine(1)
            index = services[leader].step()
        assert index is not None
        posted[leader].append(index)
        if all(posted.values()) and sent >= 6:
            break
        chain.mine(4)  # the next slot
    assert all(posted.values()), posted  # both led and posted
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "node")
    count = node.sync()
    for service in services.values():
        service.core.derivation.sync()
        assert [service.core.derivation.root(i) for i in range(count)] == [
            node.batch_root(i) for i in range(count)
        ]
    assert all(inbox.claim(i).root == node.batch_root(i) for i in range(count))
    assert node.nonce(USERS[0]) == sent


def _services(chain, inbox, sequencer_set, *operators) -> dict[str, SequencerService]:
    return {
        account.address: SequencerService(
            Sequencer(account, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp),
            Schedule(sequencer_set),
            post_interval=3_600.0,  # posts only when the slot closes
        )
        for account in operators
    }


def _post_in_a_later_slot(chain, schedule: Schedule, inbox, other: SequencerService) -> None:
    """`other` leads a later slot and posts a transfer of its own there."""
    _mine_until(chain, schedule, lambda v: v.leader == other.core.address and v.head_leader == v.leader)
    other.submit(_transfer(inbox, 1, 2, 1, 0))
    _mine_until(chain, schedule, lambda v: v.leader == other.core.address and other.closing(v))
    assert other.step() is not None


def _mine_until(chain, schedule: Schedule, predicate, limit: int = 200) -> None:
    for _ in range(limit):
        if predicate(schedule.view()):
            return
        chain.mine(1)
    raise AssertionError("the schedule never came to that point")


def test_the_slots_last_block__admits_nothing_and_names_the_next_leader(
    chain, inbox, sequencer_set, sequencer, second, first_batch
):
    services = _services(chain, inbox, sequencer_set, sequencer, second)
    schedule = Schedule(sequencer_set)
    _mine_until(chain, schedule, lambda v: services[v.leader].closing(v))  # the other leads next
    current = schedule.view()
    leader = services[current.leader]
    assert current.blocks_left == 0
    with pytest.raises(SlotClosing, match="kept for posting") as refused:
        leader.submit(_transfer(inbox, 0, 1, 1, 0))
    assert refused.value.leader == schedule.leader(current.slot + 1) != leader.core.address
    assert not leader.core.confirmed and not leader.core.blocks
    chain.mine(1)  # the next slot: its leader admits
    assert services[refused.value.leader].submit(_transfer(inbox, 0, 1, 1, 0)).is_valid()


def test_a_slot_followed_by_another_of_the_same_leader__stays_open_to_its_end(
    chain, inbox, sequencer_set, sequencer, first_batch
):
    service = _services(chain, inbox, sequencer_set, sequencer)[sequencer.address]
    schedule = Schedule(sequencer_set)
    _mine_until(chain, schedule, lambda v: v.blocks_left == 0)  # the only operator leads every slot
    assert not service.closing(schedule.view())
    assert service.submit(_transfer(inbox, 0, 1, 1, 0)).is_valid()


def test_a_slot_that_passed_unposted__drops_its_confirmations_and_never_posts_them_on_a_newer_state(
    chain, inbox, sequencer_set, sequencer, second, first_batch
):
    services = _services(chain, inbox, sequencer_set, sequencer, second)
    schedule = Schedule(sequencer_set)
    # The first slot's leader confirms a transfer in its slot's first block, then stalls.
    _mine_until(chain, schedule, lambda v: v.blocks_left == schedule.slot_length - 1)
    late = services[schedule.view().leader]
    other = next(s for s in services.values() if s is not late)
    record = _transfer(inbox, 0, 1, 1, 0)
    promise = late.submit(record)
    _post_in_a_later_slot(chain, schedule, inbox, other)
    # The late one follows L1: its block was built on a state L1 has passed, so it is dropped.
    late.step()
    assert late.core.receipt(promise.tx_hash).stage == "dropped"
    assert promise.is_valid()  # the signed promise stays: the evidence of a broken one
    assert not late.core.blocks and late.core.base.root == other.core.base.root
    assert late.core.nonce(USERS[0]) == 0  # not in the L2
    # Sent again to whoever leads, the same record is admitted and posted.
    _mine_until(chain, schedule, lambda v: v.head_leader == v.leader and not late.closing(v))
    leader = services[schedule.view().leader]
    again = leader.submit(record)
    _mine_until(chain, schedule, leader.closing)
    assert leader.step() is not None
    assert leader.core.receipt(again.tx_hash).stage == "posted" and leader.core.nonce(USERS[0]) == 1


def test_a_slot_that_passed_unposted__drops_its_confirmations_even_with_no_batch_after_it(
    chain, inbox, sequencer_set, sequencer, second, first_batch
):
    """An operator ejected in the middle of its slot, or one too slow, never posts them: they
    are dropped once the slot has passed, not when some later batch happens to be appended."""
    services = _services(chain, inbox, sequencer_set, sequencer, second)
    schedule = Schedule(sequencer_set)
    _mine_until(chain, schedule, lambda v: v.blocks_left == schedule.slot_length - 1)
    late = services[schedule.view().leader]
    promise = late.submit(_transfer(inbox, 0, 1, 1, 0))
    batches = inbox.count("batchCount")
    _mine_until(chain, schedule, lambda v: v.leader != late.core.address)
    assert late.step() is None
    assert late.core.receipt(promise.tx_hash).stage == "dropped" and not late.core.blocks
    assert inbox.count("batchCount") == batches and late.core.nonce(USERS[0]) == 0


def test_a_payment_dropped_with_its_slot__is_sent_again_by_the_facilitator_and_paid_once(
    chain, inbox, sequencer_set, sequencer, second, stake, deployer, first_batch, tmp_path
):
    services = _services(chain, inbox, sequencer_set, sequencer, second)
    schedule = Schedule(sequencer_set)
    stake.mint(deployer, FUNDS, sender=deployer)
    inbox.deposit_erc20(deployer, stake, USERS[0], FUNDS)
    _mine_until(chain, schedule, lambda v: v.head_leader == v.leader and services[v.leader].closing(v))
    assert services[schedule.view().leader].step() is not None  # the deposit, posted
    with ExitStack() as stack:
        urls = [stack.enter_context(BackgroundServer(sequencer_app(s))).url for s in services.values()]
        store = PaymentStore(tmp_path / "facilitator.sqlite")
        settlement = SequencerSettlement(store, CHAIN_ID, urls, [stake.address])
        facilitator = Facilitator(store, [settlement], 10.0)
        # A leader soft-confirms the payment in its slot's first block, then stalls.
        _mine_until(chain, schedule, lambda v: v.blocks_left == schedule.slot_length - 1)
        late = services[schedule.view().leader]
        other = next(s for s in services.values() if s is not late)
        other.step()  # follows L1: the deposit's batch
        settled = facilitator.settle(_request(price_on_l2(stake), KEYS[0], chain))
        assert (
            settled.success and SoftConfirmation.model_validate(settled.extra).signer() == late.core.address
        )
        # Its slot passes unposted; the other leads, posts, and the late one drops the payment.
        _post_in_a_later_slot(chain, schedule, inbox, other)
        late.step()
        assert late.core.receipt(settled.transaction).stage == "dropped"
        assert late.core.balance(USERS[1], stake.address) == 0
        # The facilitator sees the drop and sends the same record to whoever admits next.
        _mine_until(
            chain, schedule, lambda v: v.head_leader == v.leader and not services[v.leader].closing(v)
        )
        facilitator.reconcile()
        assert settlement.resent == 1 and not settlement.broken
        facilitator.reconcile()  # one drop, one resend: the next round sends nothing
        assert settlement.resent == 1
        leader = services[schedule.view().leader]
        _mine_until(chain, schedule, leader.closing)
        assert leader.step() is not None
        assert leader.core.receipt(settled.transaction).stage == "posted"
        for service in services.values():
            service.core.follow()
            assert service.core.balance(USERS[1], stake.address) == PRICE  # paid once
            assert service.core.balance(USERS[0], stake.address) == FUNDS - PRICE
        assert store.get(store.in_state(State.SETTLED)[0].id).tx_hash == settled.transaction
