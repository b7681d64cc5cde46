"""The sequencer's schedule: accept while leading, post before the slot passes on.

The sequencer set says who leads each slot of `slotLength` L1 blocks. A transaction sent now is
mined in the next L1 block, so "leading" means leading the slot of the head's next block. While
it leads, the service posts what it has confirmed every `post_interval` seconds, and at once in
the slot's last `close_blocks` blocks, which admit nothing (`SlotClosing`): what it confirmed is
on L1 before the next leader builds on it. When another operator leads, submissions are refused
(`NotLeader`, with the leader's address) and the service only follows L1. Should a slot pass
with confirmed transactions unposted all the same (L1 too fast, the operator too slow, or ejected
from the set in the middle of its slot), the next leader builds without them and they are
dropped as soon as the slot has passed, never executed on a state they were not built on: their
signed confirmations are the evidence (`Sequencer.drop_stale`), and `GET /v1/dropped` tells their
holders to send them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ape import chain
from eth_utils import to_checksum_address
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from offchain.chain.calls import view
from offchain.errors import ContractReverted
from offchain.sequencer.core import Rejected, Sequencer

log = logging.getLogger("agentl2.sequencer")


class NotLeader(Rejected):
    """Submitted while another operator leads the slot."""

    def __init__(self, leader: str):
        self.leader = leader
        super().__init__(f"this sequencer does not lead the current slot; the leader is {leader}")


class SlotClosing(NotLeader):
    """Submitted in the last blocks of the leader's slot, which are kept for posting what it
    confirmed; `leader` is the next slot's, None while its epoch's seed is not drawn yet."""

    def __init__(self, blocks: int, leader: str | None):
        self.leader = leader  # type: ignore[assignment]
        then = f"the next slot's leader is {leader}" if leader else "retry after the next L1 block"
        Rejected.__init__(
            self, f"this sequencer's slot closes: its last {blocks} L1 block(s) are kept for posting; {then}"
        )


@dataclass(frozen=True)
class L1View:
    """What the schedule needs of L1 at one moment: the head, and who leads around it."""

    head: int
    timestamp: int
    slot: int  # the slot of the head's next block (where a transaction sent now is mined)
    blocks_left: int  # the blocks of `slot` after that next one (0: it is the slot's last)
    leader: str  # the leader of `slot`
    head_leader: str  # the leader of the head block's slot (where a gas estimate runs)
    fetched: float  # time.monotonic() when read


class Schedule:
    """The slot schedule of one sequencer set, read from the contract."""

    def __init__(self, sequencer_set: Any):
        self.contract = sequencer_set
        self.genesis = int(view(sequencer_set, "genesisBlock"))
        self.slot_length = int(view(sequencer_set, "slotLength"))

    def next_slot(self) -> tuple[int, bool]:
        """The slot of the head's next block, and whether that block is the slot's last."""
        offset = chain.blocks.head.number + 1 - self.genesis
        return offset // self.slot_length, offset % self.slot_length == self.slot_length - 1

    def head_slot(self) -> int:
        """The slot of the head block: where a gas estimate runs (at the head, not the next block)."""
        return (chain.blocks.head.number - self.genesis) // self.slot_length

    def leader(self, slot: int, block: int | str = "latest") -> str:
        """The leader of `slot` as of `block` (one eth_call: ape's call handler would derive its
        test accounts anew on every call, milliseconds that the schedule reads every poll)."""
        web3 = chain.provider.web3
        call = {"to": self.contract.address, "data": self.contract.leaderOf.encode_input(slot)}
        try:
            return to_checksum_address(web3.eth.call(call, block)[-20:])
        except Web3ContractLogicError as exc:
            if "seed not fixed" not in str(exc):
                raise ContractReverted("SequencerSet", "leaderOf", str(exc)) from None
        # The first slot of an epoch that begins with the next block: its seed is the hash of the
        # head block, which a call at the head cannot read. The pending block can.
        return to_checksum_address(web3.eth.call(call, "pending")[-20:])

    def view(self) -> L1View:
        head = chain.provider.web3.eth.get_block("latest")
        offset = head["number"] + 1 - self.genesis
        slot, head_slot = offset // self.slot_length, (offset - 1) // self.slot_length
        leader = self.leader(slot, head["number"])
        return L1View(
            head=head["number"],
            timestamp=head["timestamp"],
            slot=slot,
            blocks_left=self.slot_length - 1 - offset % self.slot_length,
            leader=leader,
            head_leader=leader if head_slot == slot else self.leader(head_slot, head["number"]),
            fetched=time.monotonic(),
        )


class SequencerService:
    """Runs a `Sequencer` on the schedule (call `step` in a loop, or `start` a thread).

    Submissions check the leader against a view of L1 at most `view_ttl` seconds old (0: read on
    every call), so that the hot path makes no RPC call; the schedule's loop renews it every
    `poll` seconds. The service also stamps new L2 blocks with that view's L1 time. A view that
    old can be one L1 block behind: keep `view_ttl` far below the L1 block time.
    """

    def __init__(
        self,
        core: Sequencer,
        schedule: Schedule,
        post_interval: float = 2.0,
        poll: float = 0.2,
        view_ttl: float = 0.0,
        defense: Callable[[], None] | None = None,
        close_blocks: int = 1,
    ):
        self.core = core
        self.schedule = schedule
        # The slot's last blocks admit nothing: what the leader confirmed must be on L1 before
        # the next leader builds, and a batch sent in the last block has only that block to land.
        self.close_blocks = max(0, min(close_blocks, schedule.slot_length - 1))
        self.post_interval = post_interval
        self.poll = poll
        self.view_ttl = view_ttl
        self.defense = defense  # run each round on the loop's thread (its L1 sends never race ours)
        self.lock = core.lock  # shared with the API: one caller inside the core at a time
        self._view: L1View | None = None
        self._next_leaders: dict[int, str] = {}  # slot -> its leader, for the slot before it
        self._caught_up = -1  # the L1 head `catch_up` last followed
        self._last_post = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by a submission that filled a batch
        self._threads: list[threading.Thread] = []
        core.clock = self.l1_time

    def view(self, max_age: float | None = None) -> L1View:
        """The cached view of L1, read again if older than `max_age` (default `view_ttl`)."""
        age = self.view_ttl if max_age is None else max_age
        current = self._view
        if current is None or time.monotonic() - current.fetched > age:
            current = self._view = self.schedule.view()
        return current

    def l1_time(self) -> int:
        return self.view().timestamp

    def leads(self, current: L1View) -> bool:
        return current.leader.lower() == self.core.address.lower()

    def leader(self) -> str:
        return self.view().leader

    def closing(self, current: L1View) -> bool:
        """Whether the head's next block is among the last `close_blocks` of its slot and
        another operator (or one not drawn yet) leads the next slot."""
        if current.blocks_left >= self.close_blocks:
            return False
        return (self._next_leader(current) or "").lower() != self.core.address.lower()

    def submit(self, record: bytes):
        """The API's submit: refused unless this sequencer leads the next block's slot."""
        with self.lock:
            current = self.view()
            if not self.leads(current):
                raise NotLeader(current.leader)
            if self.closing(current):
                raise SlotClosing(self.close_blocks, self._next_leader(current))
            self.catch_up()
            confirmation = self.core.submit(record)
            if self.core.unposted_bytes() >= self.core.batch_bytes:
                self._wake.set()  # a batch's worth waits: post now, not at the next interval
            return confirmation

    def catch_up(self) -> None:
        """Follows L1 (`Sequencer.refresh`) once per new head seen, before the pending state
        admits or is read: a new leader answers with the batch its predecessor just posted,
        without waiting for the schedule's next round. Call it holding `lock`."""
        head = self.view().head
        if head != self._caught_up:
            self.core.refresh()
            self._caught_up = head

    def _next_leader(self, current: L1View) -> str | None:
        """The leader of the slot after `current`'s (read once per slot), None while not drawn."""
        known = self._next_leaders.get(current.slot + 1)
        if known is not None:
            return known
        try:
            known = self.schedule.leader(current.slot + 1, current.head)
        except (ContractReverted, Web3ContractLogicError):  # its epoch's seed: a block not mined yet
            return None
        self._next_leaders = {current.slot + 1: known}
        return known

    def step(self, view_age: float = 0.0) -> int | None:
        """One round of the schedule; returns the index of a batch it posted. `view_age`: how
        old a view of L1 it may use (a driver that renews every view after each block it sees
        mined passes infinity)."""
        # L1 reads outside the lock: submissions use the fresh view and find the queue read.
        current = self.view(max_age=view_age)
        self.core.queue.sync()
        with self.lock:
            # What other leaders posted; our unposted blocks dropped if one of them overtook them.
            self.core.follow()
            if not self.leads(current):
                if self.core.blocks or self.core.sealed:
                    # Our slot passed with them unposted: no batch of ours can land until we lead
                    # again, and the next leader builds without them. Dropped now, their payers
                    # (a facilitator) can send them to that leader at once.
                    self.core.drop_stale()
                return None
            due = (
                self.closing(current)
                or time.monotonic() - self._last_post >= self.post_interval
                or self.core.unposted_bytes() >= self.core.batch_bytes
            )
            if not due:
                return None
            # In the first block of its slot the leader waits a block: the estimate of its batch
            # would run at the head, in the slot before, and be refused there.
            if current.head_leader.lower() != self.core.address.lower():
                return None
            self._last_post = time.monotonic()
            self.core.take_queue()
        index = self.core.post()  # outside the lock: submissions go on while the batch is mined
        if index is not None:
            log.info("slot %d: posted batch %d", current.slot, index)
        return index

    def start(self) -> SequencerService:
        """Runs the schedule's loop, and beside it a reader that renews the view of L1 every
        `poll` seconds (so that submissions find it fresh while the loop posts a batch)."""
        self._threads = [
            threading.Thread(target=self._run, name="sequencer-schedule", daemon=True),
            threading.Thread(target=self._watch, name="sequencer-l1-view", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the loop after posting what it confirmed, if it still leads."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self.leads(self.view(max_age=0.0)):
            self.core.post()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self.step() is not None and self.core.unposted_bytes() >= self.core.batch_bytes:
                    self._wake.set()  # another batch's worth is waiting
                if self.defense is not None:
                    self.defense()
            except Exception:  # a failed round is logged and retried; the loop must not die
                log.exception("sequencer round failed")
                self._stop.wait(self.poll)

    def _watch(self) -> None:
        # Renewed twice per `view_ttl`, so that a submission finds the view fresh and reads none.
        interval = min(self.poll, self.view_ttl / 2) if self.view_ttl > 0 else self.poll
        while not self._stop.wait(interval):
            try:
                self.view(max_age=0.0)
            except Exception:  # a failed read is logged and retried
                log.exception("reading L1 failed")
