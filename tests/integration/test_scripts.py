"""The ape run entry points, run as a user runs them (each on its own fresh anvil chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    }
    assert len(set(record["contracts"].values())) == 5


def test_faucet__without_a_deployment__fails_clearly(tmp_path):
    result = _ape_run("faucet", "--to", "0x" + "11" * 20, deployments=tmp_path)
    assert result.returncode != 0
    assert "no deployments file" in result.stderr + result.stdout


def test_demo__pays_rates_posts_bounties_and_prints_the_tables(tmp_path):
    result = _ape_run("demo", "--services", "2", "--consumers", "1", "--payments", "1", deployments=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "weather-agent" in out and "translate-agent" in out and "consumer-0" in out
    assert "Payments on L1" in out and "Bounties" in out and "completed" in out
    record = json.loads((tmp_path / "ethereum_local.json").read_text())
    assert {"AgentUSD", "BatchSettler", "BountyEscrow"} <= set(record["contracts"])
