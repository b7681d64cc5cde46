"""Fault injection: the ways a sequencer started with `--fault KIND` lies about a batch.

Each fault gives the trace a lying sequencer stands behind, `roots[0 … n]` over the batch it
really posts (§Dispute game: the trace), so that it can claim the last root and defend it move
by move with the same story. Every kind departs from the honest trace at some transaction,
which is where the watchtower's one-step proof catches it.
"""

from __future__ import annotations

from enum import StrEnum

from offchain.errors import InvalidInput
from offchain.hashing import keccak
from offchain.l2.batch import Batch
from offchain.l2.codec import Deposit
from offchain.l2.dispute import BatchTrace
from offchain.l2.smt import EMPTY
from offchain.l2.stf import BlockContext, State, Status, apply_tx, nonce_key

WRONG_FEE_RECIPIENT = "0x" + keccak(b"not the sequencer")[:20].hex()


class Fault(StrEnum):
    WRONG_ROOT = "wrong-root"  # a made-up root from the middle transaction on
    SKIPPED_DEPOSIT = "skipped-deposit"  # the first deposit of the batch left out of the state
    WRONG_FEE = "wrong-fee"  # fees credited to an account that is not the block's sequencer
    DOUBLE_APPLY = "double-apply"  # the first successful signed transaction's effect applied twice
    UNEXECUTED = "unexecuted"  # the root claimed without running the batch: the pre-state root


def faulty_trace(fault: Fault, honest: BatchTrace) -> BatchTrace:
    """The trace a sequencer with `fault` claims for the batch of `honest`."""
    if honest.tx_count == 0:
        raise InvalidInput("an empty batch leaves nothing to lie about")
    if fault == Fault.WRONG_ROOT:
        return honest.lying_from(honest.tx_count // 2, keccak(b"fault: wrong root"))
    if fault == Fault.UNEXECUTED:
        return BatchTrace(*_fields(honest), roots=(honest.roots[0],) * (honest.tx_count + 1))
    roots = _run(fault, honest.pre_state, honest.batch, honest.chain_id, honest.inbox, honest.poster)
    if roots == honest.roots:
        raise InvalidInput(f"the batch gives {fault.value} nothing to change (no deposit, fee or success)")
    if roots[-1] == EMPTY:  # the empty state's: appended with it, a batch carries no claim at all
        raise InvalidInput(f"{fault.value} would leave the state empty: no root to lie with")
    return BatchTrace(*_fields(honest), roots=roots)


def _fields(trace: BatchTrace) -> tuple:
    return trace.pre_state, trace.batch, trace.chain_id, trace.inbox, trace.poster


def _run(
    fault: Fault, state: State, batch: Batch, chain_id: int, inbox: str, poster: str
) -> tuple[bytes, ...]:
    """The batch run with the fault, one transaction at a time: the root after each."""
    roots = [state.root]
    pending = True  # the fault strikes once
    for block in batch.blocks:
        sequencer = WRONG_FEE_RECIPIENT if fault == Fault.WRONG_FEE else poster
        ctx = BlockContext(chain_id, inbox, block.timestamp, sequencer)
        for tx in block.txs:
            status, writes = apply_tx(tx, ctx, state.read)
            if pending and fault == Fault.SKIPPED_DEPOSIT and isinstance(tx, Deposit):
                writes, pending = {}, False
            elif (
                pending
                and fault == Fault.DOUBLE_APPLY
                and status == Status.OK
                and not isinstance(tx, Deposit)
            ):
                once = state.apply(writes)
                nonce = nonce_key(tx.sender)

                def before_nonce(
                    key: bytes, once: State = once, before: State = state, nonce: bytes = nonce
                ) -> bytes | None:
                    return before.read(key) if key == nonce else once.read(key)

                _, again = apply_tx(tx, ctx, before_nonce)
                writes, pending = {**writes, **again}, False
            if writes:
                state = state.apply(writes)
            roots.append(state.root)
    return tuple(roots)
