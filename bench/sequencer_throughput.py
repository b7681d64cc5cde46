"""Payments through a running sequencer against direct L1 payments, in the same run.

On a fresh anvil chain (ape-foundry starts and stops it) this spins up a rollup with the real
dispute game, stakes one sequencer, funds 64 L2 users by deposit, and runs the sequencer's
HTTP API on a loopback port with its schedule posting batches every second. Client threads
send pre-signed L2 transfers over HTTP (each thread owns its users, so nonces arrive in
order) and time each soft confirmation. The baseline is the L1 path the same client threads
would take instead: pre-signed EIP-3009 `transferWithAuthorization` payments on AgentUSD, each
sent to anvil (automine) and awaited until mined, the confirmation an L1 payer gets.

Printed: confirmation latency p50 / p95 / p99, payments per second of each path and their
ratio, the batches posted and L1 gas per L2 payment against the direct payment's gas. Goals
(issue 13): p50 soft confirmation under 50 ms; at least 10 x the L1 path's payments per second.

Run from the repository root:  python bench/sequencer_throughput.py [--payments N] [--threads K]
Writes reports/bench/sequencer_throughput.json. It reports; it does not assert.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx
from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account
from rich.console import Console
from rich.table import Table

from offchain.chain.eip712 import Eip712Domain
from offchain.hashing import keccak
from offchain.identity.registries import Erc8004
from offchain.l2.batch import Batch, Block, execute_batch
from offchain.l2.codec import Transfer, decode, encode
from offchain.l2.signing import sign, transfer_digest
from offchain.l2.stf import State
from offchain.rollup.dispute import deploy_implementation
from offchain.rollup.factory import RollupFactory
from offchain.rollup.params import RollupParams
from offchain.sequencer.api import create_app
from offchain.sequencer.core import Sequencer
from offchain.sequencer.service import Schedule, SequencerService
from offchain.serving import BackgroundServer
from offchain.x402.eip3009 import authorize_transfer

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "sequencer_throughput.json"
CHAIN_ID = 9_100
ETH = "0x" + "00" * 20
KEYS = [keccak(b"throughput user" + i.to_bytes(2, "big")) for i in range(64)]
USERS = [Account.from_key(k).address for k in KEYS]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run_threads(work: list[list], send) -> tuple[float, list[float]]:
    """Runs `send(item)` over each thread's list in order; returns the wall time and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(items: list) -> None:
        mine = []
        for item in items:
            started = time.perf_counter()
            send(item)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(items,)) for items in work]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    logger.set_level("WARNING")
    console = Console(width=140)
    with networks.parse_network_choice("ethereum:local:foundry"):
        deployer, operator, depositor, merchant = (accounts.test_accounts[i] for i in range(4))
        registries = Erc8004.deploy(deployer)
        token = deployer.deploy(project.AgentUSD, deployer)
        game = deploy_implementation(deployer)
        factory = RollupFactory.deploy(deployer, registries.identity.address, str(game.address))
        params = RollupParams(chain_id=CHAIN_ID, stake_token=str(token.address), min_stake=10**6)
        rollup = factory.create(deployer, params)
        inbox = rollup.inbox_client()
        sequencer_set = project.SequencerSet.at(rollup.sequencer_set)
        agent = registries.register(operator, "data:application/json,{}")
        token.mint(operator, 10**6, sender=deployer)
        token.approve(sequencer_set.address, 10**6, sender=operator)
        sequencer_set.join(agent, 10**6, sender=operator, gas_limit=1_000_000)
        chain.mine(2 * params.slot_length * params.slots_per_epoch + 1)
        for user in USERS:
            inbox.deposit_eth(depositor, user, 10**18)
        deposits = tuple(decode(e.record) for e in inbox.pending_queue())
        batch = Batch((Block(chain.blocks.head.timestamp, deposits),))
        pre = State()
        funded, _, _ = execute_batch(pre, batch, CHAIN_ID, inbox.address, operator.address)
        inbox.append_batch(operator, batch, funded.root)

        # L2: pre-signed transfers, each thread owning a set of users (their nonces in order).
        per_user = -(-args.payments // len(USERS))
        work: list[list[bytes]] = [[] for _ in range(args.threads)]
        for n in range(per_user):
            for k, key in enumerate(KEYS):
                fields = (USERS[k], merchant.address, ETH, 10**12, 10**9, n)
                digest = transfer_digest(Transfer(*fields, b"\0" * 65), CHAIN_ID, inbox.address)
                work[k % args.threads].append(encode(Transfer(*fields, sign(key, digest))))
        core = Sequencer(operator, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp)
        service = SequencerService(core, Schedule(sequencer_set), post_interval=1.0)
        with BackgroundServer(create_app(service)) as server:
            clients = threading.local()

            def submit(record: bytes) -> None:
                if not hasattr(clients, "http"):
                    clients.http = httpx.Client(base_url=server.url, timeout=30)
                answer = clients.http.post("/v1/transactions", json={"record": "0x" + record.hex()})
                if answer.status_code != 200:
                    raise RuntimeError(answer.text)

            service.start()
            with console.status(f"{args.payments:,} L2 payments from {args.threads} threads"):
                l2_time, l2_latencies = _run_threads(work, submit)
            service.stop()
        l2_count = len(l2_latencies)
        core.derivation.sync()
        batches = core.derivation.batches[1:]
        web3 = chain.provider.web3
        l1_gas = sum(web3.eth.get_transaction_receipt(b.txn_hash)["gasUsed"] for b in batches)

        # L1: the same threads paying directly with pre-signed authorizations, each awaited.
        count = min(args.payments, 400)
        payers = [Account.create() for _ in range(count)]
        for payer in payers:
            token.mint(payer.address, 10**9, sender=deployer)
        token.mint(merchant, 1, sender=deployer)
        domain = Eip712Domain.from_eip5267(token.eip712Domain())
        valid_before = chain.blocks.head.timestamp + 3_600
        calls = []
        for payer in payers:
            auth, signature = authorize_transfer(
                "0x" + bytes(payer.key).hex(), domain, merchant.address, 10_000, valid_before
            )
            calls.append(
                token.transferWithAuthorization.as_transaction(
                    *auth.as_args(), signature, sender=deployer
                ).data
            )
        l1_work: list[list[bytes]] = [calls[i :: args.threads] for i in range(args.threads)]
        l1_gas_used: list[int] = []
        senders = [accounts.test_accounts[10 + i].address for i in range(args.threads)]
        owner = {id(items): senders[i] for i, items in enumerate(l1_work)}
        lock = threading.Lock()

        def pay(data: bytes, sender: str) -> None:
            txn = web3.eth.send_transaction(
                {"from": sender, "to": token.address, "data": data, "gas": 200_000}
            )
            receipt = web3.eth.wait_for_transaction_receipt(txn, poll_latency=0.005)
            with lock:
                l1_gas_used.append(receipt["gasUsed"])

        l1_jobs = [[(data, owner[id(items)]) for data in items] for items in l1_work]
        with console.status(f"{count:,} L1 payments from {args.threads} threads"):
            l1_time, l1_latencies = _run_threads(l1_jobs, lambda job: pay(*job))

    l2_tps, l1_tps = l2_count / l2_time, len(l1_latencies) / l1_time
    direct_gas = statistics.mean(l1_gas_used)
    per_payment = l1_gas / l2_count
    report = {
        "threads": args.threads,
        "l2": {
            "payments": l2_count,
            "seconds": l2_time,
            "per_second": l2_tps,
            "latency_ms": {
                q: 1000 * _percentile(l2_latencies, p)
                for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
            "batches": len(batches),
            "l1_gas_per_payment": per_payment,
        },
        "l1": {
            "payments": len(l1_latencies),
            "seconds": l1_time,
            "per_second": l1_tps,
            "latency_ms": {
                q: 1000 * _percentile(l1_latencies, p)
                for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
            "gas_per_payment": direct_gas,
        },
        "ratio_per_second": l2_tps / l1_tps,
        "ratio_gas": direct_gas / per_payment,
    }
    table = Table(title=f"Payments from {args.threads} client threads: L2 sequencer vs direct L1")
    for column in ("path", "payments", "per second", "p50 ms", "p95 ms", "p99 ms", "L1 gas per payment"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, row, gas in (
        ("L2 (soft confirmation)", report["l2"], per_payment),
        ("L1 (mined)", report["l1"], direct_gas),
    ):
        lat = row["latency_ms"]
        table.add_row(
            name,
            f"{row['payments']:,}",
            f"{row['per_second']:,.0f}",
            f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}",
            f"{lat['p99']:.1f}",
            f"{gas:,.0f}",
        )
    console.print(table)
    console.print(
        f"L2 / L1 payments per second: {report['ratio_per_second']:.1f} x (goal ≥ 10 x); "
        f"L1 gas per payment: {report['ratio_gas']:.1f} x less on the L2 ({len(batches)} batches); "
        f"p50 soft confirmation {report['l2']['latency_ms']['p50']:.1f} ms (goal < 50 ms)"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
