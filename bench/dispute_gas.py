"""Whole disputes on L1: moves and gas per side, against an OP FaultDisputeGame at full depth.

On a fresh anvil chain (ape-foundry starts and stops it) this spins up one rollup per arity
(2 to 64 parts per reveal) through the RollupFactory with the real DisputeGame and
OneStepVerifier, stakes one sequencer, and plays two whole games on batches of 1, 16, 256 and
2,048 transactions, each side from its own trace made by `offchain/l2/dispute.py`:

- *liar loses*: a bonded proposer claims a wrong root (wrong from the last transaction on) and an
  honest challenger wins the game at the one-step proof; the claim is removed.
- *defender wins*: the sequencer then claims the right root; a false challenger disputes it and
  loses at the one-step proof, which the defender sends.

For each game it prints the moves (reveals; picks; the step) and the gasUsed of each side's
transactions (open, picks and a winning step for the challenger; reveals and a winning step for
the defender). The 2,048-transaction batch is 2,000 deposits and 48 signed transactions (a batch
of signed transactions alone that long is over geth's 128 KiB transaction limit).

Also printed: the one-step proof's gas per transaction kind (a direct `verifyStep` transaction,
21k base and calldata included, in the 256- and 2,048-transaction batches), and the step of a
lying *sequencer* (stake slashed, ejected) next to a bonded liar's.

Goals (issue 12): at most ceil(log2 n) moves per side; a full dispute over 2,048 transactions
(both sides) at most 1/10 of an OP FaultDisputeGame played to its full depth: 73 moves at about
200,000 gas each (../shared/reference/rollup-anchors.md: the bond spec's 400k gas is "about
double the cost to respond at the top level"), i.e. 14.6M gas, its step not counted.

Run from the repository root:  python bench/dispute_gas.py
Writes reports/bench/dispute_gas.json. It reports; it does not assert.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from offchain.chain.calls import transact
from offchain.hashing import keccak
from offchain.identity.registries import Erc8004
from offchain.l2.batch import Batch, Block
from offchain.l2.codec import Transfer, TransferWithAuthorization, Tx, Withdraw, decode
from offchain.l2.dispute import BatchTrace
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import DisputeGame, Outcome
from offchain.rollup.factory import RollupFactory
from offchain.rollup.inbox import Inbox
from offchain.rollup.params import RollupParams
from offchain.rollup.sequencer_set import SEED_MARGIN

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "dispute_gas.json"
ARITIES = (2, 4, 8, 16, 32, 64)
SIZES = (1, 16, 256, 2_048)
DEPOSITS_IN_LARGEST = 2_000
OP_MOVES, OP_MOVE_GAS = 73, 200_000
ETH = "0x" + "00" * 20
BOND = 10**17
STAKE = 10**6
KEYS = [keccak(b"dispute bench user" + i.to_bytes(2, "big")) for i in range(64)]
USERS = [Account.from_key(k).address for k in KEYS]


@dataclass
class Side:
    moves: int = 0
    gas: int = 0

    def add(self, receipt) -> None:
        self.moves += 1
        self.gas += receipt.gas_used


@dataclass
class Played:
    outcome: Outcome
    reveals: int
    picks: int
    open_gas: int = 0
    step_gas: int = 0
    defender: Side = field(default_factory=Side)
    challenger: Side = field(default_factory=Side)


class Signer:
    """Signed L2 transactions from the bench's users, cycling through the kinds, with nonces."""

    def __init__(self, chain_id: int, inbox: str):
        self.chain_id, self.inbox = chain_id, inbox
        self.nonces = [0] * len(KEYS)
        self.count = 0

    def next(self, kind: str, now: int) -> Tx:
        k = self.count % len(KEYS)
        self.count += 1
        key, sender, to = KEYS[k], USERS[k], USERS[(k + 1) % len(KEYS)]
        if kind == "transferWithAuthorization":
            nonce = keccak(b"bench auth" + self.count.to_bytes(4, "big"))
            fields = (sender, to, ETH, 10**12, now - 60, now + 86_400, nonce)
            unsigned = TransferWithAuthorization(*fields, b"\0" * 65)
            return TransferWithAuthorization(
                *fields, sign(key, authorization_digest(unsigned, self.chain_id))
            )
        nonce, self.nonces[k] = self.nonces[k], self.nonces[k] + 1
        if kind == "withdraw":
            fields = (sender, ETH, 10**13, 10**9, to, nonce)
            unsigned = Withdraw(*fields, b"\0" * 65)
            return Withdraw(*fields, sign(key, withdraw_digest(unsigned, self.chain_id, self.inbox)))
        if kind == "transfer refused (bad nonce)":
            self.nonces[k] -= 1
            nonce += 1_000
        fields = (sender, to, ETH, 10**12, 10**9, nonce)
        unsigned = Transfer(*fields, b"\0" * 65)
        return Transfer(*fields, sign(key, transfer_digest(unsigned, self.chain_id, self.inbox)))

    def mixed(self, n: int, now: int) -> list[Tx]:
        """n signed transactions, the kinds in turn, one refused transfer among them, a transfer last."""
        kinds = ["transfer", "transferWithAuthorization", "withdraw"]
        txs = [
            self.next("transfer refused (bad nonce)" if i == 3 and n > 4 else kinds[i % 3], now)
            for i in range(n - 1)
        ]
        return [*txs, self.next("transfer", now)]


