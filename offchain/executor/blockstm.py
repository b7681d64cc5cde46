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
from enum import Enum

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
        self._lock = threading.Lock()
        self._last_written: list[frozenset[bytes]] = [frozenset()] * block_size
        self._last_read: list[list[tuple[bytes, bytes | None]]] = [[] for _ in range(block_size)]

    def read(self, key: bytes, txn: int) -> bytes | None:
        """The value `txn` sees at `key`. Raises ReadDependency on an ESTIMATE."""
        credit = 0
        writers = self._writers.get(key)
        if writers:
            with self._lock:
                values = self._values[key]
                for position in range(bisect_left(writers, txn) - 1, -1, -1):
                    writer = writers[position]
                    value = values[writer]
                    if value is ESTIMATE:
                        raise ReadDependency(writer)
                    if not isinstance(value, Credit):
                        return _add(value, credit)  # type: ignore[arg-type]
                    credit += value.amount
        return _add(self._storage(key), credit)

    def record(self, txn: int, reads: list[tuple[bytes, bytes | None]], writes: Writes) -> bool:
        """Stores an incarnation's writes (in place of its predecessor's); True if it wrote a new location."""
        with self._lock:
            for key, value in writes.items():
                values = self._values.setdefault(key, {})
                if txn not in values:
                    insort(self._writers.setdefault(key, []), txn)
                values[txn] = value
            new_locations = frozenset(writes)
            for key in self._last_written[txn] - new_locations:
                del self._values[key][txn]
                self._writers[key].remove(txn)
            wrote_new = not new_locations <= self._last_written[txn]
            self._last_written[txn] = new_locations
            self._last_read[txn] = reads
        return wrote_new

    def convert_writes_to_estimates(self, txn: int) -> None:
        with self._lock:
            for key in self._last_written[txn]:
                self._values[key][txn] = ESTIMATE

    def validate_read_set(self, txn: int) -> bool:
        """Whether every location the last incarnation read still holds the value it saw."""
        try:
            return all(self.read(key, txn) == seen for key, seen in self._last_read[txn])
        except ReadDependency:
            return False

    def snapshot(self) -> list[Writes]:
        """Each transaction's final writes in block order, credits resolved to values."""
        current: dict[bytes, bytes | None] = {}
        out: list[Writes] = []
        with self._lock:
            for txn, keys in enumerate(self._last_written):
                writes: Writes = {}
                for key in keys:
                    value = self._values[key][txn]
                    if isinstance(value, Credit):
                        below = current[key] if key in current else self._storage(key)
                        value = _add(below, value.amount)
                    writes[key] = value  # type: ignore[assignment]
                    current[key] = value  # type: ignore[assignment]
                out.append(writes)
        return out


def _add(value: bytes | None, credit: int) -> bytes | None:
    if not credit:
        return value
    return (int.from_bytes(value, "big") + credit if value else credit).to_bytes(16, "big")


class _TxStatus(Enum):
    READY = "ready_to_execute"
    EXECUTING = "executing"
    EXECUTED = "executed"
    ABORTING = "aborting"


@dataclass
class _Task:
    kind: str  # "execute" or "validate"
    version: Version


