"""The facilitator as a real process, killed between verify and settle, then restarted."""

from __future__ import annotations

import signal

import httpx

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
        # The reservation survived the kill: a duplicate still cannot verify...
        duplicate = httpx.post(f"{url}/verify", json=request.wire()).json()
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
