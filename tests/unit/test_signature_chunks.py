"""Signature checks in worker processes: how a block is cut into tasks, and every answer in place."""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise

import pytest

from offchain.executor.block import verify_signatures
from offchain.executor.processes import FIRST_CHUNK, LARGEST_CHUNK
from offchain.executor.processes import chunk_starts as _chunk_starts
from offchain.l2.stf import signature_ok
from tests.l2_blocks import CTX, deposits, signed_tx


@pytest.mark.parametrize("n", [0, 1, FIRST_CHUNK - 1, FIRST_CHUNK, FIRST_CHUNK + 1, 1_000, 10_000, 65_537])
def test_chunks__cover_the_block_once_growing_then_shrinking(n):
    starts = _chunk_starts(n)
    bounds = [*starts, n]
    sizes = [hi - lo for lo, hi in pairwise(bounds)]
    assert (starts[:1], sum(sizes)) == (([0] if n else []), n)
    assert all(size > 0 for size in sizes) and max(sizes, default=0) <= LARGEST_CHUNK
    assert sizes[:1] == [min(n, FIRST_CHUNK)][: len(sizes)]
    peak = sizes.index(max(sizes)) if sizes else 0
    assert sizes[: peak + 1] == sorted(sizes[: peak + 1])  # grows to the peak ...
    assert sizes[peak:-1] == sorted(
        sizes[peak:-1], reverse=True
    )  # ... then shrinks (the last is what is left)


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(max_workers=2) as executor:
        yield executor


def test_verify_signatures__every_answer_as_in_process_in_any_order(pool):
    rng = random.Random(5)
    kinds = ["transfer", "withdraw", "authorization"]
    txs = [
        signed_tx(kinds[i % 3], i % 7, (i + 1) % 7, 1 + i % 50, i % 5, bad_sig=rng.random() < 0.2)
        for i in range(700)
    ]
    txs[::97] = deposits(len(txs[::97]))  # deposits need no signature
    expected = [signature_ok(tx, CTX) for tx in txs]
    assert not all(expected) and any(expected)
    signed = verify_signatures(txs, CTX, pool)
    order = list(range(len(txs)))
    rng.shuffle(order)
    assert [signed(i) for i in order] == [expected[i] for i in order]
    assert [signed(i) for i in range(len(txs))] == expected  # answered again, from the cache
