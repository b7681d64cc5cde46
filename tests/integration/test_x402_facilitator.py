"""The facilitator alone: every refusal reason, settlement that waits, batches, conformance."""

from __future__ import annotations

import time

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hexbytes import HexBytes

from offchain.serving import BackgroundServer
from offchain.x402 import settlement as reasons
from offchain.x402 import token_settlement
from offchain.x402.clock import execution_clock
from offchain.x402.eip3009 import TransferAuthorization, authorize_transfer, cancel_digest, sign_digest
from offchain.x402.facilitator_app import create_app
from offchain.x402.models import (
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    FacilitatorRequest,
    PaymentPayload,
    ResourceInfo,
    SettleResponse,
    decode_header,
    encode_header,
)
from offchain.x402.server import FacilitatorClient, PaymentMiddleware
from offchain.x402.store import State
from offchain.x402.token_settlement import settler_gas_needed
from tests.integration.conftest import PRICE, make_facilitator


def _w3(facilitator):
    """The web3 of a facilitator's one network (the L1 token's)."""
    (settlement,) = facilitator.settlements.values()
    return settlement.w3


def _request(
    price, key, *, to=None, value=PRICE, valid_before=None, valid_after=0, requirements=None, chain=None
):
    requirements = requirements or price.requirements()
    now = execution_clock(chain.provider.web3)  # the time the next block can have, as the facilitator judges
    auth, signature = authorize_transfer(
        key,
        price.asset,
        to or price.pay_to,
        value,
        valid_before=now + 60 if valid_before is None else valid_before,
        valid_after=valid_after,
    )
    payload = PaymentPayload(
        x402Version=2,
        payload={
            "authorization": auth.model_dump(mode="json", by_alias=True),
            "signature": "0x" + signature.hex(),
        },
        accepted=requirements,
        resource=ResourceInfo(url="http://127.0.0.1/weather"),
    )
    return FacilitatorRequest(paymentPayload=payload, paymentRequirements=requirements), auth


def _post(server, path, request):
    response = httpx.post(f"{server.url}{path}", json=request.wire() if hasattr(request, "wire") else request)
    assert response.status_code == 200
    return response.json()


def test_supported__lists_exact_on_the_chain(facilitator_server, facilitator_key):
    body = httpx.get(f"{facilitator_server.url}/supported").json()
    assert body["kinds"] == [{"x402Version": 2, "scheme": "exact", "network": "eip155:31337"}]
    assert body["signers"] == {"eip155:*": [Account.from_key(facilitator_key).address]}


