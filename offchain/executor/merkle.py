"""State roots computed in worker processes, one subtree of the state tree each.

After its transactions, a block's state root is the costliest sequential part of a block: every
changed leaf re-hashes its path. The tree splits cleanly: the `2^depth` subtrees under the top
`depth` levels are independent, so worker processes update them side by side and the parent
joins their roots. Workers read the committed nodes from the LMDB state store (memory-mapped,
MVCC: any number of readers in any process) and return the nodes they create, which the parent
keeps with the block's other new nodes until the block commits. The result is the same tree,
node for node, as `SparseMerkleTree.update` in one process: the compact tree is canonical.

The same split computes the per-transaction roots (the trace): each worker yields its subtree's
root after every transaction that touches it, and the parent joins the roots per transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Mapping
from concurrent.futures import Executor as PoolExecutor
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import lmdb

from offchain.hashing import keccak
from offchain.l2.smt import (
    EMPTY,
    Internal,
    Leaf,
    Node,
    SparseMerkleTree,
    decode_node,
    internal_hash,
)
from offchain.l2.store import StateStore, begin_read

# A block's root splits into 32 subtrees: the workers finish within a small subtree of each other
# (with 8, one often idled for half of one at the end). A trace joins the subtree roots after
# every transaction, 2^depth - 1 hashes each time, so it splits into 8.
BLOCK_DEPTH = 5
TRACE_DEPTH = 3


PIPE_BYTES = 1 << 20  # what Linux lets any process give a pipe (fs.pipe-max-size by default)


def worker_pool(workers: int = 2) -> ProcessPoolExecutor:
    """Processes for signature checks and subtree updates. Spawned, not forked: a forked child
    would inherit the parent's open LMDB environment, which LMDB forbids using across a fork.

    Its two pipes (tasks out, results back) are widened from 64 KiB to hold a whole task or
    result (a chunk of transactions, a subtree's new nodes: up to a few hundred KiB): otherwise
    a worker stalls mid-write until this process, busy executing, is scheduled to drain the
    pipe, and with two cores for three processes that wait is most of a worker's idle time."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    queues = (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None))  # no public handle
    for queue in queues:
        reader = getattr(queue, "_reader", None)
        if reader is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):  # refused (a lower limit): the pipe keeps its size
                fcntl.fcntl(reader.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return pool


Values = Mapping[bytes, bytes | None]  # leaf key -> raw value (None: delete)
SubRoot = tuple[bytes, bool]  # a subtree's root hash, and whether it is a single leaf


class BlockWrites:
    """A block's writes as an executor makes them: each location's last (`merged`, what later
    transactions read), and the same split by subtree (`shards`, the root's tasks). Splitting as
    they come costs what one pass at the end would, but while the workers are still checking
    signatures, not while they wait for their first subtree."""

    def __init__(self, depth: int = BLOCK_DEPTH):
        self.depth = depth
        self.merged: dict[bytes, bytes | None] = {}
        self.shards: list[dict[bytes, bytes | None]] = [{} for _ in range(1 << depth)]

    def add(self, writes: Values) -> None:
        self.merged.update(writes)
        shards, shift = self.shards, 8 - self.depth
        for key, value in writes.items():
            shards[key[0] >> shift][key] = value


# -- in the workers -----------------------------------------------------------------------------


class _WorkerNodes:
    """Committed nodes from LMDB (one read transaction) under the nodes this task creates."""

    def __init__(self, txn: lmdb.Transaction):
        self._txn = txn
        self.created: dict[bytes, Node] = {}

    def get(self, node_hash: bytes) -> Node | None:
        node = self.created.get(node_hash)
        if node is None:
            raw = self._txn.get(node_hash)
            node = None if raw is None else decode_node(bytes(raw))
        return node

    def __setitem__(self, node_hash: bytes, node: Node) -> None:
        self.created[node_hash] = node


def _update_subtree(
    job: tuple[str, bytes, int, list[dict[bytes, bytes | None]], bool],
) -> tuple[list[SubRoot], bytes]:
    """Applies each step of changes in turn to the subtree `node_hash` at `depth`; its root after each."""
    path, node_hash, depth, steps, keep = job
    with begin_read(path, b"nodes") as txn:
        nodes = _WorkerNodes(txn)
        tree = SparseMerkleTree(nodes, created=[] if keep else None)
        roots = []
        for values in steps:
            changes = {key: None if value is None else keccak(value) for key, value in values.items()}
            node_hash = tree.update_at(node_hash, changes, depth)
            roots.append((node_hash, isinstance(nodes.get(node_hash), Leaf)))
    return roots, b"".join(tree.created or ())


# -- in the parent ------------------------------------------------------------------------------


def _shard(key: bytes, depth: int) -> int:
    return key[0] >> (8 - depth)


def _subtrees(tree: SparseMerkleTree, root: bytes, depth: int) -> list[SubRoot]:
    """The root of each subtree at `depth` under `root` (a leaf higher up sits in its key's subtree)."""
    out: list[SubRoot] = [(EMPTY, False)] * (1 << depth)

    def walk(node_hash: bytes, level: int, prefix: int) -> None:
        if node_hash == EMPTY:
            return
        node = tree.store.get(node_hash)
        if isinstance(node, Leaf):
            out[_shard(node.key, depth)] = (node_hash, True)
        elif level == depth:
            out[prefix] = (node_hash, False)
        elif isinstance(node, Internal):
            walk(node.left, level + 1, prefix << 1)
            walk(node.right, level + 1, (prefix << 1) | 1)
        else:
            raise LookupError(f"missing node {node_hash.hex()}")

    walk(root, 0, 0)
    return out


def _join(tree: SparseMerkleTree, subroots: list[SubRoot], keep: bool = True) -> bytes:
    """The root over the subtree roots, collapsing as the compact tree does."""
    level = subroots
    while len(level) > 1:
        joined = []
        for (left, left_leaf), (right, right_leaf) in zip(level[::2], level[1::2], strict=True):
            if left == EMPTY and (right == EMPTY or right_leaf):
                joined.append((right, right_leaf))
            elif right == EMPTY and left_leaf:
                joined.append((left, True))
            else:
                node_hash = internal_hash(left, right)
                if keep:
                    tree.store[node_hash] = Internal(left, right)
                joined.append((node_hash, False))
        level = joined
    return level[0][0]


def parallel_roots(
    store: StateStore,
    root: bytes,
    per_tx: list[Values],
    pool: PoolExecutor,
    depth: int = TRACE_DEPTH,
    keep_nodes: bool = True,
) -> list[bytes]:
    """The root after each entry of `per_tx` applied in turn to `root`, whose nodes are committed
    in `store`. One entry gives the block's root. With `keep_nodes` the new nodes join the store's
    pending nodes; a trace for a dispute needs only the roots (a witness is proven later on the
    state rebuilt up to its transaction), so it leaves them out."""
    return submit_roots(store, root, per_tx, pool, depth, keep_nodes)()


def submit_roots(
    store: StateStore,
    root: bytes,
    per_tx: list[Values],
    pool: PoolExecutor,
    depth: int = TRACE_DEPTH,
    keep_nodes: bool = True,
) -> Callable[[], list[bytes]]:
    """`parallel_roots` in two steps: this sends the subtrees to the workers at once, and the
    function it returns waits for them and joins the roots (the caller works meanwhile)."""
    shift = 8 - depth
    steps: list[list[tuple[int, dict]]] = [[] for _ in range(1 << depth)]  # per subtree: (entry, changes)
    for index, values in enumerate(per_tx):
        split: list[dict] = [{} for _ in steps]
        for key, value in values.items():
            split[key[0] >> shift][key] = value  # _shard, inline: a block root splits 30,000 keys
        for shard, changes in enumerate(split):
            if changes:
                steps[shard].append((index, changes))
    return _submit(store, root, len(per_tx), steps, pool, depth, keep_nodes)


def submit_block_root(
    store: StateStore, root: bytes, block: BlockWrites, pool: PoolExecutor
) -> Callable[[], bytes]:
    """`submit_roots` of a block's writes already split by subtree; the new nodes are kept."""
    steps = [[(0, changes)] if changes else [] for changes in block.shards]
    collect = _submit(store, root, 1, steps, pool, block.depth, True)
    return lambda: collect()[0]


def _submit(
    store: StateStore,
    root: bytes,
    entries: int,
    steps: list[list[tuple[int, dict]]],
    pool: PoolExecutor,
    depth: int,
    keep_nodes: bool,
) -> Callable[[], list[bytes]]:
    base = _subtrees(store.tree, root, depth)
    path = str(Path(store.env.path()))
    jobs = {
        shard: pool.submit(
            _update_subtree, (path, base[shard][0], depth, [c for _, c in shard_steps], keep_nodes)
        )
        for shard, shard_steps in enumerate(steps)
        if shard_steps
    }
    return lambda: _collect(store, root, entries, base, steps, jobs, keep_nodes)


def _collect(
    store: StateStore,
    root: bytes,
    entries: int,
    base: list[SubRoot],
    steps: list[list[tuple[int, dict]]],
    jobs: dict[int, Future[tuple[list[SubRoot], bytes]]],
    keep_nodes: bool,
) -> list[bytes]:
    tree = store.tree
    timelines: list[list[tuple[int, SubRoot]]] = [[] for _ in base]
    for shard, job in jobs.items():
        subroots, created = job.result()
        store.add_packed_nodes(created)
        timelines[shard] = [(index, sub) for (index, _), sub in zip(steps[shard], subroots, strict=True)]
    current, cursors, roots = list(base), [0] * len(base), []
    for index in range(entries):
        changed = False
        for shard, timeline in enumerate(timelines):
            if cursors[shard] < len(timeline) and timeline[cursors[shard]][0] == index:
                current[shard] = timeline[cursors[shard]][1]
                cursors[shard] += 1
                changed = True
        roots.append(_join(tree, current, keep_nodes) if changed else (roots[-1] if roots else root))
    return roots
