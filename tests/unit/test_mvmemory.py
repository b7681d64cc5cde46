"""Block-STM's multi-version memory and scheduler, piece by piece, and how a block fails."""

from __future__ import annotations

import pytest

from offchain.executor.blockstm import (
    InconsistentRead,
    MVMemory,
    ReadDependency,
    Scheduler,
    execute_parallel,
    execute_sequential,
)
from offchain.l2.codec import Deposit, Transfer
from offchain.l2.stf import Credit, balance_key
from tests.l2_blocks import ADDRS, CTX, TOKEN, signed_tx

K = b"\x01" * 32


STORED = (500).to_bytes(16, "big")


def _storage(key: bytes) -> bytes | None:
    return STORED if key == K else None


def test_read__sees_the_highest_lower_writer_or_storage():
    memory = MVMemory(4, _storage)
    assert memory.read(K, 2) == STORED  # nobody wrote: storage
    memory.record(0, [], {K: b"a"})
    memory.record(2, [], {K: b"c"})
    assert memory.read(K, 1) == b"a"
    assert memory.read(K, 3) == b"c"
    assert memory.read(K, 0) == STORED  # a transaction never reads its own or later writes


def test_read__adds_the_credits_it_passes_to_the_value_below():
    memory = MVMemory(5, _storage)
    memory.record(0, [], {K: Credit(7)})
    memory.record(2, [], {K: Credit(3)})
    assert memory.read(K, 1) == (507).to_bytes(16, "big")
    assert memory.read(K, 3) == (510).to_bytes(16, "big")
    memory.record(1, [], {K: (1).to_bytes(16, "big")})  # a value below a credit hides what is under it
    assert memory.read(K, 4) == (4).to_bytes(16, "big")
    assert memory.read(b"\x02" * 32, 4) is None


def test_credits__do_not_conflict_with_each_other():
    memory = MVMemory(3, _storage)
    memory.record(1, [], {K: Credit(3)})
    memory.record(2, [], {K: Credit(4)})  # neither read K
    memory.record(0, [], {K: Credit(5)})  # 0 re-executes with a different credit
    assert memory.validate_read_set(1) and memory.validate_read_set(2)
    assert memory.snapshot() == [{K: n.to_bytes(16, "big")} for n in (505, 508, 512)]


def test_estimate__makes_readers_wait_for_the_writer():
    memory = MVMemory(3, _storage)
    memory.record(0, [], {K: b"a"})
    memory.convert_writes_to_estimates(0)
    with pytest.raises(ReadDependency) as info:
        memory.read(K, 2)
    assert info.value.blocking == 0


def test_estimate_under_a_credit__still_blocks_a_reader():
    memory = MVMemory(3, _storage)
    memory.record(0, [], {K: b"a"})
    memory.record(1, [], {K: Credit(1)})
    memory.convert_writes_to_estimates(0)
    with pytest.raises(ReadDependency):
        memory.read(K, 2)


def test_validate_read_set__detects_a_changed_value():
    memory = MVMemory(3, _storage)
    memory.record(0, [], {K: b"a"})
    memory.record(1, [(K, b"a")], {})
    assert memory.validate_read_set(1)
    memory.record(0, [], {K: b"b"})  # transaction 0 re-executed
    assert not memory.validate_read_set(1)
    memory.convert_writes_to_estimates(0)
    assert not memory.validate_read_set(1)  # an ESTIMATE fails validation too


def test_record__reports_new_locations_and_drops_stale_ones():
    memory = MVMemory(2, _storage)
    other = b"\x02" * 32
    assert memory.record(0, [], {K: b"a"}) is True
    assert memory.record(0, [], {K: b"b"}) is False  # same location
    assert memory.record(0, [], {other: b"c"}) is True
    assert memory.read(K, 1) == STORED  # the incarnation no longer writes K
    assert memory.snapshot() == [{other: b"c"}, {}]


def test_scheduler__runs_every_transaction_then_is_done():
    scheduler = Scheduler(3)
    executed = []
    while not scheduler.done():
        task = scheduler.next_task()
        while task is not None:
            if task[0] == "execute":
                executed.append(task[1])
                task = scheduler.finish_execution(task[1], wrote_new_location=True)
            else:
                task = scheduler.finish_validation(task[1][0], aborted=False)
    assert executed == [(0, 0), (1, 0), (2, 0)]
    assert (scheduler.incarnations, scheduler.suspensions, scheduler.validation_aborts) == (3, 0, 0)