def play(
    game: DisputeGame,
    game_id: int,
    preimage: bytes,
    defender,
    defender_trace: BatchTrace,
    challenger,
    challenger_trace: BatchTrace,
    open_receipt,
    defender_is_honest: bool,
) -> Played:
    """Plays game `game_id` to its end; the honest side sends the step."""
    arity = game.arity
    played = Played(Outcome.OPEN, 0, 0, open_gas=open_receipt.gas_used)
    played.challenger.add(open_receipt)
    contract = game.contract
    while (state := game.game(game_id)).outcome == Outcome.OPEN:
        if state.at_one_step:
            sender, trace, side = (
                (defender, defender_trace, played.defender)
                if defender_is_honest
                else (challenger, challenger_trace, played.challenger)
            )
            proof = trace.prove(state.lo)
            receipt = transact(
                contract, "step", game_id, preimage, proof, sender=sender, gas_margin=SEED_MARGIN
            )
            side.add(receipt)
            played.step_gas = receipt.gas_used
        elif state.defender_to_move:
            roots = defender_trace.reveal(state.lo, state.hi, arity)
            played.defender.add(transact(contract, "reveal", game_id, roots, sender=defender))
            played.reveals += 1
        else:
            roots = game.revealed_roots(game_id)
            part = challenger_trace.pick(state.lo, state.hi, arity, roots)
            played.challenger.add(transact(contract, "pick", game_id, roots, part, sender=challenger))
            played.picks += 1
    played.outcome = state.outcome
    return played


