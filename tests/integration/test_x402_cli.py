"""The two command-line services, run as processes, paid by our client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from offchain.x402.client import X402Client
from offchain.x402.models import PAYMENT_SIGNATURE
from tests.integration.processes import ROOT, free_port, start_facilitator, start_service


def test_cli_services__our_client_pays_the_paid_service(
    chain, token, funded, merchant, facilitator_key, tmp_path, w3
):
    facilitator_port, service_port = free_port(), free_port()
    facilitator = start_facilitator(chain, facilitator_key, token, tmp_path / "f.sqlite", facilitator_port)
    service = start_service(chain, token, merchant, f"http://127.0.0.1:{facilitator_port}", service_port)
    try:
        before = token.balanceOf(merchant)
        paid = X402Client(funded.private_key, w3, max_amount=25_000).get(
            f"http://127.0.0.1:{service_port}/weather?city=Oslo"
        )
        assert paid.response.status_code == 200 and paid.response.json()["city"] == "Oslo"
        assert paid.settlement.success and paid.paid == 25_000
        assert token.balanceOf(merchant) - before == 25_000
    finally:
        for process in (service, facilitator):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def test_cli_facilitator__refuses_to_start_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTL2_FACILITATOR_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("agentl2-facilitator"))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "AGENTL2_FACILITATOR_PRIVATE_KEY" in result.stderr


def test_one_megabyte_payment_header__gets_a_4xx_not_a_reset(
    chain, token, merchant, facilitator_key, tmp_path
):
    facilitator_port, service_port = free_port(), free_port()
    facilitator = start_facilitator(chain, facilitator_key, token, tmp_path / "f.sqlite", facilitator_port)
    service = start_service(chain, token, merchant, f"http://127.0.0.1:{facilitator_port}", service_port)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{service_port}/weather",
            headers={PAYMENT_SIGNATURE: "A" * 1_000_000},
            timeout=30,
        )
        assert response.status_code == 400
        assert "payment header longer than 16 KiB" in response.json()["error"]
    finally:
        for process in (service, facilitator):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
