"""Block-STM equals sequential execution: statuses, writes, roots, for random blocks."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.executor.block import run_block
from offchain.l2.codec import Deposit
from offchain.l2.stf import State, apply_block, signature_ok
from tests.l2_blocks import ADDRS, CTX, TOKEN, deposits, signed_tx

pytestmark = pytest.mark.fuzzing


SPREAD = range(8, 40)  # accounts funded at genesis for blocks without contention, in pairs
FIRST_DEPOSIT = 7 + len(SPREAD)  # the next deposit index after genesis
WINDOWS = [(0, 2_000)] * 4 + [(1_000, 2_000), (0, 1_000)]  # authorizations: mostly valid at t = 1,000


@st.composite
def contention_free_blocks(draw):
    """Every transaction has its own sender and receiver (the sequencer's fees are blind credits)."""
    pairs = draw(st.integers(0, len(SPREAD) // 2))
    return [
        signed_tx(
            draw(st.sampled_from(["transfer", "authorization", "withdraw"])),
            SPREAD[2 * k],
            SPREAD[2 * k + 1],
            draw(st.integers(1, 49)),
            0,
            draw(st.integers(0, 9)) == 0,
            fee=draw(st.integers(0, 1)),
        )
        for k in range(pairs)
    ]


@st.composite
def blocks(draw):
    """Random blocks, from no contention to one hot account, with failures and deposits mixed in."""
    hot = draw(st.sampled_from(["none", None, 0, 1, 7]))  # "none": distinct accounts; None: spread
    if hot == "none":
        return draw(contention_free_blocks())
    size = draw(st.integers(0, 40))
    txs = []
    next_deposit = FIRST_DEPOSIT
    for _ in range(size):
        kind = draw(st.sampled_from(["transfer", "transfer", "authorization", "withdraw", "deposit"]))
        if kind == "deposit":
            index = next_deposit if draw(st.booleans()) else draw(st.integers(0, 50))  # some out of order
            next_deposit += index == next_deposit
            txs.append(Deposit(index, ADDRS[draw(st.integers(0, 6))], TOKEN, draw(st.integers(1, 30))))
            continue
        # Account 7 is the sequencer: it earns the fees and, spending them, reads its credits.
        sender = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 7))
        to = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 7))
        txs.append(
            signed_tx(
                kind,
                sender,
                to,
                draw(st.integers(1, 60)),
                draw(st.integers(0, 3)),
                draw(st.integers(0, 9)) == 0,
                fee=draw(st.integers(0, 2)),
                window=draw(st.sampled_from(WINDOWS)),
            )
        )
    return txs


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}-processes")
def pool(request):
    with ProcessPoolExecutor(max_workers=request.param) as executor:
        yield executor


@pytest.fixture(scope="module")
def genesis():
    spread = [Deposit(7 + j, ADDRS[account], TOKEN, 50) for j, account in enumerate(SPREAD)]
    return apply_block(State(), CTX, deposits(7) + spread).state


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txs=blocks(), threads=st.sampled_from([1, 2, 4, 8]))
def test_blockstm__equals_sequential(genesis, txs, threads):
    expected = apply_block(genesis, CTX, txs)
    got = run_block(genesis, CTX, txs, threads=threads, trace=True, sequential_below=0)
    assert got.statuses == expected.statuses
    assert got.roots == expected.roots
    assert got.state.values == expected.state.values
    assert got.state.root == expected.state.root
    assert got.stats.incarnations >= len(txs)
    untraced = run_block(genesis, CTX, txs, threads=threads, sequential_below=0)
    assert (untraced.state.root, untraced.roots) == (expected.state.root, None)
    # The checks a sequencer made at admission, handed in: the same result, none made again.
    known = [signature_ok(tx, CTX) for tx in txs]
    prechecked = run_block(genesis, CTX, txs, threads=threads, sequential_below=0, signed=known)
    assert (prechecked.statuses, prechecked.state.root) == (expected.statuses, expected.state.root)


def test_run_block__refuses_signature_checks_that_do_not_match_the_transactions(genesis):
    txs = [signed_tx("transfer", 0, 1, 5, 0, False)]
    with pytest.raises(ValueError, match="one signature check per transaction"):
        run_block(genesis, CTX, txs, signed=[True, True])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txs=blocks(), threads=st.sampled_from([1, 2, 4]))
def test_blockstm_with_signatures_in_processes__equals_sequential(genesis, pool, txs, threads):
    txs = txs * 3  # long enough to use the pool, in more than one signature task
    expected = apply_block(genesis, CTX, txs)
    got = run_block(genesis, CTX, txs, threads=threads, pool=pool, trace=True, sequential_below=0)
    assert (got.statuses, got.roots) == (expected.statuses, expected.roots)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txs=contention_free_blocks(), threads=st.sampled_from([2, 4]))
def test_blockstm_without_contention__executes_each_transaction_once(genesis, txs, threads):
    got = run_block(genesis, CTX, txs, threads=threads, sequential_below=0)
    assert got.state.root == apply_block(genesis, CTX, txs).state.root
    assert (got.stats.incarnations, got.stats.validation_aborts, got.stats.suspensions) == (len(txs), 0, 0)