class Bench:
    def __init__(self, console: Console):
        self.console = console
        self.deployer, self.sequencer, self.challenger, self.liar, self.depositor = (
            accounts.test_accounts[i] for i in range(5)
        )
        self.registries = Erc8004.deploy(self.deployer)
        self.stake = self.deployer.deploy(project.AgentUSD, self.deployer)
        self.verifier = self.deployer.deploy(project.OneStepVerifier)

    def rollup(self, arity: int) -> tuple[Inbox, DisputeGame, Derivation, Signer]:
        chain_id = 7_000 + arity
        implementation = self.deployer.deploy(project.DisputeGame, self.verifier.address, arity)
        factory = RollupFactory.deploy(
            self.deployer, self.registries.identity.address, str(implementation.address)
        )
        params = RollupParams(
            chain_id=chain_id,
            stake_token=str(self.stake.address),
            min_stake=STAKE,
            slot_length=4,
            slots_per_epoch=64,
            challenge_window=7 * 86_400,
            exit_delay=7 * 86_400,
            dispute_clock=86_400,
            challenger_bond=BOND,
            proposer_bond=BOND,
        )
        rollup = factory.create(self.deployer, params)
        inbox = rollup.inbox_client()
        sequencer_set = project.SequencerSet.at(rollup.sequencer_set)
        agent = self.registries.register(self.sequencer, "data:application/json,{}")
        self.stake.mint(self.sequencer, STAKE, sender=self.deployer)
        self.stake.approve(sequencer_set.address, STAKE, sender=self.sequencer)
        sequencer_set.join(agent, STAKE, sender=self.sequencer, gas_limit=1_000_000)
        chain.mine(2 * 4 * 64)
        for user in USERS:
            inbox.deposit_eth(self.depositor, user, 10**18)
        deposits = tuple(decode(e.record) for e in inbox.pending_queue())
        derivation = Derivation(inbox, chain_id)
        inbox.append_batch(self.sequencer, Batch((Block(chain.blocks.head.timestamp, deposits),)))
        derivation.sync()
        inbox.propose_root(self.sequencer, 0, derivation.root(0))
        return inbox, DisputeGame.at(rollup.dispute_game), derivation, Signer(chain_id, inbox.address)

    def queue_deposits(self, inbox: Inbox, n: int) -> list[Tx]:
        # Straight to the node (anvil's accounts are unlocked): n ape round trips are slow.
        web3 = chain.provider.web3
        for i in range(n):
            call = inbox.contract.depositETH.as_transaction(
                USERS[i % len(USERS)], sender=self.depositor, value=10**15
            )
            web3.eth.send_transaction(
                {
                    "from": self.depositor.address,
                    "to": inbox.address,
                    "value": 10**15,
                    "data": call.data,
                    "gas": 200_000,
                }
            )
        return [decode(e.record) for e in inbox.pending_queue()]

    def batch(self, inbox: Inbox, signer: Signer, n: int) -> Batch:
        now = chain.blocks.head.timestamp
        if n <= 256:
            txs = signer.mixed(n, now)
        else:
            txs = self.queue_deposits(inbox, DEPOSITS_IN_LARGEST) + signer.mixed(n - DEPOSITS_IN_LARGEST, now)
        return Batch((Block(now, tuple(txs)),))

    def disputes(self, inbox: Inbox, game: DisputeGame, derivation: Derivation, batch: Batch) -> dict:
        """Both games on `batch`: a bonded liar loses, then a false challenger loses."""
        index = inbox.append_batch(self.sequencer, batch)
        derivation.sync()
        honest = derivation.trace(index)
        lie = honest.lying_from(honest.tx_count - 1, keccak(b"a wrong root"))
        preimage = inbox.preimage(derivation.batches[index])
        inbox.propose_root(self.liar, index, lie.post_root, bond=BOND)
        opened = transact(
            game.contract, "open", index, preimage, sender=self.challenger, value=BOND, gas_margin=SEED_MARGIN
        )
        game_id = game.game_count() - 1
        liar_loses = play(game, game_id, preimage, self.liar, lie, self.challenger, honest, opened, False)
        assert liar_loses.outcome == Outcome.CHALLENGER_WON, liar_loses
        inbox.propose_root(self.sequencer, index, honest.post_root)
        opened = transact(
            game.contract, "open", index, preimage, sender=self.challenger, value=BOND, gas_margin=SEED_MARGIN
        )
        game_id = game.game_count() - 1
        defender_wins = play(
            game, game_id, preimage, self.sequencer, honest, self.challenger, lie, opened, True
        )
        assert defender_wins.outcome == Outcome.DEFENDER_WON, defender_wins
        return {
            "index": index,
            "trace": honest,
            "preimage": preimage,
            "games": {"liar loses": liar_loses, "defender wins": defender_wins},
        }

    def step_gas(self, inbox: Inbox, derivation: Derivation, played: dict, batch: Batch) -> dict[str, int]:
        """verifyStep's gas (a direct transaction) for the first transaction of each kind in `batch`."""
        trace: BatchTrace = played["trace"]
        batch_hash = derivation.batches[played["index"]].batch_hash
        out: dict[str, int] = {}
        seen_nonce_fail = False
        for i, tx in enumerate(tx for block in batch.blocks for tx in block.txs):
            kind = type(tx).__name__
            if kind == "Transfer" and tx.nonce >= 1_000 and not seen_nonce_fail:
                kind, seen_nonce_fail = "Transfer refused (bad nonce)", True
            if kind in out:
                continue
            out[kind] = self.verifier.verifyStep.estimate_gas_cost(
                batch_hash,
                played["preimage"],
                i,
                trace.roots[i],
                derivation.chain_id,
                inbox.address,
                trace.prove(i),
            )
        return out

    def slashed_step(self, inbox: Inbox, game: DisputeGame, derivation: Derivation, signer: Signer) -> int:
        """The winning step's gas against a lying sequencer (slashed and ejected) on 16 transactions."""
        batch = self.batch(inbox, signer, 16)
        index = inbox.append_batch(self.sequencer, batch)
        derivation.sync()
        honest = derivation.trace(index)
        lie = honest.lying_from(honest.tx_count - 1, keccak(b"the sequencer's wrong root"))
        inbox.propose_root(self.sequencer, index, lie.post_root)
        preimage = inbox.preimage(derivation.batches[index])
        opened = transact(
            game.contract, "open", index, preimage, sender=self.challenger, value=BOND, gas_margin=SEED_MARGIN
        )
        played = play(
            game, game.game_count() - 1, preimage, self.sequencer, lie, self.challenger, honest, opened, False
        )
        assert played.outcome == Outcome.CHALLENGER_WON, played
        return played.step_gas


