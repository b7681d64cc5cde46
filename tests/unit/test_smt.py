"""The compact sparse Merkle tree: proofs, non-membership, batch updates, versions."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.l2.smt import (
    EMPTY,
    Internal,
    Leaf,
    Proof,
    SmtError,
    SparseMerkleTree,
    encode_hint,
    encode_node,
    internal_hash,
    leaf_hash,
    read_hint,
    root_after,
    verify,
)

keys = st.binary(min_size=32, max_size=32)
values = st.binary(min_size=32, max_size=32).filter(lambda v: v != EMPTY)
states = st.dictionaries(keys, values, max_size=40)


def _k(i: int) -> bytes:
    return keccak(i.to_bytes(8, "big"))


def _v(i: int) -> bytes:
    return keccak(b"value" + i.to_bytes(8, "big"))


def test_empty_tree__root_is_zero_and_everything_is_absent():
    tree = SparseMerkleTree()
    assert tree.update(EMPTY, {}) == EMPTY
    proof = tree.prove(EMPTY, _k(1))
    assert proof == Proof((), None) and verify(EMPTY, _k(1), None, proof)


def test_single_leaf__is_the_root():
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(1): _v(1)})
    assert root == leaf_hash(_k(1), _v(1))
    assert tree.get(root, _k(1)) == _v(1) and tree.get(root, _k(2)) is None


def test_two_leaves__hang_below_their_first_differing_bit():
    a, b = b"\x00" * 31 + b"\x01", b"\x40" + b"\x00" * 31  # paths diverge at bit 1
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {a: _v(1), b: _v(2)})
    expected = internal_hash(internal_hash(leaf_hash(a, _v(1)), leaf_hash(b, _v(2))), EMPTY)
    assert root == expected
    assert tree.prove(root, a).siblings == (EMPTY, leaf_hash(b, _v(2)))


@settings(max_examples=60, deadline=None)
@given(state=states, probes=st.lists(keys, max_size=5))
def test_proofs__verify_for_present_and_absent_keys(state, probes):
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, state)
    for key, value in state.items():
        proof = tree.prove(root, key)
        assert verify(root, key, value, proof)
        assert Proof.decode(proof.encode()) == proof
    for key in probes:
        if key not in state:
            proof = tree.prove(root, key)
            assert tree.get(root, key) is None and verify(root, key, None, proof)
            assert not verify(root, key, _v(0), proof)


@settings(max_examples=60, deadline=None)
@given(state=states.filter(bool), other=values)
def test_proofs__wrong_value_or_sibling_or_root_fails(state, other):
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, state)
    key, value = next(iter(state.items()))
    proof = tree.prove(root, key)
    if other != value:
        assert not verify(root, key, other, proof)
    assert not verify(root, key, None, proof)  # present: cannot be shown absent
    assert not verify(keccak(root), key, value, proof)
    for i in range(len(proof.siblings)):
        forged = list(proof.siblings)
        forged[i] = keccak(forged[i])
        assert not verify(root, key, value, Proof(tuple(forged), proof.terminal))


@settings(max_examples=60, deadline=None)
@given(state=states, changes=st.dictionaries(keys, st.one_of(st.none(), values), max_size=20))
def test_batch_update__equals_one_by_one_and_any_order(state, changes):
    tree = SparseMerkleTree()
    base = tree.update(EMPTY, state)
    batched = tree.update(base, changes)
    one_by_one = base
    for key, value in reversed(list(changes.items())):
        one_by_one = tree.update(one_by_one, {key: value})
    assert batched == one_by_one
    final = {**state, **changes}
    rebuilt = tree.update(EMPTY, {k: v for k, v in final.items() if v is not None})
    assert batched == rebuilt  # the root depends on the content only
    assert dict(tree.items(batched)) == {k: v for k, v in final.items() if v is not None}


@given(state=states, changes=st.dictionaries(keys, st.one_of(st.none(), values), max_size=20))
def test_created__records_each_new_node_as_hash_and_encoding(state, changes):
    """What worker processes ship: every node the updates store, as `hash ‖ encoding`."""
    store: dict = {}
    tree = SparseMerkleTree(store, created=[])
    tree.update(tree.update(EMPTY, state), changes)
    records = {record[:32]: record[32:] for record in tree.created or []}
    assert all(len(record) == 32 + 65 for record in tree.created or [])
    assert records == {node_hash: encode_node(node) for node_hash, node in store.items()}
    assert all(keccak(encoding) == node_hash for node_hash, encoding in records.items())
    assert SparseMerkleTree().created is None  # by default nothing is recorded


def test_old_roots__stay_readable():
    tree = SparseMerkleTree()
    first = tree.update(EMPTY, {_k(i): _v(i) for i in range(10)})
    second = tree.update(first, {_k(3): None, _k(11): _v(11)})
    assert tree.get(first, _k(3)) == _v(3) and tree.get(second, _k(3)) is None
    assert tree.get(first, _k(11)) is None and tree.get(second, _k(11)) == _v(11)


def test_deleting_everything__returns_to_the_empty_root():
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(i): _v(i) for i in range(25)})
    assert tree.update(root, {_k(i): None for i in range(25)}) == EMPTY


def test_non_membership_through_another_leaf__must_share_the_path():
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(1): _v(1)})
    proof = tree.prove(root, _k(2))  # the only leaf ends every path
    assert proof.terminal == Leaf(_k(1), _v(1)) and verify(root, _k(2), None, proof)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.update(EMPTY, {b"short": _v(1)}), "keys are 32 bytes"),
        (lambda t: t.update(EMPTY, {_k(1): EMPTY}), "value hashes"),
        (lambda t: t.get(b"\x01" * 32, _k(1)), "missing node"),
        (lambda t: Proof.decode(b""), "empty proof"),
        (lambda t: Proof.decode(b"\x02" + b"\x00" * 40), "truncated"),
        (lambda t: Proof.decode(b"\x00\x07"), "bad proof terminal"),
    ],
    ids=["short-key", "zero-value", "unknown-root", "empty-proof", "truncated-proof", "bad-terminal"],
)
def test_bad_input__raises_smt_error(call, message):
    with pytest.raises(SmtError, match=message):
        call(SparseMerkleTree())


# -- root_after: one change from one proof, no store ---------------------------------------------


def _near(base: bytes, depth: int, tail: bytes) -> bytes:
    """`base`'s first `depth` bits, then `tail`'s: keys that share long paths (deep trees)."""
    mask = (1 << (256 - depth)) - 1
    return ((int.from_bytes(base, "big") & ~mask) | (int.from_bytes(tail, "big") & mask)).to_bytes(32, "big")


@st.composite
def trees_and_changes(draw):
    """A state of 0 to 200 leaves, some clustered deep, and changes to present, near and fresh keys."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    bases = [rng.randbytes(32) for _ in range(draw(st.integers(1, 3)))]

    def near() -> bytes:
        return _near(
            rng.choice(bases), rng.choice((0, rng.randrange(256), 200 + rng.randrange(56))), rng.randbytes(32)
        )

    state = {}
    for _ in range(draw(st.integers(0, 200))):
        state[near() if rng.random() < 0.5 else rng.randbytes(32)] = rng.randbytes(32)
    changes = []
    for _ in range(draw(st.integers(1, 8))):
        pick = rng.random()
        key = (
            rng.choice(sorted(state)) if state and pick < 0.5 else near() if pick < 0.8 else rng.randbytes(32)
        )
        changes.append((key, None if rng.random() < 0.4 else rng.randbytes(32)))
    return state, changes


