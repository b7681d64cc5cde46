"""Paying a resource server on L1 through our facilitator: our client, the official SDK, replays,
concurrency, malformed headers, failed handlers."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests
from eth_account import Account

from offchain.serving import BackgroundServer
from offchain.x402.client import PaymentRefused, X402Client
from offchain.x402.example_service import create_service
from offchain.x402.models import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    FacilitatorRequest,
    PaymentPayload,
    PaymentRequired,
    SettleResponse,
    decode_header,
    encode_header,
)
from offchain.x402.server import FacilitatorClient, _payment_key
from offchain.x402.store import Delivery
from tests.integration.conftest import PRICE


def _balances(token, *accounts):
    return [token.balanceOf(a) for a in accounts]


def test_unpaid_request__gets_402_with_requirements(service, token, merchant):
    response = httpx.get(f"{service.url}/weather")
    assert response.status_code == 402
    assert response.headers["cache-control"] == "private"
    required = decode_header(response.headers[PAYMENT_REQUIRED], PaymentRequired)
    (offer,) = required.accepts
    assert (offer.scheme, offer.network, offer.amount) == ("exact", "eip155:31337", str(PRICE))
    assert offer.asset == token.address and offer.payTo == merchant.address
    assert offer.extra == {"name": "Agent USD", "version": "1", "method": "GET"}
    assert required.resource.url.endswith("/weather")
    assert httpx.get(f"{service.url}/health").status_code == 200  # unpriced routes are free


def test_our_client__pays_once_and_is_served(service, token, funded, merchant, w3):
    before = _balances(token, funded, merchant)
    client = X402Client(funded.private_key, w3, max_amount=PRICE)
    paid = client.get(f"{service.url}/weather?city=Porto")
    assert paid.response.status_code == 200
    assert paid.response.json()["city"] == "Porto"
    assert paid.response.headers["cache-control"] == "private"
    assert paid.settlement.success and paid.settlement.transaction.startswith("0x")
    assert paid.settlement.payer == funded.address and paid.settlement.network == "eip155:31337"
    assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]


def test_our_client__refuses_a_price_above_its_limit(service, funded, w3):
    client = X402Client(funded.private_key, w3, max_amount=PRICE - 1)
    with pytest.raises(PaymentRefused, match="above the limit"):
        client.get(f"{service.url}/weather")


def test_official_sdk_client__pays_our_server(service, token, funded, merchant):
    from x402 import x402ClientSync
    from x402.http.clients import wrapRequestsWithPayment
    from x402.mechanisms.evm.exact import ExactEvmScheme

    client = x402ClientSync()
    client.register("eip155:31337", ExactEvmScheme(Account.from_key(funded.private_key)))
    client.set_spend_controls({"allowed_assets": [{"network": "eip155:31337", "asset": token.address}]})
    session = wrapRequestsWithPayment(requests.Session(), client)
    before = token.balanceOf(merchant)
    response = session.get(f"{service.url}/weather")
    assert response.status_code == 200, response.text
    settled = decode_header(response.headers[PAYMENT_RESPONSE], SettleResponse)
    assert settled.success and settled.transaction.startswith("0x")
    assert token.balanceOf(merchant) - before == PRICE

    replay = requests.get(
        f"{service.url}/weather", headers={PAYMENT_SIGNATURE: response.request.headers[PAYMENT_SIGNATURE]}
    )
    assert replay.status_code == 402
    assert token.balanceOf(merchant) - before == PRICE


def _signed_header(service, funded, w3) -> str:
    """A valid PAYMENT-SIGNATURE for /weather, built without sending it."""
    client = X402Client(funded.private_key, w3, max_amount=PRICE)
    first = httpx.get(f"{service.url}/weather")
    required = decode_header(first.headers[PAYMENT_REQUIRED], PaymentRequired)
    from offchain.x402.models import encode_header

    return encode_header(client._pay(required.accepts[0], required))


def test_replayed_header__gets_402_and_moves_no_money(service, token, funded, merchant, w3):
    header = _signed_header(service, funded, w3)
    assert httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header}).status_code == 200
    after_first = _balances(token, funded, merchant)
    replay = httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header})
    assert replay.status_code == 402
    assert "nonce_already_used" in replay.json()["error"]
    assert _balances(token, funded, merchant) == after_first


def test_twenty_concurrent_requests_with_one_payment__settle_once_and_serve_once(
    service, token, funded, merchant, w3
):
    header = _signed_header(service, funded, w3)
    before = _balances(token, funded, merchant)

    def attempt(_: int) -> int:
        return httpx.get(
            f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) == 1 and statuses.count(402) == 19
    assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]


@pytest.mark.parametrize(
    "header",
    ["not base64!", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b'{"x402Version": 2}').decode()],
    ids=["not-base64", "not-an-object", "missing-fields"],
)
def test_malformed_header__gets_400_never_5xx(service, header):
    response = httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header})
    assert response.status_code == 400
    assert "payment header" in response.json()["error"]
    assert PAYMENT_REQUIRED in response.headers


def test_payment_for_other_terms__gets_402(service, token, funded, merchant, w3):
    client = X402Client(funded.private_key, w3, max_amount=PRICE)
    required = decode_header(httpx.get(f"{service.url}/weather").headers[PAYMENT_REQUIRED], PaymentRequired)
    cheaper = required.accepts[0].model_copy(update={"amount": str(PRICE - 1)})
    from offchain.x402.models import encode_header

    header = encode_header(client._pay(cheaper, required))
    before = _balances(token, funded, merchant)
    response = httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header})
    assert response.status_code == 402 and "not for these terms" in response.json()["error"]
    other_route = json.loads(base64.b64decode(header))
    other_route["resource"]["url"] = f"{service.url}/elsewhere"
    forged = base64.b64encode(json.dumps(other_route).encode()).decode()
    assert httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: forged}).status_code == 402
    assert _balances(token, funded, merchant) == before


def test_head_request__is_never_settled(service, token, funded, merchant, w3):
    header = _signed_header(service, funded, w3)
    before = _balances(token, funded, merchant)
    response = httpx.head(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header})
    assert response.status_code == 402
    assert _balances(token, funded, merchant) == before


def test_payment_for_one_method__is_refused_on_another(
    facilitator_server, token, funded, merchant, price, w3
):
    from fastapi import FastAPI

    from offchain.serving import BackgroundServer
    from offchain.x402.models import encode_header
    from offchain.x402.server import FacilitatorClient, PaymentMiddleware

    app = FastAPI()

    @app.api_route("/data", methods=["GET", "POST"])
    async def data() -> dict:
        return {"ok": True}

    prices = {("GET", "/data"): price, ("POST", "/data"): price}
    with BackgroundServer(
        PaymentMiddleware(app, FacilitatorClient(facilitator_server.url), prices)
    ) as server:
        client = X402Client(funded.private_key, w3, max_amount=PRICE)
        required = decode_header(httpx.get(f"{server.url}/data").headers[PAYMENT_REQUIRED], PaymentRequired)
        header = encode_header(client._pay(required.accepts[0], required))  # signed for GET /data
        before = _balances(token, funded, merchant)
        response = httpx.post(f"{server.url}/data", headers={PAYMENT_SIGNATURE: header})
        assert response.status_code == 402 and "not for these terms" in response.json()["error"]
        assert _balances(token, funded, merchant) == before
        assert httpx.get(f"{server.url}/data", headers={PAYMENT_SIGNATURE: header}).status_code == 200


def test_our_client__on_an_idle_chain__pays_and_is_served(service, token, funded, merchant, w3, chain):
    # The chain has mined nothing for two minutes: its latest block's time is two minutes behind
    # the time the settlement will run at. A window counted from that block would have closed.
    chain.provider.make_request("evm_increaseTime", [120])
    before = _balances(token, funded, merchant)
    client = X402Client(funded.private_key, w3, max_amount=PRICE)
    paid = client.get(f"{service.url}/weather")
    assert paid.response.status_code == 200, paid.response.text
    assert paid.settlement is not None and paid.settlement.success
    assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]


# -- paid but not served (finding 10), griefing and refusals (finding 11) -------------------------


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_paid_while_the_connection_dropped__same_header_is_served_once(
    facilitator_server, token, funded, merchant, price, w3, chain
):
    service = create_service(FacilitatorClient(facilitator_server.url), price)
    with BackgroundServer(service) as server:
        header = _signed_header(server, funded, w3)
        payment = _payment_key(decode_header(header, PaymentPayload))
        before = _balances(token, funded, merchant)
        chain.provider.make_request("evm_setAutomine", [False])
        try:
            # The payer gives up while the settlement is under way: its connection is closed.
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(f"{server.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=1.5)
            chain.provider.make_request("evm_mine", [])
        finally:
            chain.provider.make_request("evm_setAutomine", [True])
        _wait_for(lambda: (service.deliveries.get(payment) or _Nothing).state == Delivery.OPEN)
        assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]  # paid

        served = httpx.get(f"{server.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=30)
        assert served.status_code == 200 and "city" in served.json()
        assert decode_header(served.headers[PAYMENT_RESPONSE], SettleResponse).success
        again = httpx.get(f"{server.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=30)
        assert again.status_code == 402 and "already served" in again.json()["error"]
        assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]  # once


class _Nothing:
    state = None


def test_header_verified_by_someone_else_first__still_pays_the_payers_own_request(
    service, facilitator_server, token, funded, merchant, w3
):
    header = _signed_header(service, funded, w3)
    payload = decode_header(header, PaymentPayload)
    request = FacilitatorRequest(paymentPayload=payload, paymentRequirements=payload.accepted)
    # Someone who saw the header verifies it first, which reserves it at the facilitator.
    grief = httpx.post(f"{facilitator_server.url}/verify", json=request.wire()).json()
    assert grief["isValid"] is True
    before = _balances(token, funded, merchant)
    response = httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=30)
    assert response.status_code == 200, response.text
    assert _balances(token, funded, merchant) == [before[0] - PRICE, before[1] + PRICE]


def test_refusal_of_other_terms__names_the_field_that_does_not_match(service, funded, w3):
    client = X402Client(funded.private_key, w3, max_amount=PRICE)
    required = decode_header(httpx.get(f"{service.url}/weather").headers[PAYMENT_REQUIRED], PaymentRequired)
    cheaper = required.accepts[0].model_copy(update={"amount": str(PRICE - 1)})
    header = encode_header(client._pay(cheaper, required))
    response = httpx.get(f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header})
    assert response.status_code == 402
    assert f"accepted.amount is '{PRICE - 1}', not '{PRICE}'" in response.json()["error"]
