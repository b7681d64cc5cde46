"""The watchtower on anvil: it leaves right claims alone, catches a lying sequencer and wins the
game move by move (the liar slashed and ejected, the right root proposed again, its credit
withdrawn), and defends its own claim against a false challenger."""

from __future__ import annotations

from offchain.challenger.watchtower import Watchtower
from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block
from offchain.l2.codec import decode
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import Outcome
from tests.contracts.dispute.conftest import CHAIN_ID, CLOCK
from tests.services.test_sequencer_core import _transfer


def _batch(chain, inbox) -> Batch:
    records = [_transfer(inbox, i, (i + 1) % 4, 100 + i, 0) for i in range(4)] + [
        _transfer(inbox, 0, 2, 5, 1)
    ]
    return Batch((Block(chain.blocks.head.timestamp, tuple(decode(r) for r in records)),))


def test_right_claims__are_left_alone(chain, inbox, game, sequencer, challenger, first_batch):
    inbox.append_batch(sequencer, _batch(chain, inbox), b"\x00" * 32)
    derivation = Derivation(inbox, CHAIN_ID)
    derivation.sync()
    inbox.propose_root(sequencer, 1, derivation.root(1))
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    watchtower.step()
    assert game.game_count() == 0


def test_a_batch_appended_without_a_claim__is_claimed_with_the_derived_root(
    chain, inbox, game, sequencer, challenger, first_batch
):
    index = inbox.append_batch(sequencer, _batch(chain, inbox), b"\x00" * 32)
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    watchtower.step()
    claim = inbox.claim(index)
    assert claim.root == watchtower.derivation.root(index) and claim.proposer == challenger.address
    assert inbox.count("claimCount") == index + 1 and game.game_count() == 0
    # A later batch of the sequencer's, with its claim, is accepted again.
    assert inbox.append_batch(sequencer, _batch(chain, inbox), keccak(b"next")) == index + 1


def test_a_lying_sequencer__is_caught_and_the_right_root_proposed(
    chain, inbox, game, sequencer, sequencer_set, challenger, first_batch
):
    derivation = Derivation(inbox, CHAIN_ID)
    index = inbox.append_batch(sequencer, _batch(chain, inbox), keccak(b"a lie"))
    derivation.sync()
    lie = derivation.trace(index).lying_from(2, keccak(b"a lie after transaction 2"))
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    for _ in range(12):
        watchtower.step()
        if game.game_count() and game.game(0).outcome != Outcome.OPEN:
            break
        state = game.game(0)
        if state.defender_to_move:
            game.reveal(sequencer, 0, lie.reveal(state.lo, state.hi, game.arity))
    assert game.game(0).outcome == Outcome.CHALLENGER_WON
    assert sequencer_set.banned(sequencer)
    watchtower.step()  # proposes the right root again and withdraws its credit
    claim = inbox.claim(index)
    assert claim.root == derivation.root(index) and claim.proposer == challenger.address
    assert game.credit(challenger.address) == 0


def test_its_own_claim__is_defended_against_a_false_challenger(
    chain, inbox, game, sequencer, challenger, bob, first_batch
):
    index = inbox.append_batch(sequencer, _batch(chain, inbox))  # data only: no claim
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    watchtower.step()  # claims the unclaimed batch itself, with the proposer bond
    assert inbox.claim(index).proposer == challenger.address
    false = watchtower.derivation.trace(index).lying_from(3, keccak(b"bob's story"))
    game_id = game.open(bob, index, inbox.preimage(watchtower.derivation.batches[index]))
    for _ in range(12):
        watchtower.step()
        state = game.game(game_id)
        if state.outcome != Outcome.OPEN:
            break
        if not state.defender_to_move and not state.at_one_step:
            revealed = game.revealed_roots(game_id)
            game.pick(bob, game_id, revealed, false.pick(state.lo, state.hi, game.arity, revealed))
    assert game.game(game_id).outcome == Outcome.DEFENDER_WON
    assert inbox.claim(index).root == watchtower.derivation.root(index)


def test_a_liar_that_stops_answering__loses_on_time(
    chain, inbox, game, sequencer, sequencer_set, challenger, first_batch
):
    index = inbox.append_batch(sequencer, _batch(chain, inbox), keccak(b"a lie"))
    watchtower = Watchtower(challenger, inbox, game, CHAIN_ID)
    watchtower.step()  # opens the game; the sequencer never reveals
    watchtower.step()
    assert game.game(0).outcome == Outcome.OPEN
    chain.mine(1, deltatime=CLOCK + 1)
    watchtower.step()  # times it out, then proposes the right root
    assert game.game(0).outcome == Outcome.CHALLENGER_WON and sequencer_set.banned(sequencer)
    watchtower.step()
    assert inbox.claim(index).root == watchtower.derivation.root(index)


def test_a_restarted_watchtower__goes_on_with_its_game(
    chain, inbox, game, sequencer, sequencer_set, challenger, first_batch
):
    index = inbox.append_batch(sequencer, _batch(chain, inbox), keccak(b"a lie"))
    Watchtower(challenger, inbox, game, CHAIN_ID).step()  # opens the game, then "dies"
    restarted = Watchtower(challenger, inbox, game, CHAIN_ID)
    restarted.step()
    assert game.game_count() == 1  # it found its game: no second one on the same claim
    chain.mine(1, deltatime=CLOCK + 1)
    restarted.step()
    restarted.step()
    assert game.game(0).outcome == Outcome.CHALLENGER_WON
    assert inbox.claim(index).root == restarted.derivation.root(index)
