"""Two sequencers take turns: each accepts and posts only in the slots it leads, builds on what
the other posted, and a replica node reaches the roots both claimed."""

from __future__ import annotations

import pytest

from offchain.node.replica import ReplicaNode
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import NotLeader, Schedule, SequencerService
from tests.contracts.dispute.conftest import CHAIN_ID, STAKE, USERS
from tests.services.test_sequencer_core import _transfer


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