def _hint(tree: SparseMerkleTree, proof: Proof, key: bytes, value_hash: bytes | None):
    """What the prover attaches: the deepest sibling, when a leaf with siblings is deleted."""
    deleting = value_hash is None and proof.terminal is not None and proof.terminal.key == key
    return tree.node(proof.siblings[-1]) if deleting and proof.siblings else None


@settings(max_examples=150, deadline=None)
@given(case=trees_and_changes())
def test_root_after__equals_update_for_insert_overwrite_and_delete(case):
    state, changes = case
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, state)
    for key, value_hash in changes:
        proof = tree.prove(root, key)
        assert verify(root, key, tree.get(root, key), proof)
        after = root_after(proof, key, value_hash, _hint(tree, proof, key, value_hash))
        root = tree.update(root, {key: value_hash})
        assert after == root


@settings(max_examples=30, deadline=None)
@given(case=trees_and_changes())
def test_root_after__deleting_every_leaf_one_by_one_reaches_the_empty_root(case):
    state, _ = case
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, state)
    for key in sorted(state, reverse=True):
        proof = tree.prove(root, key)
        after = root_after(proof, key, None, _hint(tree, proof, key, None))
        root = tree.update(root, {key: None})
        assert after == root
    assert root == EMPTY


def test_root_after__empty_tree_and_single_leaf():
    tree = SparseMerkleTree()
    assert root_after(tree.prove(EMPTY, _k(1)), _k(1), _v(1)) == leaf_hash(_k(1), _v(1))
    assert root_after(tree.prove(EMPTY, _k(1)), _k(1), None) == EMPTY  # absent stays absent
    one = tree.update(EMPTY, {_k(1): _v(1)})
    assert root_after(tree.prove(one, _k(1)), _k(1), _v(2)) == leaf_hash(_k(1), _v(2))
    assert root_after(tree.prove(one, _k(1)), _k(1), None) == EMPTY  # the only leaf: no hint
    assert root_after(tree.prove(one, _k(2)), _k(2), _v(2)) == tree.update(one, {_k(2): _v(2)})


