"""Running a block with an executor: signatures checked in worker processes, then the state
transition (sequential or Block-STM), then the per-transaction state roots in block order."""

from __future__ import annotations

from concurrent.futures import Executor as PoolExecutor
from dataclasses import dataclass

from eth_hash.auto import keccak

from offchain.executor.blockstm import BlockStats, execute_parallel, execute_sequential
from offchain.l2.codec import Tx
from offchain.l2.stf import BlockContext, BlockResult, State, Writes, signature_ok


def _check_chunk(args: tuple[list[Tx], BlockContext]) -> list[bool]:
    txns, ctx = args
    return [signature_ok(tx, ctx) for tx in txns]


def verify_signatures(
    txns: list[Tx], ctx: BlockContext, pool: PoolExecutor | None, workers: int = 2
) -> list[bool]:
    """`signature_ok` of every transaction; in `pool`'s processes when given (it reads no state)."""
    if pool is None or len(txns) < 64:
        return [signature_ok(tx, ctx) for tx in txns]
    size = -(-len(txns) // (workers * 4))
    chunks = [(txns[i : i + size], ctx) for i in range(0, len(txns), size)]
    return [ok for part in pool.map(_check_chunk, chunks) for ok in part]


@dataclass
class ExecutedBlock:
    result: BlockResult
    stats: BlockStats


def run_block(
    state: State,
    ctx: BlockContext,
    txns: list[Tx],
    parallel: bool = True,
    threads: int = 4,
    pool: PoolExecutor | None = None,
    workers: int = 2,
) -> ExecutedBlock:
    """Executes `txns` on `state`; returns what `stf.apply_block` would, plus statistics."""
    signatures = verify_signatures(txns, ctx, pool, workers)
    if parallel:
        statuses, writes, stats = execute_parallel(txns, ctx, state.read, threads, signatures)
    else:
        statuses, writes, stats = execute_sequential(txns, ctx, state.read, signatures)
    new_state, roots = commit_writes(state, writes)
    return ExecutedBlock(BlockResult(new_state, statuses, roots), stats)


def commit_writes(state: State, per_tx: list[Writes]) -> tuple[State, list[bytes]]:
    """The new state and the root after each transaction, from the writes in block order."""
    roots, root, merged = [], state.root, {}
    for writes in per_tx:
        if writes:
            root = state.tree.update(root, {k: None if v is None else keccak(v) for k, v in writes.items()})
            merged.update(writes)
        roots.append(root)
    return state.merged(merged, root), roots
