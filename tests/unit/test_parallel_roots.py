"""State roots computed in worker processes, one subtree each, equal the roots of one in-memory tree."""

from __future__ import annotations

import fcntl
import sys
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.executor.block import run_block
from offchain.executor.merkle import (
    PIPE_BYTES,
    BlockWrites,
    _join,
    _subtrees,
    parallel_roots,
    submit_block_root,
    worker_pool,
)
from offchain.hashing import keccak
from offchain.l2.codec import Deposit
from offchain.l2.smt import EMPTY, SparseMerkleTree, internal_hash, leaf_hash, verify
from offchain.l2.stf import State, apply_block
from offchain.l2.store import StateStore
from tests.l2_blocks import ADDRS, CTX, TOKEN, deposits, signed_tx

SLOW = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="module")
def pool():
    with worker_pool(2) as executor:
        yield executor


@pytest.mark.skipif(sys.platform != "linux", reason="pipe sizes are a Linux setting")
def test_worker_pool__pipes_hold_a_whole_task_or_result(pool):
    get_size = 1032  # F_GETPIPE_SZ, which the fcntl module does not name before Python 3.12
    for queue in (pool._call_queue, pool._result_queue):
        assert fcntl.fcntl(queue._reader.fileno(), get_size) == PIPE_BYTES


@given(
    writes=st.lists(
        st.dictionaries(st.binary(min_size=32, max_size=32), st.none() | st.binary(min_size=1, max_size=16)),
        max_size=6,
    ),
    depth=st.integers(1, 8),
)
def test_block_writes__split_each_locations_last_write_by_subtree(writes, depth):
    block, expected = BlockWrites(depth), {}
    for tx_writes in writes:
        block.add(tx_writes)
        expected.update(tx_writes)
    assert block.merged == expected
    assert len(block.shards) == 1 << depth
    for shard, part in enumerate(block.shards):
        assert part == {key: value for key, value in expected.items() if key[0] >> (8 - depth) == shard}


# -- trees ----------------------------------------------------------------------------------------


def _hashes(values: dict) -> dict:
    return {key: None if value is None else keccak(value) for key, value in values.items()}


def _in_shard(key: bytes, shard: int, depth: int) -> bytes:
    """`key` moved into subtree `shard` of the `2^depth` at `depth` (its top bits replaced)."""
    return bytes([(shard << (8 - depth)) | (key[0] & (0xFF >> depth))]) + key[1:]


def _reference(base: dict, per_tx: list[dict]) -> tuple[bytes, list[bytes], list[dict]]:
    """The base root, then the root and the values after each entry, one by one in one in-memory tree."""
    tree = SparseMerkleTree()
    root = base_root = tree.update(EMPTY, _hashes(base))
    roots, states, current = [], [], dict(base)
    for values in per_tx:
        root = tree.update(root, _hashes(values))
        for key, value in values.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        roots.append(root)
        states.append(dict(current))
    return base_root, roots, states


def _committed(path, base: dict) -> tuple[StateStore, bytes]:
    """A new store at `path` whose block 0 holds `base`, committed."""
    store = StateStore(path)
    state = store.state_at().apply(base)
    store.commit(0, state)
    assert store.committed(store.state_at())
    return store, state.root


def _proves(tree: SparseMerkleTree, root: bytes, key: bytes, value: bytes | None) -> bool:
    value_hash = None if value is None else keccak(value)
    return tree.get(root, key) == value_hash and verify(root, key, value_hash, tree.prove(root, key))


def _check(store: StateStore, root: bytes, base: dict, per_tx: list[dict], pool, depth: int) -> None:
    """parallel_roots equals the reference, per entry and merged, and proves every key at every root."""
    base_root, expected, states = _reference(base, per_tx)
    assert root == base_root
    clean = store.committed(store.state_at())
    assert parallel_roots(store, root, per_tx, pool, depth, keep_nodes=False) == expected
    assert store.committed(store.state_at()) == clean  # no nodes kept
    roots = parallel_roots(store, root, per_tx, pool, depth)
    assert roots == expected
    for values, new_root, state in zip(per_tx, roots, states, strict=True):
        for key in values:
            assert _proves(store.tree, new_root, key, state.get(key))
    merged: dict = {}
    for values in per_tx:
        merged.update(values)
    assert parallel_roots(store, root, [merged], pool, depth) == [expected[-1] if per_tx else root]
    final = states[-1] if states else base
    for key in set(base) | set(merged):  # changed and unchanged keys, present and absent
        assert _proves(store.tree, expected[-1] if per_tx else root, key, final.get(key))