class Scheduler:
    """The paper's collaborative scheduler."""

    def __init__(self, block_size: int):
        self.n = block_size
        self._execution_idx = 0
        self._validation_idx = 0
        self._decrease_cnt = 0
        self._num_active = 0
        self._done = block_size == 0
        self._idx_lock = threading.Lock()
        self._status = [[0, _TxStatus.READY] for _ in range(block_size)]  # [incarnation, status]
        self._status_locks = [threading.Lock() for _ in range(block_size)]
        self._dependencies: list[list[int]] = [[] for _ in range(block_size)]
        self.incarnations = 0
        self.validation_aborts = 0

    def done(self) -> bool:
        return self._done

    def _check_done(self) -> None:
        with self._idx_lock:
            observed = self._decrease_cnt
            if (
                min(self._execution_idx, self._validation_idx) >= self.n
                and self._num_active == 0
                and observed == self._decrease_cnt
            ):
                self._done = True

    def _fetch_and_increment(self, which: str) -> int:
        with self._idx_lock:
            value = getattr(self, which)
            setattr(self, which, value + 1)
            return value

    def _try_incarnate(self, txn: int) -> Version | None:
        if txn < self.n:
            with self._status_locks[txn]:
                if self._status[txn][1] == _TxStatus.READY:
                    self._status[txn][1] = _TxStatus.EXECUTING
                    self.incarnations += 1
                    return txn, self._status[txn][0]
        self._change_active(-1)
        return None

    def _change_active(self, delta: int) -> None:
        with self._idx_lock:
            self._num_active += delta

    def _next_version_to_execute(self) -> Version | None:
        if self._execution_idx >= self.n:
            self._check_done()
            return None
        self._change_active(+1)
        return self._try_incarnate(self._fetch_and_increment("_execution_idx"))

    def _next_version_to_validate(self) -> Version | None:
        if self._validation_idx >= self.n:
            self._check_done()
            return None
        self._change_active(+1)
        txn = self._fetch_and_increment("_validation_idx")
        if txn < self.n:
            with self._status_locks[txn]:
                incarnation, status = self._status[txn]
                if status == _TxStatus.EXECUTED:
                    return txn, incarnation
        self._change_active(-1)
        return None

    def next_task(self) -> _Task | None:
        if self._validation_idx < self._execution_idx:
            version = self._next_version_to_validate()
            if version is not None:
                return _Task("validate", version)
        else:
            version = self._next_version_to_execute()
            if version is not None:
                return _Task("execute", version)
        return None

    def add_dependency(self, txn: int, blocking: int) -> bool:
        """Suspends `txn` until `blocking` re-executes; False if `blocking` already did."""
        with self._status_locks[blocking]:
            if self._status[blocking][1] == _TxStatus.EXECUTED:
                return False
            with self._status_locks[txn]:
                self._status[txn][1] = _TxStatus.ABORTING
            self._dependencies[blocking].append(txn)
        self._change_active(-1)
        return True

    def _set_ready(self, txn: int) -> None:
        with self._status_locks[txn]:
            self._status[txn][0] += 1
            self._status[txn][1] = _TxStatus.READY

    def _resume_dependencies(self, txns: list[int]) -> None:
        for txn in txns:
            self._set_ready(txn)
        if txns:
            self._decrease("_execution_idx", min(txns))

    def _decrease(self, which: str, target: int) -> None:
        with self._idx_lock:
            if getattr(self, which) > target:
                setattr(self, which, target)
            self._decrease_cnt += 1

    def finish_execution(self, version: Version, wrote_new_location: bool) -> _Task | None:
        txn = version[0]
        with self._status_locks[txn]:  # with add_dependency under this lock, no dependent is missed
            self._status[txn][1] = _TxStatus.EXECUTED
            dependents, self._dependencies[txn] = self._dependencies[txn], []
        self._resume_dependencies(dependents)
        if self._validation_idx > txn:
            if wrote_new_location:
                self._decrease("_validation_idx", txn)
            else:
                return _Task("validate", version)
        self._change_active(-1)
        return None

    def try_validation_abort(self, version: Version) -> bool:
        txn, incarnation = version
        with self._status_locks[txn]:
            if self._status[txn] == [incarnation, _TxStatus.EXECUTED]:
                self._status[txn][1] = _TxStatus.ABORTING
                self.validation_aborts += 1
                return True
        return False

    def finish_validation(self, txn: int, aborted: bool) -> _Task | None:
        if aborted:
            self._set_ready(txn)
            self._decrease("_validation_idx", txn + 1)
            if self._execution_idx > txn:
                version = self._try_incarnate(txn)
                if version is not None:
                    return _Task("execute", version)
                return None  # _try_incarnate released the active task
        self._change_active(-1)
        return None


@dataclass
class BlockStats:
    transactions: int
    incarnations: int
    validation_aborts: int
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
    a thread that needs one not yet known waits for it, without holding the GIL.
    """
    started = time.perf_counter()
    n = len(txns)
    memory, scheduler = MVMemory(n, storage), Scheduler(n)
    statuses: list[Status] = [Status.OK] * n

    def execute(version: Version) -> _Task | None:
        txn = version[0]
        reads: list[tuple[bytes, bytes | None]] = []

        def read(key: bytes) -> bytes | None:
            value = memory.read(key, txn)  # may raise ReadDependency
            reads.append((key, value))
            return value

        try:
            status, writes = apply_tx(
                txns[txn], ctx, read, None if signed is None else signed(txn), credits=True
            )
        except ReadDependency as dependency:
            if not scheduler.add_dependency(txn, dependency.blocking):
                return _Task("execute", version)  # the blocker finished meanwhile: retry now
            return None
        statuses[txn] = status
        wrote_new = memory.record(txn, reads, writes)
        return scheduler.finish_execution(version, wrote_new)

    def validate(version: Version) -> _Task | None:
        txn = version[0]
        aborted = not memory.validate_read_set(txn) and scheduler.try_validation_abort(version)
        if aborted:
            memory.convert_writes_to_estimates(txn)
        return scheduler.finish_validation(txn, aborted)

    def worker() -> None:
        task: _Task | None = None
        while not scheduler.done():
            if task is None:
                task = scheduler.next_task()
                if task is None:
                    time.sleep(0)  # let the threads holding work run
                    continue
            task = execute(task.version) if task.kind == "execute" else validate(task.version)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, threads))]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stats = BlockStats(n, scheduler.incarnations, scheduler.validation_aborts, time.perf_counter() - started)
    return statuses, memory.snapshot(), stats


def execute_sequential(
    txns: list[Tx], ctx: BlockContext, storage: Reader, signed: Signed | None = None
) -> tuple[list[Status], list[Writes], BlockStats]:
    """The baseline: one transaction after another, with the same outputs as `execute_parallel`."""
    started = time.perf_counter()
    overlay: Writes = {}

    def read(key: bytes) -> bytes | None:
        return overlay[key] if key in overlay else storage(key)

    statuses, all_writes = [], []
    for txn, tx in enumerate(txns):
        status, writes = apply_tx(tx, ctx, read, None if signed is None else signed(txn))
        overlay.update(writes)
        statuses.append(status)
        all_writes.append(writes)
    return statuses, all_writes, BlockStats(len(txns), len(txns), 0, time.perf_counter() - started)
