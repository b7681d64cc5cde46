"""The main job: agents bootstrap their own rollup (DESIGN.md, The main job, steps 1 to 8).

On a fresh chain with our contracts deployed: consumers (and the founder, measuring) pay
service agents over x402 on L1; the founder's policy weighs what that cost and spins up a
rollup, funding bounties for its sequencers (paid per final batch) and a watchtower; operators
find the bounties in the escrow's events, check the founder's reputation, take them and stake;
consumers deposit and pay the same services over x402 on the L2; the sequencers rotate, a
malicious one lies and the watchtower wins the dispute; after the window the roots finalize,
consumers withdraw to L1 with proofs, and the escrow pays the honest operators per final batch.
Every figure of the report is measured here. Each agent acts through the contracts and the HTTP
APIs only; the services share this process (`devnet.py` drives their L1 rounds).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from ape import accounts, chain, project
from pydantic import BaseModel, ConfigDict, Field

from offchain.agents.agent import Agent, Role
from offchain.agents.devnet import Devnet, mine
from offchain.agents.policy import L1Costs, PosterStanding, RulePolicy
from offchain.chain.contracts import contract_at
from offchain.chain.deployments import save_deployment
from offchain.chain.eip712 import Eip712Domain
from offchain.chain.rpc import connect
from offchain.challenger.watchtower import Watchtower
from offchain.errors import ContractReverted
from offchain.identity.registries import Erc8004
from offchain.l2.codec import Transfer, Withdraw, encode
from offchain.l2.signing import sign, token_domain, transfer_digest, withdraw_digest
from offchain.market.escrow import BountyFeed, Escrow, Kind, ServiceTerms, TaskTerms
from offchain.node.replica import ReplicaNode
from offchain.report.model import (
    AgentLine,
    Conservation,
    DisputeFigures,
    Move,
    PathFigures,
    ReputationPoint,
    RunReport,
)
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import DisputeGame, Outcome, deploy_implementation
from offchain.rollup.factory import RollupFactory
from offchain.rollup.params import RollupParams
from offchain.rollup.sequencer_set import SequencerSet
from offchain.sequencer.api import create_app as sequencer_app
from offchain.sequencer.confirmation import tx_hash
from offchain.sequencer.core import Sequencer
from offchain.sequencer.faults import Fault
from offchain.sequencer.service import Schedule, SequencerService
from offchain.serving import BackgroundServer
from offchain.x402.client import X402Client
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app as facilitator_app
from offchain.x402.sequencer_settlement import SequencerSettlement
from offchain.x402.server import FacilitatorClient, PaymentMiddleware, Price
from offchain.x402.store import PaymentStore

USD = 10**6  # AgentUSD has 6 decimals
PRICE = 10_000  # 0.01 AUSD a request, on either network
SERVICE_KINDS = ("weather", "translate", "summarize", "geocode")
DAY = 86_400
TICK = 0.5  # seconds between the devnet's L1 blocks
# L1 blocks per slot: a leader's slot lasts six seconds here, and its one batch carries what it
# confirmed in them (a batch's fixed L1 cost is shared by more payments the longer the slot).
SLOT_LENGTH = 12


class Options(BaseModel):
    model_config = ConfigDict(frozen=True)

    operators: int = Field(default=2, ge=1, le=4, description="honest sequencer operators")
    services: int = Field(default=2, ge=1, le=len(SERVICE_KINDS))
    consumers: int = Field(default=3, ge=1, le=6)
    payments: int = Field(default=50, ge=1, le=1_000, description="per consumer, on each network")
    fault: Fault | None = Field(default=Fault.WRONG_ROOT, description="the malicious operator's lie")
    seed: int = 7
    window: int = Field(default=20, ge=5, description="challenge window, seconds")
    chain_id: int = Field(default=4242, gt=31337)


class Bootstrap:
    """One run of the main job; `say(phase, detail)` reports progress as it goes."""

    def __init__(self, options: Options, say: Callable[[str, str], None] = lambda phase, detail: None):
        self.o = options
        self.say = say
        self.started = time.monotonic()
        self.w3 = connect(chain.provider.http_uri, timeout=60)
        test = accounts.test_accounts
        self.founder = Agent("founder", Role.FOUNDER, test[0], RulePolicy(options.seed))
        self.relayer = test[1]  # the facilitator's key (it sends the L1 settlements)
        self.watchtower = Agent("watchtower", Role.WATCHTOWER, test[2], RulePolicy(options.seed))
        n = options.operators
        self.operators = [
            Agent(f"operator-{i}", Role.OPERATOR, test[3 + i], RulePolicy(options.seed + i)) for i in range(n)
        ]
        if options.fault is not None:
            self.operators.append(Agent("operator-x", Role.MALICIOUS, test[3 + n], RulePolicy(options.seed)))
        first = 3 + len(self.operators)
        self.services = [
            Agent(f"{kind}-agent", Role.SERVICE, test[first + i])
            for i, kind in enumerate(SERVICE_KINDS[: options.services])
        ]
        first += options.services
        self.consumers = [
            Agent(f"consumer-{i}", Role.CONSUMER, test[first + i], RulePolicy(options.seed + 100 + i))
            for i in range(options.consumers)
        ]
        self.agents = [self.founder, self.watchtower, *self.operators, *self.services, *self.consumers]
        self.servers: list[BackgroundServer] = []
        self.middlewares: dict[str, PaymentMiddleware] = {}
        self.reputation: dict[str, list[ReputationPoint]] = {a.name: [] for a in self.agents}
        self.stakes: dict[str, dict[str, int]] = {a.name: {} for a in self.agents}
        self.earned: dict[str, int] = {a.name: 0 for a in self.agents}
        self.devnet: Devnet | None = None
        self.report: RunReport | None = None
        self.extra_l2_payments = 0  # paid while waiting for the liar's slot (not in the L2 figures)
        self.extra_deposits = 0  # deposited in the liar's slot, for a fault that skips one
        self.resent = 0  # withdrawals sent again after a leader dropped them
        self.l2_payments: set[str] = set()  # the L2 hashes of every x402 payment on the L2
        # The services' own data (the facilitator's records, the node's LMDB) belong to this
        # chain only: a fresh folder each run, gone with it.
        self._data = tempfile.TemporaryDirectory(prefix="agentl2-bootstrap-")
        self.data = Path(self._data.name)

    # -- the story -------------------------------------------------------------------------------

    def run(self) -> RunReport:
        try:
            self._deploy()
            l1 = self._pay_on_l1()
            costs = L1Costs(
                payments=l1.payments,
                gas_per_payment=l1.gas_per_payment,
                latency_p50_ms=l1.latency_ms["p50"],
                payments_per_second=l1.per_second,
            )
            decision = self.founder.policy.spin_up_rollup(costs)
            self.say(
                "founder decides",
                ("spin up a rollup: " if decision.yes else "stay on L1: ") + decision.reason,
            )
            self.report = RunReport(
                options=self.o.model_dump(mode="json"),
                contracts=self.contracts,
                seconds=0.0,
                decision=decision.reason,
                l1=l1,
            )
            if decision.yes:
                self._spin_up()
                self._hire()
                self._go_live()
                self.report.l2 = self._pay_on_l2()
                self.report.dispute = self._catch_the_liar()
                self._withdraw_and_finalize()
                self._pay_operators()
                self._account()
            self._snapshot("end")
            self.report.contracts = dict(self.contracts)  # the rollup's too, once spun up
            self.report.agents = [
                AgentLine(
                    name=a.name,
                    role=a.role.value,
                    agent_id=a.agent_id,
                    address=a.address,
                    earned=self.earned[a.name],
                    stake=self.stakes[a.name],
                    reputation=self.reputation[a.name],
                )
                for a in self.agents
            ]
            self.report.seconds = round(time.monotonic() - self.started, 1)
            return self.report
        finally:
            self._stop()

    # -- 0. the chain's contracts and the agents' identities -------------------------------------

    def _deploy(self) -> None:
        self.say("deploying", "ERC-8004 registries, AgentUSD, escrow, dispute game, rollup factory")
        deployer = self.founder.account
        self.registries = Erc8004.deploy(deployer)
        self.token = deployer.deploy(project.AgentUSD, deployer.address)
        self.domain = Eip712Domain.from_eip5267(self.token.eip712Domain())
        self.escrow = Escrow.deploy(deployer, self.registries)
        game = deploy_implementation(deployer)
        self.factory = RollupFactory.deploy(
            deployer, str(self.registries.identity.address), str(game.address)
        )
        record = self.registries.deployment(deployer)  # `ape run node` and friends find them there
        record.contracts.update(
            {
                "AgentUSD": str(self.token.address),
                "BountyEscrow": str(self.escrow.contract.address),
                "OneStepVerifier": str(game.verifier()),
                "DisputeGame": str(game.address),
                "RollupFactory": str(self.factory.contract.address),
            }
        )
        save_deployment(record)
        self.contracts = dict(record.contracts)
        store = PaymentStore(self.data / "facilitator.sqlite")
        self.facilitator = Facilitator.on_token(
            self.w3, self.relayer.private_key, store, [self.token.address]
        )
        self.facilitator.start()
        self.facilitator_url = self._serve(facilitator_app(self.facilitator))
        for service in self.services:
            kind = service.name.removesuffix("-agent")
            price = Price(
                amount=PRICE, asset=self.domain, pay_to=service.address, description=f"{kind} answer"
            )
            middleware = create_service(FacilitatorClient(self.facilitator_url), price, kind)
            service.endpoint = f"{self._serve(middleware)}/{kind}"
            self.middlewares[service.name] = middleware
        for agent in self.agents:
            if agent.role != Role.SERVICE:
                self.token.mint(agent.account, 1_000 * USD, sender=deployer)  # the devnet's faucet
        for agent in self.agents:
            if agent.role not in (Role.OPERATOR, Role.MALICIOUS):  # operators register with their API
                agent.register(self.registries)
        self._snapshot("start")

    # -- 1. payments on L1 -----------------------------------------------------------------------

    def _pay_on_l1(self) -> PathFigures:
        payers = [self.founder, *self.consumers]  # the founder measures by paying, too
        self.say("paying on L1", f"{len(payers)} payers x {self.o.payments} x402 payments")
        results = self._payments(payers, rollups=[])
        gas = [self.w3.eth.get_transaction_receipt(tx)["gasUsed"] for _, tx, _ in results]
        network = f"eip155:{self.w3.eth.chain_id}"
        settles = list(self.facilitator.settle_seconds.get(network, []))
        figures = _figures(network, results, self._phase_seconds, sum(gas), settles)
        for consumer in payers:  # services rate their clients, clients their services
            for service in self.services:
                self.registries.give_feedback(service.account, consumer.agent_id, 90, tag1="client")
                self.registries.give_feedback(consumer.account, service.agent_id, 85, tag1="quality")
        self._snapshot("after L1")
        self.say("paid on L1", _line(figures))
        return figures

    def _payments(self, payers: list[Agent], rollups: list[int], count: int | None = None) -> list[tuple]:
        """Each payer pays `count` requests of the services its policy picks, all payers at
        once; returns (latency s, settlement tx, network) of each paid request."""
        results: list[tuple[float, str, str]] = []
        failures: list[str] = []
        lock = threading.Lock()
        endpoints = {s.endpoint: s for s in self.services}

        def pay(payer: Agent) -> None:
            client = X402Client(payer.key, self.w3, max_amount=PRICE, rollups=rollups)
            for _ in range(count or self.o.payments):
                endpoint = payer.policy.pick(list(endpoints))
                started = time.perf_counter()
                paid = client.get(endpoint, params={"q": payer.name})
                latency = time.perf_counter() - started
                with lock:
                    if paid.response.status_code == 200 and paid.settlement and paid.settlement.success:
                        results.append((latency, paid.settlement.transaction, paid.settlement.network))
                    else:
                        failures.append(
                            f"{payer.name}: {paid.response.status_code} {paid.response.text[:200]}"
                        )

        threads = [threading.Thread(target=pay, args=(p,)) for p in payers]
        self._phase_started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._phase_seconds = time.perf_counter() - self._phase_started
        if failures:
            raise RuntimeError(f"{len(failures)} payments failed: {failures[:3]}")
        return results

    # -- 2. the founder spins up a rollup and funds bounties ------------------------------------

    def _spin_up(self) -> None:
        params = RollupParams(
            chain_id=self.o.chain_id,
            stake_token=self.token.address,
            min_stake=100 * USD,
            slot_length=SLOT_LENGTH,
            challenge_window=self.o.window,
            exit_delay=max(600, self.o.window),
        )
        self.epoch_blocks = params.slot_length * params.slots_per_epoch
        self.rollup = self.factory.create(self.founder.account, params)
        self.live_block = chain.blocks.head.number
        self.inbox = self.rollup.inbox_client()
        self.contracts.update(
            {
                "Inbox": self.rollup.inbox,
                "SequencerSet": self.rollup.sequencer_set,
                "DisputeGame": self.rollup.dispute_game,
            }
        )
        self.sequencer_set = SequencerSet.at(self.rollup.sequencer_set)
        self.game = DisputeGame.at(self.rollup.dispute_game)
        self.stake = params.min_stake
        self.token.approve(self.escrow.contract, 2**256 - 1, sender=self.founder.account)
        now = chain.pending_timestamp
        self.slot_bounty = self.escrow.create_service(
            self.founder.account,
            ServiceTerms(
                asset=self.token.address,
                amount=50 * USD,
                term_end=now + DAY,
                attester=self.inbox.address,  # the inbox counts each proposer's final batches
                rate=USD // 10,
                agents_only=True,
                spec_uri=f"sequencer of rollup {self.o.chain_id}: 0.1 AUSD per final batch",
            ),
        )
        self.watch_bounty = self.escrow.create_task(
            self.founder.account,
            TaskTerms(
                asset=self.token.address,
                amount=5 * USD,
                deadline=now + DAY,
                arbiter=self.relayer.address,  # a third party (the facilitator's operator) for a dispute
                review_window=DAY,
                stake=USD,
                agents_only=True,
                spec_uri=f"watchtower of rollup {self.o.chain_id}: dispute every wrong root",
            ),
        )
        self.say(
            "rollup live on L1",
            f"chain {self.o.chain_id}, inbox {self.inbox.address[:10]}…; bounties {self.slot_bounty} and {self.watch_bounty}",
        )

    # -- 3. operators discover the bounties, check the founder, take them and stake -------------

    def _hire(self) -> None:
        feed = BountyFeed(self.escrow)
        raters = [s.address for s in self.services]  # whom an operator trusts: services it knows
        summary = self.registries.summary(self.founder.agent_id, raters)
        standing = PosterStanding(agent_id=self.founder.agent_id, ratings=summary.count, mean=summary.mean)
        self.hired: list[Agent] = []
        for bounty in feed.open():
            takers = self.operators if bounty.kind == Kind.SERVICE else [self.watchtower]
            for agent in takers:
                decision = agent.policy.take_bounty(standing, bounty.funded, self.stake)
                self.say(
                    "bounty",
                    f"{agent.name} on bounty {bounty.id}: {'take' if decision.yes else 'pass'} ({decision.reason})",
                )
                if not decision.yes:
                    continue
                if bounty.kind == Kind.SERVICE:
                    agent.endpoint = "http://127.0.0.1:0"  # replaced by its API's address below
                    self.hired.append(agent)
                else:
                    self.token.approve(self.escrow.contract, 2**256 - 1, sender=agent.account)
                    self.escrow.claim(agent.account, bounty.id, agent.agent_id)
        if not self.hired:
            raise RuntimeError("no operator took the sequencer bounty")
        self.cores: dict[str, Sequencer] = {}
        self.apis: dict[str, str] = {}
        services: list[SequencerService] = []
        defenses = []
        for agent in self.hired:
            fault = self.o.fault if agent.role == Role.MALICIOUS else None
            core = Sequencer(
                agent.account, self.inbox, self.o.chain_id, lambda: chain.blocks.head.timestamp, fault
            )
            # The devnet renews every view whenever a block is mined: a submission needs no read.
            service = SequencerService(
                core,
                Schedule(contract_at("SequencerSet", self.rollup.sequencer_set)),
                # One batch a slot, in its closing block; a leader of the next slot too posts
                # once two slots' time has passed.
                post_interval=2 * SLOT_LENGTH * TICK,
                view_ttl=3_600.0,
            )
            agent.endpoint = self._serve(sequencer_app(service))
            agent.register(self.registries)
            self.escrow.join(agent.account, self.slot_bounty, agent.agent_id)
            self.sequencer_set.join(agent.account, agent.agent_id, self.stake)
            self.cores[agent.name], self.apis[agent.name] = core, agent.endpoint
            services.append(service)
            if fault is not None:
                liar = Watchtower(
                    agent.account, self.inbox, self.game, self.o.chain_id, core.lies, challenge=False
                )
                defenses.append(liar.step)
        self.liar = next((a for a in self.hired if a.role == Role.MALICIOUS), None)
        mine(2 * self.epoch_blocks + 16)  # eligible two epochs after joining
        self.node = ReplicaNode(self.inbox, self.o.chain_id, self.data / "node")
        self.devnet = Devnet(
            services,
            Watchtower(self.watchtower.account, self.inbox, self.game, self.o.chain_id),
            self.node,
            defenses,
            tick=TICK,
        )
        self._snapshot("hired")
        self.say(
            "hired",
            f"{len(self.hired)} sequencers staked {self.stake // USD} AUSD each; the watchtower claimed its task",
        )

    # -- 4. the services offer the L2; consumers deposit ---------------------------------------

    def _go_live(self) -> None:
        self.l2_settlement = SequencerSettlement(
            self.facilitator.store, self.o.chain_id, list(self.apis.values()), [self.token.address]
        )
        self.facilitator.add_network(self.l2_settlement)
        l2_domain = token_domain(self.o.chain_id, self.token.address)
        for service in self.services:
            kind = service.name.removesuffix("-agent")
            l1 = Price(amount=PRICE, asset=self.domain, pay_to=service.address, description=f"{kind} answer")
            l2 = Price(amount=PRICE, asset=l2_domain, pay_to=service.address, description=f"{kind} answer")
            self.middlewares[service.name].offer("GET", f"/{kind}", [l1, l2])
        self.deposit = (self.o.payments + 20) * PRICE  # the payments, a few more, and some to withdraw
        for consumer in self.consumers:
            self.inbox.deposit_erc20(consumer.account, self.token, consumer.address, self.deposit)
        assert self.devnet is not None
        self.devnet.start()
        _wait(
            lambda: all(
                self.node.balance(c.address, self.token.address) >= self.deposit for c in self.consumers
            ),
            120,
            "the deposits in a posted batch",
        )
        self.say("deposited", f"{len(self.consumers)} x {self.deposit / USD:.2f} AUSD in the rollup")

    # -- 5. payments on the L2 -----------------------------------------------------------------

    def _pay_on_l2(self) -> PathFigures:
        self.say("paying on L2", f"{len(self.consumers)} consumers x {self.o.payments} x402 payments")
        first_block = chain.blocks.head.number
        results = self._payments(self.consumers, rollups=[self.o.chain_id])
        if any(network != f"eip155:{self.o.chain_id}" for *_, network in results):
            raise RuntimeError("a consumer paid on L1 although the L2 was offered at the same price")
        seconds = self._phase_seconds
        hashes = {tx for _, tx, _ in results}
        self.l2_payments |= hashes
        _wait(lambda: self._posted(hashes), 120, "every L2 payment posted in a batch")
        batches = [b for b in self.inbox.batches(first_block) if b.l1_block > first_block]
        gas = sum(self.w3.eth.get_transaction_receipt(b.txn_hash)["gasUsed"] for b in batches)
        network = f"eip155:{self.o.chain_id}"
        settles = list(self.facilitator.settle_seconds.get(network, []))
        figures = _figures(network, results, seconds, gas, settles)
        figures.batches = len(batches)
        self.say("paid on L2", _line(figures))
        return figures

    def _posted(self, hashes: set[str]) -> bool:
        """Whether every confirmed payment is in a posted batch (one dropped with its slot is
        sent again by the facilitator); raises if one could not be: a broken promise this run
        must not hide."""
        broken = set(self.l2_settlement.broken) & hashes
        if broken:
            raise RuntimeError(f"{len(broken)} soft-confirmed payments were dropped and refused again")
        return hashes <= {h for core in self.cores.values() for h in core.posted}

    # -- 6. the liar is caught ------------------------------------------------------------------

    def _catch_the_liar(self) -> DisputeFigures | None:
        if self.liar is None:
            return None
        liar_core = self.cores[self.liar.name]
        deadline = time.monotonic() + 120
        liar_api = f"{self.apis[self.liar.name]}/v1/sequencer"
        while not liar_core.lies and time.monotonic() < deadline:  # it lies only in a slot it leads
            if liar_core.blocks or not httpx.get(liar_api, timeout=10).json()["leads"]:
                time.sleep(0.1)
                continue
            self._feed_the_liar()
        if not liar_core.lies:
            raise RuntimeError("the malicious operator never led a slot with transactions")
        self.say("a lie on L1", f"{self.liar.name} claimed a wrong root for batch {min(liar_core.lies)}")
        first_block = self.live_block  # the game may be over already: read from the rollup's start

        def settled() -> bool:
            games = [self.game.game(i) for i in range(self.game.game_count())]
            if not games or any(g.outcome == Outcome.OPEN for g in games):
                return False
            claims, synced = self.inbox.count("claimCount"), self.node.synced
            if synced is None or synced[0] + 1 < claims:
                return False  # the node has not derived them all yet
            return claims == self.inbox.count("batchCount") and all(
                self.inbox.claim(i).root == self.node.batch_root(i) for i in range(claims)
            )

        _wait(settled, 180, "the dispute won and the right roots claimed again")
        state = self.game.game(0)
        moves = self._moves(first_block)
        slashed = sum(
            int(log.toChallenger) + int(log.burnt)
            for log in self.sequencer_set.contract.Slashed.range(first_block, chain.blocks.head.number + 1)
        )
        reproposed = sum(
            1
            for log in self.inbox.contract.RootClaimed.range(first_block, chain.blocks.head.number + 1)
            if log.proposer == self.watchtower.address
        )
        assert self.devnet is not None
        self.devnet.call(
            self.registries.give_feedback,
            self.watchtower.account,
            self.liar.agent_id,
            0,
            0,
            "slashed",
            "sequencer",
        )
        self._snapshot("after dispute")
        figures = DisputeFigures(
            fault=str(self.o.fault),
            liar=self.liar.name,
            claim_index=state.claim_index,
            game_id=0,
            outcome=state.outcome.name,
            moves=moves,
            gas=sum(m.gas for m in moves),
            slashed=slashed,
            reproposed=reproposed,
        )
        self.say(
            "caught",
            f"{state.outcome.name} in {len(moves)} moves, {figures.gas:,} gas; {slashed // USD} AUSD slashed",
        )
        return figures

    def _feed_the_liar(self) -> None:
        """One transaction in the liar's slot that its fault can change: a deposit to skip, a
        signed transfer with a fee to misdirect or apply twice, else an x402 payment."""
        consumer, other = self.consumers[0], self.consumers[-1]
        if self.o.fault == Fault.SKIPPED_DEPOSIT:
            assert self.devnet is not None
            self.devnet.call(self.inbox.deposit_erc20, consumer.account, self.token, consumer.address, PRICE)
            self.extra_deposits += PRICE
        elif self.o.fault in (Fault.DOUBLE_APPLY, Fault.WRONG_FEE):
            api = self.apis[self.liar.name] if self.liar else ""
            nonce = int(httpx.get(f"{api}/v1/accounts/{consumer.address}/nonce", timeout=10).json()["nonce"])
            fields = (consumer.address, other.address, self.token.address, 1, 1, nonce)
            digest = transfer_digest(Transfer(*fields, b"\x00" * 65), self.o.chain_id, self.inbox.address)
            record = encode(Transfer(*fields, sign(consumer.key, digest)))
            httpx.post(f"{api}/v1/transactions", json={"record": "0x" + record.hex()}, timeout=10)
        else:
            paid = self._payments(self.consumers[:1], rollups=[self.o.chain_id], count=1)
            self.extra_l2_payments += len(paid)
            self.l2_payments |= {tx for _, tx, _ in paid}

    def _moves(self, first_block: int) -> list[Move]:
        by_address = {a.address: a.name for a in self.agents}
        moves = []
        last = chain.blocks.head.number + 1
        for name in ("GameOpened", "RootsRevealed", "PartPicked", "StepProven", "GameResolved"):
            for log in getattr(self.game.contract, name).range(first_block, last):
                receipt = self.w3.eth.get_transaction_receipt(log.transaction_hash)
                moves.append(
                    Move(
                        event=name,
                        by=by_address.get(str(receipt["from"]), str(receipt["from"])),
                        gas=int(receipt["gasUsed"]),
                        block=int(log.block_number),
                    )
                )
        return sorted(moves, key=lambda m: m.block)

    # -- 7. withdrawals, finality, payouts -----------------------------------------------------

    def _withdraw_and_finalize(self) -> None:
        assert self.devnet is not None
        # A payment the liar confirmed and dropped when it was ejected, sent again: posted first.
        _wait(lambda: self._posted(self.l2_payments), 120, "every L2 payment posted in a batch")
        # Each consumer withdraws half of what the node derived: it must have every batch.
        _wait(self._node_synced, 120, "the node deriving every posted batch")
        self.withdrawals: dict[str, tuple[int, int]] = {}  # consumer -> (nonce, amount)
        records: dict[str, bytes] = {}
        for consumer in self.consumers:
            balance = self.node.balance(consumer.address, self.token.address)
            nonce = self.node.nonce(consumer.address)
            amount = balance // 2
            fields = (consumer.address, self.token.address, amount, 0, consumer.address, nonce)
            digest = withdraw_digest(Withdraw(*fields, b"\x00" * 65), self.o.chain_id, self.inbox.address)
            record = encode(Withdraw(*fields, sign(consumer.key, digest)))
            self._submit_l2(record)
            self.withdrawals[consumer.name] = (nonce, amount)
            records[consumer.name] = record

        def withdrawn() -> bool:
            waiting = [c for c in self.consumers if self.node.nonce(c.address) <= self.withdrawals[c.name][0]]
            for consumer in waiting:  # a leader whose slot passed unposted dropped it: send it again
                if self._dropped(records[consumer.name]):
                    self._submit_l2(records[consumer.name])
                    self.resent += 1
            return not waiting

        _wait(withdrawn, 120, "the withdrawals in a posted batch")

        _wait(lambda: self._node_synced(claimed=True), 120, "every batch claimed")
        self.say("finality", f"the {self.o.window} s challenge window passes (anvil time moved on)")

        def finalize() -> int:
            chain.provider.make_request("evm_increaseTime", [self.o.window + 1])
            mine(1)
            return self.inbox.finalize(self.founder.account)

        self.devnet.call(finalize)
        final = self.inbox.count("finalizedCount")
        derivation = Derivation(self.inbox, self.o.chain_id)
        derivation.sync()
        for consumer in self.consumers:
            nonce, amount = self.withdrawals[consumer.name]
            leaf, proof = derivation.withdrawal_proof(final - 1, consumer.address, nonce)
            self.devnet.call(self.inbox.finalize_withdrawal, consumer.account, final - 1, leaf, proof)
        self.say(
            "withdrawn",
            f"{len(self.consumers)} consumers proved their withdrawals against batch {final - 1}"
            + (f" ({self.resent} sent again after a leader dropped them)" if self.resent else ""),
        )

    def _node_synced(self, claimed: bool = False) -> bool:
        """Whether the node has derived every appended batch (and, with `claimed`, each has a claim)."""
        synced, batches = self.node.synced, self.inbox.count("batchCount")
        if synced is None or synced[0] + 1 != batches:
            return False
        return not claimed or self.inbox.count("claimCount") == batches

    def _dropped(self, record: bytes) -> bool:
        """Whether no sequencer holds `record` but as dropped (its slot passed unposted)."""
        path = f"/v1/transactions/0x{tx_hash(record).hex()}"
        for url in self.apis.values():
            answer = httpx.get(url + path, timeout=10)
            if answer.status_code == 200 and answer.json()["stage"] != "dropped":
                return False
        return True

    def _submit_l2(self, record: bytes) -> None:
        """Sends an L2 transaction to whichever sequencer leads (each names the leader)."""
        deadline, last = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            for url in self.apis.values():
                answer = httpx.post(
                    f"{url}/v1/transactions", json={"record": "0x" + record.hex()}, timeout=10
                )
                if answer.status_code in (200, 409):  # 409: that leader confirmed it already
                    return
                if answer.status_code not in (503, 400):
                    raise RuntimeError(f"the sequencer refused a withdrawal: {answer.text}")
                last = answer.text[:300]
            time.sleep(0.1)
        raise RuntimeError(f"no sequencer admitted the withdrawal in 30 s; the last answer: {last}")

    def _pay_operators(self) -> None:
        assert self.devnet is not None
        call = self.devnet.call
        if self.liar is not None:
            try:  # the escrow lets the poster remove a worker only while it has served nothing
                call(self.escrow.remove_worker, self.founder.account, self.slot_bounty, self.liar.address)
            except ContractReverted as exc:
                if exc.reason != "escrow: worker has served":
                    raise
                # Its honest batches before the lie are final, and attested: it keeps its place
                # (unpaid here: the founder pays only the honest operators; its stake is gone).
                self.say("bounty", f"{self.liar.name} stays a worker: its batches before the lie are final")
        for agent in self.hired:
            if agent is self.liar:
                continue
            paid = call(self.escrow.pay_out, self.founder.account, self.slot_bounty, agent.address)
            self.earned[agent.name] += paid
            if paid:
                call(
                    self.registries.give_feedback,
                    self.founder.account,
                    agent.agent_id,
                    95,
                    0,
                    "final batches",
                    "sequencer",
                )
        call(
            self.escrow.submit, self.watchtower.account, self.watch_bounty, "report://dispute-0", b"\x11" * 32
        )
        call(self.escrow.accept, self.founder.account, self.watch_bounty)
        self.earned[self.watchtower.name] += 5 * USD
        call(
            self.registries.give_feedback,
            self.founder.account,
            self.watchtower.agent_id,
            95,
            0,
            "dispute won",
            "watchtower",
        )
        for agent in [*self.hired, self.watchtower]:
            if call(self.escrow.withdrawable, agent.address, self.token.address):
                call(self.escrow.withdraw, agent.account, self.token.address)
        self.say(
            "paid",
            ", ".join(
                f"{a.name} {self.earned[a.name] / USD:.2f} AUSD" for a in [*self.hired, self.watchtower]
            ),
        )

    def _account(self) -> None:
        assert self.report is not None and self.devnet is not None
        self.devnet.stop()
        self.node.sync()
        addresses = {a.address for a in self.agents}
        addresses |= {str(c.address) for c in self.cores.values()}
        l2 = sum(self.node.balance(a, self.token.address) for a in addresses)
        withdrawn = sum(amount for _, amount in self.withdrawals.values())
        self.report.conservation = Conservation(
            deposits=self.deposit * len(self.consumers) + self.extra_deposits,
            l2_balances=l2,
            withdrawals=withdrawn,
        )
        l2_payments = self.report.l2.payments if self.report.l2 else 0
        for service in self.services:  # what its clients paid it, on L1 and on the L2
            self.earned[service.name] += int(self.token.balanceOf(service.address))
            self.earned[service.name] += self.node.balance(service.address, self.token.address)
        # Each payment paid its service exactly once: the services' income on each network is
        # the price times the payments that network answered (the services held nothing before).
        l1_income = sum(int(self.token.balanceOf(s.address)) for s in self.services)
        l2_income = sum(self.node.balance(s.address, self.token.address) for s in self.services)
        self.report.payments_settled_once = (
            l1_income == self.report.l1.payments * PRICE
            and l2_income == (l2_payments + self.extra_l2_payments) * PRICE
        )
        self.report.extra_l2_payments = self.extra_l2_payments
        self.report.payments_resent = self.l2_settlement.resent
        self.report.batches_posted = self.inbox.count("batchCount")
        self.report.batches_final = self.inbox.count("finalizedCount")
        self.report.node_agrees = all(
            self.inbox.claim(i).root == self.node.batch_root(i) for i in range(self.report.batches_posted)
        )
        self.report.errors = self.devnet.errors[:20]

    # -- helpers ---------------------------------------------------------------------------------

    def _snapshot(self, phase: str) -> None:
        """Each agent's reputation and stake at the end of `phase` (read from the chain)."""
        trusted = [a.address for a in self.agents]
        for agent in self.agents:
            if agent.agent_id:
                summary = self.registries.summary(agent.agent_id, trusted)
                self.reputation[agent.name].append(
                    ReputationPoint(
                        phase=phase, ratings=summary.count, mean=float(summary.mean) if summary.count else 0.0
                    )
                )
            if hasattr(self, "sequencer_set") and agent.role in (Role.OPERATOR, Role.MALICIOUS):
                record = self.sequencer_set.operator(agent.address)
                # An ejected operator's record keeps what was taken as its weight: it holds nothing.
                self.stakes[agent.name][phase] = int(record.stake) if record and not record.ejected else 0

    def _serve(self, app: Any) -> str:
        server = BackgroundServer(app).start()
        self.servers.append(server)
        return server.url

    def _stop(self) -> None:
        if self.devnet is not None:
            self.devnet.stop()
        for server in self.servers:
            server.stop()
        if hasattr(self, "facilitator"):
            self.facilitator.stop()
        if hasattr(self, "node"):
            self.node.close()
        self._data.cleanup()


def _figures(
    network: str, results: list[tuple], seconds: float, gas: int, settles: list[float]
) -> PathFigures:
    latencies = sorted(latency for latency, *_ in results)
    seconds = max(seconds, 1e-9)
    return PathFigures(
        network=network,
        payments=len(results),
        seconds=round(seconds, 3),
        per_second=round(len(results) / seconds, 1),
        latency_ms=_percentiles(latencies),
        confirmation_ms=_percentiles(sorted(settles)),
        l1_gas=gas,
        gas_per_payment=round(gas / max(1, len(results)), 1),
    )


def _percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(_quantile(values, q / 100) * 1000, 1) for q in (50, 95, 99)}


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def _line(f: PathFigures) -> str:
    return (
        f"{f.payments} payments in {f.seconds:.1f} s ({f.per_second:.1f}/s), p50 {f.latency_ms['p50']:.0f} ms, "
        f"{f.gas_per_payment:,.0f} L1 gas per payment"
    )


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
