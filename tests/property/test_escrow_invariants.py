"""BountyEscrow under random actions by several funders, claimants, workers and an arbiter.

After every step: the escrow holds exactly what it owes in each asset, nobody has withdrawn more
than was credited to them, no bounty has paid out more than it took in, and refunds never exceed
a funder's pro-rata share (plus rounding dust, which only the last funder takes).
"""

from __future__ import annotations

from collections import defaultdict

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
CLOSED = 6
UNIT = {"eth": 10**15, "ausd": 10**4}
STATUS_EVENTS = ("Claimed", "Submitted", "Rejected", "Disputed", "Completed", "Closed")


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


def test_escrow_invariants_hold_under_random_actions(world, chain):
    escrow, token, attester, people, deployer = world
    arbiter = people[-1]
    assets = {"eth": ETH, "ausd": token.address}

    class EscrowMachine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.snapshot = chain.snapshot()
            self.tasks: list[int] = []
            self.services: list[int] = []
            self.credited: dict[tuple[str, str], int] = defaultdict(int)
            self.withdrawn: dict[tuple[str, str], int] = defaultdict(int)
            self.contributed: dict[tuple[int, str], int] = defaultdict(int)
            self.refunded: dict[tuple[int, str], tuple[int, int, int]] = {}  # share, pot, funded
            self.status: dict[int, str] = {}  # bounty -> its last status event
            # Start with a task in each asset and a service, so that every path is reachable at once.
            self.create_task(people[0], "eth", 3, 1)
            self.create_task(people[1], "ausd", 2, 2)
            self.create_service(people[2], "eth", 4, 2)

        def teardown(self):
            if hasattr(self, "snapshot"):
                chain.restore(self.snapshot)

        # -- helpers --------------------------------------------------------------------------

        def _send(self, call, *args, sender, value=0):
            try:
                receipt = call(*args, sender=sender, value=value)
            except ContractLogicError:
                return None  # refused: the invariants check that nothing moved
            self._record(receipt)
            return receipt

        def _record(self, receipt):
            for log in receipt.decode_logs():
                args, name = log.event_arguments, log.event_name
                if name in ("BountyCreated", *STATUS_EVENTS):
                    self.status[args["id"]] = name
                if name == "Funded":
                    self.contributed[(args["id"], str(args["funder"]))] += args["amount"]
                elif name in ("Completed", "StakeReturned", "PaidOut"):
                    who = args.get("claimant") or args.get("worker")
                    asset = str(escrow.getBounty(args["id"]).asset)
                    self.credited[(asset, str(who))] += args["amount"]
                elif name == "Withdrawn":
                    self.withdrawn[(str(args["asset"]), str(args["account"]))] += args["amount"]

        def _value(self, asset, amount):
            return amount if asset == ETH else 0

        # -- rules ----------------------------------------------------------------------------

        @precondition(lambda self: len(self.tasks) + len(self.services) < 4)  # depth over breadth
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
            receipt = self._send(
                escrow.createTask, terms, sender=poster, value=self._value(assets[asset], amount)
            )
            if receipt:
                self.tasks.append(escrow.bountyCount())

        @precondition(lambda self: len(self.tasks) + len(self.services) < 4)
        @rule(
            poster=st.sampled_from(people[:3]),
            asset=st.sampled_from(["eth", "ausd"]),
            amount=st.integers(1, 5),
            rate=st.integers(1, 3),
        )
        def create_service(self, poster, asset, amount, rate):
            amount, rate = amount * UNIT[asset], rate * UNIT[asset] // 2
            terms = (assets[asset], amount, chain.pending_timestamp + DAY, attester.address, rate, False, "")
            receipt = self._send(
                escrow.createService, terms, sender=poster, value=self._value(assets[asset], amount)
            )
            if receipt:
                self.services.append(escrow.bountyCount())

        @precondition(lambda self: self.tasks or self.services)
        @rule(data=st.data(), funder=st.sampled_from(people[:4]), amount=st.integers(1, 3))
        def fund(self, data, funder, amount):
            bounty = data.draw(st.sampled_from(self.tasks + self.services))
            asset = str(escrow.getBounty(bounty).asset)
            amount *= UNIT["eth" if asset == ETH else "ausd"]
            self._send(escrow.fund, bounty, amount, sender=funder, value=self._value(asset, amount))

        def _in(self, *statuses):
            return [i for i in self.tasks if self.status.get(i) in statuses]

        def _person(self, address):
            return next(p for p in people if str(p.address) == str(address))

        @precondition(lambda self: self._in("BountyCreated", "Claimed", "Submitted", "Rejected", "Disputed"))
        @rule(data=st.data(), roll=st.integers(0, 9), claimant=st.sampled_from(people[3:6]))
        def advance_task(self, data, roll, claimant):
            """Takes a live task one step along its life, mostly forward (roll picks the branch)."""
            task = data.draw(
                st.sampled_from(self._in("BountyCreated", "Claimed", "Submitted", "Rejected", "Disputed"))
            )
            b, t = escrow.getBounty(task), escrow.getTask(task)
            poster, stage = self._person(b.poster), self.status[task]
            if stage == "BountyCreated" and roll < 9:
                self._send(escrow.claim, task, 0, sender=claimant, value=self._value(str(b.asset), t.stake))
            elif stage == "BountyCreated":
                self._send(escrow.cancel, task, sender=poster)
            elif stage == "Claimed" and roll < 8:
                self._send(escrow.submit, task, "ipfs://work", b"\x01" * 32, sender=self._person(t.claimant))
            elif stage == "Submitted":
                self._send(escrow.accept if roll < 5 else escrow.reject, task, sender=poster)
            elif stage == "Rejected" and roll < 7:
                self._send(escrow.dispute, task, sender=self._person(t.claimant))
            elif stage == "Disputed":
                self._send(escrow.resolve, task, roll < 5, sender=arbiter)
            else:  # let the clock run out instead
                chain.mine(timestamp=chain.pending_timestamp + DAY)
                self._send(escrow.finalize, task, sender=deployer)

        @precondition(lambda self: self.services)
        @rule(data=st.data(), worker=st.sampled_from(people[3:6]))
        def join(self, data, worker):
            self._send(escrow.join, data.draw(st.sampled_from(self.services)), 0, sender=worker)

        @precondition(lambda self: self.services)
        @rule(data=st.data(), worker=st.sampled_from(people[3:6]), units=st.integers(0, 4))
        def work_and_pay_out(self, data, worker, units):
            if units:
                attester.record(worker, units, sender=deployer)
            self._send(escrow.payOut, data.draw(st.sampled_from(self.services)), worker, sender=deployer)

        @precondition(lambda self: self.tasks or self.services)
        @rule(data=st.data())
        def finalize(self, data):
            self._send(
                escrow.finalize, data.draw(st.sampled_from(self.tasks + self.services)), sender=deployer
            )

        @precondition(lambda self: "Closed" in self.status.values())
        @rule(data=st.data(), funder=st.sampled_from(people[:4]))
        def refund(self, data, funder):
            bounty = data.draw(st.sampled_from([i for i, v in self.status.items() if v == "Closed"]))
            before = escrow.getBounty(bounty)
            receipt = self._send(escrow.refund, bounty, sender=funder)
            if receipt:
                (log,) = receipt.decode_logs(escrow.Refunded)
                pot = before.funded + before.slashed - before.paid
                self.refunded[(bounty, str(funder.address))] = (log.amount, pot, before.funded)

        @rule(account=st.sampled_from(people), asset=st.sampled_from(["eth", "ausd"]))
        def withdraw(self, account, asset):
            self._send(escrow.withdraw, assets[asset], sender=account)

        @rule(seconds=st.integers(60, 2 * DAY))
        def wait(self, seconds):
            chain.mine(timestamp=chain.pending_timestamp + seconds)

        # -- invariants -----------------------------------------------------------------------

        @invariant()
        def holds_exactly_what_it_owes(self):
            if not hasattr(self, "tasks"):
                return
            assert escrow.owed(ETH) == chain.provider.get_balance(escrow.address)
            assert escrow.owed(token) == token.balanceOf(escrow)

        @invariant()
        def nobody_withdrew_more_than_credited(self):
            if not hasattr(self, "tasks"):
                return
            for person in people:
                for asset in assets.values():
                    key = (asset, str(person.address))
                    assert self.withdrawn[key] <= self.credited[key]
                    assert escrow.withdrawable(asset, person) == self.credited[key] - self.withdrawn[key]

        @invariant()
        def no_bounty_pays_more_than_it_took(self):
            if not hasattr(self, "tasks"):
                return
            for bounty in self.tasks + self.services:
                b = escrow.getBounty(bounty)
                assert b.paid + b.refunded <= b.funded + b.slashed
                assert sum(v for (i, _), v in self.contributed.items() if i == bounty) == b.funded
                if b.status == CLOSED and b.refunds == b.funders:
                    assert b.paid + b.refunded == b.funded + b.slashed  # every unit went somewhere

        @invariant()
        def refunds_are_pro_rata(self):
            if not hasattr(self, "tasks"):
                return
            for (bounty, funder), (share, pot, funded) in self.refunded.items():
                fair = pot * self.contributed[(bounty, funder)] // funded
                assert fair <= share <= fair + escrow.getBounty(bounty).funders  # dust, last funder only

    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
