"""BountyEscrow under random actions by several funders, claimants, workers and an arbiter.

Random sequences create and crowdfund bounties, fund tasks late (while claimed, the claimant
too), claim, deliver, review, dispute, let deadlines pass (slashing stakes), reopen stake-free
claims, join, leave and remove workers, cancel services, pay out, refund and withdraw. A Python
model replays every event and checks, as each one comes, that the money goes to the party the
rules name and in the amount they name: the pay and the returned stake to the claimant of record,
a service's pay to a current worker for units attested since it joined, each refund exactly the
funder's pro-rata share of what was not paid out plus, for those who funded before the claim,
its share of a slashed stake (the last of each taking the dust). After every step: the escrow
holds exactly what it owes in each asset, each bounty's totals match the model, and a slashed
claimant has had none of its stake back in any role (its refund is its own funding, no more).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from ape.exceptions import ContractLogicError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

pytestmark = pytest.mark.fuzzing

ETH = "0x" + "00" * 20
DAY = 86_400
STATUS = ("Open", "Claimed", "Submitted", "Rejected", "Disputed", "Completed", "Closed")
UNIT = {"eth": 10**15, "ausd": 10**4}


@dataclass
class Model:
    """A bounty as the rules say it should be."""

    kind: str
    asset: str
    poster: str
    stake: int = 0
    rate: int = 0
    status: str = "Open"
    claimant: str | None = None
    funded: int = 0
    paid: int = 0
    slashed: int = 0
    refunded: int = 0
    refunds: int = 0
    contribution: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refunded_to: dict[str, int] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # all it funded
    pool_base: int = 0  # funding before the staked claim, the claimant's own excepted
    pool_sharers: int = 0
    pool_refunds: int = 0
    pool_refunded: int = 0
    workers: dict[str, list[int]] = field(default_factory=dict)  # worker -> [base, units paid]
    removed: set[str] = field(default_factory=set)


@pytest.fixture
def world(project, deployer, registries, accounts, chain):
    escrow = deployer.deploy(project.BountyEscrow, registries.identity.address, registries.validation.address)
    token = deployer.deploy(project.AgentUSD, deployer)
    attester = deployer.deploy(project.work_attester_mock)
    people = [accounts[i] for i in range(1, 8)]
    for person in people:
        token.mint(person, 10**12, sender=deployer)
        token.approve(escrow, 2**256 - 1, sender=person)
    return escrow, token, attester, people, deployer


def _web3(chain, contract):
    """`contract` as a web3 contract, for batched reads."""
    abi = [
        item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in contract.contract_type.abi
    ]
    return chain.provider.web3.eth.contract(address=contract.address, abi=abi)


def test_escrow_pays_the_parties_the_rules_name_under_random_actions(world, chain):
    escrow, token, attester, people, deployer = world
    arbiter = people[-1]
    assets = {"eth": ETH, "ausd": token.address}
    by_address = {str(p.address): p for p in people}
    w3 = chain.provider.web3
    escrow_w3, token_w3 = (_web3(chain, contract) for contract in (escrow, token))

    class EscrowMachine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.snapshot = chain.snapshot()
            self.bounties: dict[int, Model] = {}
            self.units: dict[str, int] = defaultdict(int)  # attested per worker
            self.credited: dict[tuple[str, str], int] = defaultdict(int)
            self.withdrawn: dict[tuple[str, str], int] = defaultdict(int)
            # A task in each asset and a service, so that every path is reachable at once.
            self.create_task(people[0], "eth", 3, 1)
            self.create_task(people[1], "ausd", 2, 2)
            self.create_service(people[2], "eth", 4, 2)

        def teardown(self):
            if hasattr(self, "snapshot"):
                chain.restore(self.snapshot)

        # -- the model ------------------------------------------------------------------------

        def _send(self, call, *args, sender, value=0):
            try:
                receipt = call(*args, sender=sender, value=value)
            except ContractLogicError:
                return None  # refused: the invariants check that nothing moved
            for log in receipt.decode_logs():
                if log.contract_address == escrow.address:  # not the token's
                    self._apply(log.event_name, log.event_arguments)
            return receipt

        def _apply(self, name: str, args: dict) -> None:
            if name == "Withdrawn":
                self.withdrawn[(str(args["asset"]), str(args["account"]))] += args["amount"]
                return
            if name == "BountyCreated":
                kind = "task" if args["kind"] == 0 else "service"
                m = Model(kind=kind, asset=str(args["asset"]), poster=str(args["poster"]))
                if kind == "task":
                    m.stake = escrow.getTask(args["id"]).stake
                else:
                    m.rate = escrow.getService(args["id"])[1]
                self.bounties[args["id"]] = m
                return
            m = self.bounties[args["id"]]
            if name == "Funded":
                funder = str(args["funder"])
                m.contribution[funder] = m.contribution.get(funder, 0) + args["amount"]
                m.funded += args["amount"]
                m.given[funder] += args["amount"]
                if m.status == "Claimed" and m.stake:
                    m.late[funder] += args["amount"]
            elif name == "Claimed":
                assert m.status == "Open" and args["stake"] == m.stake
                m.status, m.claimant = "Claimed", str(args["claimant"])
                if m.stake:
                    own = m.contribution.get(m.claimant, 0)
                    m.pool_base = m.funded - own
                    m.pool_sharers = len(m.contribution) - (1 if own else 0)
            elif name == "Reopened":
                assert m.stake == 0 and str(args["claimant"]) == m.claimant
                m.status, m.claimant = "Open", None
            elif name in ("Submitted", "Rejected", "Disputed", "Closed"):
                m.status = name
            elif name == "Completed":
                # the whole bounty, to the claimant of record
                assert str(args["claimant"]) == m.claimant
                assert args["amount"] == m.funded + m.slashed - m.paid - m.refunded
                self.credited[(m.asset, m.claimant)] += args["amount"]
                m.paid += args["amount"]
                m.status = "Completed"
            elif name == "StakeReturned":
                assert str(args["claimant"]) == m.claimant and args["amount"] == m.stake
                assert m.slashed == 0  # a stake is returned or slashed, once
                self.credited[(m.asset, m.claimant)] += args["amount"]
            elif name == "StakeSlashed":
                assert str(args["claimant"]) == m.claimant and args["amount"] == m.stake
                assert m.slashed == 0
                m.slashed = args["amount"]
            elif name == "Joined":
                worker = str(args["worker"])
                assert worker not in m.workers and worker not in m.removed
                assert args["unitsBase"] == self.units[worker]
                m.workers[worker] = [args["unitsBase"], 0]
            elif name in ("Left", "WorkerRemoved"):
                worker = str(args["worker"])
                base, _ = m.workers.pop(worker)
                if name == "WorkerRemoved":
                    assert self.units[worker] == base  # it had not served
                    m.removed.add(worker)
            elif name == "PaidOut":
                # to a current worker, for units attested since it joined, within the budget
                worker = str(args["worker"])
                base, units_paid = m.workers[worker]
                assert args["units"] <= self.units[worker] - base - units_paid
                assert args["amount"] == args["units"] * m.rate <= m.funded - m.paid
                m.workers[worker][1] += args["units"]
                self.credited[(m.asset, worker)] += args["amount"]
                m.paid += args["amount"]
            elif name == "Refunded":
                assert args["amount"] == self._due(m, str(args["funder"]))

        def _due(self, m: Model, funder: str) -> int:
            """What the rules give `funder` back from a closed bounty; updates the model."""
            assert m.status == "Closed" and m.contribution.get(funder, 0) > 0
            contribution, late = m.contribution.pop(funder), m.late.pop(funder, 0)
            pot = m.funded - m.paid
            m.refunds += 1
            last = not m.contribution  # the last funder to refund takes the dust
            share = pot - (m.refunded - m.pool_refunded) if last else pot * contribution // m.funded
            if m.slashed and contribution > late and funder != m.claimant:
                m.pool_refunds += 1
                if m.pool_refunds == m.pool_sharers:
                    stake_share = m.slashed - m.pool_refunded
                else:
                    stake_share = m.slashed * (contribution - late) // m.pool_base
                m.pool_refunded += stake_share
                share += stake_share
            if m.slashed and funder == m.claimant:
                assert share == contribution  # a slashed claimant has none of its stake back
            m.refunded += share
            m.refunded_to[funder] = share
            return share

        # -- rules ----------------------------------------------------------------------------

        def _value(self, asset: str, amount: int) -> int:
            return amount if asset == ETH else 0

        def _pick(self, data, kind: str | None = None, *statuses: str) -> int | None:
            ids = [
                i
                for i, m in self.bounties.items()
                if (kind is None or m.kind == kind) and (not statuses or m.status in statuses)
            ]
            return data.draw(st.sampled_from(ids)) if ids else None

        @precondition(lambda self: len(self.bounties) < 5)  # depth over breadth
        @rule(
            poster=st.sampled_from(people[:3]),
            asset=st.sampled_from(["eth", "ausd"]),
            amount=st.integers(1, 5),
            stake=st.integers(0, 2),
        )
        def create_task(self, poster, asset, amount, stake):
            amount, stake = amount * UNIT[asset], stake * UNIT[asset]
            terms = (
                assets[asset],
                amount,
                chain.pending_timestamp + DAY,
                stake,
                ETH,
                0,
                arbiter.address,
                DAY // 2,
                False,
                "",
            )
            self._send(escrow.createTask, terms, sender=poster, value=self._value(assets[asset], amount))

        @precondition(lambda self: len(self.bounties) < 5)
        @rule(
            poster=st.sampled_from(people[:3]),
            asset=st.sampled_from(["eth", "ausd"]),
            amount=st.integers(1, 5),
            rate=st.integers(1, 3),
        )
        def create_service(self, poster, asset, amount, rate):
            amount, rate = amount * UNIT[asset], rate * UNIT[asset] // 2
            terms = (assets[asset], amount, chain.pending_timestamp + DAY, attester.address, rate, False, "")
            self._send(escrow.createService, terms, sender=poster, value=self._value(assets[asset], amount))

        @precondition(lambda self: self.bounties)
        @rule(data=st.data(), funder=st.sampled_from(people[:6]), amount=st.integers(1, 3))
        def fund(self, data, funder, amount):
            bounty = self._pick(data)
            asset = self.bounties[bounty].asset
            amount *= UNIT["eth" if asset == ETH else "ausd"]
            self._send(escrow.fund, bounty, amount, sender=funder, value=self._value(asset, amount))

        @precondition(lambda self: any(m.status == "Claimed" for m in self.bounties.values()))
        @rule(data=st.data(), amount=st.integers(1, 20), by_claimant=st.booleans())
        def fund_late(self, data, amount, by_claimant):
            """Funding while claimed, often by the claimant itself before it misses the deadline."""
            bounty = self._pick(data, "task", "Claimed")
            m = self.bounties[bounty]
            funder = by_address[m.claimant] if by_claimant else data.draw(st.sampled_from(people[:6]))
            amount *= UNIT["eth" if m.asset == ETH else "ausd"]
            self._send(escrow.fund, bounty, amount, sender=funder, value=self._value(m.asset, amount))

        @precondition(lambda self: any(m.kind == "task" for m in self.bounties.values()))
        @rule(data=st.data(), roll=st.integers(0, 9), claimant=st.sampled_from(people[3:6]))
        def advance_task(self, data, roll, claimant):
            """Takes a live task one step along its life (roll picks the branch)."""
            task = self._pick(data, "task", "Open", "Claimed", "Submitted", "Rejected", "Disputed")
            if task is None:
                return
            m = self.bounties[task]
            poster, stage = by_address[m.poster], m.status
            if stage == "Open" and roll < 9:
                self._send(escrow.claim, task, 0, sender=claimant, value=self._value(m.asset, m.stake))
            elif stage == "Open":
                self._send(escrow.cancel, task, sender=poster)
            elif stage == "Claimed" and roll < 5:
                self._send(escrow.submit, task, "ipfs://work", b"\x01" * 32, sender=by_address[m.claimant])
            elif stage == "Claimed" and roll < 7:
                self._send(escrow.reopen, task, sender=poster)  # refused for a staked claim
            elif stage == "Submitted":
                self._send(escrow.accept if roll < 5 else escrow.reject, task, sender=poster)
            elif stage == "Rejected" and roll < 7:
                self._send(escrow.dispute, task, sender=by_address[m.claimant])
            elif stage == "Disputed":
                self._send(escrow.resolve, task, roll < 4, sender=arbiter)
            else:  # let the clock run out instead (a claim not delivered is slashed)
                chain.mine(timestamp=chain.pending_timestamp + DAY)
                self._send(escrow.finalize, task, sender=deployer)

        @precondition(lambda self: any(m.kind == "service" for m in self.bounties.values()))
        @rule(data=st.data(), worker=st.sampled_from(people[3:6]))
        def join(self, data, worker):
            self._send(escrow.join, self._pick(data, "service"), 0, sender=worker)

        @precondition(lambda self: any(m.workers for m in self.bounties.values()))
        @rule(data=st.data(), leaves=st.booleans())
        def leave_or_removed(self, data, leaves):
            service = data.draw(st.sampled_from([i for i, m in self.bounties.items() if m.workers]))
            m = self.bounties[service]
            worker = data.draw(st.sampled_from(sorted(m.workers)))
            if leaves:
                self._send(escrow.leave, service, sender=by_address[worker])
            else:  # refused once the worker has served
                self._send(escrow.removeWorker, service, worker, sender=by_address[m.poster])

        @precondition(lambda self: any(m.kind == "service" for m in self.bounties.values()))
        @rule(data=st.data(), worker=st.sampled_from(people[3:6]), units=st.integers(0, 4))
        def work_and_pay_out(self, data, worker, units):
            if units:
                attester.record(worker, units, sender=deployer)
                self.units[str(worker.address)] += units
            self._send(escrow.payOut, self._pick(data, "service"), worker, sender=deployer)

        @precondition(lambda self: any(m.kind == "service" for m in self.bounties.values()))
        @rule(data=st.data())
        def cancel_service(self, data):
            service = self._pick(data, "service")
            self._send(escrow.cancel, service, sender=by_address[self.bounties[service].poster])

        @precondition(lambda self: self.bounties)
        @rule(data=st.data())
        def finalize(self, data):
            self._send(escrow.finalize, self._pick(data), sender=deployer)

        @precondition(lambda self: any(m.status == "Closed" for m in self.bounties.values()))
        @rule(data=st.data(), funder=st.sampled_from(people[:6]))
        def refund(self, data, funder):
            self._send(escrow.refund, self._pick(data, None, "Closed"), sender=funder)

        @rule(account=st.sampled_from(people), asset=st.sampled_from(["eth", "ausd"]))
        def withdraw(self, account, asset):
            self._send(escrow.withdraw, assets[asset], sender=account)

        @rule(seconds=st.integers(60, 2 * DAY))
        def wait(self, seconds):
            chain.mine(timestamp=chain.pending_timestamp + seconds)

        # -- invariants (one batched round trip per step) -------------------------------------

        @invariant()
        def money_and_bounties_match_the_model(self):
            if not hasattr(self, "bounties"):
                return
            keys = [(asset, str(p.address)) for p in people for asset in assets.values()]
            with w3.batch_requests() as batch:
                batch.add(escrow_w3.functions.owed(ETH))
                batch.add(escrow_w3.functions.owed(token.address))
                batch.add(w3.eth.get_balance(escrow.address))
                batch.add(token_w3.functions.balanceOf(escrow.address))
                for asset, account in keys:
                    batch.add(escrow_w3.functions.withdrawable(asset, account))
                for bounty in self.bounties:
                    batch.add(escrow_w3.functions.getBounty(bounty))
                    if self.bounties[bounty].kind == "service":
                        batch.add(escrow_w3.functions.getService(bounty))
                results = iter(batch.execute())
            owed_eth, owed_token, eth_held, token_held = (next(results) for _ in range(4))
            assert (owed_eth, owed_token) == (eth_held, token_held)  # holds exactly what it owes
            for key in keys:  # credits are what the rules gave, less what was withdrawn
                assert next(results) == self.credited[key] - self.withdrawn[key]
            for m in self.bounties.values():
                b = next(results)
                status, funded, paid, slashed, refunded = b[1], b[6], b[7], b[8], b[9]
                assert STATUS[status] == m.status
                assert (funded, paid, slashed, refunded) == (m.funded, m.paid, m.slashed, m.refunded)
                assert paid + refunded <= funded + slashed
                if m.kind == "service":
                    assert sorted(next(results)[2]) == sorted(m.workers)
                if m.status == "Closed" and not m.contribution:  # all refunded: every unit went somewhere
                    assert paid + refunded == funded + slashed
                if m.slashed:
                    # the stake goes to the funders before the claim; the claimant, whatever it
                    # funded, gets back its own funding and not a wei more
                    assert m.pool_refunded <= m.slashed
                    if m.claimant in m.refunded_to:
                        assert m.refunded_to[m.claimant] == m.given[m.claimant]
                    if m.status == "Closed" and not m.contribution:
                        assert m.pool_refunded == m.slashed

    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=6,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
