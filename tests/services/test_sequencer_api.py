"""The sequencer's HTTP API on a real loopback server: submit, receipts, reads, proofs, and every
refusal (malformed JSON and records, oversized bodies, replays) with nothing changed."""

from __future__ import annotations

import httpx
import pytest

from offchain.hashing import keccak
from offchain.l2.codec import decode
from offchain.l2.smt import Proof, verify
from offchain.sequencer.api import create_app
from offchain.sequencer.confirmation import SoftConfirmation
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import Schedule, SequencerService
from offchain.serving import BackgroundServer
from tests.contracts.dispute.conftest import CHAIN_ID, ETH, USERS
from tests.services.test_sequencer_core import _authorization, _transfer


@pytest.fixture
def api(chain, inbox, sequencer, sequencer_set, first_batch):
    core = Sequencer(sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp)
    service = SequencerService(core, Schedule(sequencer_set))
    with (
        BackgroundServer(create_app(service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client, core


def test_submit__confirms_and_the_receipt_and_reads_follow(api, inbox, sequencer):
    client, core = api
    record = _transfer(inbox, 0, 1, 500, 0)
    answer = client.post("/v1/transactions", json={"record": "0x" + record.hex()})
    assert answer.status_code == 200, answer.text
    confirmation = SoftConfirmation.model_validate(answer.json())
    assert confirmation.is_valid() and confirmation.sequencer == sequencer.address
    assert client.get(f"/v1/transactions/{confirmation.tx_hash}").json()["stage"] == "soft"
    assert client.get(f"/v1/accounts/{USERS[0]}/nonce").json()["nonce"] == 1
    assert client.get(f"/v1/accounts/{USERS[1]}/balance").json()["balance"] == str(10**18 + 500)
    assert client.get("/v1/sequencer").json() == {
        "address": sequencer.address,
        "chain_id": CHAIN_ID,
        "inbox": inbox.address,
        "leader": sequencer.address,
        "leads": True,  # the only operator: it leads every slot
        "time": core.blocks[-1].timestamp,  # the open block's: where the next transaction runs
    }
    index = core.post()
    posted = client.get(f"/v1/transactions/{confirmation.tx_hash}").json()
    assert (posted["stage"], posted["batch"], posted["status"]) == ("posted", index, 0)


def test_authorizations__read_used_once_a_transfer_with_authorization_is_admitted(api, chain):
    client, core = api
    now = chain.blocks.head.timestamp
    record = _authorization(0, 1, 5, now - 100, now + 3_600)
    tx = decode(record)
    path = f"/v1/accounts/{USERS[0]}/authorizations/0x{tx.nonce.hex()}"
    assert client.get(path).json() == {"account": USERS[0], "nonce": "0x" + tx.nonce.hex(), "used": False}
    assert client.post("/v1/transactions", json={"record": "0x" + record.hex()}).status_code == 200
    assert client.get(path).json()["used"] is True and core.authorization_used(USERS[0], tx.nonce)
    assert client.get(f"/v1/accounts/{USERS[0]}/authorizations/0x12").status_code == 400
    assert client.get("/v1/accounts/0x12/authorizations/0x" + "00" * 32).status_code == 400


def test_proof__the_balance_leaf_under_the_posted_root(api, inbox):
    client, _ = api
    body = client.get(f"/v1/accounts/{USERS[2]}/proof", params={"token": ETH}).json()
    assert body["root"] == "0x" + inbox.claim(body["batch"]).root.hex()
    value = bytes.fromhex(body["value"][2:])
    assert int.from_bytes(value, "big") == 10**18
    proof = Proof.decode(bytes.fromhex(body["proof"][2:]))
    assert verify(bytes.fromhex(body["root"][2:]), bytes.fromhex(body["key"][2:]), keccak(value), proof)


def test_refusals__are_4xx_and_change_nothing(api, inbox):
    client, core = api
    post = client.post
    assert post("/v1/transactions", content=b"{not json").status_code == 400
    assert post("/v1/transactions", json={"record": "0xzz"}).status_code == 400
    assert post("/v1/transactions", json={"record": "0x02", "extra": 1}).status_code == 400
    assert post("/v1/transactions", json=["0x02"]).status_code == 400
    assert post("/v1/transactions", content=b"{" + b" " * 5_000 + b"}").status_code == 413
    malformed = post("/v1/transactions", json={"record": "0x02" + "00" * 10})
    assert malformed.status_code == 400 and "malformed record" in malformed.json()["error"]
    failing = post("/v1/transactions", json={"record": "0x" + _transfer(inbox, 0, 1, 1, 9).hex()})
    assert failing.status_code == 400 and failing.json()["status"] == "BAD_NONCE"
    record = {"record": "0x" + _transfer(inbox, 0, 1, 1, 0).hex()}
    assert post("/v1/transactions", json=record).status_code == 200
    replay = post("/v1/transactions", json=record)
    assert replay.status_code == 409 and "already confirmed" in replay.json()["error"]
    assert client.get("/v1/transactions/0x" + "00" * 32).status_code == 404
    assert client.get("/v1/accounts/0x12/nonce").status_code == 400
    assert client.get(f"/v1/accounts/{USERS[0]}/balance", params={"token": "eth"}).status_code == 400
    assert core.nonce(USERS[0]) == 1 and len(core.confirmed) == 1