def test_scheduler__dependency_suspends_then_resumes_with_next_incarnation():
    scheduler = Scheduler(2)
    first = scheduler.next_task()
    second = None
    while second is None:  # a validation attempt of 0 (still executing) comes back empty first
        second = scheduler.next_task()
    assert (first[1], second[1]) == ((0, 0), (1, 0))
    assert scheduler.add_dependency(1, 0) is True  # 1 read an ESTIMATE of 0
    scheduler.finish_execution((0, 0), wrote_new_location=True)  # resumes 1 as incarnation 1
    executions = []
    for _ in range(10):  # validates 0 on the way, then hands out 1 again
        task = scheduler.next_task()
        if task is not None and task[0] == "validate":
            scheduler.finish_validation(task[1][0], aborted=False)
        elif task is not None:
            executions.append(task[1])
            break
    assert executions == [(1, 1)]
    assert (scheduler.suspensions, scheduler.incarnations, scheduler.validation_aborts) == (1, 3, 0)


class _StorageDown(Exception):
    pass


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("failing", ["storage", "signature"])
def test_execute_parallel__a_failing_thread_stops_the_block_and_raises(threads, failing):
    """Neither a silent success with empty writes (one thread) nor a hang (several)."""
    txs = [signed_tx("transfer", i % 7, (i + 1) % 7, 1, 0) for i in range(40)]

    def storage(key: bytes) -> bytes | None:
        if failing == "storage":
            raise _StorageDown("the state store is gone")
        return None

    def signed(i: int) -> bool:
        if failing == "signature" and i == 17:
            raise _StorageDown("a signature worker died")
        return True

    with pytest.raises(_StorageDown):
        execute_parallel(txs, CTX, storage, threads=threads, signed=signed)


MAX = 2**128 - 1


def test_read__of_credits_past_16_bytes__is_an_inconsistent_read():
    memory = MVMemory(3, _storage)
    memory.record(0, [], {K: Credit(MAX)})
    memory.record(1, [], {K: Credit(MAX)})  # only a speculative state can hold both
    with pytest.raises(InconsistentRead):
        memory.read(K, 2)
    memory.record(2, [(K, STORED)], {})
    assert memory.validate_read_set(2) is False


@pytest.mark.parametrize("threads", [1, 2])
def test_an_inconsistent_read__runs_the_block_sequentially(threads):
    """Such a read (see the test above) means a speculative state no sequential run reaches:
    the block's result is then the sequential one, not an overflow."""
    txs = [signed_tx("transfer", i % 7, (i + 1) % 7, 1, 0) for i in range(40)]
    funded = {balance_key(ADDRS[i], TOKEN): (50).to_bytes(16, "big") for i in range(7)}
    first = [True]

    def storage(key: bytes) -> bytes | None:
        if first[0] and key == balance_key(ADDRS[3], TOKEN):
            first[0] = False
            raise InconsistentRead(key)
        return funded.get(key)

    expected = execute_sequential(txs, CTX, funded.get)
    statuses, writes, _ = execute_parallel(txs, CTX, storage, threads=threads)
    assert (statuses, writes) == expected[:2] and not first[0]


def test_a_block_past_the_cap__raises_as_sequential_does():
    """Two deposits of 2^128 - 1 to one account break the inbox's cap: no executor hides it."""
    deposits = [Deposit(0, ADDRS[0], TOKEN, MAX), Deposit(1, ADDRS[0], TOKEN, MAX)]
    spend = Transfer(ADDRS[0], ADDRS[1], TOKEN, 1, 0, 0, b"\x00" * 65)
    for txs in (deposits, [*deposits, spend]):
        with pytest.raises(OverflowError):
            execute_sequential(txs, CTX, {}.get, lambda i: True)
        for threads in (1, 2):
            with pytest.raises(OverflowError):
                execute_parallel(txs, CTX, {}.get, threads=threads, signed=lambda i: True)
