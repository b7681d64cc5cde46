"""The committed L2 test vectors match the rules, and each carries what a verifier needs."""

from __future__ import annotations

import json
from pathlib import Path

from eth_hash.auto import keccak

from offchain.chain.ecdsa import recover_signer
from offchain.l2.batch import Batch
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, TxKind, Withdraw, decode
from offchain.l2.onestep import verify_step
from offchain.l2.signing import authorization_digest, transfer_digest, withdraw_digest
from offchain.l2.smt import Internal, Leaf, Proof, verify
from offchain.l2.stf import BlockContext, Status, apply_tx
from offchain.l2.vectors import generate, generate_steps
from offchain.l2.witness import Witness, post_state_root

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "l2_transactions.json"


def _b(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string[2:])


def test_committed_vectors__are_up_to_date_with_the_rules():
    # Regenerate with `python -m offchain.l2.vectors` after changing a rule on purpose.
    assert json.loads(VECTORS.read_text())["vectors"] == generate()


def _ctx(item: dict) -> BlockContext:
    return BlockContext(
        chain_id=item["context"]["chainId"],
        inbox=item["context"]["inbox"],
        timestamp=item["context"]["timestamp"],
        sequencer=item["context"]["sequencer"],
    )


# Every outcome each kind can have (docs/l2-protocol.md §Effects).
OUTCOMES = {
    TxKind.DEPOSIT: {Status.OK, Status.BAD_DEPOSIT_INDEX},
    TxKind.TRANSFER: {Status.OK, Status.BAD_SIGNATURE, Status.BAD_NONCE, Status.INSUFFICIENT_BALANCE},
    TxKind.TRANSFER_WITH_AUTHORIZATION: {
        Status.OK,
        Status.BAD_SIGNATURE,
        Status.NOT_YET_VALID,
        Status.EXPIRED,
        Status.AUTHORIZATION_USED,
        Status.INSUFFICIENT_BALANCE,
    },
    TxKind.WITHDRAW: {Status.OK, Status.BAD_SIGNATURE, Status.BAD_NONCE, Status.INSUFFICIENT_BALANCE},
}


def test_every_kind_and_outcome__is_covered():
    vectors = json.loads(VECTORS.read_text())["vectors"]
    covered = {(TxKind(_b(v["record"])[0]), Status(v["status"])) for v in vectors}
    assert covered == {(kind, status) for kind, statuses in OUTCOMES.items() for status in statuses}
    assert set().union(*OUTCOMES.values()) == set(Status)


def test_each_vector__carries_the_digest_its_signature_is_checked_against():
    for item in json.loads(VECTORS.read_text())["vectors"]:
        tx, ctx = decode(_b(item["record"])), _ctx(item)
        if isinstance(tx, Deposit):
            assert (item["digest"], item["signer"]) == (None, None), item["name"]
            continue
        if isinstance(tx, Transfer):
            digest = transfer_digest(tx, ctx.chain_id, ctx.inbox)
        elif isinstance(tx, Withdraw):
            digest = withdraw_digest(tx, ctx.chain_id, ctx.inbox)
        else:
            assert isinstance(tx, TransferWithAuthorization)
            digest = authorization_digest(tx, ctx.chain_id)
        assert item["digest"] == "0x" + digest.hex(), item["name"]
        assert item["signer"] == recover_signer(digest, tx.signature), item["name"]
        assert (item["signer"] == tx.sender) == (item["status"] != Status.BAD_SIGNATURE), item["name"]


def test_each_vector__replays_from_its_record_and_proven_leaves_alone():
    for item in json.loads(VECTORS.read_text())["vectors"]:
        root = _b(item["preStateRoot"])
        proven = {}
        for leaf in item["reads"]:
            key, value = _b(leaf["key"]), None if leaf["value"] is None else _b(leaf["value"])
            assert verify(
                root, key, None if value is None else keccak(value), Proof.decode(_b(leaf["proof"]))
            ), item["name"]
            proven[key] = value

        def read(key: bytes, proven=proven, name=item["name"]) -> bytes | None:
            assert key in proven, f"{name} reads a leaf its vector does not prove"
            return proven[key]

        status, writes = apply_tx(decode(_b(item["record"])), _ctx(item), read)
        assert int(status) == item["status"], item["name"]
        assert (status == Status.OK) == bool(writes)
        assert (item["preStateRoot"] == item["postStateRoot"]) == (status != Status.OK)


def test_each_vector__gives_its_status_and_post_state_root_from_its_witness_alone():
    for item in json.loads(VECTORS.read_text())["vectors"]:
        status, root = post_state_root(
            _b(item["preStateRoot"]), _ctx(item), _b(item["record"]), _b(item["witness"])
        )
        assert (int(status), "0x" + root.hex()) == (item["status"], item["postStateRoot"]), item["name"]


def _tree_paths(item: dict) -> set[str]:
    """The ways the vector's writes change the tree, read from its witness."""
    witness = Witness.decode(_b(item["witness"]))
    values = {entry.key: entry.value for entry in witness.entries}
    _, writes = apply_tx(decode(_b(item["record"])), _ctx(item), values.__getitem__)
    paths = set()
    for entry in witness.entries:
        new = writes.get(entry.key, entry.value)
        terminal, depth = entry.proof.terminal, len(entry.proof.siblings)
        if new == entry.value:
            continue
        if entry.value is None and terminal:
            paths.add(f"insert beside a leaf at depth {'> 0' if depth else '0'}")
        elif entry.value is None:
            paths.add(f"insert into an empty {'sub' if depth else ''}tree")
        elif new is None and not depth:
            paths.add("delete the only leaf")
        elif new is not None:
            paths.add("overwrite")
        else:
            paths.add({Leaf: "delete beside a leaf", Internal: "delete beside a subtree"}[type(entry.hint)])
    return paths


def test_vectors__take_every_tree_path():
    # A reachable state never has one leaf only (the deposits leaf exists as soon as anything
    # does): the single-leaf vectors start from states made directly, so a verifier covers it too.
    vectors = json.loads(VECTORS.read_text())["vectors"]
    assert set().union(*map(_tree_paths, vectors)) == {
        "insert into an empty tree",
        "insert into an empty subtree",
        "insert beside a leaf at depth 0",
        "insert beside a leaf at depth > 0",
        "overwrite",
        "delete the only leaf",
        "delete beside a leaf",
        "delete beside a subtree",
    }
    assert "delete beside a leaf" in _tree_paths(
        next(v for v in vectors if v["name"] == "transfer-whole-balance")
    )


STEPS = VECTORS.with_name("l2_steps.json")


def test_committed_step_vectors__are_up_to_date_and_verify():
    committed = json.loads(STEPS.read_text())["batch"]
    assert committed == generate_steps()
    batch = Batch.decode(_b(committed["data"]))
    assert ("0x" + batch.tx_root().hex(), batch.tx_count) == (committed["txRoot"], committed["txCount"])
    assert {step["statusName"] for step in committed["steps"]} >= {"OK", "BAD_SIGNATURE", "BAD_NONCE"}
    for step in committed["steps"]:
        status, root = verify_step(
            _b(committed["batchHash"]),
            _b(committed["preimage"]),
            step["index"],
            _b(step["agreedRoot"]),
            committed["chainId"],
            committed["inbox"],
            _b(step["proof"]),
        )
        assert (int(status), "0x" + root.hex()) == (step["status"], step["postStateRoot"])
    roots = [committed["preStateRoot"]] + [step["postStateRoot"] for step in committed["steps"]]
    assert [step["agreedRoot"] for step in committed["steps"]] == roots[
        :-1
    ]  # each step starts where one ended
