"""Fault injection's edge: a lie must be a claim. The empty state's root is zero, and a batch
appended with a zero root carries no claim at all, so a fault that would leave the state empty
has nothing to lie with (the sequencer claims that batch honestly and lies in a later one)."""

from __future__ import annotations

import pytest

from offchain.errors import InvalidInput
from offchain.l2.batch import Batch, Block, execute_batch
from offchain.l2.codec import Deposit
from offchain.l2.dispute import BatchTrace
from offchain.l2.smt import EMPTY
from offchain.l2.stf import State
from offchain.sequencer.faults import Fault, faulty_trace

CHAIN, INBOX, POSTER = 4242, "0x" + "1b" * 20, "0x" + "5e" * 20
TOKEN, USER = "0x" + "0a" * 20, "0x" + "c1" * 20


def _trace(*amounts: int, first: int = 0, pre: State | None = None) -> BatchTrace:
    deposits = tuple(Deposit(first + i, USER, TOKEN, amount) for i, amount in enumerate(amounts))
    return BatchTrace.run(pre or State(), Batch((Block(1_000, deposits),)), CHAIN, INBOX, POSTER)


def test_skipping_the_only_deposit_on_an_empty_state__is_refused_as_no_claim():
    with pytest.raises(InvalidInput, match="state empty"):
        faulty_trace(Fault.SKIPPED_DEPOSIT, _trace(5))


def test_skipping_a_deposit_on_a_funded_state__is_a_lie_with_a_root():
    funded, _, _ = execute_batch(State(), _trace(5).batch, CHAIN, INBOX, POSTER)
    honest = _trace(7, first=1, pre=funded)
    lie = faulty_trace(Fault.SKIPPED_DEPOSIT, honest)
    assert lie.post_root not in (EMPTY, honest.post_root)
