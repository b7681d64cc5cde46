"""The facilitator as a real process, killed between verify and settle, then restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.test_x402_facilitator import _request

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(chain, key, token, db: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "AGENTL2_FACILITATOR_RPC_URL": chain.provider.http_uri,
        "AGENTL2_FACILITATOR_PRIVATE_KEY": key,
        "AGENTL2_FACILITATOR_ASSETS": token.address,
        "AGENTL2_FACILITATOR_DB_PATH": str(db),
        "AGENTL2_FACILITATOR_PORT": str(port),
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("agentl2-facilitator"))],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
    process.kill()
    raise RuntimeError("facilitator did not start")


def test_killed_between_verify_and_settle__restart_pays_once_and_loses_nothing(
    chain, token, funded, merchant, price, facilitator_key, tmp_path
):
    db, port = tmp_path / "facilitator.sqlite", _free_port()
    url = f"http://127.0.0.1:{port}"
    request, _ = _request(price, funded.private_key, chain=chain)
    before = token.balanceOf(merchant)

    first = _start(chain, facilitator_key, token, db, port)
    try:
        assert httpx.post(f"{url}/verify", json=request.wire()).json()["isValid"] is True
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    second = _start(chain, facilitator_key, token, db, port)
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
