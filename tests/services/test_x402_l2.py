"""x402 on the L2: a paid service priced on the rollup, its facilitator settling through the
sequencer's API (every piece real: anvil, the sequencer core and its HTTP API, the facilitator's
HTTP API, the paid service, the official SDK client). The payer's AgentUSD is deposited to the
L2 first; a payment is an L2 TransferWithAuthorization, settled on the signed soft confirmation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests
from eth_account import Account

from offchain.chain.rpc import connect
from offchain.l2.signing import token_domain
from offchain.sequencer.api import create_app as sequencer_app
from offchain.sequencer.confirmation import SoftConfirmation
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import Schedule, SequencerService
from offchain.serving import BackgroundServer
from offchain.x402 import settlement as reasons
from offchain.x402.client import X402Client
from offchain.x402.eip3009 import authorize_transfer, sign_digest
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app as facilitator_app
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
from offchain.x402.sequencer_settlement import SequencerSettlement
from offchain.x402.server import FacilitatorClient, Price
from offchain.x402.store import PaymentStore, State
from tests.contracts.dispute.conftest import CHAIN_ID, KEYS, USERS

L2 = f"eip155:{CHAIN_ID}"
PRICE = 25_000
FUNDS = 10 * PRICE
# The SDK's validBefore is the wall clock plus maxTimeoutSeconds, and this anvil's clock runs
# ahead of the wall clock (the fixtures mine hundreds of blocks a second apart): an hour of
# timeout keeps the window open in L2 time. A real L1's clock does not run ahead.
TIMEOUT = 3_600


@pytest.fixture
def rollup_api(chain, inbox, sequencer, sequencer_set, stake, deployer, first_batch):
    """The sequencer (the only operator: it leads every slot) serving its API, with FUNDS of
    AgentUSD deposited to USERS[0] on the L2 and in a posted batch."""
    core = Sequencer(sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp)
    service = SequencerService(core, Schedule(sequencer_set), post_interval=0.0)
    stake.mint(deployer, FUNDS, sender=deployer)
    inbox.deposit_erc20(deployer, stake, USERS[0], FUNDS)
    chain.mine(1)
    assert service.step() is not None and core.balance(USERS[0], stake.address) == FUNDS
    with BackgroundServer(sequencer_app(service)) as server:
        yield server.url, service


@pytest.fixture
def l2_facilitator(rollup_api, stake, tmp_path):
    url, _ = rollup_api
    store = PaymentStore(tmp_path / "facilitator.sqlite")
    facilitator = Facilitator(store, [SequencerSettlement(store, CHAIN_ID, [url], [stake.address])], 10.0)
    facilitator.start(reconcile_every=0.2)
    with BackgroundServer(facilitator_app(facilitator)) as server:
        yield facilitator, server.url
    facilitator.stop()


@pytest.fixture
def l2_price(stake) -> Price:
    return price_on_l2(stake)


def price_on_l2(stake) -> Price:
    return Price(
        amount=PRICE,
        asset=token_domain(CHAIN_ID, stake.address),
        pay_to=USERS[1],
        description="weather forecast",
        max_timeout_seconds=TIMEOUT,
    )


@pytest.fixture
def service(l2_facilitator, l2_price):
    _, url = l2_facilitator
    with BackgroundServer(create_service(FacilitatorClient(url), l2_price)) as server:
        yield server


def _balances(rollup_api, token) -> list[int]:
    _, service = rollup_api
    return [service.core.balance(USERS[0], token.address), service.core.balance(USERS[1], token.address)]


def _header(service_url: str, chain) -> str:
    """A valid PAYMENT-SIGNATURE for /weather on the L2, built by our client without sending it."""
    client = X402Client(KEYS[0].hex(), connect(chain.provider.http_uri), max_amount=PRICE, rollups=[CHAIN_ID])
    required = decode_header(httpx.get(f"{service_url}/weather").headers[PAYMENT_REQUIRED], PaymentRequired)
    return encode_header(client._pay(client._choose(required), required))


def test_official_sdk_client__pays_an_l2_priced_service_on_the_soft_confirmation(
    service, rollup_api, stake, sequencer
):
    from x402 import x402ClientSync
    from x402.http.clients import wrapRequestsWithPayment
    from x402.mechanisms.evm.exact import ExactEvmScheme

    client = x402ClientSync()
    client.register(L2, ExactEvmScheme(Account.from_key(KEYS[0])))
    client.set_spend_controls({"allowed_assets": [{"network": L2, "asset": stake.address}]})
    session = wrapRequestsWithPayment(requests.Session(), client)
    before = _balances(rollup_api, stake)
    response = session.get(f"{service.url}/weather?city=Porto")
    assert response.status_code == 200, response.text
    assert response.json()["city"] == "Porto"
    settled = decode_header(response.headers[PAYMENT_RESPONSE], SettleResponse)
    assert settled.success and settled.network == L2 and settled.payer == USERS[0]
    promise = SoftConfirmation.model_validate(settled.extra)
    assert promise.is_valid() and promise.signer() == sequencer.address
    assert settled.transaction == promise.tx_hash  # the L2 transaction that paid
    assert _balances(rollup_api, stake) == [before[0] - PRICE, before[1] + PRICE]
    _, sequencer_service = rollup_api
    assert sequencer_service.core.receipt(promise.tx_hash).stage == "soft"
    assert sequencer_service.step() is not None  # posted to L1 in the next batch
    assert sequencer_service.core.receipt(promise.tx_hash).stage == "posted"

    replay = requests.get(
        f"{service.url}/weather", headers={PAYMENT_SIGNATURE: response.request.headers[PAYMENT_SIGNATURE]}
    )
    assert replay.status_code == 402 and "nonce_already_used" in replay.json()["error"]
    assert _balances(rollup_api, stake) == [before[0] - PRICE, before[1] + PRICE]


def test_twenty_concurrent_requests_with_one_l2_payment__settle_once_and_serve_once(
    service, rollup_api, stake, chain
):
    header = _header(service.url, chain)
    before = _balances(rollup_api, stake)

    def attempt(_: int) -> int:
        return httpx.get(
            f"{service.url}/weather", headers={PAYMENT_SIGNATURE: header}, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) == 1 and statuses.count(402) == 19
    assert _balances(rollup_api, stake) == [before[0] - PRICE, before[1] + PRICE]


def _request(price: Price, key: bytes, chain, **overrides) -> FacilitatorRequest:
    now = chain.blocks.head.timestamp
    requirements = price.requirements()
    fields = {"valid_before": now + TIMEOUT, **overrides}
    domain = fields.pop("domain", price.asset)
    value = fields.pop("value", PRICE)
    signer = fields.pop("signer", None)
    auth, signature = authorize_transfer(key, domain, price.pay_to, value, **fields)
    if signer is not None:  # the same authorization, signed by another key
        signature = sign_digest(signer, auth.digest(domain))
    payload = PaymentPayload(
        x402Version=2,
        payload={
            "authorization": auth.model_dump(mode="json", by_alias=True),
            "signature": "0x" + signature.hex(),
        },
        accepted=requirements,
    )
    return FacilitatorRequest(x402Version=2, paymentPayload=payload, paymentRequirements=requirements)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"signer": KEYS[1]}, reasons.BAD_SIGNATURE),  # signed by another key than the payer's
        ({"domain": "l1"}, reasons.BAD_SIGNATURE),  # signed in the L1 token's domain
        ({"value": PRICE + 1}, reasons.VALUE_MISMATCH),
        ({"valid_before": 0}, reasons.VALID_BEFORE),
        ({"valid_after": 2**40}, reasons.VALID_AFTER),
    ],
)
def test_verify_on_the_l2__refuses_with_the_reason_and_reserves_nothing(
    l2_facilitator, l2_price, stake, chain, overrides, reason
):
    facilitator, _ = l2_facilitator
    if overrides.get("domain") == "l1":
        overrides = {"domain": token_domain(31337, stake.address)}
    verdict = facilitator.verify(_request(l2_price, KEYS[0], chain, **overrides))
    assert not verdict.isValid and verdict.invalidReason == reason, verdict
    assert not facilitator.store.in_state(State.RESERVED)


def test_an_l2_payer_without_the_balance__is_refused(l2_facilitator, stake, chain):
    facilitator, _ = l2_facilitator
    price = Price(amount=FUNDS + 1, asset=token_domain(CHAIN_ID, stake.address), pay_to=USERS[1])
    verdict = facilitator.verify(_request(price, KEYS[0], chain, value=FUNDS + 1))
    assert not verdict.isValid and verdict.invalidReason == reasons.INSUFFICIENT_BALANCE


def test_an_authorization_used_on_the_l2__is_refused_at_verify_and_settles_nothing(
    l2_facilitator, l2_price, rollup_api, stake, chain
):
    facilitator, _ = l2_facilitator
    request = _request(l2_price, KEYS[0], chain)
    assert facilitator.settle(request).success
    again = facilitator.verify(request)
    assert not again.isValid and again.invalidReason == reasons.NONCE_USED
    assert _balances(rollup_api, stake)[1] == PRICE  # paid once


def test_a_lost_answer__is_recovered_by_the_l2_hash_and_paid_once(
    l2_facilitator, l2_price, rollup_api, stake, chain, monkeypatch
):
    """The record is sent and confirmed, the answer is lost: the facilitator finds the
    confirmation by the transaction's hash (the record is a function of the authorization)."""
    facilitator, _ = l2_facilitator
    (settlement,) = facilitator.settlements.values()
    request = _request(l2_price, KEYS[0], chain)
    real_post = settlement._http.post

    def post_and_lose(url, **kwargs):
        real_post(url, **kwargs)
        raise httpx.ReadTimeout("the answer was lost")

    monkeypatch.setattr(settlement._http, "post", post_and_lose)
    answer = facilitator.settle(request)
    assert answer.success, answer
    assert SoftConfirmation.model_validate(answer.extra).tx_hash == answer.transaction
    monkeypatch.undo()
    assert facilitator.settle(request).transaction == answer.transaction  # answered from the record
    assert _balances(rollup_api, stake) == [FUNDS - PRICE, PRICE]


def test_a_service_offering_l1_and_l2__our_client_pays_the_cheaper_l2(
    l2_facilitator, l2_price, rollup_api, stake, chain
):
    _, url = l2_facilitator
    l1_price = Price(
        amount=PRICE + 1,
        asset=token_domain(31337, stake.address),
        pay_to=USERS[1],
        max_timeout_seconds=TIMEOUT,
    )
    with BackgroundServer(create_service(FacilitatorClient(url), [l1_price, l2_price])) as server:
        first = httpx.get(f"{server.url}/weather")
        offered = decode_header(first.headers[PAYMENT_REQUIRED], PaymentRequired).accepts
        assert [o.network for o in offered] == ["eip155:31337", L2]
        client = X402Client(
            KEYS[0].hex(), connect(chain.provider.http_uri), max_amount=PRICE + 1, rollups=[CHAIN_ID]
        )
        paid = client.get(f"{server.url}/weather")
    assert paid.response.status_code == 200 and paid.settlement.network == L2 and paid.paid == PRICE
    assert _balances(rollup_api, stake) == [FUNDS - PRICE, PRICE]
