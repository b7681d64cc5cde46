"""Block-STM with its execution tasks in worker processes: the state transition on every core.

Under the GIL, Block-STM's threads (`blockstm.py`) only interleave. Here the execution tasks run
in the worker pool instead, a chunk of consecutive transactions each, speculatively: a worker
checks the chunk's signatures and executes it in order against the block's base state (read
from the store's `leaves` table, one LMDB lookup a leaf, in any process) and the chunk's own
writes, recording which locations it read from the base and what the chunk wrote, with credits
to balances it never read kept blind (`apply_tx(credits=True)`), as Block-STM's deltas.

The parent validates and commits in block order, as Block-STM's validation would once every
lower transaction is final: a chunk whose base reads miss every location the chunks before it
wrote read exactly what sequential execution would have, so its writes commit as they are (its
blind credits added to the values below them); a chunk that read such a location is aborted and
its next incarnation runs in the parent, where the values are known, with the signature checks
the worker made. Validation only ever looks at final values, so no ESTIMATE markers are needed.

When to speculate (`Speculation`): a speculated chunk costs its worker the execution and both
sides the shipping of its writes, which is more than the parent spends executing it (a transfer
is a few microseconds of Python; its signature, ten times that). So by default ("auto") a chunk
is speculated only when the parent has fallen behind the workers (`BEHIND` later chunks' results
already waiting when it is sent; one alone is a moment's delay, the parent descheduled on a
busy machine): with two cores the workers' signature checks are the bottleneck and the parent
executes, as the sequential pipeline does; with more, the workers outrun the parent and take the
execution over. Nor does "auto" speculate a chunk that would read
an account a chunk before it writes (`Footprint`: a sender that an earlier transaction sent from
or paid, a deposit after a deposit): it would fail validation, after costing its worker the
execution and the parent its re-execution. After a chunk fails validation anyway, the chunks not
yet sent go out as signature checks only (one hot sender makes every chunk conflict).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Executor as PoolExecutor
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from offchain.executor.merkle import BlockWrites
from offchain.l2.codec import Deposit, Tx
from offchain.l2.stf import BlockContext, Credit, Reader, Status, Writes, apply_tx, signature_ok
from offchain.l2.store import StateStore, StoreError, begin_read, reader_db

# Transactions per task: the first small, so that the parent starts early; then each twice the
# last up to the largest (every task costs the parent pickling and a round trip); and smaller
# again towards the end (a quarter of what is left), so that the workers finish together.
FIRST_CHUNK, LARGEST_CHUNK = 64, 1024
AHEAD = 4  # tasks sent before their turn to commit: the workers never wait for the parent
BEHIND = 2  # of the AHEAD - 1 later tasks in flight, how many done show the parent is the bottleneck
Speculation = Literal["auto", "always", "never"]
STATUSES = list(Status)


def chunk_starts(n: int, first: int = FIRST_CHUNK) -> list[int]:
    """Where each task's transactions start, for a block of `n`."""
    starts, start, size = [], 0, first
    while start < n:
        starts.append(start)
        start += size
        size = min(2 * size, LARGEST_CHUNK, max(first, (n - start) // 4))
    return starts


class Footprint:
    """Predicts, from the transactions alone, whether a chunk would read a location the chunks
    before it write: a sender's nonce, balance or authorizations that an earlier transaction
    sent from, paid or credited a fee to, or the deposit index after an earlier deposit. Accounts
    stand for their locations (every token), so it may see a conflict that is not there, never
    the other way round for well-formed addresses; validation decides either way."""

    _DEPOSITS = "deposits"  # the deposit index leaf, which every deposit reads and writes

    def __init__(self, txns: list[Tx], bounds: list[int], sequencer: str):
        self._txns, self._bounds = txns, bounds
        self._written: set[str] = {sequencer}  # every fee credits it
        self._scanned = 0  # chunks whose writes `_written` holds

    def conflicts(self, chunk: int) -> bool:
        """Whether chunk `chunk` reads an account a chunk before it writes."""
        written, txns = self._written, self._txns
        for earlier in range(self._scanned, chunk):
            for tx in txns[self._bounds[earlier] : self._bounds[earlier + 1]]:
                if tx.__class__ is Deposit:
                    written.add(self._DEPOSITS)
                    written.add(tx.to)
                else:
                    written.add(tx.sender)  # type: ignore[union-attr]
                    to = getattr(tx, "to", None)
                    if to is not None:
                        written.add(to)
        self._scanned = max(self._scanned, chunk)
        lo, hi = self._bounds[chunk], self._bounds[chunk + 1]
        return any(
            (self._DEPOSITS if tx.__class__ is Deposit else tx.sender) in written  # type: ignore[union-attr]
            for tx in txns[lo:hi]
        )


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk (`statuses` None: signatures only).

    Its read set is `reads` with the locations it wrote: a location a chunk writes it has read
    first (a balance, a nonce) or no chunk before it can have written (a withdrawal, its
    sender's nonce aside), so the writes need not be sent twice."""

    signed: bytes  # signature_ok of each transaction, one byte each
    statuses: bytes | None = None  # each transaction's status, one byte each
    reads: set[bytes] = field(default_factory=set)  # base locations read and not written
    written: dict[bytes, bytes | None] = field(default_factory=dict)  # absolute writes
    credits: dict[bytes, int] = field(default_factory=dict)  # blind credits, summed
    per_tx: list[Writes] | None = None  # each transaction's writes (credits as `Credit`), if asked
    cpu_seconds: float = 0.0


@dataclass
class ParentProfile:
    """Where the parent's time went in one block (seconds, wall clock)."""

    send: float = 0.0  # building and submitting tasks
    wait: float = 0.0  # waiting for a worker's result
    validate: float = 0.0
    merge: float = 0.0  # committing valid chunks' writes
    execute: float = 0.0  # running aborted and unspeculated chunks
    speculated_chunks: int = 0  # chunks sent to be executed in a worker
    predicted_conflicts: int = 0  # chunks "auto" kept in the parent, as their footprint conflicts
    root: float = 0.0  # the block's state root, sent to and joined from the workers
    aborted_chunks: int = 0
    reexecuted: int = 0  # transactions whose incarnation in the parent counted


# -- in the workers -----------------------------------------------------------------------------

_ABSENT = object()


def _execute_chunk(
    job: tuple[str, bytes, BlockContext, list[Tx], bytes | None, bool, bool],
) -> ChunkResult:
    """Checks a chunk's signatures and, with `speculate`, executes it on the base state `root`."""
    path, root, ctx, txns, known, speculate, per_tx = job
    started = time.process_time()
    signed = known if known is not None else bytes(signature_ok(tx, ctx) for tx in txns)
    result = ChunkResult(signed)
    if speculate:
        try:
            _speculate(path, root, ctx, txns, signed, per_tx, result)
        except OverflowError:  # credits past 16 bytes: only a speculative state holds them
            result = ChunkResult(signed)  # the parent runs the chunk (and raises if it was real)
    result.cpu_seconds = time.process_time() - started
    return result


def _speculate(
    path: str,
    root: bytes,
    ctx: BlockContext,
    txns: list[Tx],
    signed: bytes,
    per_tx: bool,
    out: ChunkResult,
) -> None:
    meta = reader_db(path, b"meta")
    with begin_read(path, b"leaves") as txn:
        if txn.get(b"leaves", db=meta) != root:
            raise StoreError("the store's leaves table no longer holds the block's base state")
        get = txn.get
        local: dict[bytes, bytes | Credit | None] = {}  # the chunk's writes so far
        base_reads: set[bytes] = set()

        def read(key: bytes) -> bytes | None:
            value = local.get(key, _ABSENT)
            if value is _ABSENT:
                base_reads.add(key)
                return get(key)
            if value.__class__ is Credit:  # blind so far: its value rests on the base's
                base_reads.add(key)
                raw = get(key)
                total = (int.from_bytes(raw, "big") if raw else 0) + value.amount  # type: ignore[union-attr]
                return total.to_bytes(16, "big") if total else None
            return value  # type: ignore[return-value]

        statuses = bytearray()
        writes_of: list[Writes] = []
        for tx, ok in zip(txns, signed, strict=True):
            status, writes = apply_tx(tx, ctx, read, bool(ok), credits=True)
            statuses.append(status)
            for key, value in writes.items():
                if value.__class__ is Credit:
                    current = local.get(key, _ABSENT)
                    if current is _ABSENT:
                        local[key] = value
                    elif current.__class__ is Credit:
                        local[key] = Credit(current.amount + value.amount)  # type: ignore[union-attr]
                    else:
                        total = (int.from_bytes(current, "big") if current else 0) + value.amount  # type: ignore[arg-type,union-attr]
                        local[key] = total.to_bytes(16, "big") if total else None
                else:
                    local[key] = value
            if per_tx:
                writes_of.append(writes)
    out.statuses = bytes(statuses)
    for key, value in local.items():
        if value.__class__ is Credit:
            out.credits[key] = value.amount  # type: ignore[union-attr]
        else:
            out.written[key] = value  # type: ignore[assignment]
            base_reads.discard(key)
    out.reads = base_reads
    out.per_tx = writes_of if per_tx else None


# -- in the parent ------------------------------------------------------------------------------


@dataclass
class ProcessBlock:
    statuses: list[Status]
    written: BlockWrites  # the block's writes over its base (each location's last), split for the root
    writes: list[Writes] | None  # each transaction's writes in block order, when asked for
    incarnations: int
    profile: ParentProfile
    worker_cpu_seconds: float


def execute_in_processes(
    txns: list[Tx],
    ctx: BlockContext,
    base: Mapping[bytes, bytes],
    base_root: bytes,
    store: StateStore,
    pool: PoolExecutor,
    known: list[bool] | None = None,
    per_tx: bool = False,
    first_chunk: int = FIRST_CHUNK,
    speculation: Speculation = "auto",
) -> ProcessBlock:
    """Runs the block on `base` (the values of the state whose root is `base_root`, the store's
    latest committed one) with execution in `pool`'s processes; the outputs of sequential
    execution (`known`: signature checks already made, not made again). The first task carries
    `first_chunk` transactions, the next ones more (`chunk_starts`); `speculation` says which
    chunks the workers execute (see the module's docstring)."""
    if speculation not in ("auto", "always", "never"):
        raise ValueError(f"no speculation {speculation!r}: auto, always or never")
    if store.leaves_root() != base_root:
        raise StoreError("the block's base state is not the store's latest committed one")
    profile = ParentProfile()
    path = str(Path(store.env.path()))
    starts = chunk_starts(len(txns), first_chunk)
    bounds = [*starts, len(txns)]
    futures: dict[int, Future[ChunkResult]] = {}
    contended = False
    footprint = Footprint(txns, bounds, ctx.sequencer)

    def send(chunk: int) -> None:
        lo, hi = bounds[chunk], bounds[chunk + 1]
        checks = None if known is None else bytes(known[lo:hi])
        if speculation == "always":
            speculate = not contended
        else:
            behind = speculation == "auto" and sum(future.done() for future in futures.values()) >= BEHIND
            speculate = behind and not contended
            if speculate and footprint.conflicts(chunk):
                speculate = False
                profile.predicted_conflicts += 1
        profile.speculated_chunks += speculate
        job = (path, base_root, ctx, txns[lo:hi], checks, speculate, per_tx)
        futures[chunk] = pool.submit(_execute_chunk, job)

    clock = time.perf_counter
    mark = clock()
    for chunk in range(min(AHEAD, len(starts))):
        send(chunk)
    profile.send += clock() - mark

    # The committed writes, the block's so far over `base`: what later chunks read, and what a
    # speculated chunk's reads must miss to be valid.
    block = BlockWrites()
    overlay = block.merged
    statuses: list[Status] = []
    writes_of: list[Writes] = []
    incarnations, worker_cpu = 0, 0.0

    def read(key: bytes) -> bytes | None:
        return overlay[key] if key in overlay else base.get(key)

    for chunk in range(len(starts)):
        mark = clock()
        result = futures.pop(chunk).result()
        profile.wait += clock() - mark
        worker_cpu += result.cpu_seconds
        mark = clock()
        if chunk + AHEAD < len(starts):
            send(chunk + AHEAD)
        profile.send += clock() - mark

        lo, hi = bounds[chunk], bounds[chunk + 1]
        if result.statuses is not None:
            incarnations += hi - lo
            mark = clock()
            committed = overlay.keys()
            valid = committed.isdisjoint(result.reads) and committed.isdisjoint(result.written)
            profile.validate += clock() - mark
            if valid:
                mark = clock()
                statuses.extend(STATUSES[s] for s in result.statuses)
                if per_tx:
                    writes_of.extend(_resolve_per_tx(result.per_tx or [], read, block))
                else:
                    _commit_chunk(result, read, block)
                profile.merge += clock() - mark
                continue
            profile.aborted_chunks += 1
            contended = True  # the chunks not yet sent carry signature checks only
        mark = clock()
        incarnations += hi - lo
        profile.reexecuted += hi - lo
        for tx, ok in zip(txns[lo:hi], result.signed, strict=True):
            status, writes = apply_tx(tx, ctx, read, bool(ok))
            block.add(writes)
            statuses.append(status)
            if per_tx:
                writes_of.append(writes)
        profile.execute += clock() - mark
    return ProcessBlock(statuses, block, writes_of if per_tx else None, incarnations, profile, worker_cpu)


def _credit(read: Reader, key: bytes, amount: int) -> bytes | None:
    current = read(key)
    total = (int.from_bytes(current, "big") if current else 0) + amount
    return total.to_bytes(16, "big") if total else None  # past 16 bytes raises, as `apply_tx` does


def _commit_chunk(result: ChunkResult, read: Reader, block: BlockWrites) -> None:
    """A valid chunk's writes over the block's so far: its credits land on the values below."""
    credited = {key: _credit(read, key, amount) for key, amount in result.credits.items()}
    block.add(result.written)
    block.add(credited)


def _resolve_per_tx(per_tx: list[Writes], read: Reader, block: BlockWrites) -> list[Writes]:
    """A valid chunk's writes transaction by transaction, each credit made a value, committed."""
    for writes in per_tx:
        for key, value in writes.items():
            if value.__class__ is Credit:
                writes[key] = _credit(read, key, value.amount)  # type: ignore[union-attr]
        block.add(writes)
    return per_tx