values_st = st.binary(max_size=3)


@st.composite
def keyspaces(draw):
    """Leaf key `i` of a random layout: spread, or all in the first top-level subtree, and clustered
    in groups sharing 31 bytes (differing in the last bit, or anywhere in the last byte)."""
    one_subtree = draw(st.booleans())
    group = draw(st.sampled_from([0, 2, 16, 256, -16]))  # keys sharing 31 bytes (0: none; <0: half of them)

    def key(i: int) -> bytes:
        size = abs(group) if group > 0 or (group < 0 and i % 2 == 0) else 0
        if size:
            prefix = keccak(b"cluster" + (i // size).to_bytes(4, "big"))
            k = prefix[:31] + bytes([i % size])
        else:
            k = keccak(i.to_bytes(4, "big"))
        return _in_shard(k, 0, 3) if one_subtree else k

    return key


@st.composite
def scenarios(draw):
    """A base state (0 to 300 leaves), and the changes of each transaction after it."""
    key = draw(keyspaces())
    size = draw(st.sampled_from([0, 1, 2, 3, 10, 60, 300]))
    if size <= 10:
        indices = draw(st.lists(st.integers(0, 599), min_size=size, max_size=size, unique=True))
        base = dict(
            zip(map(key, indices), draw(st.lists(values_st, min_size=size, max_size=size)), strict=True)
        )
    else:  # derived from a few draws: hundreds of draws would overrun Hypothesis's buffer
        start, stride, salt = (
            draw(st.integers(0, 599)),
            draw(st.sampled_from([1, 7, 13])),
            draw(st.integers(1, 255)),
        )
        indices = [(start + stride * j) % 600 for j in range(size)]  # distinct: 600 is prime to 7 and 13
        base = {key(i): bytes([salt, i % 256])[: i % 3] for i in indices}
    live, per_tx = set(base), []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["changes", "changes", "changes", "empty", "delete all"]))
        if kind == "empty":
            values: dict = {}
        elif kind == "delete all":
            values = dict.fromkeys(sorted(live))
        else:
            fresh = st.integers(0, 599).map(key)
            keys = st.one_of(st.sampled_from(sorted(live)), fresh) if live else fresh
            values = draw(st.dictionaries(keys, st.none() | values_st, min_size=1, max_size=6))
        for k, v in values.items():
            (live.discard if v is None else live.add)(k)
        per_tx.append(values)
    return base, per_tx


@settings(SLOW, max_examples=40)
@given(scenario=scenarios(), depth=st.sampled_from([1, 2, 3]))
def test_parallel_roots__equal_one_tree_updated_one_transaction_at_a_time(
    tmp_path_factory, pool, scenario, depth
):
    base, per_tx = scenario
    store, root = _committed(tmp_path_factory.mktemp("state"), base)
    try:
        _check(store, root, base, per_tx, pool, depth)
    finally:
        store.discard()
        store.close()


@settings(SLOW, max_examples=100)
@given(scenario=scenarios(), depth=st.integers(1, 8))
def test_subtrees_then_join__give_back_the_root(scenario, depth):
    base, _ = scenario
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, _hashes(base))
    subroots = _subtrees(tree, root, depth)
    assert len(subroots) == 1 << depth
    for shard, (sub, is_leaf) in enumerate(subroots):
        alone = {k: v for k, v in _hashes(base).items() if k[0] >> (8 - depth) == shard}
        assert sub == SparseMerkleTree().update_at(EMPTY, alone, depth)
        assert is_leaf == (len(alone) == 1)
    assert _join(tree, subroots) == root


# -- edge cases -----------------------------------------------------------------------------------

A, B, C = keccak(b"a"), keccak(b"b"), keccak(b"c")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_empty_tree__to_one_leaf_and_back(tmp_path, pool, depth):
    store, root = _committed(tmp_path, {})
    assert root == EMPTY
    roots = parallel_roots(store, EMPTY, [{A: b"1"}, {}, {A: None}, {A: None}], pool, depth)
    assert roots == [leaf_hash(A, keccak(b"1"))] * 2 + [EMPTY] * 2
    assert parallel_roots(store, EMPTY, [], pool, depth) == []
    assert parallel_roots(store, EMPTY, [{}], pool, depth) == [EMPTY]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_one_leaf__to_empty(tmp_path, pool, depth):
    store, root = _committed(tmp_path, {A: b"1"})
    assert root == leaf_hash(A, keccak(b"1"))
    assert parallel_roots(store, root, [{A: None}], pool, depth) == [EMPTY]
    assert parallel_roots(store, root, [{B: None}], pool, depth) == [root]  # deleting an absent key
    _check(store, root, {A: b"1"}, [{A: None, B: b"2"}, {B: None}], pool, depth)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("other_shard", [0, 1, 3, 4, 7])
