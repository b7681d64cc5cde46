"""Gas of each step of a bounty's life in the BountyEscrow, in ETH and in AgentUSD.

On a fresh anvil chain (ape-foundry starts and stops it) this deploys the ERC-8004 registries,
AgentUSD and the escrow, walks a task bounty through its happy path (create, crowdfund, claim
with stake, submit, accept, withdraw), its dispute path (reject, dispute, resolve, refund) and a
service bounty (create, join, pay out one unit, pay out after more work, remove an idle worker,
leave, cancel), and prints gasUsed per
step (21k base included) for an ETH bounty and an ERC-20 one side by side, with their ratio.

Run from the repository root:  python bench/escrow_gas.py
Writes reports/bench/escrow_gas.json. It reports; it does not assert.
"""

from __future__ import annotations

import json
from pathlib import Path

from ape import accounts, chain, networks, project
from ape.logging import logger
from rich.console import Console
from rich.table import Table

from offchain.identity.registries import Erc8004

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "escrow_gas.json"
ETH = "0x" + "00" * 20
DAY = 86_400


def _walk(escrow, token, attester, asset: str, unit: int) -> dict[str, int]:
    poster, funder, worker, arbiter, other = (accounts.test_accounts[i] for i in (1, 2, 3, 4, 5))
    value = (lambda amount: amount) if asset == ETH else (lambda amount: 0)
    gas: dict[str, int] = {}

    def task(spec: str) -> tuple:
        return (
            asset,
            10 * unit,
            chain.pending_timestamp + DAY,
            unit,
            ETH,
            0,
            arbiter.address,
            DAY,
            False,
            spec,
        )

    receipt = escrow.createTask(task("ipfs://spec"), sender=poster, value=value(10 * unit))
    gas["createTask"] = receipt.gas_used
    happy = escrow.bountyCount()
    gas["fund (second funder)"] = escrow.fund(happy, 5 * unit, sender=funder, value=value(5 * unit)).gas_used
    gas["claim (with stake)"] = escrow.claim(happy, 0, sender=worker, value=value(unit)).gas_used
    gas["submit"] = escrow.submit(happy, "ipfs://deliverable", b"\x01" * 32, sender=worker).gas_used
    gas["accept"] = escrow.accept(happy, sender=poster).gas_used
    gas["withdraw"] = escrow.withdraw(asset, sender=worker).gas_used

    escrow.createTask(task("ipfs://spec-2"), sender=poster, value=value(10 * unit))
    disputed = escrow.bountyCount()
    escrow.fund(disputed, 5 * unit, sender=funder, value=value(5 * unit))
    escrow.claim(disputed, 0, sender=other, value=value(unit))
    escrow.submit(disputed, "ipfs://deliverable", b"\x02" * 32, sender=other)
    gas["reject"] = escrow.reject(disputed, sender=poster).gas_used
    gas["dispute"] = escrow.dispute(disputed, sender=other).gas_used
    gas["resolve (poster wins, stake slashed)"] = escrow.resolve(disputed, False, sender=arbiter).gas_used
    gas["refund (first funder)"] = escrow.refund(disputed, sender=poster).gas_used
    gas["refund (last funder)"] = escrow.refund(disputed, sender=funder).gas_used

    service = (
        asset,
        10 * unit,
        chain.pending_timestamp + DAY,
        attester.address,
        unit,
        False,
        "ipfs://run-a-sequencer",
    )
    gas["createService"] = escrow.createService(service, sender=poster, value=value(10 * unit)).gas_used
    bounty = escrow.bountyCount()
    gas["join"] = escrow.join(bounty, 0, sender=worker).gas_used
    attester.record(worker, 1, sender=accounts.test_accounts[0])
    gas["payOut (first unit)"] = escrow.payOut(bounty, worker, sender=other).gas_used
    attester.record(worker, 1, sender=accounts.test_accounts[0])
    gas["payOut (next unit)"] = escrow.payOut(bounty, worker, sender=other).gas_used
    escrow.join(bounty, 0, sender=other)
    gas["removeWorker (idle)"] = escrow.removeWorker(bounty, other, sender=poster).gas_used
    attester.record(worker, 1, sender=accounts.test_accounts[0])
    gas["leave (paid on the way out)"] = escrow.leave(bounty, sender=worker).gas_used
    gas["cancel (service no one serves)"] = escrow.cancel(bounty, sender=poster).gas_used
    return gas


def main() -> None:
    logger.set_level("WARNING")
    console = Console()
    with networks.parse_network_choice("ethereum:local:foundry"):
        deployer = accounts.test_accounts[0]
        registries = Erc8004.deploy(deployer)
        escrow = deployer.deploy(
            project.BountyEscrow, registries.identity.address, registries.validation.address
        )
        token = deployer.deploy(project.AgentUSD, deployer)
        attester = deployer.deploy(project.work_attester_mock)
        for i in range(1, 6):
            holder = accounts.test_accounts[i]
            token.mint(holder, 10**12, sender=deployer)
            token.approve(escrow, 2**256 - 1, sender=holder)
        in_eth = _walk(escrow, token, attester, ETH, 10**16)
        in_token = _walk(escrow, token, attester, token.address, 10**6)

    table = Table(title="BountyEscrow gasUsed per step (21k base included)")
    for column in ("step", "ETH", "AgentUSD", "ERC-20 / ETH"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step, eth_gas in in_eth.items():
        table.add_row(step, f"{eth_gas:,}", f"{in_token[step]:,}", f"{in_token[step] / eth_gas:.2f}")
    console.print(table)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"eth": in_eth, "agentusd": in_token}, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