def test_verify_then_settle__pays_exactly_once(facilitator_server, token, funded, merchant, price, chain):
    request, _ = _request(price, funded.private_key, chain=chain)
    before = token.balanceOf(merchant)
    assert _post(facilitator_server, "/verify", request) == {"isValid": True, "payer": funded.address}
    settled = _post(facilitator_server, "/settle", request)
    assert settled["success"] and settled["transaction"].startswith("0x") and settled["amount"] == str(PRICE)
    again = _post(facilitator_server, "/settle", request)  # idempotent: the same answer, no second transfer
    assert again["success"] and again["transaction"] == settled["transaction"]
    assert token.balanceOf(merchant) - before == PRICE
    assert _post(facilitator_server, "/verify", request)["invalidReason"] == reasons.NONCE_USED


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", reasons.VALID_BEFORE),
        ("not-yet-valid", reasons.VALID_AFTER),
        ("wrong-recipient", reasons.RECIPIENT_MISMATCH),
        ("wrong-amount", reasons.VALUE_MISMATCH),
        ("bad-signature", reasons.BAD_SIGNATURE),
        ("insufficient-balance", reasons.INSUFFICIENT_BALANCE),
        ("wrong-network", reasons.INVALID_NETWORK),
        ("unknown-asset", reasons.UNSUPPORTED_ASSET),
        ("cancelled", reasons.NONCE_USED),
        ("wrong-domain-name", reasons.NAME_MISMATCH),
        ("no-domain", reasons.MISSING_DOMAIN),
    ],
)
def test_verify__refuses_with_the_right_reason_and_moves_nothing(
    case, reason, facilitator_server, token, settler, funded, merchant, mallory, accounts, price, chain
):
    key, options, requirements = funded.private_key, {}, price.requirements()
    now = chain.blocks.head.timestamp
    if case == "expired":
        options["valid_before"] = now - 1
    elif case == "not-yet-valid":
        options["valid_after"] = now + 3600
    elif case == "wrong-recipient":
        options["to"] = mallory.address
    elif case == "wrong-amount":
        options["value"] = PRICE - 1
    elif case == "insufficient-balance":
        key = accounts[6].private_key  # mallory holds no AUSD
    elif case == "wrong-network":
        requirements = requirements.model_copy(update={"network": "eip155:1"})
    elif case == "unknown-asset":
        requirements = requirements.model_copy(update={"asset": settler.address})
    elif case == "wrong-domain-name":
        requirements = requirements.model_copy(update={"extra": {"name": "USD Coin", "version": "1"}})
    elif case == "no-domain":
        requirements = requirements.model_copy(update={"extra": {}})
    request, auth = _request(price, key, requirements=requirements, chain=chain, **options)
    if case == "bad-signature":
        forged = dict(
            request.paymentPayload.payload,
            signature="0x" + sign_digest(mallory.private_key, b"\x01" * 32).hex(),
        )
        request = request.model_copy(
            update={"paymentPayload": request.paymentPayload.model_copy(update={"payload": forged})}
        )
    if case == "cancelled":
        signature = sign_digest(funded.private_key, cancel_digest(price.asset, funded.address, auth.nonce))
        token.cancelAuthorization(funded.address, auth.nonce, signature, sender=funded)

    before = [token.balanceOf(funded), token.balanceOf(merchant)]
    verdict = _post(facilitator_server, "/verify", request)
    assert verdict["isValid"] is False and verdict["invalidReason"] == reason, verdict
    settled = _post(facilitator_server, "/settle", request)
    assert settled["success"] is False and settled["errorReason"] == reason
    assert [token.balanceOf(funded), token.balanceOf(merchant)] == before


@pytest.mark.parametrize(
    "body", ["not json", "[]", '{"x402Version": 2}'], ids=["garbage", "array", "no-payload"]
)
def test_malformed_body__answers_200_invalid_payload(facilitator_server, body):
    for path, flag in (("/verify", "isValid"), ("/settle", "success")):
        response = httpx.post(f"{facilitator_server.url}{path}", content=body)
        assert response.status_code == 200
        assert response.json()[flag] is False
        assert (
            response.json()["invalidReason" if flag == "isValid" else "errorReason"]
            == reasons.INVALID_PAYLOAD
        )


def test_settlement_pending__is_answered_with_the_hash_and_finished_later(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path
):
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite", receipt_timeout=0.5)
    request, _ = _request(price, funded.private_key, chain=chain)
    before = token.balanceOf(merchant)
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        assert facilitator.verify(request).isValid
        pending = facilitator.settle(request)
        assert pending.success is False and pending.errorReason == reasons.SETTLEMENT_PENDING
        assert pending.transaction.startswith("0x")
        assert token.balanceOf(merchant) == before
        chain.provider.make_request("evm_mine", [])
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    done = facilitator.settle(request)
    assert done.success and done.transaction == pending.transaction
    assert token.balanceOf(merchant) - before == PRICE
    facilitator.stop()


def test_server__serves_a_pending_payment_only_once_it_settles(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path
):
    from dataclasses import replace

    from offchain.x402.example_service import create_service

    quick = replace(price, max_timeout_seconds=2)  # the server gives up waiting after 2 s
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite", receipt_timeout=0.3)
    with (
        BackgroundServer(create_app(facilitator)) as fac,
        BackgroundServer(create_service(FacilitatorClient(fac.url), quick)) as service,
    ):
        request, _ = _request(quick, funded.private_key, chain=chain)
        payload = request.paymentPayload.model_copy(
            update={"resource": ResourceInfo(url=f"{service.url}/weather")}
        )
        header = {PAYMENT_SIGNATURE: encode_header(payload)}
        before = token.balanceOf(merchant)
        chain.provider.make_request("evm_setAutomine", [False])
        try:
            pending = httpx.get(f"{service.url}/weather", headers=header, timeout=30)
        finally:
            chain.provider.make_request("evm_mine", [])
            chain.provider.make_request("evm_setAutomine", [True])
        assert pending.status_code == 402 and "city" not in pending.text
        settled = decode_header(pending.headers[PAYMENT_RESPONSE], SettleResponse)
        assert settled.errorReason == reasons.SETTLEMENT_PENDING and settled.transaction.startswith("0x")

        # Mined now: the same payment is served, once.
        served = httpx.get(f"{service.url}/weather", headers=header, timeout=30)
        assert served.status_code == 200 and "city" in served.json()
        assert (
            decode_header(served.headers[PAYMENT_RESPONSE], SettleResponse).transaction == settled.transaction
        )
        assert httpx.get(f"{service.url}/weather", headers=header, timeout=30).status_code == 402
        assert token.balanceOf(merchant) - before == PRICE
    facilitator.stop()