def test_single_leaf_above_depth__stays_in_its_subtree(tmp_path, pool, depth, other_shard):
    """A lone leaf is the root (level 0); another key lands in its subtree at `depth`, or next to it."""
    a = _in_shard(A, 0, 3)
    store, root = _committed(tmp_path, {a: b"1"})
    assert _subtrees(store.tree, root, depth) == [(root, True)] + [(EMPTY, False)] * ((1 << depth) - 1)
    b = _in_shard(B, other_shard, 3)
    _check(store, root, {a: b"1"}, [{b: b"2"}, {a: None}, {a: b"3"}, {b: None}, {a: None}], pool, depth)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_two_leaves_one_level_down__each_in_its_subtree(tmp_path, pool, depth):
    """Leaves at level 1, above `depth`: one changes, one is deleted, one moves up past the split."""
    a, c = _in_shard(A, 0, 3), _in_shard(C, 7, 3)
    base = {a: b"1", c: b"3"}
    store, root = _committed(tmp_path, base)
    assert root == internal_hash(leaf_hash(a, keccak(b"1")), leaf_hash(c, keccak(b"3")))
    b = _in_shard(B, 1, 3)  # next to a at depth 3, in the same subtree at depths 1 and 2
    _check(store, root, base, [{b: b"2"}, {c: None}, {a: None}, {b: b"4"}, {c: b"5", b: None}], pool, depth)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_all_changes_in_one_subtree(tmp_path, pool, depth):
    spread = {keccak(i.to_bytes(2, "big")): bytes([i]) for i in range(40)}
    store, root = _committed(tmp_path, spread)
    first = sorted(k for k in spread if k[0] >> (8 - depth) == 0)
    assert first  # 40 keys: some are in the first subtree at depth 3
    inserts = {_in_shard(keccak(b"new" + bytes([i])), 0, 3): b"n" for i in range(10)}
    per_tx = [inserts, {k: b"x" for k in first[:2]}, dict.fromkeys(first + sorted(inserts)), {first[0]: b"y"}]
    _check(store, root, spread, per_tx, pool, depth)


def test_subtree_collapsing_to_one_leaf__moves_it_up_past_the_split(tmp_path, pool):
    """Two deep leaves (sharing 31 bytes) in the first subtree, one other leaf: deleting one deep
    leaf leaves the other alone, so it climbs from level ~255 to level 1 across the subtree roots."""
    deep = keccak(b"deep")[:31]
    a, b, c = _in_shard(deep + b"\x00", 0, 3), _in_shard(deep + b"\x01", 0, 3), _in_shard(C, 6, 3)
    base = {a: b"1", b: b"2", c: b"3"}
    store, root = _committed(tmp_path, base)
    roots = parallel_roots(store, root, [{b: None}], pool, 3)
    assert roots == [internal_hash(leaf_hash(a, keccak(b"1")), leaf_hash(c, keccak(b"3")))]
    _check(store, root, base, [{b: None}, {c: None}, {b: b"2"}, {a: None, b: None}], pool, 3)


def test_join__collapses_as_the_tree_does():
    leaf, other = leaf_hash(A, keccak(b"1")), leaf_hash(B, keccak(b"2"))
    tree = SparseMerkleTree()
    none = (EMPTY, False)
    assert _join(tree, [none] * 8) == EMPTY
    assert _join(tree, [none] * 5 + [(leaf, True)] + [none] * 2) == leaf
    inner = internal_hash(leaf, other)  # a subtree of two leaves next to empty ones does not move up
    assert _join(tree, [(inner, False), none]) == internal_hash(inner, EMPTY)
    assert _join(tree, [none, (inner, False)]) == internal_hash(EMPTY, inner)
    assert _join(tree, [none, (inner, False), none, none]) == internal_hash(
        internal_hash(EMPTY, inner), EMPTY
    )
    assert _join(tree, [(leaf, True), none, none, (other, True)]) == internal_hash(leaf, other)


