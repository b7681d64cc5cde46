"""`ape run sequencer` as a process, as an operator runs it, on its own anvil: it joins, picks up
an L1 deposit, confirms a signed transfer over HTTP, posts both, and on SIGTERM stops cleanly;
`ape run node` derives the same root from an empty folder and again after a kill -9."""

from __future__ import annotations

import os
import signal
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

ETH = "0x" + "00" * 20
L2_KEY = keccak(b"sequencer process user")
L2_USER = Account.from_key(L2_KEY).address


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_sequencer_process__joins_confirms_posts_and_stops_on_sigterm(tmp_path: Path):
    api_port = free_port()
    stack = ExitStack()
    sequencer = None
    try:
        network = stack.enter_context(rollup_on_anvil(tmp_path))
        env = {
            **os.environ,
            "AGENTL2_DEPLOYMENTS_DIR": str(tmp_path),
            "AGENTL2_SEQUENCER_POST_INTERVAL": "1",
            "PYTHONWARNINGS": "ignore",
        }
        ape = Path(sys.executable).with_name("ape")
        command = [str(ape), "run", "sequencer", "--network", network, "--chain-id", str(CHAIN_ID)]
        sequencer = subprocess.Popen(
            [*command, "--join", "--port", str(api_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        api = f"http://127.0.0.1:{api_port}"
        wait_until(
            lambda: (r := _get(f"{api}/v1/sequencer")) is not None and r.status_code == 200, 120, "the API"
        )
        assert _get(f"{api}/v1/sequencer").json()["address"] == OPERATOR
        # Eligible two epochs (8 slots of 4 blocks each) after joining.
        httpx.post(network, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [80]})
        deposit = ("rollup", "deposit", "--chain-id", str(CHAIN_ID), "--to", L2_USER, "--amount", "0.5")
        done = _ape_run(*deposit, "--network", network, deployments=tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        balance = f"{api}/v1/accounts/{L2_USER}/balance"
        wait_until(lambda: _get(balance).json()["balance"] == str(5 * 10**17), 60, "the deposit")
        inbox = _get(f"{api}/v1/sequencer").json()["inbox"]
        fields = (L2_USER, OPERATOR, ETH, 10**16, 10**12, 0)
        digest = transfer_digest(Transfer(*fields, b"\x00" * 65), CHAIN_ID, inbox)
        record = encode(Transfer(*fields, sign(L2_KEY, digest)))
        answer = httpx.post(f"{api}/v1/transactions", json={"record": "0x" + record.hex()}, timeout=10)
        assert answer.status_code == 200, answer.text
        confirmation = SoftConfirmation.model_validate(answer.json())
        assert confirmation.is_valid() and confirmation.sequencer == OPERATOR
        receipt = f"{api}/v1/transactions/{confirmation.tx_hash}"
        wait_until(lambda: _get(receipt).json()["stage"] == "posted", 60, "the batch")
        assert _get(receipt).json()["status"] == 0
        # A replica node from an empty folder reaches the sequencer's root; killed with -9 and
        # restarted on its folder, it goes on from its disk.
        node_port = free_port()
        node_command = [str(ape), "run", "node", "--network", network, "--chain-id", str(CHAIN_ID)]
        node_args = [*node_command, "--data", str(tmp_path / "node"), "--port", str(node_port)]
        posted_root = _get(f"{api}/v1/accounts/{L2_USER}/proof").json()["root"]
        node_api = f"http://127.0.0.1:{node_port}"
        status = f"{node_api}/v1/status"
        for _ in range(2):
            node = subprocess.Popen(
                node_args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                wait_until(
                    lambda: (r := _get(status)) is not None and r.json()["batches"] == 2, 120, "the node"
                )
                assert _get(f"{node_api}/v1/batches/1/root").json()["root"] == posted_root
            finally:
                node.kill()
                node.wait(timeout=10)
        sequencer.send_signal(signal.SIGTERM)
        out, _ = sequencer.communicate(timeout=60)
        assert sequencer.returncode == 0, out
        assert "stopped; everything confirmed while leading is posted" in out
        assert "posted batch" in out
    finally:
        if sequencer is not None and sequencer.poll() is None:
            sequencer.kill()
        stack.close()
