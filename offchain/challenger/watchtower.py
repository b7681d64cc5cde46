"""The watchtower: checks every root claim against its own derivation and wins the disputes.

Each round (`step`) it syncs the derivation from L1 and then:
1. opens a game, with the challenger bond, on every standing claim within its window whose root
   is not the derived root (once per claim);
2. moves in every open game it is a party to: as challenger it picks the first revealed root
   that disagrees with its trace and sends the one-step proof at width one; as defender (of its
   own claims) it reveals its trace's roots and sends the step that proves its root; it ends a
   game whose other side ran out of time, and closes one whose claim another game removed;
3. after a win, or when a batch was appended without a claim, claims the right roots (with the
   proposer bond) from the first batch left without a claim, up to the last one appended;
4. withdraws what the game credits it.
Every move is made from `offchain/l2/dispute.py` over the derived state, so the watchtower
trusts nothing but L1.
"""

from __future__ import annotations

import logging
from typing import Any

from ape import chain

from offchain.errors import ContractReverted
from offchain.l2.dispute import BatchTrace
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import DisputeGame, GameState, Outcome
from offchain.rollup.inbox import Inbox

log = logging.getLogger("agentl2.watchtower")


class Watchtower:
    """See the module's docstring. `traces` (fault injection) overrides the trace it defends a
    claim of its own with, by batch index: a liar's story, which it never proves at width one;
    with `challenge` False it opens no games (a liar only defends)."""

    def __init__(
        self,
        account: Any,
        inbox: Inbox,
        game: DisputeGame,
        chain_id: int,
        traces: dict[int, BatchTrace] | None = None,
        challenge: bool = True,
    ):
        self.account = account
        self.traces = traces if traces is not None else {}
        self.challenge = challenge
        self.moves = 0  # reveals, picks and steps sent
        self.inbox = inbox
        self.game = game
        self.derivation = Derivation(inbox, chain_id)
        self.params = inbox.params()
        self.disputed: set[tuple[int, bytes, int]] = set()  # (claim index, root, proposedAt) opened
        self.repropose = False  # set by a win: the removed claims' batches need roots again

    @property
    def address(self) -> str:
        return str(self.account.address)

    def step(self) -> None:
        self.derivation.sync()
        games = [self.game.game(game_id) for game_id in range(self.game.game_count())]
        # Its own games on chain say what it disputed already: a restarted watchtower goes on.
        self.disputed |= {
            (g.claim_index, g.claim_root, g.proposed_at) for g in games if g.challenger == self.address
        }
        if self.challenge:
            self._dispute_wrong_claims()
        # A game it challenged and won, whoever sent the deciding move, leaves batches to claim.
        if any(g.challenger == self.address and g.outcome == Outcome.CHALLENGER_WON for g in games):
            self.repropose = True
        for state in games:
            if state.outcome == Outcome.OPEN and self.address in (state.challenger, state.defender):
                self._move(state)
        # Batches left without a claim (a data-only append, the escape hatch's) block every
        # later claim, the sequencers' too: a watchtower claims them as it would after a win.
        unclaimed = self.challenge and self.inbox.count("claimCount") < len(self.derivation.batches)
        if self.repropose or unclaimed:
            self._propose_missing_roots()
            self.repropose = False
        if self.game.credit(self.address):
            self.game.withdraw_credit(self.account)

    # -- the rounds ------------------------------------------------------------------------------

    def _dispute_wrong_claims(self) -> None:
        now = chain.blocks.head.timestamp
        for index in range(self.inbox.count("finalizedCount"), self.inbox.count("claimCount")):
            if index >= len(self.derivation.batches):
                break
            root, proposer, proposed_at = self.inbox.proposal(index)
            key = (index, root, proposed_at)
            if root == self.derivation.root(index) or key in self.disputed:
                continue
            if proposer == self.address or now > proposed_at + self.params.challenge_window:
                continue
            preimage = self.inbox.preimage(self.derivation.batches[index])
            game_id = self.game.open(self.account, index, preimage)
            self.disputed.add(key)
            log.info("claim %d: root 0x%s is wrong; opened game %d", index, root.hex()[:12], game_id)

    def _move(self, state: GameState) -> None:
        game_id = state.game_id
        arity = self.game.arity
        lie = self.traces.get(state.claim_index) if state.defender == self.address else None
        trace = lie if lie is not None else self.derivation.trace(state.claim_index)
        # At width one the step is open to anyone: the side whose root is right sends it.
        mine_to_move = state.at_one_step or (
            state.defender == self.address if state.defender_to_move else state.challenger == self.address
        )
        try:
            if not self._stands(state):
                self.game.close(self.account, game_id)
                return
            if self._timed_out(state):  # whoever's clock ran out, the game is over: end it
                outcome = self.game.timeout(self.account, game_id)
                log.info("game %d: a side ran out of time: %s", game_id, outcome.name)
                self._won(state, outcome)
                return
            if not mine_to_move or (state.at_one_step and lie is not None):
                return
            self.moves += 1
            if state.at_one_step:
                preimage = self.inbox.preimage(self.derivation.batches[state.claim_index])
                outcome = self.game.step(self.account, game_id, preimage, trace.prove(state.lo))
                log.info("game %d: one-step proof of transaction %d: %s", game_id, state.lo, outcome.name)
                self._won(state, outcome)
            elif state.defender_to_move:
                self.game.reveal(self.account, game_id, trace.reveal(state.lo, state.hi, arity))
                log.info("game %d: revealed the roots of transactions [%d, %d)", game_id, state.lo, state.hi)
            else:
                revealed = self.game.revealed_roots(game_id)
                part = trace.pick(state.lo, state.hi, arity, revealed)
                self.game.pick(self.account, game_id, revealed, part)
                log.info(
                    "game %d: picked part %d of transactions [%d, %d)", game_id, part, state.lo, state.hi
                )
        except ContractReverted as exc:  # the game moved on since we read it: next round
            log.warning("game %d: %s", game_id, exc)

    def _stands(self, state: GameState) -> bool:
        if state.claim_index >= self.inbox.count("claimCount"):
            return False
        claim = self.inbox.claim(state.claim_index)
        return (claim.root, claim.proposer, claim.proposed_at) == (
            state.claim_root,
            state.defender,
            state.proposed_at,
        )

    def _timed_out(self, state: GameState) -> bool:
        used = state.defender_used if state.defender_to_move else state.challenger_used
        return chain.blocks.head.timestamp - state.last_move_at + used > self.params.dispute_clock

    def _won(self, state: GameState, outcome: Outcome) -> None:
        if outcome == Outcome.CHALLENGER_WON and state.challenger == self.address:
            self.repropose = True

    def _propose_missing_roots(self) -> None:
        for index in range(self.inbox.count("claimCount"), len(self.derivation.batches)):
            if index in self.traces:  # a liar does not re-propose
                break
            self.inbox.propose_root(
                self.account, index, self.derivation.root(index), bond=self.params.proposer_bond
            )
            log.info(
                "batch %d: proposed the derived root 0x%s", index, self.derivation.root(index).hex()[:12]
            )
