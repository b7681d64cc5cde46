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
readable: a version is just a root. `root_after` recomputes a root from one proof and one change
(what the one-step verifier does, with no store); a deletion also needs a `Hint`, what the proof's
deepest sibling is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from offchain.errors import AgentL2Error
from offchain.hashing import keccak

EMPTY = b"\x00" * 32
_LEAF, _INTERNAL = b"\x00", b"\x01"


class SmtError(AgentL2Error, ValueError):
    """A malformed key, value hash, proof or hint, or a node missing from the store."""


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
        proof, end = cls.read(raw)
        if end != len(raw):
            raise SmtError("bad proof terminal: bytes after the proof")
        return proof

    @classmethod
    def read(cls, raw: bytes, offset: int = 0) -> tuple[Proof, int]:
        """The proof encoded at `raw[offset:]`, and where it ends (for proofs inside a longer encoding)."""
        if offset >= len(raw):
            raise SmtError("empty proof")
        count = raw[offset]
        end = offset + 1 + 32 * count
        if len(raw) < end + 1:
            raise SmtError("proof truncated")
        siblings = tuple(raw[offset + 1 + 32 * i : offset + 33 + 32 * i] for i in range(count))
        kind = raw[end]
        if kind == 0:
            return cls(siblings, None), end + 1
        if kind == 1:
            if len(raw) < end + 65:
                raise SmtError("proof truncated")
            return cls(siblings, Leaf(raw[end + 1 : end + 33], raw[end + 33 : end + 65])), end + 65
        raise SmtError(f"bad proof terminal 0x{kind:02x}")


def encode_node(node: Node) -> bytes:
    """A node as stored: 0x00 ‖ key ‖ valueHash (leaf) or 0x01 ‖ left ‖ right (internal): its hash preimage."""
    if isinstance(node, Leaf):
        return _LEAF + node.key + node.value_hash
    return _INTERNAL + node.left + node.right


def decode_node(raw: bytes) -> Node:
    if len(raw) != 65 or raw[0] > 1:
        raise SmtError("a stored node is 65 bytes, starting 0x00 or 0x01")
    return Leaf(raw[1:33], raw[33:65]) if raw[0] == 0 else Internal(raw[1:33], raw[33:65])


Hint = Node | None  # what a deletion's deepest sibling is (see `root_after`); None: no hint


def encode_hint(hint: Hint) -> bytes:
    """0x00 (none) | 0x01 ‖ key(32) ‖ valueHash(32) (a leaf) | 0x02 ‖ left(32) ‖ right(32) (an internal node)."""
    if hint is None:
        return b"\x00"
    if isinstance(hint, Leaf):
        return b"\x01" + hint.key + hint.value_hash
    return b"\x02" + hint.left + hint.right


def read_hint(raw: bytes, offset: int = 0) -> tuple[Hint, int]:
    """The hint encoded at `raw[offset:]`, and where it ends."""
    if offset >= len(raw):
        raise SmtError("hint truncated")
    kind, body = raw[offset], raw[offset + 1 : offset + 65]
    if kind == 0:
        return None, offset + 1
    if kind not in (1, 2):
        raise SmtError(f"bad hint kind 0x{kind:02x}")
    if len(body) != 64:
        raise SmtError("hint truncated")
    return (Leaf if kind == 1 else Internal)(body[:32], body[32:]), offset + 65


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


