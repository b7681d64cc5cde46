"""The compact sparse Merkle tree: proofs, non-membership, batch updates, versions."""

from __future__ import annotations

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.l2.smt import EMPTY, Leaf, Proof, SmtError, SparseMerkleTree, internal_hash, leaf_hash, verify

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
