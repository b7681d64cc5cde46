"""Inbox under random (a Hypothesis state machine on anvil, beside the rollup fixtures it uses): deposits, forced and sequenced withdrawals, batches, finality and payouts.

Random sequences deposit ETH and AgentUSD, queue signed withdrawals from L1, append batches that
carry the whole pending queue plus withdrawals sent to the sequencer (each batch's root claimed
as the Python STF computes it), let claims finalize and pay every final withdrawal on L1 with
its proof (and try to pay it twice). After every step: what the inbox holds of each token equals
its deposits minus the withdrawals paid, and equals its balance; no withdrawal is paid twice.
"""

from __future__ import annotations

import pytest
from ape.exceptions import ContractLogicError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from offchain.l2.batch import Batch, Block, execute_batch
from offchain.l2.codec import Withdraw, decode, encode
from offchain.l2.signing import sign, withdraw_digest
from offchain.l2.stf import State, Status, balance_key, nonce_key, withdrawal_key
from tests.contracts.rollup.conftest import CHAIN_ID, L2_ADDRS, L2_KEYS

pytestmark = pytest.mark.fuzzing

ETH = "0x" + "00" * 20


def test_inbox_holds_deposits_minus_paid_withdrawals(
    chain, inbox, sequencer, stake_token, deployer, accounts, params
):
    depositor, payee = accounts[8], accounts[9]
    tokens = {"eth": ETH, "ausd": str(stake_token.address)}
    stake_token.mint(depositor, 10**15, sender=deployer)
    stake_token.approve(inbox.address, 10**15, sender=depositor)

    class InboxMachine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.snapshot = chain.snapshot()
            self.state = State()
            self.deposited = dict.fromkeys(tokens.values(), 0)
            self.paid = dict.fromkeys(tokens.values(), 0)
            self.leaves: list[tuple[str, int, str, int]] = []  # (account, nonce, token, amount) made on L2
            self.states: list[State] = []
            self.paid_keys: set[bytes] = set()
            self.pending_l2: list[Withdraw] = []

        def teardown(self):
            if hasattr(self, "snapshot"):
                chain.restore(self.snapshot)

        def _withdraw(self, user: int, token: str, amount: int, nonce: int) -> Withdraw:
            fields = (L2_ADDRS[user], token, amount, 0, payee.address, nonce)
            digest = withdraw_digest(Withdraw(*fields, b"\x00" * 65), CHAIN_ID, inbox.address)
            return Withdraw(*fields, sign(L2_KEYS[user], digest))

        def _nonce(self, user: int) -> int:
            raw = self.state.read(nonce_key(L2_ADDRS[user]))
            return int.from_bytes(raw, "big") if raw else 0

        @rule(user=st.integers(0, 3), asset=st.sampled_from(sorted(tokens)), amount=st.integers(1, 10**6))
        def deposit(self, user, asset, amount):
            if asset == "eth":
                inbox.contract.depositETH(L2_ADDRS[user], sender=depositor, value=amount)
            else:
                inbox.contract.depositERC20(stake_token, L2_ADDRS[user], amount, sender=depositor)
            self.deposited[tokens[asset]] += amount

        @rule(user=st.integers(0, 3), asset=st.sampled_from(sorted(tokens)), amount=st.integers(1, 10**6))
        def withdraw_from_l1(self, user, asset, amount):
            # Signed with the account's nonce now: it may fail on L2 (balance, nonce), which is fine.
            record = encode(self._withdraw(user, tokens[asset], amount, self._nonce(user)))
            inbox.contract.enqueueRecord(record, sender=depositor)

        @rule(user=st.integers(0, 3), asset=st.sampled_from(sorted(tokens)), share=st.integers(1, 4))
        def withdraw_on_l2(self, user, asset, share):
            raw = self.state.read(balance_key(L2_ADDRS[user], tokens[asset]))
            balance = int.from_bytes(raw, "big") if raw else 0
            if balance:
                self.pending_l2.append(
                    self._withdraw(user, tokens[asset], max(balance // share, 1), self._nonce(user))
                )

        @rule()
        def append(self):
            queued = [decode(entry.record) for entry in inbox.pending_queue()]
            txs = tuple(queued + self.pending_l2[:1])  # at most one sequenced withdrawal per batch
            self.pending_l2 = self.pending_l2[1:]
            batch = Batch((Block(chain.blocks.head.timestamp, txs),))
            state, statuses, _ = execute_batch(self.state, batch, CHAIN_ID, inbox.address, sequencer.address)
            if state.root == b"\x00" * 32:
                return  # nothing deposited yet: the empty tree's root is no claim
            inbox.append_batch(sequencer, batch, state.root)
            for tx, status in zip(txs, statuses, strict=True):
                if isinstance(tx, Withdraw) and status == Status.OK:
                    self.leaves.append((tx.sender, tx.nonce, tx.token, tx.amount))
            self.state = state
            self.states.append(state)

        @rule()
        def finalize(self):
            chain.mine(1, deltatime=params.challenge_window)
            inbox.finalize(sequencer)

        @rule(again=st.booleans())
        def pay(self, again):
            final = inbox.count("finalizedCount")
            if not final:
                return
            state = self.states[final - 1]
            for account, nonce, token, amount in self.leaves:
                key = withdrawal_key(account, nonce)
                if state.read(key) is None or (key in self.paid_keys and not again):
                    continue
                proof = state.tree.prove(state.root, key).encode()
                try:
                    inbox.contract.finalizeWithdrawal(
                        final - 1, account, nonce, token, amount, payee.address, proof, sender=depositor
                    )
                except ContractLogicError as error:
                    assert key in self.paid_keys and "already withdrawn" in str(error)
                    continue
                assert key not in self.paid_keys, "a withdrawal was paid twice"
                self.paid_keys.add(key)
                self.paid[token] += amount

        @invariant()
        def held_is_deposits_minus_paid(self):
            if not hasattr(self, "paid"):
                return
            for token in tokens.values():
                held = inbox.count("held", token)
                assert held == self.deposited[token] - self.paid[token]
            assert chain.provider.get_balance(inbox.address) == inbox.count("held", ETH)
            assert stake_token.balanceOf(inbox.address) == inbox.count("held", tokens["ausd"])

    run_state_machine_as_test(
        InboxMachine,
        settings=settings(
            max_examples=4,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
