"""Our x402 wire objects and the official SDK's are the same wire (each decodes the other's
headers), and ours refuse what the SDK's let through (offchain/x402/models.py says why)."""

from __future__ import annotations

import base64
import json

import pytest
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_signature_header,
    encode_payment_response_header,
)
from x402.schemas import SettleResponse as SdkSettleResponse

from offchain.x402.models import (
    MalformedHeader,
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    decode_header,
    encode_header,
)

OFFER = PaymentRequirements(
    scheme="exact",
    network="eip155:4242",
    asset="0x" + "11" * 20,
    amount="10000",
    payTo="0x" + "22" * 20,
    maxTimeoutSeconds=60,
    extra={"name": "Agent L2 Token", "version": "1"},
)


def test_the_sdk_decodes_our_headers():
    required = PaymentRequired(resource=ResourceInfo(url="http://x/weather"), accepts=[OFFER, OFFER])
    theirs = decode_payment_required_header(encode_header(required))
    assert [(a.network, a.amount, a.pay_to) for a in theirs.accepts] == [
        ("eip155:4242", "10000", OFFER.payTo)
    ] * 2
    payload = PaymentPayload(x402Version=2, payload={"signature": "0x01"}, accepted=OFFER)
    assert decode_payment_signature_header(encode_header(payload)).accepted.amount == "10000"


def test_we_decode_the_sdks_settle_response_with_its_extra():
    sdk = SdkSettleResponse(
        success=True,
        transaction="0x" + "ab" * 32,
        network="eip155:4242",
        payer=OFFER.payTo,
        extra={"l2_block": 7},
    )
    ours = decode_header(encode_payment_response_header(sdk), SettleResponse)
    assert ours.success and ours.transaction == sdk.transaction and ours.extra == {"l2_block": 7}


def _header(data: dict) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"amount": "-1.5e3"}, "decimal string"),
        ({"maxTimeoutSeconds": -5}, "greater than 0"),
        ({"network": "mainnet"}, "CAIP-2"),
    ],
)
def test_terms_the_sdk_accepts__we_refuse(change, what):
    accepted = {**OFFER.wire(), **change}
    header = _header({"x402Version": 2, "payload": {}, "accepted": accepted})
    decode_payment_signature_header(header)  # the SDK takes it
    with pytest.raises(MalformedHeader, match=what):
        decode_header(header, PaymentPayload)


def test_a_header_with_junk__the_sdk_skips_it_we_refuse_it():
    header = _header({"x402Version": 2, "payload": {}, "accepted": OFFER.wire()}) + "!!"
    decode_payment_signature_header(header)
    with pytest.raises(MalformedHeader, match="not base64"):
        decode_header(header, PaymentPayload)
    with pytest.raises(MalformedHeader, match="16 KiB"):
        decode_header("A" * 20_000, PaymentPayload)