def main() -> None:
    logger.set_level("WARNING")
    console = Console(width=160)
    results: dict[int, dict[int, dict[str, Played]]] = {}
    step_gas: dict[str, int] = {}
    slash: dict[int, tuple[int, int]] = {}
    with networks.parse_network_choice("ethereum:local:foundry"), Progress(console=console) as progress:
        bench = Bench(console)
        task = progress.add_task("disputes", total=len(ARITIES) * (len(SIZES) + 1))
        for arity in ARITIES:
            inbox, game, derivation, signer = bench.rollup(arity)
            results[arity] = {}
            for n in SIZES:
                progress.update(task, description=f"arity {arity}: {n:,} transactions")
                batch = bench.batch(inbox, signer, n)
                played = bench.disputes(inbox, game, derivation, batch)
                results[arity][n] = played["games"]
                if arity == ARITIES[0] and n in (256, 2_048):
                    for kind, gas in bench.step_gas(inbox, derivation, played, batch).items():
                        step_gas[f"{kind} in {n:,}"] = gas
                progress.advance(task)
            # A bonded liar's winning step on 16 transactions, next to a slashed sequencer's.
            bonded_step = results[arity][16]["liar loses"].step_gas
            slash[arity] = (bonded_step, bench.slashed_step(inbox, game, derivation, signer))
            progress.advance(task)
    report(console, results, step_gas, slash)


def report(console: Console, results, step_gas: dict[str, int], slash: dict[int, tuple[int, int]]) -> None:
    op_gas = OP_MOVES * OP_MOVE_GAS
    table = Table(title="Whole disputes: moves (reveals / picks / step) and gasUsed per side")
    for column in (
        "arity",
        "txs",
        "game",
        "reveals",
        "picks",
        "defender gas",
        "challenger gas",
        "total",
        "moves ≤ ⌈log2 n⌉",
    ):
        table.add_column(column, justify="left" if column == "game" else "right")
    out: dict = {"op_full_depth_gas": op_gas, "op_moves": OP_MOVES, "op_move_gas": OP_MOVE_GAS, "games": {}}
    for arity, sizes in results.items():
        for n, games in sizes.items():
            for name, p in games.items():
                bound = max(1, math.ceil(math.log2(n)))
                # Per side: the defender's reveals, the challenger's picks (open and step aside).
                within = p.reveals <= bound and p.picks <= bound
                total = p.defender.gas + p.challenger.gas
                table.add_row(
                    str(arity),
                    f"{n:,}",
                    name,
                    str(p.reveals),
                    str(p.picks),
                    f"{p.defender.gas:,}",
                    f"{p.challenger.gas:,}",
                    f"{total:,}",
                    "yes" if within else "NO",
                )
                out["games"][f"{arity}/{n}/{name}"] = {
                    "arity": arity,
                    "txs": n,
                    "game": name,
                    "outcome": p.outcome.name,
                    "reveals": p.reveals,
                    "picks": p.picks,
                    "open_gas": p.open_gas,
                    "step_gas": p.step_gas,
                    "defender_gas": p.defender.gas,
                    "challenger_gas": p.challenger.gas,
                    "total_gas": total,
                }
    console.print(table)

    full = Table(
        title=f"A full dispute over 2,048 transactions against OP at full depth ({OP_MOVES} moves x "
        f"{OP_MOVE_GAS:,} gas = {op_gas:,})"
    )
    for column in ("arity", "costlier game", "total gas", "of OP", "goal ≤ 10 %"):
        full.add_column(column, justify="right")
    costs = {}
    for arity, sizes in results.items():
        name, p = max(sizes[2_048].items(), key=lambda kv: kv[1].defender.gas + kv[1].challenger.gas)
        total = p.defender.gas + p.challenger.gas
        costs[arity] = total
        full.add_row(
            str(arity), name, f"{total:,}", f"{total / op_gas:.1%}", "yes" if total * 10 <= op_gas else "NO"
        )
    console.print(full)
    best = min(costs, key=costs.get)
    console.print(
        f"Cheapest arity for a full 2,048-transaction dispute: {best} ({costs[best]:,} gas, "
        f"{op_gas / costs[best]:.1f} x below OP)"
    )
    out["full_dispute_2048"] = {str(a): c for a, c in costs.items()}
    out["cheapest_arity"] = best

    steps = Table(title="One-step proof: verifyStep as a direct transaction (21k and calldata included)")
    steps.add_column("transaction (batch size)")
    steps.add_column("gas", justify="right")
    for kind, gas in step_gas.items():
        steps.add_row(kind, f"{gas:,}")
    console.print(steps)
    out["verify_step_gas"] = step_gas

    slashing = Table(title="The winning step on 16 transactions: a bonded liar vs a lying sequencer")
    for column in ("arity", "bonded liar (bond forfeited)", "sequencer (slashed, ejected)"):
        slashing.add_column(column, justify="right")
    for arity, (bonded, slashed) in slash.items():
        slashing.add_row(str(arity), f"{bonded:,}", f"{slashed:,}")
    console.print(slashing)
    out["winning_step_16"] = {str(a): {"bonded": b, "slashed": s} for a, (b, s) in slash.items()}

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
