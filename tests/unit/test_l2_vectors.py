"""The committed L2 test vectors match the rules, and each carries what a verifier needs."""

from __future__ import annotations

import json
from pathlib import Path

from eth_hash.auto import keccak

from offchain.l2.codec import decode
from offchain.l2.smt import Proof, verify
from offchain.l2.stf import BlockContext, Status, apply_tx
from offchain.l2.vectors import generate

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "l2_transactions.json"


def _b(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string[2:])


def test_committed_vectors__are_up_to_date_with_the_rules():
    # Regenerate with `python -m offchain.l2.vectors` after changing a rule on purpose.
    assert json.loads(VECTORS.read_text())["vectors"] == generate()


def test_every_kind_and_outcome__is_covered():
    vectors = json.loads(VECTORS.read_text())["vectors"]
    kinds = {_b(v["record"])[0] for v in vectors}
    assert kinds == {1, 2, 3, 4}
    assert {v["statusName"] for v in vectors} == {status.name for status in Status}


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

        ctx = BlockContext(
            chain_id=item["context"]["chainId"],
            inbox=item["context"]["inbox"],
            timestamp=item["context"]["timestamp"],
            sequencer=item["context"]["sequencer"],
        )
        status, writes = apply_tx(decode(_b(item["record"])), ctx, read)
        assert int(status) == item["status"], item["name"]
        assert (status == Status.OK) == bool(writes)
        assert (item["preStateRoot"] == item["postStateRoot"]) == (status != Status.OK)
