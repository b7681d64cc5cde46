"""The main job as a user runs it: `ape run bootstrap`, small, on an anvil of its own; then the
report's facts are checked against that chain, with a replica node (`ape run node`) started
afterwards from L1 alone for the L2 balances."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from web3 import HTTPProvider, Web3

from offchain.x402.abi import TOKEN_ABI
from tests.integration.processes import ROOT, Service, free_port, wait_until
from tests.integration.test_scripts import _ape_run, _rpc

CHAIN_ID = 4242
PRICE = 10_000  # offchain/agents/bootstrap.py: what a request costs on either network


def _abi(project, name: str) -> list[dict]:
    return [
        entry.model_dump(mode="json", by_alias=True) for entry in getattr(project, name).contract_type.abi
    ]


def _sum(logs, field: str) -> int:
    return sum(int(log["args"][field]) for log in logs)


def test_bootstrap__a_small_run_and_its_report_agree_with_the_chain(project, tmp_path: Path):
    port = free_port()
    anvil = subprocess.Popen(
        [str(ROOT / "node_modules" / ".bin" / "anvil"), "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = None
    try:
        network = f"http://127.0.0.1:{port}"
        wait_until(lambda: _rpc(port) is not None, what="anvil")
        out = tmp_path / "report"
        run = ("--operators", "1", "--services", "1", "--consumers", "2", "--payments", "6", "--window", "10")
        done = _ape_run("bootstrap", *run, "--out", str(out), "--network", network, deployments=tmp_path)
        assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-4000:]
        report = json.loads((out / "report.json").read_text())
        for chart in ("payments.png", "agents.png", "dispute.png"):
            assert (out / chart).read_bytes().startswith(b"\x89PNG")
        assert "## The dispute" in (out / "report.md").read_text()

        w3 = Web3(HTTPProvider(network))
        contracts = report["contracts"]
        token = w3.eth.contract(address=contracts["AgentUSD"], abi=TOKEN_ABI)
        inbox = w3.eth.contract(address=contracts["Inbox"], abi=_abi(project, "Inbox"))
        sequencer_set = w3.eth.contract(address=contracts["SequencerSet"], abi=_abi(project, "SequencerSet"))
        escrow = w3.eth.contract(address=contracts["BountyEscrow"], abi=_abi(project, "BountyEscrow"))
        agents = {a["name"]: a for a in report["agents"]}
        services = [a["address"] for a in agents.values() if a["role"] == "service provider"]

        # L1: every payment paid its service once (the services held nothing before).
        assert report["l1"]["payments"] == 3 * 6  # the founder and two consumers
        assert sum(token.functions.balanceOf(s).call() for s in services) == report["l1"]["payments"] * PRICE
        assert report["payments_settled_once"]

        # The liar: slashed, ejected, rated; the watchtower won and re-claimed the right roots.
        liar = agents["operator-x"]
        assert report["dispute"]["outcome"] == "CHALLENGER_WON" and report["dispute"]["slashed"] > 0
        assert sequencer_set.functions.banned(liar["address"]).call()
        slashed = sequencer_set.events.Slashed.get_logs(from_block=0)
        assert [log["args"]["operator"] for log in slashed] == [liar["address"]]
        assert report["dispute"]["slashed"] == _sum(slashed, "toChallenger") + _sum(slashed, "burnt")
        assert liar["reputation"][-1]["mean"] == 0.0

        # Finality: every batch final; withdrawals paid on L1.
        batches = inbox.functions.batchCount().call()
        assert inbox.functions.finalizedCount().call() == batches == report["batches_final"]
        withdrawals = _sum(inbox.events.WithdrawalFinalized.get_logs(from_block=0), "amount")
        deposits = _sum(inbox.events.Deposited.get_logs(from_block=0), "amount")
        assert withdrawals == report["conservation"]["withdrawals"] > 0
        assert deposits == report["conservation"]["deposits"]

        # The L2 from L1 alone: deposits = L2 balances + withdrawals, and the services' L2 income
        # is the price of every L2 payment, once.
        node_port = free_port()
        node = Service(
            CHAIN_ID, "node", network, tmp_path, "--data", str(tmp_path / "node"), "--port", str(node_port)
        )
        api = f"http://127.0.0.1:{node_port}"

        def synced() -> bool:
            try:
                return httpx.get(f"{api}/v1/status", timeout=5).json()["batches"] == batches
            except httpx.HTTPError:
                return False

        wait_until(synced, 120, "the node deriving every batch")

        def l2_balance(address: str) -> int:
            answer = httpx.get(
                f"{api}/v1/accounts/{address}/balance", params={"token": token.address}, timeout=5
            )
            return int(answer.json()["balance"])

        l2 = sum(l2_balance(a["address"]) for a in agents.values())
        assert deposits == l2 + withdrawals
        l2_payments = report["l2"]["payments"] + report["extra_l2_payments"]
        assert sum(l2_balance(s) for s in services) == l2_payments * PRICE

        # The honest operator: paid by the escrow for each of its final batches, at the bounty's rate.
        honest = agents["operator-0"]
        units = inbox.functions.unitsOf(honest["address"]).call()
        paid = escrow.events.PaidOut.get_logs(from_block=0)
        assert units > 0 and [log["args"]["worker"] for log in paid] == [honest["address"]]
        assert honest["earned"] == _sum(paid, "amount") == units * 10**5  # 0.1 AUSD a final batch
        assert agents["watchtower"]["earned"] == 5 * 10**6
    finally:
        if node is not None:
            node.process.terminate()
            node.process.wait(timeout=30)
        anvil.terminate()
        anvil.wait(timeout=10)
