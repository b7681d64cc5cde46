"""Block-STM with execution in worker processes equals sequential execution: statuses, writes,
roots, for random blocks cut into chunks of every size, with every pool size."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.executor.block import commit_writes, run_block
from offchain.executor.merkle import worker_pool
from offchain.executor.processes import Footprint, execute_in_processes
from offchain.l2.codec import Deposit
from offchain.l2.stf import apply_block, signature_ok
from offchain.l2.store import StateStore, StoreError
from tests.l2_blocks import ADDRS, CTX, TOKEN, deposits, signed_tx
from tests.property.test_blockstm import SPREAD, blocks, contention_free_blocks

pytestmark = pytest.mark.fuzzing
SEQUENCER = 7  # CTX.sequencer is ADDRS[7]
QUIET = [HealthCheck.function_scoped_fixture]
CHUNKS = st.sampled_from([1, 2, 3, 5, 64])  # transactions in the first task
SPECULATION = st.sampled_from(["always", "always", "auto", "never"])


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}-processes")
def pool(request):
    with worker_pool(request.param) as executor:
        yield executor


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = StateStore(tmp_path_factory.mktemp("processes"))
    spread = [Deposit(7 + j, ADDRS[account], TOKEN, 50) for j, account in enumerate(SPREAD)]
    store.commit(0, apply_block(store.state_at(), CTX, deposits(7) + spread).state)
    yield store
    store.close()


@pytest.fixture()
def genesis(store):
    store.discard()  # the nodes an earlier test built and did not commit
    return store.state_at()


@settings(max_examples=60, deadline=None, suppress_health_check=QUIET)
@given(txs=blocks(), first=CHUNKS, prechecked=st.booleans(), speculation=SPECULATION)
def test_processes__equal_sequential_chunk_by_chunk(
    store, genesis, pool, txs, first, prechecked, speculation
):
    expected = apply_block(genesis, CTX, txs)
    known = [signature_ok(tx, CTX) for tx in txs] if prechecked else None
    run = dict(known=known, first_chunk=first, speculation=speculation)
    got = execute_in_processes(txs, CTX, genesis.values, genesis.root, store, pool, per_tx=True, **run)
    assert got.statuses == expected.statuses
    assert got.incarnations >= len(txs)
    state, roots = commit_writes(genesis, got.writes or [])
    assert roots == expected.roots
    assert state.values == expected.state.values
    assert genesis.merged(got.written.merged, expected.state.root).values == expected.state.values
    untraced = execute_in_processes(txs, CTX, genesis.values, genesis.root, store, pool, **run)
    assert (untraced.statuses, untraced.written.merged, untraced.writes) == (
        got.statuses,
        got.written.merged,
        None,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=QUIET)
@given(txs=blocks())
def test_run_block_with_processes__equals_sequential(store, genesis, pool, txs):
    txs = txs * 3  # long enough for more than one task
    expected = apply_block(genesis, CTX, txs)
    store.discard()  # the nodes the reference built: the state must be the store's committed one
    got = run_block(
        genesis,
        CTX,
        txs,
        "processes",
        pool=pool,
        store=store,
        trace=True,
        sequential_below=0,
        speculation="always",
    )
    assert (got.statuses, got.roots, got.state.root) == (
        expected.statuses,
        expected.roots,
        expected.state.root,
    )
    assert got.state.values == expected.state.values
    store.discard()
    untraced = run_block(genesis, CTX, txs, "processes", pool=pool, store=store, sequential_below=0)
    assert (untraced.state.root, untraced.roots, untraced.writes) == (expected.state.root, None, None)


@settings(max_examples=20, deadline=None, suppress_health_check=QUIET)
@given(txs=contention_free_blocks(), first=CHUNKS)
def test_processes_without_contention__execute_each_transaction_once_in_the_workers(
    store, genesis, pool, txs, first
):
    run = dict(first_chunk=first, speculation="always")
    got = execute_in_processes(txs, CTX, genesis.values, genesis.root, store, pool, **run)
    assert (got.incarnations, got.profile.aborted_chunks, got.profile.reexecuted) == (len(txs), 0, 0)
    assert got.statuses == apply_block(genesis, CTX, txs).statuses


def test_one_hot_sender__aborts_then_stops_speculating(store, genesis, pool):
    """Every transaction reads the nonce the one before wrote: the second chunk aborts, and the
    chunks sent after that carry signature checks only (run once, in the parent)."""
    txs = [signed_tx("transfer", 0, 8 + i % 8, 1, i, fee=0) for i in range(40)]
    expected = apply_block(genesis, CTX, txs)
    got = execute_in_processes(
        txs, CTX, genesis.values, genesis.root, store, pool, first_chunk=1, speculation="always"
    )
    assert got.statuses == expected.statuses
    assert got.profile.aborted_chunks >= 1
    assert got.profile.reexecuted == len(txs) - 1  # all but the first chunk's one transaction
    assert got.incarnations < 2 * len(txs)  # unspeculated chunks run once


def test_never_speculating__runs_every_chunk_in_the_parent(store, genesis, pool):
    txs = [signed_tx("transfer", 8 + i, 9 + i, 1, 0, fee=0) for i in range(0, 30, 2)]
    got = execute_in_processes(
        txs, CTX, genesis.values, genesis.root, store, pool, first_chunk=2, speculation="never"
    )
    assert (got.profile.speculated_chunks, got.profile.reexecuted) == (0, len(txs))
    assert got.statuses == apply_block(genesis, CTX, txs).statuses
    with pytest.raises(ValueError, match="no speculation 'sometimes'"):
        execute_in_processes(txs, CTX, genesis.values, genesis.root, store, pool, speculation="sometimes")  # type: ignore[arg-type]


def test_processes__refuse_a_state_that_is_not_the_stores_latest(store, genesis, pool):
    txs = [signed_tx("transfer", 0, 1, 5, 0)] * 40
    later = apply_block(genesis, CTX, txs[:1]).state  # built, not committed
    with pytest.raises(StoreError, match="not the store's latest committed one"):
        execute_in_processes(txs, CTX, later.values, later.root, store, pool)
    with pytest.raises(ValueError, match="needs the pool and the store"):
        run_block(later, CTX, txs, "processes", pool=pool, store=store)
    with pytest.raises(ValueError, match="needs the pool and the store"):
        run_block(genesis, CTX, txs, "processes", store=store)
    with pytest.raises(ValueError, match="no executor 'gpu'"):
        run_block(genesis, CTX, txs, "gpu")  # type: ignore[arg-type]


def _second_chunk_conflicts(first: list, second: list) -> bool:
    txs = first + second
    return Footprint(txs, [0, len(first), len(txs)], CTX.sequencer).conflicts(1)


@pytest.mark.parametrize(
    ("first", "second", "conflicts"),
    [
        pytest.param([(0, 1), (2, 3)], [(4, 5), (5, 4)], False, id="disjoint senders"),
        pytest.param([(0, 1), (2, 1)], [(3, 1), (4, 1)], False, id="a hot receiver: blind credits"),
        pytest.param([(0, 1), (2, 3)], [(4, 5), (1, 6)], True, id="sends what was credited"),
        pytest.param([(0, 1)], [(0, 2)], True, id="a hot sender"),
        pytest.param([(0, 1)], [(SEQUENCER, 2)], True, id="the sequencer, paid every fee, sends"),
    ],
)
def test_footprint__predicts_a_chunk_that_reads_what_a_chunk_before_it_writes(first, second, conflicts):
    def transfers(pairs):
        return [signed_tx("transfer", a, b, 1, 0) for a, b in pairs]

    assert _second_chunk_conflicts(transfers(first), transfers(second)) is conflicts


def test_footprint__deposits_read_the_deposit_index_and_credit_their_receiver():
    assert _second_chunk_conflicts([Deposit(0, ADDRS[1], TOKEN, 5)], [Deposit(1, ADDRS[2], TOKEN, 5)])
    assert _second_chunk_conflicts([Deposit(0, ADDRS[1], TOKEN, 5)], [signed_tx("transfer", 1, 2, 1, 0)])
    assert not _second_chunk_conflicts([signed_tx("transfer", 1, 2, 1, 0)], [Deposit(0, ADDRS[3], TOKEN, 5)])
    withdraw, auth = signed_tx("withdraw", 3, 4, 1, 0), signed_tx("authorization", 5, 6, 1, 0)
    assert not _second_chunk_conflicts([withdraw], [auth])  # a withdrawal's recipient is on L1
    assert _second_chunk_conflicts([auth], [signed_tx("transfer", 6, 0, 1, 0)])
