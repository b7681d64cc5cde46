"""The L2 state on disk: LMDB (memory-mapped, MVCC), versioned by block.

Nothing is ever overwritten, so every committed block's state stays readable:
- `nodes`: tree node hash -> node (leaf: 0x00 ‖ key ‖ valueHash; internal: 0x01 ‖ left ‖ right);
- `values`: valueHash -> value;
- `blocks`: block number (8 bytes) -> state root, and `meta[b"latest"]` -> the last number.
A block is committed in one LMDB write transaction (its new nodes, its new values, its root, the
latest pointer): a crash in the middle leaves the previous block as the last one, intact.
"""

from __future__ import annotations

from pathlib import Path

import lmdb

from offchain.hashing import keccak
from offchain.l2.smt import EMPTY, Node, SparseMerkleTree, decode_node, encode_node
from offchain.l2.stf import State

_LATEST = b"latest"
MAP_SIZE = 1 << 32  # address space reserved for the store (LMDB grows the file as it fills)


class StoreError(Exception):
    """A block out of order, or a block or node that is not stored."""


class _Nodes:
    """The tree's node store: new nodes wait in memory until their block commits, as objects
    (built here) or encoded (built by worker processes, decoded only if read)."""

    def __init__(self, store: StateStore):
        self._store = store
        self.pending: dict[bytes, Node] = {}
        self.pending_encoded: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes) -> Node | None:
        node = self.pending.get(node_hash)
        if node is not None:
            return node
        raw = self.pending_encoded.get(node_hash)
        if raw is None:
            with self._store.env.begin(db=self._store.nodes) as txn:
                raw = txn.get(node_hash)
        return None if raw is None else decode_node(bytes(raw))

    def __setitem__(self, node_hash: bytes, node: Node) -> None:
        self.pending[node_hash] = node

    def __bool__(self) -> bool:
        return bool(self.pending or self.pending_encoded)

    def clear(self) -> None:
        self.pending.clear()
        self.pending_encoded.clear()

    def encoded(self) -> dict[bytes, bytes]:
        """Every pending node, encoded."""
        out = {node_hash: encode_node(node) for node_hash, node in self.pending.items()}
        out.update(self.pending_encoded)
        return out


class StateStore:
    """Versioned L2 state in an LMDB environment at `path`."""

    def __init__(self, path: Path | str, map_size: int = MAP_SIZE):
        Path(path).mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), max_dbs=4, map_size=map_size, sync=True, metasync=True)
        self.nodes = self.env.open_db(b"nodes")
        self.values = self.env.open_db(b"values")
        self.blocks = self.env.open_db(b"blocks")
        self.meta = self.env.open_db(b"meta")
        self._nodes = _Nodes(self)
        self.tree = SparseMerkleTree(self._nodes)

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

    def state_at(self, number: int | None = None) -> State:
        """The state after block `number` (default: the latest; an empty state for an empty store)."""
        number = self.latest() if number is None else number
        if number is None:
            return State(self.tree, {}, EMPTY)
        root = self.root_at(number)
        values = {}
        with self.env.begin(db=self.values) as txn:
            for key, value_hash in self.tree.items(root):
                values[key] = bytes(txn.get(value_hash))
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

    def add_encoded_nodes(self, nodes: dict[bytes, bytes]) -> None:
        """Nodes built elsewhere (worker processes), encoded; they commit with the block."""
        self._nodes.pending_encoded.update(nodes)

    # -- writing ---------------------------------------------------------------------------------

    def commit(self, number: int, state: State) -> None:
        """Stores block `number` whose post-state is `state` (built on this store's tree), at once.

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
        with self.env.begin(write=True) as txn:
            for node_hash, raw in self._nodes.encoded().items():
                txn.put(node_hash, raw, db=self.nodes)
                if raw[0] == 0:  # a leaf: store its value if it is the state's
                    value = state.values.get(raw[1:33])
                    if value is not None and keccak(value) == raw[33:65]:
                        txn.put(raw[33:65], value, db=self.values)
            txn.put(number.to_bytes(8, "big"), state.root, db=self.blocks)
            txn.put(_LATEST, number.to_bytes(8, "big"), db=self.meta)
        self._nodes.clear()
