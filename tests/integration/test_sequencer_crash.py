"""A sequencer killed with -9 after it confirmed a transaction and before it posted it (docs/
services.md, Kill -9): the confirmation it signed still proves the promise, the restarted
sequencer builds on L1's state again, the same record is accepted afresh and posted once, and
nothing is spent twice."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
from eth_account import Account

from offchain.hashing import keccak
from offchain.l2.codec import Transfer, encode
from offchain.l2.signing import sign, transfer_digest
from offchain.sequencer.confirmation import SoftConfirmation
from tests.integration.processes import CHAIN_ID, OPERATOR, ROOT, free_port, rollup_on_anvil, wait_until
from tests.integration.test_scripts import _ape_run
from tests.integration.test_sequencer_process import ETH, _get

KEY = keccak(b"crash test user")
USER = Account.from_key(KEY).address


def test_kill_9_before_posting__the_promise_is_provable_and_nothing_is_spent_twice(tmp_path: Path):
    api_port = free_port()
    stack = ExitStack()
    sequencer = None
    try:
        network = stack.enter_context(rollup_on_anvil(tmp_path))
        env = {**os.environ, "AGENTL2_DEPLOYMENTS_DIR": str(tmp_path), "PYTHONWARNINGS": "ignore"}
        ape = Path(sys.executable).with_name("ape")
        command = [str(ape), "run", "sequencer", "--network", network, "--chain-id", str(CHAIN_ID)]
        api = f"http://127.0.0.1:{api_port}"

        def start(*extra: str, interval: str) -> subprocess.Popen:
            process = subprocess.Popen(
                [*command, "--port", str(api_port), *extra],
                cwd=ROOT,
                env={**env, "AGENTL2_SEQUENCER_POST_INTERVAL": interval},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_until(
                lambda: (r := _get(f"{api}/v1/sequencer")) is not None and r.status_code == 200,
                120,
                "the API",
            )
            return process

        sequencer = start("--join", interval="1")
        httpx.post(network, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [80]})
        deposit = ("rollup", "deposit", "--chain-id", str(CHAIN_ID), "--to", USER, "--amount", "0.5")
        assert _ape_run(*deposit, "--network", network, deployments=tmp_path).returncode == 0
        balance = f"{api}/v1/accounts/{USER}/balance"
        wait_until(lambda: _get(balance).json()["balance"] == str(5 * 10**17), 60, "the deposit")
        sequencer.kill()
        sequencer.wait(timeout=10)
        # Restarted so that it posts only when asked to stop: the confirmation stays unposted.
        sequencer = start(interval="3600")
        inbox = _get(f"{api}/v1/sequencer").json()["inbox"]
        fields = (USER, OPERATOR, ETH, 10**17, 10**12, 0)
        record = encode(
            Transfer(*fields, sign(KEY, transfer_digest(Transfer(*fields, b"\0" * 65), CHAIN_ID, inbox)))
        )
        body = {"record": "0x" + record.hex()}
        promised = SoftConfirmation.model_validate(
            httpx.post(f"{api}/v1/transactions", json=body, timeout=10).json()
        )
        sequencer.kill()  # -9: the confirmed block dies with it
        sequencer.wait(timeout=10)
        assert promised.is_valid() and promised.sequencer == OPERATOR  # the signed promise stands
        sequencer = start(interval="1")
        assert _get(f"{api}/v1/accounts/{USER}/nonce").json()["nonce"] == 0  # L1 never saw it
        again = httpx.post(f"{api}/v1/transactions", json=body, timeout=10)
        assert again.status_code == 200, again.text
        receipt = f"{api}/v1/transactions/{promised.tx_hash}"
        wait_until(lambda: _get(receipt).json()["stage"] == "posted", 60, "the batch")
        assert _get(f"{api}/v1/accounts/{USER}/nonce").json()["nonce"] == 1
        assert _get(balance).json()["balance"] == str(5 * 10**17 - 10**17 - 10**12)  # spent once
        replay = httpx.post(f"{api}/v1/transactions", json=body, timeout=10)
        assert replay.status_code == 409
    finally:
        if sequencer is not None and sequencer.poll() is None:
            sequencer.kill()
        stack.close()
