"""The L2 state derived from L1 alone: every appended batch's data, replayed by the Python STF.

Data is canonical once appended (claims are not): the state after batch `i` is what the batches
0 … i do, whoever posted them and whatever roots were claimed. A replica node (a later issue)
keeps this on disk; this in-memory form serves scripts and tests, such as proving a withdrawal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ape import chain
from eth_utils import to_checksum_address

from offchain.errors import AgentL2Error
from offchain.l2.batch import Batch, execute_batch
from offchain.l2.dispute import BatchTrace
from offchain.l2.stf import State, withdrawal_key
from offchain.rollup.inbox import AppendedBatch, Inbox, Withdrawal


class DerivationError(AgentL2Error):
    """L1 data that cannot be replayed (it never happens with data the inbox accepted)."""


@dataclass
class Derivation:
    """The states after each batch of one rollup, replayed from its inbox."""

    inbox: Inbox
    chain_id: int
    start_block: int = 0
    batches: list[AppendedBatch] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    # The first L1 block the next sync reads events from: each sync reads only the blocks mined
    # since the last one (an L1 reorganization is the replica node's to detect, not this).
    next_block: int = -1

    def sync(self) -> int:
        """Replays the batches appended since the last sync; returns how many batches there are."""
        state = self.states[-1] if self.states else State()
        head = chain.provider.web3.eth.block_number
        first = max(self.start_block, self.next_block)
        for appended in self.inbox.batches(first, head) if first <= head else []:
            if appended.index < len(self.batches):
                continue  # added by `extend` (its poster's own batch)
            if appended.index > len(self.batches):
                raise DerivationError(f"batch {appended.index} came before batch {len(self.batches)}")
            batch = Batch.decode(self.inbox.batch_data(appended))
            state, _, _ = execute_batch(state, batch, self.chain_id, self.inbox.address, appended.poster)
            self.batches.append(appended)
            self.states.append(state)
        self.next_block = head + 1
        return len(self.batches)

    def extend(self, appended: AppendedBatch, state: State) -> None:
        """Adds the next batch with the state its poster computed before posting it (a
        sequencer's own batch), instead of replaying its data a second time."""
        if appended.index != len(self.batches):
            raise DerivationError(f"batch {appended.index} is not the next one ({len(self.batches)})")
        self.batches.append(appended)
        self.states.append(state)

    def root(self, index: int) -> bytes:
        return self.states[index].root

    def trace(self, index: int) -> BatchTrace:
        """The honest trace of batch `index`, from the state the batches before it leave."""
        appended = self.batches[index]
        pre = self.states[index - 1] if index else State()
        batch = Batch.decode(self.inbox.batch_data(appended))
        return BatchTrace.run(pre, batch, self.chain_id, self.inbox.address, appended.poster)

    def withdrawal_proof(self, index: int, account: str, nonce: int) -> tuple[Withdrawal, bytes]:
        """The withdrawal leaf of (`account`, `nonce`) in the state after batch `index`, with its proof."""
        state = self.states[index]
        key = withdrawal_key(account, nonce)
        value = state.read(key)
        if value is None:
            raise DerivationError(f"no withdrawal of {account} with nonce {nonce} after batch {index}")
        token, amount, recipient = value[:20], value[20:36], value[36:56]
        leaf = Withdrawal(
            account=account,
            nonce=nonce,
            token=to_checksum_address(token),
            amount=int.from_bytes(amount, "big"),
            recipient=to_checksum_address(recipient),
        )
        return leaf, state.tree.prove(state.root, key).encode()