def test_root_after__a_deletion_collapses_every_level_up_to_the_root():
    # low and lowest part at bit 200, high at bit 0: deleting low moves lowest up 200 levels.
    low, lowest, high = (1 << 55).to_bytes(32, "big"), b"\x00" * 32, b"\x80" + b"\x00" * 31
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {low: _v(1), lowest: _v(2), high: _v(3)})
    proof = tree.prove(root, low)
    assert len(proof.siblings) == 201 and proof.siblings[1:200] == (EMPTY,) * 199
    after = root_after(proof, low, None, Leaf(lowest, _v(2)))
    assert after == internal_hash(leaf_hash(lowest, _v(2)), leaf_hash(high, _v(3)))
    assert after == tree.update(root, {low: None})


@pytest.mark.parametrize(
    ("change", "hint", "message"),
    [
        ((_k(1), None), None, "needs a hint"),
        ((_k(1), None), "internal", "internal node is not the deepest sibling"),  # it is a leaf
        ((_k(1), None), Leaf(_k(9), _v(9)), "leaf is not the deepest sibling"),
        ((_k(1), _v(7)), "leaf", "only for deleting"),  # an overwrite
        ((_k(9), _v(7)), "leaf", "only for deleting"),  # an insertion
        ((_k(9), None), "leaf", "only for deleting"),  # absent stays absent
    ],
    ids=["missing", "internal-for-leaf", "wrong-leaf", "on-overwrite", "on-insert", "on-absent"],
)
def test_root_after__refuses_a_missing_wrong_or_needless_hint(change, hint, message):
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(1): _v(1), _k(2): _v(2)})  # two leaves: each the other's sibling
    key, value_hash = change
    proof = tree.prove(root, key)
    sibling = tree.node(tree.prove(root, _k(1)).siblings[-1])
    assert isinstance(sibling, Leaf)
    if hint == "internal":
        hint = Internal(sibling.key, sibling.value_hash)  # the leaf's preimage read as an internal node
    elif hint == "leaf":
        hint = sibling
    with pytest.raises(SmtError, match=message):
        root_after(proof, key, value_hash, hint)


def test_root_after__refuses_a_leaf_hint_for_an_internal_sibling():
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(i): _v(i) for i in range(3)})
    key = next(
        k for k in map(_k, range(3)) if isinstance(tree.node(tree.prove(root, k).siblings[-1]), Internal)
    )
    proof = tree.prove(root, key)
    node = tree.node(proof.siblings[-1])
    with pytest.raises(SmtError, match="leaf is not the deepest sibling"):
        root_after(proof, key, None, Leaf(node.left, node.right))
    assert root_after(proof, key, None, node) == tree.update(root, {key: None})


@given(hint=st.one_of(st.none(), st.builds(Leaf, keys, keys), st.builds(Internal, keys, keys)))
def test_hints__round_trip(hint):
    raw = encode_hint(hint) + b"tail"
    assert read_hint(raw) == (hint, len(raw) - 4)


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "hint truncated"), (b"\x01" + b"\x00" * 63, "hint truncated"), (b"\x03", "bad hint kind 0x03")],
)
def test_bad_hint__raises_smt_error(raw, message):
    with pytest.raises(SmtError, match=message):
        read_hint(raw)


def test_proof_read__finds_the_end_of_a_proof_inside_longer_bytes():
    tree = SparseMerkleTree()
    root = tree.update(EMPTY, {_k(i): _v(i) for i in range(5)})
    proof = tree.prove(root, _k(3))
    raw = b"head" + proof.encode() + b"tail"
    assert Proof.read(raw, 4) == (proof, len(raw) - 4)
    with pytest.raises(SmtError, match="truncated"):
        Proof.read(raw[: len(raw) - 10], 4)
    with pytest.raises(SmtError, match="bytes after the proof"):
        Proof.decode(proof.encode() + b"\x00")
