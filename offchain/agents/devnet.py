"""The operators' rounds on a local anvil, driven from one thread.

In the main job every service lives in one process (as DESIGN allows): the sequencers' and the
node's APIs answer on their own threads, but everything that writes to L1 (batches, claims,
disputes, re-proposals, and the other agents' transactions while the rollup runs) goes through
this driver's thread, one after another, as separate operators' transactions would reach a
block one after another. Each tick it mines an L1 block (the chain's clock), then each operator
takes its turn (`SequencerService.step`, a liar's defence, the watchtower's round), and every
few ticks the node syncs. Every block is mined while no sequencer admits, and every sequencer's
view of L1 is renewed before they admit again: anvil mines a block per transaction, so a batch
or a dispute's moves move the slot schedule too, and a leader must never admit in a slot that
has passed. So the sequencers step on those views, and only the node's sync, which never sends
a transaction, runs while they admit.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from typing import Any

from ape import chain

from offchain.challenger.watchtower import Watchtower
from offchain.node.replica import ReplicaNode
from offchain.sequencer.service import SequencerService

log = logging.getLogger("agentl2.devnet")


def mine(blocks: int) -> None:
    """Mines `blocks` blocks on the anvil (ape's `chain.mine` needs its foundry provider; a run on
    an anvil named by URL has a plain node provider)."""
    chain.provider.make_request("anvil_mine", [blocks])


class Devnet:
    """Drives `services`, their `defenses`, the `watchtower` and the `node` every `tick` seconds."""

    def __init__(
        self,
        services: list[SequencerService],
        watchtower: Watchtower,
        node: ReplicaNode,
        defenses: list[Callable[[], None]] | None = None,
        tick: float = 0.25,
        node_every: int = 4,
    ):
        self.services = services
        self.watchtower = watchtower
        self.node = node
        self.defenses = defenses or []
        self.tick = tick
        self.node_every = node_every  # ticks between the node's syncs (it reads every batch event)
        self._head = -1
        self.blocks = 0  # mined by the driver
        self.errors: list[str] = []  # rounds that failed (logged; the next round tries again)
        # Each sequencer's step uses the view this driver renewed after the last block it saw.
        self._steps = [functools.partial(s.step, view_age=math.inf) for s in services]
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple, Future]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devnet", daemon=True)

    def start(self) -> Devnet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = 120.0) -> Any:
        """Runs `function(*args)` on the driver's thread between rounds; returns its result."""
        future: Future = Future()
        self._calls.put((function, args, future))
        return future.result(timeout)

    def mine(self) -> None:
        """One L1 block, with every sequencer's view of L1 renewed before any admits again."""
        with self._admissions_held():
            mine(1)
            self.blocks += 1
            self._renew_views()

    @contextmanager
    def _admissions_held(self) -> Iterator[None]:
        with ExitStack() as locks:
            for service in self.services:
                locks.enter_context(service.lock)
            yield

    def _renew_views(self) -> None:
        self._head = chain.provider.web3.eth.block_number
        for service in self.services:
            service.view(max_age=0.0)

    def _after_transactions(self, part: Callable[..., Any]) -> bool:
        """A transaction mines a block of its own (anvil's automine): the views follow it.
        Call it holding the admissions (`_admissions_held`); returns whether the head moved."""
        before = self._head
        if chain.provider.web3.eth.block_number == before:
            return False
        self._renew_views()
        name = getattr(part, "__qualname__", None) or getattr(
            getattr(part, "func", None), "__qualname__", repr(part)
        )
        log.debug("%s mined %d block(s), to %d", name, self._head - before, self._head)
        return True

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(self.tick):
            self._drain()
            self.mine()
            for part in [*self._steps, *self.defenses, self.watchtower.step]:
                self._turn(part)
            if rounds % self.node_every == 0:
                self._read(self.node.sync)
            rounds += 1
        self._drain()

    def _read(self, part: Callable[[], Any]) -> None:
        """A part that only reads L1 (the node's sync) runs while the sequencers admit."""
        try:
            part()
        except Exception as exc:
            log.exception("devnet round failed")
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _turn(self, part: Callable[[], Any]) -> None:
        # No sequencer admits while a part runs: its transactions mine blocks (a batch, a
        # dispute's moves), and a leader must never admit in a slot they have passed.
        with self._admissions_held():
            try:
                part()
            except Exception as exc:  # a failed round is logged and tried again next tick
                log.exception("devnet round failed")
                self.errors.append(f"{type(exc).__name__}: {exc}")
            moved = self._after_transactions(part)
        if moved:
            self._sequencers_turn(part)

    def _sequencers_turn(self, after: Callable[..., Any]) -> None:
        """After another agent's transactions moved the slot schedule, each sequencer steps at
        once: a leader whose slot now closes posts before anything else mines a block (on a real
        L1 the clock moves on its own; here a slot could pass while others took their turns)."""
        if after not in self._steps:
            for step in self._steps:
                self._turn(step)

    def _drain(self) -> None:
        while True:
            try:
                function, args, future = self._calls.get_nowait()
            except queue.Empty:
                return
            with self._admissions_held():
                try:
                    future.set_result(function(*args))
                except Exception as exc:
                    future.set_exception(exc)
                moved = self._after_transactions(function)
            if moved:
                self._sequencers_turn(function)
