"""The L2 state on disk: LMDB (memory-mapped, MVCC), versioned by block.

Nothing is ever overwritten, so every committed block's state stays readable:
- `nodes`: tree node hash -> node (leaf: 0x00 ‖ key ‖ valueHash; internal: 0x01 ‖ left ‖ right);
- `values`: valueHash -> value;
- `blocks`: block number (8 bytes) -> state root, and `meta[b"latest"]` -> the last number;
- `leaves`: leaf key -> value, of the latest block's state only (`meta[b"leaves"]` names its
  root): worker processes read a block's base state there, one lookup a leaf, where a walk down
  the tree would cost a dozen (`offchain/executor/processes.py`).
A block is committed in one LMDB write transaction (its new nodes, its new values, its root, the
latest pointer): a crash in the middle leaves the previous block as the last one, intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb

from offchain.errors import AgentL2Error
from offchain.hashing import keccak
from offchain.l2.smt import EMPTY, Node, SparseMerkleTree, decode_node, encode_node
from offchain.l2.stf import State

_LATEST = b"latest"
_LEAVES_ROOT = b"leaves"  # meta: the root of the state that `leaves` holds
MAX_DBS = 5  # nodes, values, blocks, leaves, meta (a reader opening the environment needs it too)
MAP_SIZE = 1 << 32  # address space reserved for the store (LMDB grows the file as it fills)


class StoreError(AgentL2Error):
    """A block out of order, or a block or node that is not stored."""


PACKED_NODE = 32 + 65  # a packed node: hash ‖ encoding

_readers: dict[str, tuple[lmdb.Environment, dict[bytes, object]]] = {}


def begin_read(path: str, db: bytes) -> lmdb.Transaction:
    """A read transaction on database `db` of the store at `path`, from another process (worker
    processes read the committed state so). LMDB allows one environment per process and path: it
    is opened once and stays open; when the store has grown past its map since, LMDB says so and
    the map is resized first."""
    if path not in _readers:
        env = lmdb.open(path, readonly=True, max_dbs=MAX_DBS, lock=True, map_size=MAP_SIZE)
        _readers[path] = (env, {})
    env, dbs = _readers[path]
    if db not in dbs:
        dbs[db] = env.open_db(db, create=False)
    try:
        return env.begin(db=dbs[db])
    except lmdb.MapResizedError:
        env.set_mapsize(0)  # adopt the size the writer set
        return env.begin(db=dbs[db])


def reader_db(path: str, db: bytes) -> object:
    """The handle of database `db` in this process's reader of the store at `path`."""
    begin_read(path, db).abort()
    return _readers[path][1][db]


class _Nodes:
    """The tree's node store: new nodes wait in memory until their block commits, as objects
    (built here) or packed (built by worker processes, unpacked only if one is read)."""

    def __init__(self, store: StateStore):
        self._store = store
        self.pending: dict[bytes, Node] = {}
        self.pending_packed: list[bytes] = []
        self._unpacked: dict[bytes, bytes] = {}  # the packed nodes by hash, once one is read
        self._unpacked_count = 0  # how many of `pending_packed` are in `_unpacked`

    def _encoded(self, node_hash: bytes) -> bytes | None:
        for packed in self.pending_packed[self._unpacked_count :]:
            for offset in range(0, len(packed), PACKED_NODE):
                self._unpacked[packed[offset : offset + 32]] = packed[offset + 32 : offset + PACKED_NODE]
        self._unpacked_count = len(self.pending_packed)
        return self._unpacked.get(node_hash)

    def get(self, node_hash: bytes) -> Node | None:
        node = self.pending.get(node_hash)
        if node is not None:
            return node
        # Committed nodes before packed ones: unpacking a block's worth of them only pays when a
        # node is new (a node is its hash, so either place holds the same bytes).
        with self._store.env.begin(db=self._store.nodes) as txn:
            raw = txn.get(node_hash)
        if raw is None and self.pending_packed:
            raw = self._encoded(node_hash)
        return None if raw is None else decode_node(bytes(raw))

    def __setitem__(self, node_hash: bytes, node: Node) -> None:
        self.pending[node_hash] = node

    def __bool__(self) -> bool:
        return bool(self.pending or self.pending_packed)

    def clear(self) -> None:
        self.pending.clear()
        self.pending_packed.clear()
        self._unpacked.clear()
        self._unpacked_count = 0

    def encoded(self) -> Iterator[tuple[bytes, bytes]]:
        """Every pending node, encoded, as (hash, encoding)."""
        for node_hash, node in self.pending.items():
            yield node_hash, encode_node(node)
        for packed in self.pending_packed:
            for offset in range(0, len(packed), PACKED_NODE):
                yield packed[offset : offset + 32], packed[offset + 32 : offset + PACKED_NODE]