def test_failed_handler__is_not_charged(facilitator_server, token, funded, merchant, price, chain):
    app = FastAPI()

    @app.get("/weather")
    async def broken() -> JSONResponse:
        return JSONResponse({"error": "upstream down"}, status_code=503)

    with BackgroundServer(
        PaymentMiddleware(app, FacilitatorClient(facilitator_server.url), {("GET", "/weather"): price})
    ) as server:
        request, _ = _request(price, funded.private_key, chain=chain)
        payload = request.paymentPayload.model_copy(
            update={"resource": ResourceInfo(url=f"{server.url}/weather")}
        )
        before = token.balanceOf(merchant)
        response = httpx.get(f"{server.url}/weather", headers={PAYMENT_SIGNATURE: encode_header(payload)})
        assert response.status_code == 503 and PAYMENT_RESPONSE not in response.headers
        assert token.balanceOf(merchant) == before


def test_batching__settles_concurrent_payments_in_one_transaction(
    w3, facilitator_key, token, settler, funded, merchant, price, chain, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor

    facilitator = make_facilitator(
        w3, facilitator_key, token, tmp_path / "f.sqlite", settler=settler, batch_size=5, batch_wait=1.0
    )
    requests_ = [_request(price, funded.private_key, chain=chain)[0] for _ in range(5)]
    for request in requests_:
        assert facilitator.verify(request).isValid
    before = token.balanceOf(merchant)
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(facilitator.settle, requests_))
    assert all(r.success for r in results), results
    assert len({r.transaction for r in results}) == 1  # one BatchSettler transaction
    assert token.balanceOf(merchant) - before == 5 * PRICE
    facilitator.stop()


def test_conformance__resource_server_and_facilitator(x402, service, facilitator_server):
    from x402conf import cli as conf_cli
    from x402conf import harness

    x402.assert_passed(x402.check_payment_required(f"{service.url}/weather"))
    live = harness.run_live(facilitator_server.url)
    x402.assert_passed(conf_cli.make_report("live", facilitator_server.url, live["checks"], via="pytest"))


def test_crash_after_signing_before_broadcast__restart_sends_the_stored_transaction(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path, monkeypatch
):
    db = tmp_path / "f.sqlite"
    first = make_facilitator(w3, facilitator_key, token, db)
    request, _ = _request(price, funded.private_key, chain=chain)
    assert first.verify(request).isValid
    first.stop()

    class Crash(BaseException):  # the process dies: nothing in the facilitator catches this
        pass

    def crash(_raw):
        raise Crash

    # The process dies right after the signed transaction is stored, before it reaches the node.
    (record,) = first.store.in_state(State.RESERVED)
    assert first.store.claim(record.id)
    with monkeypatch.context() as patch:
        patch.setattr(_w3(first).eth, "send_raw_transaction", crash)
        with pytest.raises(Crash):
            first._send(record, request, deadline=time.monotonic() + 5)
    (record,) = first.store.in_state(State.SUBMITTED)
    assert record.raw_tx and record.tx_hash
    before = token.balanceOf(merchant)

    second = make_facilitator(w3, facilitator_key, token, db)  # start() reconciles: re-broadcasts
    done = second.settle(request)
    assert done.success and done.transaction == record.tx_hash
    assert token.balanceOf(merchant) - before == PRICE
    second.stop()