# -- blocks ---------------------------------------------------------------------------------------


@st.composite
def blocks(draw):
    """Random blocks, spread or around one hot account, with failures, deposits and emptied balances."""
    hot = draw(st.sampled_from([None, 0, 1]))
    txs, next_deposit = [], 7
    for _ in range(draw(st.integers(0, 24))):
        kind = draw(st.sampled_from(["transfer", "transfer", "authorization", "withdraw", "deposit"]))
        if kind == "deposit":
            index = next_deposit if draw(st.booleans()) else draw(st.integers(0, 20))
            next_deposit += index == next_deposit
            txs.append(Deposit(index, ADDRS[draw(st.integers(0, 6))], TOKEN, draw(st.integers(1, 30))))
            continue
        sender = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 6))
        to = hot if hot is not None and draw(st.booleans()) else draw(st.integers(0, 6))
        amount = draw(st.sampled_from([49, 50]) | st.integers(1, 60))  # 49 + fee 1 or 50: a balance to 0
        txs.append(signed_tx(kind, sender, to, amount, draw(st.integers(0, 3)), draw(st.integers(0, 9)) == 0))
    return txs


MEMORY_GENESIS = apply_block(State(), CTX, deposits(7)).state


def _genesis_store(path) -> tuple[StateStore, State]:
    store = StateStore(path)
    store.commit(0, apply_block(store.state_at(), CTX, deposits(7)).state)
    state = store.state_at()
    assert state.root == MEMORY_GENESIS.root and store.committed(state)
    return store, state


def _spy():
    """Watches the block root being sent to the workers (run_block's path through processes)."""
    return mock.patch("offchain.executor.block.submit_block_root", wraps=submit_block_root)


@pytest.fixture
def genesis(tmp_path):
    store, state = _genesis_store(tmp_path / "state")
    yield store, state
    store.close()


@settings(SLOW, max_examples=12)
@given(txs=blocks())
def test_run_block_with_roots_in_workers__equals_apply_block(genesis, pool, txs):
    store, state = genesis
    expected = apply_block(MEMORY_GENESIS, CTX, txs)
    try:
        assert store.committed(state)
        with _spy() as spy:
            got = run_block(state, CTX, txs, pool=pool, store=store, trace=True, sequential_below=0)
        assert spy.called
        assert got.statuses == expected.statuses
        assert got.roots == expected.roots
        assert (got.state.root, got.state.values) == (expected.state.root, expected.state.values)
        store.discard()
        with _spy() as spy:
            untraced = run_block(state, CTX, txs, pool=pool, store=store, sequential_below=0)
        assert spy.called
        assert (untraced.state.root, untraced.roots) == (expected.state.root, None)
        assert untraced.state.values == expected.state.values
    finally:
        store.discard()


def _block() -> list:
    """Transfers, a withdrawal, an emptied balance (deleted leaf), failures and a deposit."""
    return [
        signed_tx("transfer", 0, 1, 10, 0),
        signed_tx("transfer", 2, 3, 49, 0),  # 49 + fee 1: the sender's balance leaf is deleted
        signed_tx("withdraw", 4, 4, 20, 0),
        signed_tx("transfer", 5, 6, 5, 1),  # bad nonce
        signed_tx("authorization", 1, 0, 30, 0),
        signed_tx("transfer", 3, 0, 1, 0, bad_sig=True),
        Deposit(7, ADDRS[5], TOKEN, 8),
    ]


def test_roots_from_workers__prove_commit_and_read_back_after_reopening(tmp_path, pool):
    path = tmp_path / "state"
    store, genesis = _genesis_store(path)
    txs = _block()
    expected = apply_block(MEMORY_GENESIS, CTX, txs)
    with _spy() as spy:
        got = run_block(genesis, CTX, txs, pool=pool, store=store, trace=True, sequential_below=0)
    assert spy.called and got.roots == expected.roots and got.state.root == expected.state.root
    deleted = [k for k in genesis.values if k not in got.state.values]
    assert deleted  # the emptied balance
    # Every key, changed or not, present or deleted, is proven by the nodes the workers built.
    for key in set(genesis.values) | set(got.state.values):
        assert _proves(store.tree, got.state.root, key, got.state.values.get(key))
        assert _proves(store.tree, genesis.root, key, genesis.values.get(key))
    store.commit(1, got.state)
    assert store.committed(store.state_at())
    store.close()

    store = StateStore(path)
    try:
        assert store.latest() == 1 and store.root_at(1) == expected.state.root
        assert store.state_at(1).values == expected.state.values
        assert store.state_at(0).values == MEMORY_GENESIS.values
        for key in set(genesis.values) | set(got.state.values):
            assert store.read(1, key) == expected.state.values.get(key)
        # The next block's workers read the nodes the last block's workers built.
        state = store.state_at()
        assert store.committed(state)
        txs = [
            signed_tx("transfer", 0, 2, 5, 1),
            signed_tx("transfer", 1, 2, 1, 0),
            Deposit(8, ADDRS[3], TOKEN, 3),
        ]
        following = apply_block(expected.state, CTX, txs)
        with _spy() as spy:
            got = run_block(state, CTX, txs, pool=pool, store=store, trace=True, sequential_below=0)
        assert spy.called and got.roots == following.roots
        assert (got.state.root, got.state.values) == (following.state.root, following.state.values)
    finally:
        store.close()


