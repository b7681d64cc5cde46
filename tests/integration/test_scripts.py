"""The ape run entry points, run as a user runs them (each on its own fresh anvil chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def _ape_run(*args: str, deployments: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTL2_DEPLOYMENTS_DIR": str(deployments), "PYTHONWARNINGS": "ignore"}
    ape = Path(sys.executable).with_name("ape")
    return subprocess.run(
        [str(ape), "run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_deploy__records_the_registries(tmp_path):
    result = _ape_run("deploy", "--network", "ethereum:local:foundry", deployments=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    record = json.loads((tmp_path / "ethereum_local.json").read_text())
    assert record["chain_id"] == 31337 and record["network"] == "ethereum:local"
    assert set(record["contracts"]) == {
        "IdentityRegistry",
        "ReputationRegistry",
        "ValidationRegistry",
        "AgentUSD",
        "BatchSettler",
        "OneStepVerifier",
        "DisputeGame",
        "RollupFactory",
    }
    assert len(set(record["contracts"].values())) == 8


def test_faucet__without_a_deployment__fails_clearly(tmp_path):
    result = _ape_run("faucet", "--to", "0x" + "11" * 20, deployments=tmp_path)
    assert result.returncode != 0
    assert "no deployments file" in result.stderr + result.stdout


def test_rollup__new_deposit_and_withdraw_on_one_chain(tmp_path):
    """deploy, `rollup new`, `rollup deposit`, then `rollup withdraw` (refused: nothing is final),
    each its own process against one anvil, as a user runs them."""
    port = free_port()
    anvil = subprocess.Popen(
        [str(ROOT / "node_modules" / ".bin" / "anvil"), "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        network = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _rpc(port) is None:
            time.sleep(0.2)
        assert _ape_run("deploy", "--network", network, deployments=tmp_path).returncode == 0
        created = _ape_run("rollup", "new", "--network", network, "--chain-id", "4242", deployments=tmp_path)
        assert created.returncode == 0, created.stderr + created.stdout
        assert "rollup 4242: inbox 0x" in created.stdout
        assert "dispute game 0x" in created.stdout and "dispute game 0x" + "0" * 40 not in created.stdout
        again = _ape_run("rollup", "new", "--network", network, "--chain-id", "4242", deployments=tmp_path)
        assert again.returncode != 0 and "factory: chain id taken" in again.stderr + again.stdout
        to = "0x" + "22" * 20
        deposited = _ape_run(
            "rollup",
            "deposit",
            "--network",
            network,
            "--chain-id",
            "4242",
            "--to",
            to,
            "--amount",
            "0.5",
            deployments=tmp_path,
        )
        assert deposited.returncode == 0, deposited.stderr + deposited.stdout
        assert "queued as entry 0" in deposited.stdout
        withdrawn = _ape_run(
            "rollup",
            "withdraw",
            "--network",
            network,
            "--chain-id",
            "4242",
            "--l2-account",
            to,
            "--nonce",
            "0",
            deployments=tmp_path,
        )
        assert (
            withdrawn.returncode != 0
            and "no claim of this rollup is final yet" in withdrawn.stderr + withdrawn.stdout
        )
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)


def _rpc(port: int) -> str | None:
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1
        )
        return response.json()["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