def test_authorization_front_run__counts_as_paid(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path
):
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    request, auth = _request(price, funded.private_key, chain=chain)
    assert facilitator.verify(request).isValid
    # Someone submits the signed authorization straight to the token before the facilitator does.
    signature = bytes.fromhex(request.paymentPayload.payload["signature"][2:])
    front = token.transferWithAuthorization(*auth.as_args(), signature, sender=funded)
    settled = facilitator.settle(request)
    assert settled.success and settled.transaction == "0x" + HexBytes(front.txn_hash).hex().removeprefix("0x")
    facilitator.stop()


def test_stored_transaction_whose_nonce_was_taken__fails_and_moves_nothing(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path, monkeypatch
):
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    facilitator.stop()  # no background reconciler: it would re-broadcast while the nonce is taken
    request, _ = _request(price, funded.private_key, chain=chain)
    assert facilitator.verify(request).isValid
    (record,) = facilitator.store.in_state(State.RESERVED)
    assert facilitator.store.claim(record.id)
    with monkeypatch.context() as patch:  # the broadcast is lost on the way to the node
        patch.setattr(_w3(facilitator).eth, "send_raw_transaction", lambda raw: None)
        pending = facilitator._send(record, request, deadline=time.monotonic() + 0.3)
    assert pending.errorReason == reasons.SETTLEMENT_PENDING and pending.transaction.startswith("0x")
    # Another transaction of the same signer takes that nonce.
    signer = Account.from_key(facilitator_key)
    other = signer.sign_transaction(
        {
            "to": signer.address,
            "value": 0,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price,
            "chainId": 31337,
            "nonce": w3.eth.get_transaction_count(signer.address, "pending"),
        }
    )
    w3.eth.send_raw_transaction(other.raw_transaction)
    before = token.balanceOf(merchant)
    facilitator.reconcile()
    answer = facilitator.settle(request)
    assert answer.success is False and answer.errorReason == reasons.TRANSACTION_FAILED
    assert token.balanceOf(merchant) == before
    facilitator.stop()


def test_concurrent_settles_without_verify__pay_once(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor

    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    request, _ = _request(price, funded.private_key, chain=chain)
    before = token.balanceOf(merchant)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: facilitator.settle(request), range(6)))
    assert all(a.success for a in answers), answers
    assert len({a.transaction for a in answers}) == 1
    assert token.balanceOf(merchant) - before == PRICE
    facilitator.stop()


# -- batches and costly wallets (findings 4 and 5) ---------------------------------------------------


def _wallet_request(price, wallet, owner_key, chain):
    """A payment from a contract wallet, its authorization signed by the wallet's owner."""
    request, _ = _request(price, owner_key, chain=chain)
    authorization = dict(request.paymentPayload.payload["authorization"], **{"from": wallet.address})
    auth = TransferAuthorization.model_validate(authorization)
    payload = {
        "authorization": auth.model_dump(mode="json", by_alias=True),
        "signature": "0x" + sign_digest(owner_key, auth.digest(price.asset)).hex(),
    }
    return request.model_copy(
        update={"paymentPayload": request.paymentPayload.model_copy(update={"payload": payload})}
    )


def _settle_all(facilitator, requests_):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        return list(pool.map(facilitator.settle, requests_))


def test_batch__payer_wallet_costly_only_when_run__fails_alone_and_the_others_settle(
    w3, facilitator_key, project, deployer, token, settler, funded, merchant, accounts, price, chain, tmp_path
):
    owner = accounts[5]
    wallet = deployer.deploy(project.costly_erc1271_wallet_mock, owner.address, 0)
    token.mint(wallet, PRICE, sender=deployer)
    facilitator = make_facilitator(
        w3, facilitator_key, token, tmp_path / "f.sqlite", settler=settler, batch_size=3, batch_wait=1.0
    )
    good_a = _request(price, funded.private_key, chain=chain)[0]
    hostile = _wallet_request(price, wallet, owner.private_key, chain)
    good_b = _request(price, funded.private_key, chain=chain)[0]
    for request in (good_a, hostile, good_b):
        assert facilitator.verify(request).isValid  # estimated while the wallet is cheap
    wallet.set_work(10**9, sender=deployer)  # costly from now on: it burns all the gas it gets
    before = token.balanceOf(merchant)
    settled_a, refused, settled_b = _settle_all(facilitator, [good_a, hostile, good_b])
    assert settled_a.success and settled_b.success, (settled_a, settled_b)
    assert settled_a.transaction == settled_b.transaction  # one batch
    assert refused.success is False and refused.errorReason == reasons.BAD_SIGNATURE
    assert token.balanceOf(merchant) - before == 2 * PRICE
    assert token.balanceOf(wallet) == PRICE
    facilitator.stop()


