"""Running a block with an executor: signatures checked in worker processes while the state
transition (sequential or Block-STM) runs, then the block's state root (in worker processes too,
one subtree each, when the state lives in an LMDB store: `merkle.py`).

The per-transaction state roots (the trace a dispute bisects over) cost about six times the
block's root, because every transaction re-hashes its paths to the top: `trace=True` computes
them; a sequencer commits the block root and builds the trace only for a disputed batch.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from concurrent.futures import Executor as PoolExecutor
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import pairwise

from offchain.executor.blockstm import BlockStats, Signed, execute_parallel, execute_sequential
from offchain.executor.merkle import parallel_roots, submit_roots
from offchain.hashing import keccak
from offchain.l2.codec import Tx
from offchain.l2.stf import BlockContext, State, Status, Writes, signature_ok
from offchain.l2.store import StateStore

SEQUENTIAL_BELOW = 32  # smaller blocks gain nothing from threads and processes
# Transactions per signature task: the first small, so that Block-STM starts early; then each
# twice the last up to the largest (every task costs the parent pickling and a round trip); and
# smaller again towards the end (a quarter of what is left), so that the workers finish together.
FIRST_CHUNK, LARGEST_CHUNK = 64, 1024


def _check_chunk(args: tuple[list[Tx], BlockContext]) -> list[bool]:
    txns, ctx = args
    return [signature_ok(tx, ctx) for tx in txns]


def verify_signatures(txns: list[Tx], ctx: BlockContext, pool: PoolExecutor | None) -> Signed:
    """`signature_ok` of each transaction, computed in `pool`'s processes when given (it reads no
    state): the result answers as soon as the transaction's chunk is done."""
    if pool is None or len(txns) < SEQUENTIAL_BELOW:
        return lambda i: signature_ok(txns[i], ctx)
    starts = _chunk_starts(len(txns))
    bounds = [*starts, len(txns)]
    futures: list[Future[list[bool]]] = [
        pool.submit(_check_chunk, (txns[lo:hi], ctx)) for lo, hi in pairwise(bounds)
    ]

    checks: list[bool | None] = [None] * len(txns)  # each chunk's answers, once waited for

    def signed(i: int) -> bool:
        check = checks[i]
        if check is None:
            chunk = bisect_right(starts, i) - 1
            checks[starts[chunk] : bounds[chunk + 1]] = futures[chunk].result()
            check = checks[i]
        return check  # type: ignore[return-value]

    return signed


def _chunk_starts(n: int) -> list[int]:
    starts, start, size = [], 0, FIRST_CHUNK
    while start < n:
        starts.append(start)
        start += size
        size = min(2 * size, LARGEST_CHUNK, max(FIRST_CHUNK, (n - start) // 4))
    return starts


@dataclass(frozen=True)
class ExecutedBlock:
    state: State
    statuses: list[Status]
    writes: list[Writes]  # each transaction's writes, in block order
    roots: list[bytes] | None  # the state root after each transaction, when traced
    stats: BlockStats


def run_block(
    state: State,
    ctx: BlockContext,
    txns: list[Tx],
    parallel: bool = True,
    threads: int = 2,
    pool: PoolExecutor | None = None,
    trace: bool = False,
    sequential_below: int = SEQUENTIAL_BELOW,
    store: StateStore | None = None,
    signed: list[bool] | None = None,
) -> ExecutedBlock:
    """Executes `txns` on `state`: the state, statuses and (with `trace`) roots of `stf.apply_block`.

    With `pool`, signatures are checked in its processes; with `store` too (the LMDB store that
    `state` was read from, its last block committed), the roots are computed there as well.
    `signed` is `signature_ok` of each transaction when the caller checked them already (a
    sequencer, at admission); they are not checked again.
    """
    collecting = gc.isenabled()
    gc.disable()  # a block allocates hundreds of thousands of objects, and each full collection
    try:  # would walk the whole state; a block makes no cycles that need collecting meanwhile
        return _run(state, ctx, txns, parallel, threads, pool, trace, sequential_below, store, signed)
    finally:
        if collecting:
            gc.enable()


def _run(
    state: State,
    ctx: BlockContext,
    txns: list[Tx],
    parallel: bool,
    threads: int,
    pool: PoolExecutor | None,
    trace: bool,
    sequential_below: int,
    store: StateStore | None,
    known: list[bool] | None,
) -> ExecutedBlock:
    if known is not None and len(known) != len(txns):
        raise ValueError("one signature check per transaction")
    signed = known.__getitem__ if known is not None else verify_signatures(txns, ctx, pool)
    if parallel and len(txns) >= sequential_below:
        statuses, writes, stats = execute_parallel(txns, ctx, state.read, threads, signed)
    else:
        statuses, writes, stats = execute_sequential(txns, ctx, state.read, signed)
    merged: Writes = {}
    for tx_writes in writes:
        merged.update(tx_writes)
    if pool is not None and store is not None and store.committed(state) and len(txns) >= sequential_below:
        block_root = submit_roots(store, state.root, [merged], pool)
        new_state = state.merged(merged, state.root)  # while the workers hash: the root comes next
        new_state.root = block_root()[0]
        roots = parallel_roots(store, state.root, writes, pool, keep_nodes=False) if trace else None
        return ExecutedBlock(new_state, statuses, writes, roots, stats)
    if trace:
        new_state, roots = commit_writes(state, writes)
        return ExecutedBlock(new_state, statuses, writes, roots, stats)
    return ExecutedBlock(state.apply(merged), statuses, writes, None, stats)


def commit_writes(state: State, per_tx: list[Writes]) -> tuple[State, list[bytes]]:
    """The new state and the root after each transaction, from the writes in block order."""
    roots, root, merged = [], state.root, {}
    for writes in per_tx:
        if writes:
            root = state.tree.update(root, {k: None if v is None else keccak(v) for k, v in writes.items()})
            merged.update(writes)
        roots.append(root)
    return state.merged(merged, root), roots