class StateStore:
    """Versioned L2 state in an LMDB environment at `path`."""

    def __init__(self, path: Path | str, map_size: int = MAP_SIZE):
        Path(path).mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), max_dbs=MAX_DBS, map_size=map_size, sync=True, metasync=True)
        self.nodes = self.env.open_db(b"nodes")
        self.values = self.env.open_db(b"values")
        self.blocks = self.env.open_db(b"blocks")
        self.leaves = self.env.open_db(b"leaves")
        self.meta = self.env.open_db(b"meta")
        self._nodes = _Nodes(self)
        self.tree = SparseMerkleTree(self._nodes)
        latest = self.latest()
        if latest is not None and self.leaves_root() != self.root_at(latest):
            # A store written before the leaves table existed: fill it once from the tree.
            state = self.state_at(latest)
            with self.env.begin(write=True) as txn:
                self._rewrite_leaves(txn, state)

    def close(self) -> None:
        self.env.close()

    # -- reading ---------------------------------------------------------------------------------

    def latest(self) -> int | None:
        """The last committed block number, or None for an empty store."""
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(_LATEST)
        return None if raw is None else int.from_bytes(raw, "big")

    def root_at(self, number: int) -> bytes:
        with self.env.begin(db=self.blocks) as txn:
            raw = txn.get(number.to_bytes(8, "big"))
        if raw is None:
            raise StoreError(f"block {number} is not stored")
        return bytes(raw)

    def read(self, number: int, key: bytes) -> bytes | None:
        """The value of leaf `key` in the state after block `number`."""
        value_hash = self.tree.get(self.root_at(number), key)
        if value_hash is None:
            return None
        with self.env.begin(db=self.values) as txn:
            raw = txn.get(value_hash)
        if raw is None:
            raise StoreError(f"value {value_hash.hex()} is not stored")
        return bytes(raw)

    def leaves_root(self) -> bytes | None:
        """The root of the state the `leaves` table holds (the latest block's, once one is committed)."""
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(_LEAVES_ROOT)
        return None if raw is None else bytes(raw)

    def state_at(self, number: int | None = None) -> State:
        """The state after block `number` (default: the latest; an empty state for an empty store)."""
        number = self.latest() if number is None else number
        if number is None:
            return State(self.tree, {}, EMPTY)
        root = self.root_at(number)
        values = {}
        with self.env.begin(db=self.values) as txn:
            for key, value_hash in self.tree.items(root):
                raw = txn.get(value_hash)
                if raw is None:
                    raise StoreError(f"value {value_hash.hex()} of block {number} is not stored")
                values[key] = bytes(raw)
        return State(self.tree, values, root)

    def committed(self, state: State) -> bool:
        """Whether `state` is the latest committed block's, with no uncommitted nodes: other
        processes reading this store then see every node under its root."""
        latest = self.latest()
        root = EMPTY if latest is None else self.root_at(latest)
        return state.tree is self.tree and state.root == root and not self._nodes

    def discard(self) -> None:
        """Drops the nodes built since the last commit (a block that will not be committed)."""
        self._nodes.clear()

    def add_packed_nodes(self, packed: bytes) -> None:
        """Nodes built elsewhere (worker processes) as `hash ‖ encoding` records (`SparseMerkleTree.created`); they commit with the block."""
        if len(packed) % PACKED_NODE:
            raise StoreError("packed nodes come in records of 97 bytes")
        if packed:
            self._nodes.pending_packed.append(packed)

    # -- writing ---------------------------------------------------------------------------------

    def commit(self, number: int, state: State) -> None:
        """Stores block `number` whose post-state is `state` (built on this store's tree from the
        last committed state, in one step: `State.apply` or `merged`, as `apply_block` and
        `run_block` do), at once.

        The values stored are those of the leaves the block created: each new leaf's value is
        taken from `state`. (Leaves of intermediate per-transaction roots whose values the block
        overwrote keep their nodes only: their values are not needed to read any stored block.)
        """
        latest = self.latest()
        expected = 0 if latest is None else latest + 1
        if number != expected:
            raise StoreError(f"block {number} out of order: the next block is {expected}")
        if state.tree is not self.tree:
            raise StoreError("the state was not built on this store's tree")
        previous = EMPTY if latest is None else self.root_at(latest)
        if (state.root if state.parent is None else state.parent) != previous:
            raise StoreError(f"block {number} is not built on the state after block {latest}")
        with self.env.begin(write=True) as txn:
            for node_hash, raw in self._nodes.encoded():
                txn.put(node_hash, raw, db=self.nodes)
                if raw[0] == 0:  # a leaf: store its value if it is the state's
                    value = state.values.get(raw[1:33])
                    if value is not None and keccak(value) == raw[33:65]:
                        txn.put(raw[33:65], value, db=self.values)
            if state.changes is not None and state.parent == previous and self.leaves_root() == previous:
                for key, value in state.changes.items():  # the block's own writes, over its parent's
                    if value is None:
                        txn.delete(key, db=self.leaves)
                    else:
                        txn.put(key, value, db=self.leaves)
                txn.put(_LEAVES_ROOT, state.root, db=self.meta)
            else:
                self._rewrite_leaves(txn, state)
            txn.put(number.to_bytes(8, "big"), state.root, db=self.blocks)
            txn.put(_LATEST, number.to_bytes(8, "big"), db=self.meta)
        self._nodes.clear()

    def _rewrite_leaves(self, txn: lmdb.Transaction, state: State) -> None:
        """The whole `leaves` table from `state` (a state not made by one step from the last)."""
        txn.drop(self.leaves, delete=False)
        for key, value in state.values.items():
            txn.put(key, value, db=self.leaves)
        txn.put(_LEAVES_ROOT, state.root, db=self.meta)
