"""DisputeGame on anvil, driven from Python: whole games between a defender and a challenger
playing the moves `offchain/l2/dispute.py` makes (honest or lying), on a rollup spun up by the
factory with the real game and verifier. Every move, outcome, payout and refusal."""

from __future__ import annotations

import ape
import pytest

from offchain.errors import ContractReverted
from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block
from offchain.l2.codec import Deposit, Transfer, Withdraw, decode
from offchain.l2.dispute import BatchTrace, cut_points
from offchain.l2.signing import sign, transfer_digest, withdraw_digest
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import Outcome
from offchain.rollup.params import RollupParams
from offchain.rollup.sequencer_set import BURN_ADDRESS
from tests.contracts.dispute.conftest import ARITY, BOND, CHAIN_ID, CLOCK, ETH, KEYS, SHARE_BPS, STAKE, USERS


@pytest.fixture
def funded(inbox, first_batch):
    """The L2 derived from L1 at the start of each test (the chain is reverted between tests)."""
    derivation = Derivation(inbox, CHAIN_ID)
    derivation.sync()
    return derivation


def _transfer(inbox, sender: int, to: int, amount: int, nonce: int, fee: int = 1) -> Transfer:
    unsigned = Transfer(USERS[sender], USERS[to], ETH, amount, fee, nonce, b"\x00" * 65)
    digest = transfer_digest(unsigned, CHAIN_ID, inbox.address)
    return Transfer(USERS[sender], USERS[to], ETH, amount, fee, nonce, sign(KEYS[sender], digest))


def _withdraw(inbox, sender: int, amount: int, recipient: str, nonce: int) -> Withdraw:
    unsigned = Withdraw(USERS[sender], ETH, amount, 0, recipient, nonce, b"\x00" * 65)
    digest = withdraw_digest(unsigned, CHAIN_ID, inbox.address)
    return Withdraw(USERS[sender], ETH, amount, 0, recipient, nonce, sign(KEYS[sender], digest))


def _batch(chain, inbox, *extra) -> Batch:
    """Seven transactions over three blocks, one of them empty (`extra` go last)."""
    now = chain.blocks.head.timestamp
    return Batch(
        (
            Block(
                now,
                (_transfer(inbox, 0, 1, 10, 0), _transfer(inbox, 1, 2, 5, 0), _transfer(inbox, 2, 3, 1, 0)),
            ),
            Block(now, ()),
            Block(
                now,
                (
                    _transfer(inbox, 3, 0, 7, 0),
                    _withdraw(inbox, 0, 10**17, USERS[3], 1),
                    _transfer(inbox, 1, 0, 2, 5),  # bad nonce: fails, changes nothing
                    _transfer(inbox, 2, 1, 3, 1),
                    *extra,
                ),
            ),
        )
    )


def _post(
    inbox, sequencer, funded, batch: Batch, lie_at: int | None = None
) -> tuple[int, BatchTrace, BatchTrace]:
    """Appends `batch` with the sequencer's claim (a lie from transaction `lie_at` on, if given);
    returns its index, the honest trace and the sequencer's."""
    inbox.append_batch(sequencer, batch)
    funded.sync()
    index = len(funded.batches) - 1
    honest = funded.trace(index)
    claimed = honest if lie_at is None else honest.lying_from(lie_at, keccak(b"wrong root"))
    inbox.propose_root(sequencer, index, claimed.post_root)
    return index, honest, claimed


def _preimage(inbox, funded, index: int) -> bytes:
    return inbox.preimage(funded.batches[index])


def _play(game, game_id, preimage, defender, defender_trace, challenger, challenger_trace) -> dict:
    """Plays a game to its end, each side from its own trace; returns the outcome and the moves."""
    moves = {"defender": 0, "challenger": 0}
    while (state := game.game(game_id)).outcome == Outcome.OPEN:
        assert game.cut_points(game_id) == cut_points(state.lo, state.hi, ARITY)
        if state.at_one_step:
            game.step(challenger, game_id, preimage, challenger_trace.prove(state.lo))
            moves["challenger"] += 1
        elif state.defender_to_move:
            game.reveal(defender, game_id, defender_trace.reveal(state.lo, state.hi, ARITY))
            moves["defender"] += 1
        else:
            revealed = game.revealed_roots(game_id)
            game.pick(
                challenger, game_id, revealed, challenger_trace.pick(state.lo, state.hi, ARITY, revealed)
            )
            moves["challenger"] += 1
    return {"outcome": state.outcome, **moves}


