"""The replica node on anvil: it derives the L2 from L1 into its LMDB store and reaches the
derivation's roots; restarted from its disk it goes on; from an empty disk it reaches the same
roots; an L1 reorganization under it is refused with a clear error and changes nothing; a wrong
claim is reported."""

from __future__ import annotations

import threading

import httpx
import pytest

from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block
from offchain.l2.codec import decode
from offchain.node.api import create_app
from offchain.node.replica import ReorgError, ReplicaNode
from offchain.rollup.derive import Derivation
from offchain.serving import BackgroundServer
from tests.contracts.dispute.conftest import CHAIN_ID, ETH, USERS
from tests.services.test_sequencer_core import _transfer


def _post(chain, inbox, sequencer, nonce: int, root: bytes | None = None) -> int:
    records = [_transfer(inbox, i, (i + 1) % 4, 10 + i, nonce) for i in range(4)]
    batch = Batch(
        (
            Block(chain.blocks.head.timestamp, tuple(decode(r) for r in records[:2])),
            Block(chain.blocks.head.timestamp, tuple(decode(r) for r in records[2:])),
        ),
    )
    derivation = Derivation(inbox, CHAIN_ID)
    index = inbox.append_batch(sequencer, batch)
    derivation.sync()
    inbox.propose_root(sequencer, index, derivation.root(index) if root is None else root)
    return index


def _roots(inbox) -> list[bytes]:
    derivation = Derivation(inbox, CHAIN_ID)
    derivation.sync()
    return [derivation.root(i) for i in range(len(derivation.batches))]


def test_derives_restarts_and_rebuilds_to_the_same_roots(chain, inbox, sequencer, first_batch, tmp_path):
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "a")
    assert node.sync() == 1
    _post(chain, inbox, sequencer, 0)
    assert node.sync() == 2
    node.close()
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "a")  # restarted from its disk
    assert node.synced[0] == 1
    _post(chain, inbox, sequencer, 1)
    assert node.sync() == 3
    expected = _roots(inbox)
    assert [node.batch_root(i) for i in range(3)] == expected
    assert node.balance(USERS[1], ETH) == 10**18 + 10 + 10 - 11 - 11 - 2 * 10 and node.nonce(USERS[0]) == 2
    fresh = ReplicaNode(inbox, CHAIN_ID, tmp_path / "b")  # an empty disk
    assert fresh.sync() == 3 and [fresh.batch_root(i) for i in range(3)] == expected
    assert node.disagreements() == []


def test_an_l1_reorganization__is_refused_and_changes_nothing(chain, inbox, sequencer, first_batch, tmp_path):
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "n")
    snapshot = chain.snapshot()
    _post(chain, inbox, sequencer, 0)
    node.sync()
    synced, latest = node.synced, node.store.latest()
    chain.restore(snapshot)
    _post(chain, inbox, sequencer, 5)  # another batch 1 (its transfers fail on their nonces)
    with pytest.raises(ReorgError, match="rebuild the node from an empty folder"):
        node.sync()
    assert node.synced == synced and node.store.latest() == latest


def test_a_wrong_claim__is_reported(chain, inbox, sequencer, first_batch, tmp_path):
    index = _post(chain, inbox, sequencer, 0, root=keccak(b"wrong"))
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "w")
    node.sync()
    assert node.disagreements() == [(index, keccak(b"wrong"), node.batch_root(index))]


def test_the_read_api__on_a_loopback_server(chain, inbox, sequencer, first_batch, tmp_path):
    index = _post(chain, inbox, sequencer, 0, root=keccak(b"wrong"))
    node = ReplicaNode(inbox, CHAIN_ID, tmp_path / "api")
    node.sync()
    with BackgroundServer(create_app(node, threading.Lock())) as server:
        get = httpx.Client(base_url=server.url, timeout=30).get
        assert get(f"/v1/accounts/{USERS[2]}/balance").json()["balance"] == str(node.balance(USERS[2], ETH))
        assert get(f"/v1/accounts/{USERS[0]}/nonce").json()["nonce"] == 1
        assert get(f"/v1/batches/{index}/root").json()["root"] == "0x" + node.batch_root(index).hex()
        assert get("/v1/batches/9/root").status_code == 404
        assert get("/v1/accounts/0x1/nonce").status_code == 400
        unused = get(f"/v1/accounts/{USERS[0]}/authorizations/0x" + "00" * 32).json()
        assert unused["used"] is False  # a transfer with authorization would set it (the STF's leaf)
        (reported,) = get("/v1/disagreements").json()
        assert reported["batch"] == index and reported["claimed"] == "0x" + keccak(b"wrong").hex()
        assert get("/v1/status").json()["batches"] == 2