def _node_count(store: StateStore) -> int:
    with store.env.begin(db=store.nodes) as txn:
        return txn.stat(store.nodes)["entries"]


def test_trace_in_workers__keeps_only_the_block_roots_nodes(tmp_path, pool):
    """The per-transaction roots are roots only: a traced block commits the same nodes as an untraced one."""
    counts = []
    for trace in (False, True):
        store, genesis = _genesis_store(tmp_path / str(trace))
        with _spy() as spy:
            got = run_block(genesis, CTX, _block(), pool=pool, store=store, trace=trace, sequential_below=0)
        assert spy.called and got.state.root == apply_block(MEMORY_GENESIS, CTX, _block()).state.root
        store.commit(1, got.state)
        counts.append(_node_count(store))
        store.close()
    assert counts[0] == counts[1]


# -- fallback -------------------------------------------------------------------------------------


def test_uncommitted_nodes__roots_are_computed_in_process(genesis, pool):
    store, state = genesis
    state.apply({A: b"pending"})  # nodes on the store's tree that no worker can read
    assert not store.committed(state)
    txs = _block()
    expected = apply_block(MEMORY_GENESIS, CTX, txs)
    with _spy() as spy:
        got = run_block(state, CTX, txs, pool=pool, store=store, trace=True, sequential_below=0)
        untraced = run_block(state, CTX, txs, pool=pool, store=store, sequential_below=0)
    assert not spy.called
    assert (got.statuses, got.roots) == (expected.statuses, expected.roots)
    assert (got.state.root, got.state.values) == (expected.state.root, expected.state.values)
    assert (untraced.state.root, untraced.roots) == (expected.state.root, None)
    store.discard()
    assert store.committed(state)


def test_state_not_at_the_latest_block__is_not_committed(genesis, pool):
    store, state = genesis
    store.commit(1, state.apply({A: b"1"}))
    old, latest = store.state_at(0), store.state_at(1)
    assert store.committed(latest) and not store.committed(old)
    assert not store.committed(State(SparseMerkleTree(), dict(latest.values), latest.root))  # another tree
    txs = _block()
    expected = apply_block(MEMORY_GENESIS, CTX, txs)
    with _spy() as spy:
        got = run_block(old, CTX, txs, pool=pool, store=store, trace=True, sequential_below=0)
    assert not spy.called
    assert (got.roots, got.state.root, got.state.values) == (
        expected.roots,
        expected.state.root,
        expected.state.values,
    )


# -- a store that grows ---------------------------------------------------------------------------


def test_workers__read_a_store_that_grew_after_they_opened_it(tmp_path, pool):
    """Workers keep their LMDB environment open across blocks; the state grows meanwhile (here past
    10 MiB, the size the workers map by default)."""
    base = {_in_shard(keccak(bytes([i])), i % 8, 3): bytes([i]) for i in range(16)}
    store, root = _committed(tmp_path, base)
    try:
        for _ in range(3):  # let both workers open the environment while it is small
            _check(store, root, base, [{A: b"1"}, {B: b"2", C: b"3"}], pool, 3)
            store.discard()
        grown = {keccak(b"big" + bytes([i])): bytes([i]) * (1 << 20) for i in range(12)}
        store.commit(1, store.state_at().apply(grown))
        state = store.state_at()
        assert store.committed(state)
        for _ in range(3):
            _check(store, state.root, state.values, [{A: b"1"}, {B: b"2", C: b"3"}], pool, 3)
            store.discard()
    finally:
        store.close()
