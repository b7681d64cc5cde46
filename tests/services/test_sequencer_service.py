"""The sequencer on its schedule: it accepts only while it leads the next block's slot, posts what
it confirmed when a batch is due, and posts the rest when stopped."""

from __future__ import annotations

import time

import pytest

from offchain.chain.calls import view
from offchain.errors import ContractReverted
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import NotLeader, Schedule, SequencerService
from tests.contracts.dispute.conftest import CHAIN_ID, USERS
from tests.services.test_sequencer_core import _transfer


def _service(chain, inbox, account, sequencer_set, interval: float = 3_600.0) -> SequencerService:
    core = Sequencer(account, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp)
    return SequencerService(core, Schedule(sequencer_set), post_interval=interval)


def test_the_schedule__is_the_contracts(chain, sequencer_set, sequencer, first_batch):
    schedule = Schedule(sequencer_set)
    slot, _ = schedule.next_slot()
    assert slot == (chain.blocks.head.number + 1 - schedule.genesis) // schedule.slot_length
    assert schedule.leader(slot) == sequencer.address


def test_an_operator_that_does_not_lead__refuses_and_names_the_leader(
    chain, inbox, sequencer_set, sequencer, challenger, first_batch
):
    service = _service(chain, inbox, challenger, sequencer_set)
    with pytest.raises(NotLeader, match=sequencer.address) as refused:
        service.submit(_transfer(inbox, 0, 1, 1, 0))
    assert refused.value.leader == sequencer.address
    assert service.step() is None and not service.core.confirmed


def test_the_leader__posts_when_due_and_when_stopped(chain, inbox, sequencer_set, sequencer, first_batch):
    service = _service(chain, inbox, sequencer, sequencer_set, interval=0.0)
    assert service.step() is None  # nothing confirmed: nothing to post
    first = service.submit(_transfer(inbox, 0, 1, 1, 0))
    index = service.step()
    assert index is not None and service.core.receipt(first.tx_hash).stage == "posted"
    later = _service(chain, inbox, sequencer, sequencer_set)  # never due on its own
    second = later.submit(_transfer(inbox, 0, 1, 1, 1))
    assert later.step() is None
    later.start().stop()
    assert later.core.receipt(second.tx_hash).batch == index + 1
    assert later.core.nonce(USERS[0]) == 2


def test_the_first_slot_of_the_next_epoch__has_a_leader_before_its_seed_can_be_read_at_the_head(
    chain, sequencer_set, sequencer, first_batch
):
    schedule = Schedule(sequencer_set)
    epoch_blocks = schedule.slot_length * int(sequencer_set.slotsPerEpoch())
    offset = chain.blocks.head.number + 1 - schedule.genesis
    chain.mine(epoch_blocks - offset % epoch_blocks)  # the head: an epoch's last block
    slot, _ = schedule.next_slot()
    assert slot % int(sequencer_set.slotsPerEpoch()) == 0
    with pytest.raises(ContractReverted, match="seed not fixed"):
        view(sequencer_set, "leaderOf", slot)  # at the head, the seed's block hash is unknown
    assert schedule.view().leader == sequencer.address
    chain.mine(1)
    assert view(sequencer_set, "leaderOf", slot) == sequencer.address


def test_a_batchs_worth_of_submissions__is_posted_without_waiting_for_the_interval(
    chain, inbox, sequencer_set, sequencer, first_batch
):
    records = [_transfer(inbox, 0, 1, 1, n) for n in range(3)]
    core = Sequencer(
        sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp, batch_bytes=2 * len(records[0])
    )
    service = SequencerService(core, Schedule(sequencer_set), post_interval=3_600.0, poll=0.05).start()
    try:
        confirmations = [service.submit(record) for record in records]
        deadline = time.monotonic() + 30
        while core.receipt(confirmations[1].tx_hash).stage != "posted" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert core.receipt(confirmations[1].tx_hash).stage == "posted"
    finally:
        service.stop()
    assert core.receipt(confirmations[2].tx_hash).stage == "posted"  # the rest, when stopped
