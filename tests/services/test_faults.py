"""Fault injection: a sequencer lying in each way posts its batch with the lie's root and defends
it with the lie's trace; the watchtower catches every kind, wins at the one-step proof, the liar
is slashed and ejected, the right root is proposed again, and the users' transactions stay."""

from __future__ import annotations

import pytest

from offchain.challenger.watchtower import Watchtower
from offchain.l2.batch import Batch
from offchain.l2.codec import encode
from offchain.rollup.dispute import Outcome
from offchain.sequencer.confirmation import tx_hash
from offchain.sequencer.core import Sequencer
from offchain.sequencer.faults import Fault
from tests.contracts.dispute.conftest import CHAIN_ID, USERS
from tests.services.test_sequencer_core import _transfer


@pytest.mark.parametrize("fault", list(Fault))
def test_every_fault__is_caught_and_slashed(
    chain, inbox, game, sequencer, sequencer_set, challenger, alice, first_batch, fault
):
    liar = Sequencer(sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp, fault=fault)
    inbox.deposit_eth(alice, USERS[3], 10**15)
    confirmations = [liar.submit(_transfer(inbox, i, (i + 1) % 4, 100 + i, 0)) for i in range(3)]
    index = liar.post()
    lie = liar.lies[index]
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    for _ in range(12):
        watchtower.step()
        state = game.game(0)
        if state.outcome != Outcome.OPEN:
            break
        if state.defender_to_move:  # the liar defends its story
            game.reveal(sequencer, 0, lie.reveal(state.lo, state.hi, game.arity))
    assert game.game(0).outcome == Outcome.CHALLENGER_WON
    assert sequencer_set.banned(sequencer)
    watchtower.step()
    assert inbox.claim(index).root == watchtower.derivation.root(index) != lie.post_root
    posted = Batch.decode(inbox.batch_data(watchtower.derivation.batches[index]))
    hashes = {c.tx_hash for c in confirmations}
    assert hashes <= {"0x" + tx_hash(encode(tx)).hex() for block in posted.blocks for tx in block.txs}
