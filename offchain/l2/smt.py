"""The L2 state tree: a compact binary sparse Merkle tree over keccak256 (docs/l2-protocol.md §State tree).

Keys are 32-byte hashes, read as a path of 256 bits from the most significant. A subtree that
holds a single leaf is that leaf, placed as high as its path lets it (as in Diem's Jellyfish
Merkle tree), so paths are about log2(leaves) long instead of 256:

    empty subtree   0x00 * 32
    leaf            keccak256(0x00 ‖ key ‖ valueHash)
    internal node   keccak256(0x01 ‖ left ‖ right)       (never: empty + leaf, or empty + empty)

A proof of `key` is the list of sibling hashes from the top down, plus what the path ends on: the
key's own leaf (membership), another leaf whose key shares the path (non-membership), or an
empty subtree (non-membership). Nodes are immutable and stored by hash, so every past root stays
readable: a version is just a root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from eth_hash.auto import keccak

EMPTY = b"\x00" * 32
_LEAF, _INTERNAL = b"\x00", b"\x01"


class SmtError(Exception):
    """A malformed key, value hash or proof."""


def leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    return keccak(_LEAF + key + value_hash)


def internal_hash(left: bytes, right: bytes) -> bytes:
    return keccak(_INTERNAL + left + right)


def bit(key: bytes, depth: int) -> int:
    """The path bit of `key` at `depth` (0: the root's choice), most significant first."""
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


@dataclass(frozen=True)
class Leaf:
    key: bytes
    value_hash: bytes


@dataclass(frozen=True)
class Internal:
    left: bytes
    right: bytes


Node = Leaf | Internal


class NodeStore(Protocol):
    """Where nodes live, by hash (a dict in memory; LMDB for the node's state store)."""

    def get(self, node_hash: bytes) -> Node | None: ...

    def __setitem__(self, node_hash: bytes, node: Node) -> None: ...


@dataclass(frozen=True)
class Proof:
    """Siblings from the root down, and what the key's path ends on (`terminal`: a leaf or None)."""

    siblings: tuple[bytes, ...]
    terminal: Leaf | None

    def encode(self) -> bytes:
        """count(1) ‖ siblings(32 each) ‖ kind(1: 0 empty, 1 leaf) ‖ [key(32) ‖ valueHash(32)]."""
        if len(self.siblings) > 255:
            raise SmtError("a proof has at most 255 siblings")
        head = bytes([len(self.siblings)]) + b"".join(self.siblings)
        if self.terminal is None:
            return head + b"\x00"
        return head + b"\x01" + self.terminal.key + self.terminal.value_hash

    @classmethod
    def decode(cls, raw: bytes) -> Proof:
        if not raw:
            raise SmtError("empty proof")
        count = raw[0]
        end = 1 + 32 * count
        if len(raw) < end + 1:
            raise SmtError("proof truncated")
        siblings = tuple(raw[1 + 32 * i : 33 + 32 * i] for i in range(count))
        kind, rest = raw[end], raw[end + 1 :]
        if kind == 0 and not rest:
            return cls(siblings, None)
        if kind == 1 and len(rest) == 64:
            return cls(siblings, Leaf(rest[:32], rest[32:]))
        raise SmtError("bad proof terminal")


def _check(key: bytes, value_hash: bytes | None = None) -> None:
    if len(key) != 32:
        raise SmtError("keys are 32 bytes")
    if value_hash is not None and (len(value_hash) != 32 or value_hash == EMPTY):
        raise SmtError("value hashes are 32 nonzero bytes")


def verify(root: bytes, key: bytes, value_hash: bytes | None, proof: Proof) -> bool:
    """Whether `proof` shows `key` holding `value_hash` (None: absent) under `root`. Needs no store."""
    _check(key, value_hash)
    depth = len(proof.siblings)
    terminal = proof.terminal
    if value_hash is not None:
        if terminal is None or terminal.key != key or terminal.value_hash != value_hash:
            return False
        node = leaf_hash(key, value_hash)
    elif terminal is None:
        node = EMPTY
    else:  # another leaf ends the path: it must share the path and differ from the key
        if terminal.key == key or any(bit(terminal.key, d) != bit(key, d) for d in range(depth)):
            return False
        node = leaf_hash(terminal.key, terminal.value_hash)
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        # A single leaf beside an empty sibling would have moved up: such a proof is not canonical.
        if sibling == EMPTY and (node == EMPTY or (terminal is not None and d == depth - 1)):
            return False
        node = internal_hash(node, sibling) if bit(key, d) == 0 else internal_hash(sibling, node)
    return node == root


class SparseMerkleTree:
    """Reads, batch updates and proofs over roots whose nodes live in `store`."""

    def __init__(self, store: NodeStore | None = None):
        self.store: NodeStore = store if store is not None else {}  # type: ignore[assignment]

    # -- reads -----------------------------------------------------------------------------------

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """The value hash of `key` under `root`, or None."""
        _check(key)
        node_hash, depth = root, 0
        while node_hash != EMPTY:
            node = self._node(node_hash)
            if isinstance(node, Leaf):
                return node.value_hash if node.key == key else None
            node_hash = node.left if bit(key, depth) == 0 else node.right
            depth += 1
        return None

    def prove(self, root: bytes, key: bytes) -> Proof:
        _check(key)
        siblings: list[bytes] = []
        node_hash, depth = root, 0
        while node_hash != EMPTY:
            node = self._node(node_hash)
            if isinstance(node, Leaf):
                return Proof(tuple(siblings), node)
            left = bit(key, depth) == 0
            siblings.append(node.right if left else node.left)
            node_hash = node.left if left else node.right
            depth += 1
        return Proof(tuple(siblings), None)

    def items(self, root: bytes) -> Iterable[tuple[bytes, bytes]]:
        """Every (key, valueHash) under `root`, in key order."""
        stack = [root]
        while stack:
            node_hash = stack.pop()
            if node_hash == EMPTY:
                continue
            node = self._node(node_hash)
            if isinstance(node, Leaf):
                yield node.key, node.value_hash
            else:
                stack += [node.right, node.left]

    # -- writes ----------------------------------------------------------------------------------

    def update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """The root after setting each key to its value hash (None deletes); old roots stay valid."""
        for key, value_hash in changes.items():
            _check(key, value_hash)
        if not changes:
            return root
        return self._update(root, sorted(changes.items()), 0)

    def _update(self, node_hash: bytes, changes: list[tuple[bytes, bytes | None]], depth: int) -> bytes:
        if not changes:
            return node_hash
        node = None if node_hash == EMPTY else self._node(node_hash)
        if node is None or isinstance(node, Leaf):
            # Spread the existing leaf (if any, and not overwritten) with the changes below here.
            entries = dict(changes)
            if node is not None and node.key not in entries:
                entries[node.key] = node.value_hash
            live = sorted((k, v) for k, v in entries.items() if v is not None)
            return self._build(live, depth)
        split = next((i for i, (key, _) in enumerate(changes) if bit(key, depth)), len(changes))
        left = self._update(node.left, changes[:split], depth + 1)
        right = self._update(node.right, changes[split:], depth + 1)
        return self._join(left, right)

    def _build(self, leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
        """The subtree at `depth` holding exactly `leaves` (sorted by key)."""
        if not leaves:
            return EMPTY
        if len(leaves) == 1:
            key, value_hash = leaves[0]
            return self._put(leaf_hash(key, value_hash), Leaf(key, value_hash))
        split = next((i for i, (key, _) in enumerate(leaves) if bit(key, depth)), len(leaves))
        return self._join(self._build(leaves[:split], depth + 1), self._build(leaves[split:], depth + 1))

    def _join(self, left: bytes, right: bytes) -> bytes:
        """An internal node, or what it collapses to (nothing, or a single leaf moving up)."""
        if left == EMPTY and right == EMPTY:
            return EMPTY
        if right == EMPTY and isinstance(self._node(left), Leaf):
            return left
        if left == EMPTY and isinstance(self._node(right), Leaf):
            return right
        return self._put(internal_hash(left, right), Internal(left, right))

    def _put(self, node_hash: bytes, node: Node) -> bytes:
        self.store[node_hash] = node
        return node_hash

    def _node(self, node_hash: bytes) -> Node:
        node = self.store.get(node_hash)
        if node is None:
            raise SmtError(f"missing node {node_hash.hex()}")
        return node
