"""Running a block with an executor, then the block's state root.

Three executors give the same result (`stf.apply_block`'s): "sequential", one transaction after
another in this process; "threads", Block-STM's threads here (`blockstm.py`); "processes",
Block-STM's execution tasks in the worker pool (`processes.py`). With a pool, the sequential and
thread executors have the signatures checked in its processes meanwhile (they read no state),
and the root is computed there too, one subtree each, when the state lives in an LMDB store
(`merkle.py`).

The per-transaction state roots (the trace a dispute bisects over) cost about six times the
block's root, because every transaction re-hashes its paths to the top: `trace=True` computes
them; a sequencer commits the block root and builds the trace only for a disputed batch.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_right
from concurrent.futures import Executor as PoolExecutor
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from offchain.executor.blockstm import BlockStats, Signed, execute_parallel, execute_sequential
from offchain.executor.merkle import BlockWrites, parallel_roots, submit_block_root
from offchain.executor.processes import ParentProfile, Speculation, chunk_starts, execute_in_processes
from offchain.hashing import keccak
from offchain.l2.codec import Tx
from offchain.l2.stf import BlockContext, State, Status, Writes, signature_ok
from offchain.l2.store import StateStore

SEQUENTIAL_BELOW = 32  # smaller blocks gain nothing from threads and processes
Executor = Literal["sequential", "threads", "processes"]


def _check_chunk(args: tuple[list[Tx], BlockContext]) -> list[bool]:
    txns, ctx = args
    return [signature_ok(tx, ctx) for tx in txns]


def verify_signatures(txns: list[Tx], ctx: BlockContext, pool: PoolExecutor | None) -> Signed:
    """`signature_ok` of each transaction, computed in `pool`'s processes when given (it reads no
    state): the result answers as soon as the transaction's chunk is done."""
    if pool is None or len(txns) < SEQUENTIAL_BELOW:
        return lambda i: signature_ok(txns[i], ctx)
    starts = chunk_starts(len(txns))
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


@dataclass(frozen=True)
class ExecutedBlock:
    state: State
    statuses: list[Status]
    writes: list[Writes] | None  # each transaction's writes in block order (None: "processes", untraced)
    roots: list[bytes] | None  # the state root after each transaction, when traced
    stats: BlockStats
    profile: ParentProfile  # where this process's time went


def run_block(
    state: State,
    ctx: BlockContext,
    txns: list[Tx],
    executor: Executor = "threads",
    threads: int = 2,
    pool: PoolExecutor | None = None,
    trace: bool = False,
    sequential_below: int = SEQUENTIAL_BELOW,
    store: StateStore | None = None,
    signed: list[bool] | None = None,
    speculation: Speculation = "auto",
) -> ExecutedBlock:
    """Executes `txns` on `state`: the state, statuses and (with `trace`) roots of `stf.apply_block`.

    With `pool`, signatures are checked in its processes; with `store` too (the LMDB store that
    `state` was read from, its last block committed), the roots are computed there as well. The
    "processes" executor needs both. `signed` is `signature_ok` of each transaction when the
    caller checked them already (a sequencer, at admission); they are not checked again. Blocks
    under `sequential_below` transactions run sequentially whatever the executor. `speculation`
    says when "processes" has the workers execute a chunk (`processes.py`).
    """
    collecting = gc.isenabled()
    gc.disable()  # a block allocates hundreds of thousands of objects, and each full collection
    try:  # would walk the whole state; a block makes no cycles that need collecting meanwhile
        return _run(
            state, ctx, txns, executor, threads, pool, trace, sequential_below, store, signed, speculation
        )
    finally:
        if collecting:
            gc.enable()


def _run(
    state: State,
    ctx: BlockContext,
    txns: list[Tx],
    executor: Executor,
    threads: int,
    pool: PoolExecutor | None,
    trace: bool,
    sequential_below: int,
    store: StateStore | None,
    known: list[bool] | None,
    speculation: Speculation,
) -> ExecutedBlock:
    if known is not None and len(known) != len(txns):
        raise ValueError("one signature check per transaction")
    if executor not in ("sequential", "threads", "processes"):
        raise ValueError(f"no executor {executor!r}: sequential, threads or processes")
    small = len(txns) < sequential_below
    in_store = pool is not None and store is not None and store.committed(state) and not small
    if executor == "processes" and not small and not in_store:
        raise ValueError("the processes executor needs the pool and the store whose latest state this is")
    started = time.perf_counter()
    block: BlockWrites | None = None  # the writes as they were made, split when the pool roots them
    if executor == "processes" and not small:
        assert pool is not None and store is not None
        executed = execute_in_processes(
            txns, ctx, state.values, state.root, store, pool, known, per_tx=trace, speculation=speculation
        )
        statuses, writes, profile = executed.statuses, executed.writes, executed.profile
        block = executed.written
        stats = BlockStats(
            len(txns), executed.incarnations, profile.aborted_chunks, 0, time.perf_counter() - started
        )
    else:
        signed = known.__getitem__ if known is not None else verify_signatures(txns, ctx, pool)
        if executor == "threads" and not small:
            statuses, writes, stats = execute_parallel(txns, ctx, state.read, threads, signed)
        else:
            block = BlockWrites() if in_store else None
            statuses, writes, stats = execute_sequential(txns, ctx, state.read, signed, block)
        profile = ParentProfile(execute=time.perf_counter() - started)
    mark = time.perf_counter()
    if block is None:  # Block-STM's threads, or no root in the pool: merged (and split) now
        block = BlockWrites()
        add = block.add if in_store else block.merged.update
        for tx_writes in writes or []:
            add(tx_writes)
    merged = block.merged
    profile.merge += time.perf_counter() - mark
    mark = time.perf_counter()
    try:
        if in_store:
            assert pool is not None and store is not None
            block_root = submit_block_root(store, state.root, block, pool)
            new_state = state.merged(merged, state.root)  # while the workers hash: the root comes next
            new_state.root = block_root()
            roots = parallel_roots(store, state.root, writes, pool, keep_nodes=False) if trace else None
            return ExecutedBlock(new_state, statuses, writes, roots, stats, profile)
        assert writes is not None
        if trace:
            new_state, roots = commit_writes(state, writes)
            return ExecutedBlock(new_state, statuses, writes, roots, stats, profile)
        return ExecutedBlock(state.apply(merged), statuses, writes, None, stats, profile)
    finally:
        profile.root = time.perf_counter() - mark


def commit_writes(state: State, per_tx: list[Writes]) -> tuple[State, list[bytes]]:
    """The new state and the root after each transaction, from the writes in block order."""
    roots, root, merged = [], state.root, {}
    for writes in per_tx:
        if writes:
            root = state.tree.update(root, {k: None if v is None else keccak(v) for k, v in writes.items()})
            merged.update(writes)
        roots.append(root)
    return state.merged(merged, root), roots