def root_after(proof: Proof, key: bytes, value_hash: bytes | None, hint: Hint = None) -> bytes:
    """The root once `key` holds `value_hash` (None: deleted), from a proof of `key` under the old root.

    Needs no store. The proof must already `verify` under the old root (this does not check it);
    the hint is checked here: it is required exactly when a present leaf with siblings is deleted
    (it shows whether the deepest sibling is a leaf, which then moves up), and must match that
    sibling's hash.
    """
    _check(key, value_hash)
    siblings, terminal = proof.siblings, proof.terminal
    depth = len(siblings)
    present = terminal is not None and terminal.key == key
    if (present and value_hash is None and depth > 0) != (hint is not None):
        if hint is None:
            raise SmtError("deleting a leaf that has siblings needs a hint: what its deepest sibling is")
        raise SmtError("a hint is only for deleting a leaf that has siblings")
    if value_hash is not None:
        if terminal is None or present:  # insert into an empty subtree, or overwrite
            return _climb(leaf_hash(key, value_hash), key, siblings)
        # Insert beside another leaf: both hang below the first bit where their keys differ.
        split = next((d for d in range(depth, 256) if bit(key, d) != bit(terminal.key, d)), None)
        if split is None:
            raise SmtError("the terminal leaf does not share the key's path")
        below = (*siblings, *(EMPTY,) * (split - depth), leaf_hash(terminal.key, terminal.value_hash))
        return _climb(leaf_hash(key, value_hash), key, below)
    if not present:  # absent stays absent
        return _climb(
            EMPTY if terminal is None else leaf_hash(terminal.key, terminal.value_hash), key, siblings
        )
    if hint is None:  # the only leaf
        return EMPTY
    deepest = siblings[-1]
    if isinstance(hint, Internal):
        if internal_hash(hint.left, hint.right) != deepest:
            raise SmtError("the hint's internal node is not the deepest sibling")
        return _climb(EMPTY, key, siblings)  # the sibling subtree keeps two leaves or more: no collapse
    if not isinstance(hint, Leaf) or leaf_hash(hint.key, hint.value_hash) != deepest:
        raise SmtError("the hint's leaf is not the deepest sibling")
    # The sibling leaf is now alone: it moves up past every EMPTY sibling above it.
    top = depth - 1
    while top > 0 and siblings[top - 1] == EMPTY:
        top -= 1
    return _climb(deepest, key, siblings[:top])


def _climb(node: bytes, key: bytes, siblings: tuple[bytes, ...]) -> bytes:
    """The root above `node`, which sits at depth len(siblings) on `key`'s path."""
    for d in range(len(siblings) - 1, -1, -1):
        node = internal_hash(node, siblings[d]) if bit(key, d) == 0 else internal_hash(siblings[d], node)
    return node


class SparseMerkleTree:
    """Reads, batch updates and proofs over roots whose nodes live in `store`."""

    def __init__(self, store: NodeStore | None = None, created: list[bytes] | None = None):
        self.store: NodeStore = store if store is not None else {}  # type: ignore[assignment]
        # With a list, each node this tree makes is also appended as `hash ‖ encoding`: worker
        # processes ship their new nodes so, the encoding being the hash preimage already built.
        self.created = created

    # -- reads -----------------------------------------------------------------------------------

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """The value hash of `key` under `root`, or None."""
        _check(key)
        node_hash, depth = root, 0
        while node_hash != EMPTY:
            node = self.node(node_hash)
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
            node = self.node(node_hash)
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
            node = self.node(node_hash)
            if isinstance(node, Leaf):
                yield node.key, node.value_hash
            else:
                stack += [node.right, node.left]

    # -- writes ----------------------------------------------------------------------------------

    def update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """The root after setting each key to its value hash (None deletes); old roots stay valid."""
        return self.update_at(root, changes, 0)

    def update_at(self, node_hash: bytes, changes: Mapping[bytes, bytes | None], depth: int) -> bytes:
        """`update` of the subtree `node_hash` whose top is at `depth`: every changed key must share
        its path to there (this is how workers update subtrees side by side)."""
        for key, value_hash in changes.items():
            _check(key, value_hash)
        if not changes:
            return node_hash
        return self._update(node_hash, sorted(changes.items()), depth)

    def _update(self, node_hash: bytes, changes: list[tuple[bytes, bytes | None]], depth: int) -> bytes:
        if not changes:
            return node_hash
        node = None if node_hash == EMPTY else self.node(node_hash)
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
            return self._put(_LEAF + key + value_hash, Leaf(key, value_hash))
        split = next((i for i, (key, _) in enumerate(leaves) if bit(key, depth)), len(leaves))
        return self._join(self._build(leaves[:split], depth + 1), self._build(leaves[split:], depth + 1))

    def _join(self, left: bytes, right: bytes) -> bytes:
        """An internal node, or what it collapses to (nothing, or a single leaf moving up)."""
        if left == EMPTY and right == EMPTY:
            return EMPTY
        if right == EMPTY and isinstance(self.node(left), Leaf):
            return left
        if left == EMPTY and isinstance(self.node(right), Leaf):
            return right
        return self._put(_INTERNAL + left + right, Internal(left, right))

    def _put(self, encoding: bytes, node: Node) -> bytes:
        node_hash = keccak(encoding)  # leaf_hash or internal_hash: the encoding is the preimage
        self.store[node_hash] = node
        if self.created is not None:
            self.created.append(node_hash + encoding)
        return node_hash

    def node(self, node_hash: bytes) -> Node:
        """The node stored under `node_hash` (raises SmtError if there is none)."""
        node = self.store.get(node_hash)
        if node is None:
            raise SmtError(f"missing node {node_hash.hex()}")
        return node