@pytest.mark.parametrize("batch_size", [0, 2], ids=["alone", "batched"])
def test_valid_wallet_with_a_240k_gas_check__settles(
    w3,
    facilitator_key,
    project,
    deployer,
    token,
    settler,
    funded,
    merchant,
    accounts,
    price,
    chain,
    tmp_path,
    batch_size,
):
    owner = accounts[5]
    wallet = deployer.deploy(project.costly_erc1271_wallet_mock, owner.address, 240_000)
    token.mint(wallet, PRICE, sender=deployer)
    facilitator = make_facilitator(
        w3,
        facilitator_key,
        token,
        tmp_path / "f.sqlite",
        settler=settler,
        batch_size=batch_size,
        batch_wait=1.0,
    )
    requests_ = [_wallet_request(price, wallet, owner.private_key, chain)]
    if batch_size:
        requests_.append(_request(price, funded.private_key, chain=chain)[0])
    before = token.balanceOf(merchant)
    answers = _settle_all(facilitator, requests_)
    assert all(a.success for a in answers), answers
    assert token.balanceOf(merchant) - before == len(requests_) * PRICE
    assert token.balanceOf(wallet) == 0
    facilitator.stop()


def test_batch__authorization_its_gas_cannot_cover__is_settled_alone(
    w3, facilitator_key, token, settler, funded, merchant, price, chain, tmp_path, monkeypatch
):
    facilitator = make_facilitator(
        w3, facilitator_key, token, tmp_path / "f.sqlite", settler=settler, batch_size=3, batch_wait=1.0
    )
    requests_ = [_request(price, funded.private_key, chain=chain)[0] for _ in range(3)]
    for request in requests_:
        assert facilitator.verify(request).isValid
    # The batch's transaction gets gas for one authorization only: the settler runs what it can
    # and skips the others unrun (SettlerGasShort); the facilitator sends each of those alone.
    monkeypatch.setattr(token_settlement, "batch_gas", lambda limits: settler_gas_needed(limits[0]) + 60_000)
    before = token.balanceOf(merchant)
    answers = _settle_all(facilitator, requests_)
    assert all(a.success for a in answers), answers
    assert len({a.transaction for a in answers}) == 3  # one batch and two transactions alone
    assert token.balanceOf(merchant) - before == 3 * PRICE
    facilitator.stop()


# -- the clock (finding 9) ------------------------------------------------------------------------


def _idle(chain, seconds: int) -> None:
    """The chain mines nothing for `seconds`: its next block comes that much after the latest one."""
    chain.provider.make_request("evm_increaseTime", [seconds])


def _mine_at(chain, timestamp) -> None:
    """Mines a block at `timestamp`, and the next ones after it (whatever the wall clock says)."""
    chain.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])
    chain.provider.make_request("evm_mine", [])


def test_verify__authorization_expired_by_the_execution_clock__is_refused_and_nothing_sent(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path
):
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    signer = Account.from_key(facilitator_key).address
    _idle(chain, 120)
    latest = chain.blocks.head.timestamp
    try:
        # Valid for another minute by the latest block's time, expired a minute ago by the clock
        # the transfer would run at.
        request, _ = _request(price, funded.private_key, chain=chain, valid_before=latest + 60)
        sent_before, paid_before = w3.eth.get_transaction_count(signer), token.balanceOf(merchant)
        verdict = facilitator.verify(request)
        assert verdict.isValid is False and verdict.invalidReason == reasons.VALID_BEFORE, verdict
        assert "validBefore" in verdict.invalidMessage
        settled = facilitator.settle(request)
        assert settled.success is False and settled.errorReason == reasons.VALID_BEFORE
        assert w3.eth.get_transaction_count(signer) == sent_before  # no transaction sent to revert
        assert token.balanceOf(merchant) == paid_before
    finally:
        facilitator.stop()
        chain.provider.make_request("evm_mine", [])