# -- whole games --------------------------------------------------------------------------------------


def test_an_honest_defender__beats_a_false_challenger(chain, inbox, game, sequencer, challenger, funded):
    index, honest, _ = _post(inbox, sequencer, funded, _batch(chain, inbox))
    false = honest.lying_from(3, keccak(b"the challenger's story"))
    game_id = game.open(challenger, index, _preimage(inbox, funded, index))
    result = _play(game, game_id, _preimage(inbox, funded, index), sequencer, honest, challenger, false)
    assert result["outcome"] == Outcome.DEFENDER_WON
    assert game.credit(sequencer.address) == BOND and game.credit(challenger.address) == 0
    assert inbox.claim(index).root == honest.post_root and inbox.claim(index).open_disputes == 0
    chain.mine(1, deltatime=600)
    assert inbox.finalize(challenger) == 2  # the claim stood and finalizes


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_lying_sequencer__is_caught_slashed_ejected_and_the_roots_proposed_again(
    chain, inbox, game, sequencer_set, stake, sequencer, challenger, funded, where
):
    batch = _batch(chain, inbox)
    lie_at = {"first": 0, "middle": batch.tx_count // 2, "last": batch.tx_count - 1}[where]
    index, honest, lie = _post(inbox, sequencer, funded, batch, lie_at=lie_at)
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    burnt_before = stake.balanceOf(BURN_ADDRESS)
    result = _play(game, game_id, preimage, sequencer, lie, challenger, honest)
    assert result["outcome"] == Outcome.CHALLENGER_WON
    # Moves: at most ceil(log_ARITY n) reveals, one more for the step on the challenger's side.
    assert result["defender"] <= 2 and result["challenger"] <= 3
    assert stake.balanceOf(challenger) == STAKE * SHARE_BPS // 10_000
    assert stake.balanceOf(BURN_ADDRESS) - burnt_before == STAKE - STAKE * SHARE_BPS // 10_000
    assert not sequencer_set.isActive(sequencer) and sequencer_set.banned(sequencer)
    assert game.credit(challenger.address) == BOND
    assert inbox.count("claimCount") == index and inbox.count("batchCount") == index + 1  # data stays
    # Any bonded proposer claims the right root again; users' transactions are all still there.
    inbox.propose_root(challenger, index, honest.post_root, bond=BOND)
    assert inbox.claim(index).root == funded.root(index)


def test_a_claim_that_skips_a_deposit__loses_at_the_deposit(
    chain, inbox, game, sequencer, challenger, alice, funded
):
    inbox.deposit_eth(alice, USERS[2], 5 * 10**17)
    (entry,) = inbox.pending_queue()
    batch = _batch(chain, inbox, decode(entry.record))
    inbox.append_batch(sequencer, batch)
    funded.sync()
    index = len(funded.batches) - 1
    honest = funded.trace(index)
    at = batch.tx_count - 1
    assert isinstance(batch.blocks[-1].txs[-1], Deposit)
    skipped = honest.lying_from(at, honest.roots[at])  # its root as if the deposit did nothing
    inbox.propose_root(sequencer, index, skipped.post_root)
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    result = _play(game, game_id, preimage, sequencer, skipped, challenger, honest)
    assert result["outcome"] == Outcome.CHALLENGER_WON
    assert game.game(game_id).lo == at  # decided by the deposit's step


def test_an_empty_batch__is_decided_at_open(chain, inbox, game, sequencer, challenger, funded):
    inbox.append_batch(sequencer, Batch((Block(chain.blocks.head.timestamp, ()),)))
    funded.sync()
    index = len(funded.batches) - 1
    inbox.propose_root(sequencer, index, funded.root(index))  # the root before it: right
    preimage = _preimage(inbox, funded, index)
    with ape.reverts("game: an empty batch keeps its root"):
        game.contract.open(index, preimage, sender=challenger, value=BOND)
    # The next empty batch comes with a wrong root: the game opened on it is won at once.
    inbox.append_batch(sequencer, Batch((Block(chain.blocks.head.timestamp, ()),)), keccak(b"moved"))
    funded.sync()
    game_id = game.open(challenger, index + 1, _preimage(inbox, funded, index + 1))
    assert game.game(game_id).outcome == Outcome.CHALLENGER_WON
    assert inbox.count("claimCount") == index + 1


# -- clocks ---------------------------------------------------------------------------------------------


def test_a_silent_defender__loses_on_time(chain, inbox, game, sequencer_set, sequencer, challenger, funded):
    index, _, _ = _post(inbox, sequencer, funded, _batch(chain, inbox), lie_at=2)
    game_id = game.open(challenger, index, _preimage(inbox, funded, index))
    with ape.reverts("game: clock still running"):
        game.contract.timeout(game_id, sender=challenger)
    chain.mine(1, deltatime=CLOCK + 1)
    with ape.reverts("game: clock ran out"):
        game.contract.reveal(game_id, [b"\x01" * 32] * 3, sender=sequencer)
    assert game.timeout(challenger, game_id) == Outcome.CHALLENGER_WON
    assert sequencer_set.banned(sequencer)


def test_a_silent_challenger__loses_on_time(chain, inbox, game, sequencer, challenger, funded):
    index, honest, _ = _post(inbox, sequencer, funded, _batch(chain, inbox))
    game_id = game.open(challenger, index, _preimage(inbox, funded, index))
    state = game.game(game_id)
    game.reveal(sequencer, game_id, honest.reveal(state.lo, state.hi, ARITY))
    chain.mine(1, deltatime=CLOCK + 1)
    revealed = game.revealed_roots(game_id)
    with ape.reverts("game: clock ran out"):
        game.contract.pick(game_id, revealed, 0, sender=challenger)
    assert game.timeout(sequencer, game_id) == Outcome.DEFENDER_WON
    assert game.credit(sequencer.address) == BOND


def test_the_clocks__add_up_each_sides_time(chain, inbox, game, sequencer, challenger, funded):
    index, honest, lie = _post(inbox, sequencer, funded, _batch(chain, inbox), lie_at=5)
    game_id = game.open(challenger, index, _preimage(inbox, funded, index))
    chain.mine(1, deltatime=100)
    state = game.game(game_id)
    game.reveal(sequencer, game_id, lie.reveal(state.lo, state.hi, ARITY))
    chain.mine(1, deltatime=50)
    revealed = game.revealed_roots(game_id)
    game.pick(challenger, game_id, revealed, honest.pick(state.lo, state.hi, ARITY, revealed))
    state = game.game(game_id)
    assert 100 <= state.defender_used <= 102 and 50 <= state.challenger_used <= 52


# -- several games, removals ------------------------------------------------------------------------------


def test_two_games_on_one_claim__the_second_ends_moot_with_its_bond_back(
    chain, inbox, game, sequencer, challenger, bob, funded
):
    index, honest, lie = _post(inbox, sequencer, funded, _batch(chain, inbox), lie_at=4)
    preimage = _preimage(inbox, funded, index)
    first = game.open(challenger, index, preimage)
    second = game.open(bob, index, preimage)
    assert inbox.claim(index).open_disputes == 2
    with ape.reverts("game: claim stands"):
        game.contract.close(second, sender=bob)
    _play(game, first, preimage, sequencer, lie, challenger, honest)
    game.close(bob, second)
    assert game.game(second).outcome == Outcome.MOOT
    assert game.credit(bob.address) == BOND
    before = bob.balance
    receipt = game.contract.withdrawCredit(sender=bob)
    assert bob.balance == before + BOND - receipt.total_fees_paid
    with ape.reverts("game: nothing to withdraw"):
        game.contract.withdrawCredit(sender=bob)
    with ape.reverts("game: over"):
        game.contract.close(second, sender=bob)


def test_a_removed_claim__takes_every_later_claim_and_their_games(
    chain, inbox, game, sequencer, challenger, bob, funded
):
    first, honest, lie = _post(inbox, sequencer, funded, _batch(chain, inbox), lie_at=1)
    later, _, _ = _post(inbox, sequencer, funded, _batch(chain, inbox))
    later_game = game.open(bob, later, _preimage(inbox, funded, later))
    preimage = _preimage(inbox, funded, first)
    game_id = game.open(challenger, first, preimage)
    assert (
        _play(game, game_id, preimage, sequencer, lie, challenger, honest)["outcome"]
        == Outcome.CHALLENGER_WON
    )
    assert inbox.count("claimCount") == first
    game.close(bob, later_game)
    assert game.game(later_game).outcome == Outcome.MOOT and game.credit(bob.address) == BOND
    # The right roots again, for both batches, by a bonded proposer.
    inbox.propose_root(bob, first, funded.root(first), bond=BOND)
    inbox.propose_root(bob, later, funded.root(later), bond=BOND)
    assert inbox.count("claimCount") == later + 1


def test_a_bonded_liar__forfeits_its_bond_to_the_challenger(
    chain, inbox, game, sequencer, challenger, bob, funded
):
    inbox.append_batch(sequencer, _batch(chain, inbox))
    funded.sync()
    index = len(funded.batches) - 1
    honest = funded.trace(index)
    lie = honest.lying_from(6, keccak(b"bob's lie"))
    inbox.propose_root(bob, index, lie.post_root, bond=BOND)  # bob is no sequencer: a bond backs it
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    assert _play(game, game_id, preimage, bob, lie, challenger, honest)["outcome"] == Outcome.CHALLENGER_WON
    assert game.credit(challenger.address) == 2 * BOND  # its bond back and bob's
    (log,) = game.contract.GameResolved.range(
        0, chain.blocks.head.number + 1, search_topics={"gameId": game_id}
    )
    assert log.event_arguments["slashed"] == 0 and log.event_arguments["forfeitedBond"] == BOND


# -- refusals -----------------------------------------------------------------------------------------------


def test_open__refusals(chain, inbox, game, sequencer, challenger, funded):
    index, _, _ = _post(inbox, sequencer, funded, _batch(chain, inbox))
    preimage = _preimage(inbox, funded, index)
    with ape.reverts("game: wrong bond"):
        game.contract.open(index, preimage, sender=challenger, value=BOND - 1)
    with ape.reverts("game: no such claim"):
        game.contract.open(index + 1, preimage, sender=challenger, value=BOND)
    with ape.reverts("game: proposer cannot challenge itself"):
        game.contract.open(index, preimage, sender=sequencer, value=BOND)
    with ape.reverts("game: bad batch preimage"):
        game.contract.open(index, preimage[:-1] + b"\x00", sender=challenger, value=BOND)
    chain.mine(1, deltatime=601)
    with ape.reverts("inbox: claim not disputable"):
        game.contract.open(index, preimage, sender=challenger, value=BOND)


def test_moves__refusals(chain, inbox, game, sequencer, challenger, bob, funded):
    index, honest, _ = _post(inbox, sequencer, funded, _batch(chain, inbox))
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    state = game.game(game_id)
    roots = honest.reveal(state.lo, state.hi, ARITY)
    with ape.reverts("game: not the defender"):
        game.contract.reveal(game_id, roots, sender=bob)
    with ape.reverts("game: wrong root count"):
        game.contract.reveal(game_id, roots[:-1], sender=sequencer)
    with ape.reverts("game: not the challenger's pick"):
        game.contract.pick(game_id, roots, 0, sender=challenger)
    with ape.reverts("game: not at one step"):
        game.contract.step(game_id, preimage, b"", sender=challenger)
    game.reveal(sequencer, game_id, roots)
    with ape.reverts("game: not the defender's move"):
        game.contract.reveal(game_id, roots, sender=sequencer)
    with ape.reverts("game: not the challenger"):
        game.contract.pick(game_id, roots, 0, sender=bob)
    with ape.reverts("game: not the revealed roots"):
        game.contract.pick(game_id, [keccak(r) for r in roots], 0, sender=challenger)
    with ape.reverts("game: no such part"):
        game.contract.pick(game_id, roots, len(roots) + 1, sender=challenger)
    with ape.reverts("game: no such game"):
        game.contract.getGame(game_id + 1)
    with ape.reverts("game: no such game"):
        game.contract.timeout(game_id + 1, sender=bob)
    with ape.reverts("game: no such game"):
        game.contract.cutPoints(game_id + 1)


def test_step__a_proof_the_verifier_rejects_decides_nothing(
    chain, inbox, game, sequencer, challenger, funded
):
    index, honest, lie = _post(inbox, sequencer, funded, _batch(chain, inbox), lie_at=0)
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    while not (state := game.game(game_id)).at_one_step:
        if state.defender_to_move:
            game.reveal(sequencer, game_id, lie.reveal(state.lo, state.hi, ARITY))
        else:
            revealed = game.revealed_roots(game_id)
            game.pick(challenger, game_id, revealed, honest.pick(state.lo, state.hi, ARITY, revealed))
    proof = honest.prove(state.lo)
    with ape.reverts("verifier: bad batch preimage"):
        game.contract.step(game_id, preimage[:-1] + b"\x01", proof, sender=challenger)
    with ape.reverts("verifier: not the disputed index"):
        game.contract.step(game_id, preimage, honest.prove(state.lo + 1), sender=challenger)
    with pytest.raises(ContractReverted, match="verifier: witness truncated"):
        game.step(challenger, game_id, preimage, proof[:-1])
    assert game.game(game_id).outcome == Outcome.OPEN
    chain.mine(1, deltatime=CLOCK + 1)
    with ape.reverts("game: the challenger's clock ran out"):
        game.contract.step(game_id, preimage, proof, sender=challenger)
    assert game.timeout(sequencer, game_id) == Outcome.DEFENDER_WON  # too late: the liar keeps it
    with ape.reverts("game: over"):
        game.contract.step(game_id, preimage, proof, sender=challenger)


def test_the_implementation__refusals(project, deployer, implementation, game, inbox, alice):
    with ape.reverts("game: bad arity"):
        deployer.deploy(project.DisputeGame, implementation.verifier(), 1)
    with ape.reverts("game: bad arity"):
        deployer.deploy(project.DisputeGame, implementation.verifier(), 65)
    with ape.reverts("game: verifier not a contract"):
        deployer.deploy(project.DisputeGame, alice.address, 2)
    with ape.reverts("game: unexpected ETH"):
        alice.transfer(game.address, 1)
    assert game.arity == ARITY and game.bond == BOND and game.contract.inbox() == inbox.address


def test_initialize__zero_clock_or_bond_refused(project, deployer, implementation, rollup):
    cloner = deployer.deploy(project.MinimalCloneMock)
    params = list(RollupParams(chain_id=9, stake_token=rollup.inbox, min_stake=1).as_tuple())
    for field, reason in ((13, "game: zero clock"), (11, "game: zero bond")):
        (log,) = cloner.clone(implementation, sender=deployer).decode_logs(cloner.Cloned)
        clone = project.DisputeGame.at(log.event_arguments["clone"])
        broken = params[:]
        broken[field] = 0
        with ape.reverts(reason):
            clone.initialize(tuple(broken), rollup.inbox, rollup.sequencer_set, sender=deployer)


def test_a_one_transaction_batch__goes_straight_to_the_step(
    chain, inbox, game, sequencer, challenger, funded
):
    batch = Batch((Block(chain.blocks.head.timestamp, (_transfer(inbox, 0, 1, 10, 0),)),))
    index, honest, lie = _post(inbox, sequencer, funded, batch, lie_at=0)
    preimage = _preimage(inbox, funded, index)
    game_id = game.open(challenger, index, preimage)
    state = game.game(game_id)
    assert state.at_one_step and not state.defender_to_move
    result = _play(game, game_id, preimage, sequencer, lie, challenger, honest)
    assert result == {"outcome": Outcome.CHALLENGER_WON, "defender": 0, "challenger": 1}
