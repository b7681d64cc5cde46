"""Block-STM (Gelashvili et al., 2022): optimistic parallel execution of a block whose result
equals sequential execution.

The paper's parts, by their names: a multi-version memory (`MVMemory`) holding each
transaction's writes by incarnation, with ESTIMATE markers left by aborted incarnations; a
`Scheduler` with an execution and a validation index, per-transaction status and incarnation
numbers, and dependency suspension (a transaction that reads an ESTIMATE waits for the writer to
re-execute instead of spinning); and worker threads that take execution and validation tasks.

Under the GIL, threads only interleave Python, so the costly and state-independent part of each
transaction, signature recovery, is done first in worker processes (`verify_signatures`); the
threads then run the cheap, state-dependent rest. Per-transaction state roots are computed from
the final write sets in block order.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass

from offchain.executor.merkle import BlockWrites
from offchain.l2.codec import Tx
from offchain.l2.stf import BlockContext, Credit, Reader, Status, Writes, apply_tx


class _Estimate:
    """Marks a location an aborted incarnation wrote: readers wait for the re-execution."""


ESTIMATE = _Estimate()
Version = tuple[int, int]  # (transaction index, incarnation)
Value = bytes | Credit | None | _Estimate


class ReadDependency(Exception):
    """Raised inside an execution that read an ESTIMATE of `blocking` (a lower transaction)."""

    def __init__(self, blocking: int):
        self.blocking = blocking


class InconsistentRead(Exception):
    """Raised inside an execution whose read of `key` adds up speculative credits past 16 bytes.

    No state that sequential execution reaches holds such a balance (docs/l2-protocol.md §State
    leaves: the inbox caps each token's total), so some lower transaction's credit is one its
    re-execution will withdraw. Such near-2^128 balances are rare enough that the block then
    simply runs sequentially (which raises if the cap was broken after all).
    """

    def __init__(self, key: bytes):
        self.key = key


class MVMemory:
    """Each location's values by writing transaction; a read sees the highest writer below it.

    A writer may leave a `Credit` (a blind addition) instead of a value: a read adds the credits
    it passes on the way down to the value below them, so credits to one balance never conflict
    with each other. Reads are validated by value (as Aptos does for such deltas): a transaction
    is a function of the values it read, so the same values mean the same result.
    """

    def __init__(self, block_size: int, storage: Reader):
        self._storage = storage
        self._values: dict[bytes, dict[int, Value]] = {}  # location -> writer -> value
        self._writers: dict[bytes, list[int]] = {}  # location -> its writers, ascending
        self._credited: set[bytes] = set()  # locations some incarnation credited
        self._lock = threading.Lock()
        # Each transaction's last recorded writes (the dict `apply_tx` returned) and reads.
        self._last_writes: list[Writes] = [{} for _ in range(block_size)]
        self._last_read: list[list[tuple[bytes, bytes | None]]] = [[] for _ in range(block_size)]

    def read(self, key: bytes, txn: int) -> bytes | None:
        """The value `txn` sees at `key`. Raises ReadDependency on an ESTIMATE."""
        writers = self._writers.get(key)
        if not writers or writers[0] >= txn:
            return self._storage(key)
        credit = 0
        try:
            with self._lock:
                values = self._values[key]
                for position in range(bisect_left(writers, txn) - 1, -1, -1):
                    writer = writers[position]
                    value = values[writer]
                    if value is ESTIMATE:
                        raise ReadDependency(writer)
                    if value.__class__ is not Credit:
                        return _add(value, credit)  # type: ignore[arg-type]
                    credit += value.amount  # type: ignore[union-attr]
            return _add(self._storage(key), credit)
        except OverflowError:  # credits past 16 bytes: only a speculative state holds them
            raise InconsistentRead(key) from None

    def record(self, txn: int, reads: list[tuple[bytes, bytes | None]], writes: Writes) -> bool:
        """Stores an incarnation's writes (in place of its predecessor's); True if it wrote a new location."""
        all_values, all_writers = self._values, self._writers
        with self._lock:
            previous = self._last_writes[txn]
            for key, value in writes.items():
                values = all_values.get(key)
                if values is None:
                    all_values[key] = {txn: value}
                    all_writers[key] = [txn]
                else:
                    if txn not in values:
                        insort(all_writers[key], txn)
                    values[txn] = value
                if value.__class__ is Credit:
                    self._credited.add(key)
            if previous:  # a re-execution: forget the locations it no longer writes
                for key in previous.keys() - writes.keys():
                    del all_values[key][txn]
                    all_writers[key].remove(txn)
            self._last_writes[txn] = writes
            self._last_read[txn] = reads
        return not writes.keys() <= previous.keys()

    def convert_writes_to_estimates(self, txn: int) -> None:
        with self._lock:
            for key in self._last_writes[txn]:
                self._values[key][txn] = ESTIMATE

    def validate_read_set(self, txn: int) -> bool:
        """Whether every location the last incarnation read still holds the value it saw."""
        read = self.read
        try:
            for key, seen in self._last_read[txn]:
                if read(key, txn) != seen:
                    return False
        except (ReadDependency, InconsistentRead):
            return False
        return True

    def snapshot(self) -> list[Writes]:
        """Each transaction's final writes in block order, credits resolved to values.

        Called once the block is done: the recorded write sets are final then, and are returned
        themselves (resolved in place), not copied."""
        out, storage, writers_of = self._last_writes, self._storage, self._writers
        with self._lock:
            for key in self._credited:  # resolve in block order, from the stored value up
                raw = storage(key)
                value = int.from_bytes(raw, "big") if raw else 0
                for writer in writers_of.get(key, ()):
                    writes = out[writer]
                    written = writes[key]
                    if written.__class__ is Credit:
                        value += written.amount  # type: ignore[union-attr]
                        writes[key] = value.to_bytes(16, "big") if value else None
                    else:
                        value = int.from_bytes(written, "big") if written else 0  # type: ignore[arg-type]
        return out


def _add(value: bytes | None, credit: int) -> bytes | None:
    if not credit:
        return value
    return (int.from_bytes(value, "big") + credit if value else credit).to_bytes(16, "big")


# Transaction statuses (ints, not an Enum: they are compared on every task).
READY, EXECUTING, EXECUTED, ABORTING = 0, 1, 2, 3
EXECUTE, VALIDATE = "execute", "validate"
Task = tuple[str, Version]  # (EXECUTE or VALIDATE, version)


class Scheduler:
    """The paper's collaborative scheduler: execution and validation indices, per-transaction
    incarnation numbers and statuses, dependency suspension, and the active-task count that
    tells when the block is done.

    One lock guards it all. The paper's per-transaction locks let cores update different
    transactions at once; under the GIL only one thread runs anyway, and every extra acquisition
    costs as much as the work it guards, so each step here takes the lock once.
    """

    def __init__(self, block_size: int):
        self.n = block_size
        self._execution_idx = 0
        self._validation_idx = 0
        self._num_active = 0
        self._done = block_size == 0
        self._lock = threading.Lock()
        self._incarnation = [0] * block_size
        self._status = [READY] * block_size
        self._dependencies: dict[int, list[int]] = {}  # blocking transaction -> suspended ones
        self.incarnations = 0  # incarnations started
        self.validation_aborts = 0
        self.suspensions = 0  # executions that read an ESTIMATE and waited for its writer

    def done(self) -> bool:
        return self._done

    def halt(self) -> None:
        """Ends the block for every thread: one of them failed (its error is the block's)."""
        with self._lock:
            self._done = True

    def _check_done(self) -> None:
        # Every index and the active count change under the lock, so one look at them is a
        # consistent snapshot (the paper's decrease counter guards a lock-free version of this).
        if min(self._execution_idx, self._validation_idx) >= self.n and self._num_active == 0:
            self._done = True

    def _try_incarnate(self, txn: int) -> Version | None:
        """Under the lock: `txn` from READY to EXECUTING, or the task is given up."""
        if txn < self.n and self._status[txn] == READY:
            self._status[txn] = EXECUTING
            self.incarnations += 1
            return txn, self._incarnation[txn]
        self._num_active -= 1
        return None

    def next_task(self) -> Task | None:
        with self._lock:
            if self._validation_idx < self._execution_idx:
                txn = self._validation_idx
                self._validation_idx += 1
                if self._status[txn] == EXECUTED:
                    self._num_active += 1
                    return VALIDATE, (txn, self._incarnation[txn])
                return None
            if self._execution_idx >= self.n:
                self._check_done()
                return None
            txn = self._execution_idx
            self._execution_idx += 1
            self._num_active += 1
            version = self._try_incarnate(txn)
            return None if version is None else (EXECUTE, version)

    def add_dependency(self, txn: int, blocking: int) -> bool:
        """Suspends `txn` until `blocking` re-executes; False if `blocking` already did."""
        with self._lock:
            if self._status[blocking] == EXECUTED:
                return False
            self._status[txn] = ABORTING
            self._dependencies.setdefault(blocking, []).append(txn)
            self._num_active -= 1
            self.suspensions += 1
            return True

    def _set_ready(self, txn: int) -> None:
        self._incarnation[txn] += 1
        self._status[txn] = READY

    def finish_execution(self, version: Version, wrote_new_location: bool) -> Task | None:
        txn = version[0]
        with self._lock:  # with add_dependency under this lock, no dependent is missed
            self._status[txn] = EXECUTED
            dependents = self._dependencies.pop(txn, None)
            if dependents:
                for dependent in dependents:
                    self._set_ready(dependent)
                self._execution_idx = min(self._execution_idx, min(dependents))
            if self._validation_idx > txn:
                if not wrote_new_location:
                    return VALIDATE, version
                self._validation_idx = txn
            self._num_active -= 1
            return None

    def try_validation_abort(self, version: Version) -> bool:
        txn, incarnation = version
        with self._lock:
            if self._incarnation[txn] == incarnation and self._status[txn] == EXECUTED:
                self._status[txn] = ABORTING
                self.validation_aborts += 1
                return True
            return False

    def finish_validation(self, txn: int, aborted: bool) -> Task | None:
        with self._lock:
            if aborted:
                self._set_ready(txn)
                self._validation_idx = min(self._validation_idx, txn + 1)
                if self._execution_idx > txn:
                    version = self._try_incarnate(txn)  # else: it gave the task up
                    return None if version is None else (EXECUTE, version)
            self._num_active -= 1
            return None


@dataclass
class BlockStats:
    transactions: int
    incarnations: int  # executions started (a transaction's first one included)
    validation_aborts: int  # incarnations a failed validation threw away
    suspensions: int  # executions stopped on an ESTIMATE until its writer re-executed
    seconds: float


Signed = Callable[[int], bool]  # transaction index -> whether its signature is good (may block)


def execute_parallel(
    txns: list[Tx],
    ctx: BlockContext,
    storage: Reader,
    threads: int = 4,
    signed: Signed | None = None,
) -> tuple[list[Status], list[Writes], BlockStats]:
    """Runs the block with Block-STM; returns each transaction's status and final writes.

    `signed(i)` gives transaction i's signature check when it is done elsewhere (in processes):
    a thread that needs one not yet known waits for it, without holding the GIL. An error in any
    thread (from `storage` or `signed`) stops them all and is raised here; an `InconsistentRead`
    stops them too, and the block runs sequentially instead.
    """
    started = time.perf_counter()
    n = len(txns)
    memory, scheduler = MVMemory(n, storage), Scheduler(n)
    statuses: list[Status] = [Status.OK] * n
    memory_read = memory.read

    def execute(version: Version) -> Task | None:
        txn = version[0]
        reads: list[tuple[bytes, bytes | None]] = []

        def read(key: bytes) -> bytes | None:
            value = memory_read(key, txn)  # may raise ReadDependency
            reads.append((key, value))
            return value

        try:
            status, writes = apply_tx(
                txns[txn], ctx, read, None if signed is None else signed(txn), credits=True
            )
        except ReadDependency as dependency:
            if not scheduler.add_dependency(txn, dependency.blocking):
                return EXECUTE, version  # the blocker finished meanwhile: retry now
            return None
        statuses[txn] = status
        wrote_new = memory.record(txn, reads, writes)
        return scheduler.finish_execution(version, wrote_new)

    def validate(version: Version) -> Task | None:
        txn = version[0]
        aborted = not memory.validate_read_set(txn) and scheduler.try_validation_abort(version)
        if aborted:
            memory.convert_writes_to_estimates(txn)
        return scheduler.finish_validation(txn, aborted)

    errors: list[BaseException] = []

    def worker() -> None:
        task: Task | None = None
        try:
            while not scheduler.done():
                if task is None:
                    task = scheduler.next_task()
                    if task is None:
                        time.sleep(0)  # let the threads holding work run
                        continue
                task = execute(task[1]) if task[0] == EXECUTE else validate(task[1])
        except BaseException as error:  # storage or a signature check failed: the block cannot finish
            errors.append(error)
            scheduler.halt()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, threads))]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        failures = [error for error in errors if not isinstance(error, InconsistentRead)]
        if failures:
            raise failures[0]
        return execute_sequential(txns, ctx, storage, signed)  # speculative credits overflowed
    stats = BlockStats(
        n,
        scheduler.incarnations,
        scheduler.validation_aborts,
        scheduler.suspensions,
        time.perf_counter() - started,
    )
    return statuses, memory.snapshot(), stats


def execute_sequential(
    txns: list[Tx],
    ctx: BlockContext,
    storage: Reader,
    signed: Signed | None = None,
    block: BlockWrites | None = None,
) -> tuple[list[Status], list[Writes], BlockStats]:
    """The baseline: one transaction after another, with the same outputs as `execute_parallel`.
    With `block` (empty), the writes are collected there as they come, split for the root."""
    started = time.perf_counter()
    overlay: Writes = {} if block is None else block.merged
    add = overlay.update if block is None else block.add

    def read(key: bytes) -> bytes | None:
        return overlay[key] if key in overlay else storage(key)

    statuses, all_writes = [], []
    for txn, tx in enumerate(txns):
        status, writes = apply_tx(tx, ctx, read, None if signed is None else signed(txn))
        add(writes)
        statuses.append(status)
        all_writes.append(writes)
    return statuses, all_writes, BlockStats(len(txns), len(txns), 0, 0, time.perf_counter() - started)