# -- waste and griefing (finding 11) ----------------------------------------------------------------


def test_restart__stored_transaction_of_an_expired_authorization__is_not_sent_again(
    w3, facilitator_key, token, funded, merchant, price, chain, tmp_path, monkeypatch
):
    db = tmp_path / "f.sqlite"
    first = make_facilitator(w3, facilitator_key, token, db)
    first.stop()
    request, _ = _request(price, funded.private_key, chain=chain, valid_before=execution_clock(w3) + 30)
    assert first.verify(request).isValid
    (record,) = first.store.in_state(State.RESERVED)
    assert first.store.claim(record.id)
    with monkeypatch.context() as patch:  # the process dies after storing the signed transaction
        patch.setattr(_w3(first).eth, "send_raw_transaction", lambda raw: None)
        first._send(record, request, deadline=time.monotonic() + 0.2)
    _mine_at(chain, record.valid_before + 1)  # the authorization has expired
    signer = Account.from_key(facilitator_key).address
    sent_before, paid_before = w3.eth.get_transaction_count(signer), token.balanceOf(merchant)

    second = make_facilitator(w3, facilitator_key, token, db)  # start() reconciles
    second.stop()
    assert w3.eth.get_transaction_count(signer) == sent_before  # not re-sent to revert
    (failed,) = second.store.in_state(State.FAILED)
    assert failed.id == record.id
    answer = second.settle(request)
    assert answer.success is False and answer.errorReason == reasons.TRANSACTION_FAILED
    assert token.balanceOf(merchant) == paid_before


def test_verify__twenty_authorizations_of_a_payer_who_can_afford_one__reserve_one(
    w3, facilitator_key, token, deployer, merchant, price, chain, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor

    payer = Account.create()
    token.mint(payer.address, PRICE, sender=deployer)
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    requests_ = [_request(price, payer.key, chain=chain)[0] for _ in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(facilitator.verify, requests_))
    assert sum(v.isValid for v in verdicts) == 1, verdicts
    assert {v.invalidReason for v in verdicts if not v.isValid} == {reasons.INSUFFICIENT_BALANCE}
    signer = Account.from_key(facilitator_key).address
    sent_before, paid_before = w3.eth.get_transaction_count(signer), token.balanceOf(merchant)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(facilitator.settle, requests_))
    assert sum(a.success for a in answers) == 1
    assert w3.eth.get_transaction_count(signer) == sent_before + 1  # no transaction sent to revert
    assert token.balanceOf(merchant) - paid_before == PRICE
    facilitator.stop()


def test_reservation__ends_at_valid_before_and_frees_the_payers_balance(
    w3, facilitator_key, token, deployer, price, chain, tmp_path
):
    payer = Account.create()
    token.mint(payer.address, PRICE, sender=deployer)
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "f.sqlite")
    reserved, _ = _request(price, payer.key, chain=chain, valid_before=execution_clock(w3) + 20)
    assert facilitator.verify(reserved).isValid  # reserved, never settled
    second, _ = _request(price, payer.key, chain=chain)
    assert facilitator.verify(second).invalidReason == reasons.INSUFFICIENT_BALANCE
    _mine_at(chain, int(reserved.paymentPayload.payload["authorization"]["validBefore"]) + 1)
    facilitator.reconcile()
    (expired,) = facilitator.store.in_state(State.FAILED)
    assert expired.error.startswith(reasons.VALID_BEFORE)
    third, _ = _request(price, payer.key, chain=chain)
    assert facilitator.verify(third).isValid  # the expired reservation no longer holds the balance
    facilitator.stop()


def test_verify__refusal_names_the_field_that_does_not_match(facilitator_server, funded, price, chain):
    request, _ = _request(price, funded.private_key, chain=chain)
    other = request.paymentPayload.accepted.model_copy(update={"maxTimeoutSeconds": 5})
    payload = request.paymentPayload.model_copy(update={"accepted": other})
    verdict = _post(facilitator_server, "/verify", request.model_copy(update={"paymentPayload": payload}))
    assert verdict["invalidReason"] == reasons.INVALID_REQUIREMENTS
    assert verdict["invalidMessage"].startswith("accepted.maxTimeoutSeconds is 5, not 60")
