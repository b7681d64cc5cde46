"""The facilitator as a real process, killed between verify and settle, then restarted."""

from __future__ import annotations

import contextlib
import signal

import httpx
from eth_account import Account

from offchain.x402.client import X402Client
from tests.integration.processes import free_port, start_facilitator
from tests.integration.test_x402_facilitator import _request


def test_killed_between_verify_and_settle__restart_pays_once_and_loses_nothing(
    chain, token, funded, merchant, price, facilitator_key, tmp_path
):
    db, port = tmp_path / "facilitator.sqlite", free_port()
    url = f"http://127.0.0.1:{port}"
    request, _ = _request(price, funded.private_key, chain=chain)
    before = token.balanceOf(merchant)

    first = start_facilitator(chain, facilitator_key, token, db, port)
    try:
        assert httpx.post(f"{url}/verify", json=request.wire()).json()["isValid"] is True
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    second = start_facilitator(chain, facilitator_key, token, db, port)
    try:
        # The reservation survived the kill: the same payment verifies again (it is reserved, not
        # reserved twice), another payment with its nonce does not...
        again = httpx.post(f"{url}/verify", json=request.wire()).json()
        assert again["isValid"] is True
        other = request.model_copy(deep=True)
        other.paymentPayload.extensions["note"] = "another payment, the same authorization"
        duplicate = httpx.post(f"{url}/verify", json=other.wire()).json()
        assert (
            duplicate["isValid"] is False
            and duplicate["invalidReason"] == "invalid_exact_evm_nonce_already_used"
        )
        # ...and the payment itself settles, once.
        settled = httpx.post(f"{url}/settle", json=request.wire(), timeout=30).json()
        assert settled["success"] is True, settled
        again = httpx.post(f"{url}/settle", json=request.wire(), timeout=30).json()
        assert again["success"] is True and again["transaction"] == settled["transaction"]
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()
    assert token.balanceOf(merchant) - before == price.amount


def test_service_killed_during_settlement__restart_serves_the_same_payment_once(
    chain, token, funded, merchant, facilitator_key, tmp_path, w3
):
    import threading
    import time

    from offchain.x402.models import (
        PAYMENT_REQUIRED,
        PAYMENT_SIGNATURE,
        PaymentRequired,
        decode_header,
        encode_header,
    )
    from tests.integration.processes import start_service

    facilitator_port, service_port = free_port(), free_port()
    service_db = tmp_path / "service.sqlite"
    url = f"http://127.0.0.1:{service_port}/weather"
    facilitator = start_facilitator(chain, facilitator_key, token, tmp_path / "f.sqlite", facilitator_port)
    facilitator_url = f"http://127.0.0.1:{facilitator_port}"
    service = start_service(chain, token, merchant, facilitator_url, service_port, db=service_db)
    try:
        client = X402Client(funded.private_key, w3, max_amount=25_000)
        required = decode_header(httpx.get(url).headers[PAYMENT_REQUIRED], PaymentRequired)
        header = {PAYMENT_SIGNATURE: encode_header(client._pay(required.accepts[0], required))}
        before = token.balanceOf(merchant)
        signer = Account.from_key(facilitator_key).address
        sent = w3.eth.get_transaction_count(signer, "pending")
        chain.provider.make_request("evm_setAutomine", [False])
        try:
            first = threading.Thread(target=lambda: _ignore_errors(url, header), daemon=True)
            first.start()
            deadline = time.monotonic() + 20
            while w3.eth.get_transaction_count(signer, "pending") == sent:  # settlement under way
                assert time.monotonic() < deadline
                time.sleep(0.05)
            service.send_signal(signal.SIGKILL)  # the service dies before it answers
            service.wait()
            chain.provider.make_request("evm_mine", [])
        finally:
            chain.provider.make_request("evm_setAutomine", [True])
        first.join(timeout=10)
        assert token.balanceOf(merchant) - before == 25_000  # paid

        service = start_service(chain, token, merchant, facilitator_url, service_port, db=service_db)
        served = httpx.get(url, headers=header, timeout=30)
        assert served.status_code == 200 and "city" in served.json()
        again = httpx.get(url, headers=header, timeout=30)
        assert again.status_code == 402
        assert token.balanceOf(merchant) - before == 25_000  # once
    finally:
        for process in (service, facilitator):
            process.send_signal(signal.SIGKILL)
            process.wait()


def _ignore_errors(url: str, headers: dict) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, headers=headers, timeout=30)
