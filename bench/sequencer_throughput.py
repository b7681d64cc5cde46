"""Payments through a running sequencer process against direct L1 payments, in the same run.

On a fresh anvil chain of its own (without ape-foundry's step tracing, see `_anvil`) this spins up a rollup with the real
dispute game, stakes one sequencer, funds 64 L2 users by deposit, and starts `ape run sequencer`
as its own process on that chain, as an operator runs it (posting a batch every second). Client
threads in this process send pre-signed L2 transfers to its HTTP API over keep-alive
connections (each thread owns its users, so nonces arrive in order) and time each soft
confirmation. The baseline is the L1 path the same client threads would take instead:
pre-signed EIP-3009 `transferWithAuthorization` payments on AgentUSD, each sent to anvil
(automine, so a block per payment at once, faster than any real L1) and awaited until mined,
the confirmation an L1 payer gets.

Printed: confirmation latency p50 / p95 / p99, payments per second of each path and their
ratio, the batches posted and L1 gas per L2 payment against the direct payment's gas. Goals
(issue 13): p50 soft confirmation under 50 ms; at least 10 x the L1 path's payments per second.

Run from the repository root:  python bench/sequencer_throughput.py [--payments N] [--threads K]
Writes reports/bench/sequencer_throughput.json. It reports; it does not assert.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account
from rich.console import Console
from rich.table import Table

from offchain.chain.deployments import save_deployment
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
from offchain.x402.eip3009 import authorize_transfer

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "bench" / "sequencer_throughput.json"
CHAIN_ID = 9_100
ETH = "0x" + "00" * 20
KEYS = [keccak(b"throughput user" + i.to_bytes(2, "big")) for i in range(64)]
USERS = [Account.from_key(k).address for k in KEYS]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Api:
    """One keep-alive HTTP connection to the sequencer (one per client thread)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if payload else {}
        self.connection.request(method, path, body=payload, headers=headers)
        answer = self.connection.getresponse()
        return answer.status, json.loads(answer.read())


def _start_sequencer(deployments: Path, api_port: int) -> subprocess.Popen:
    """`ape run sequencer` for test account 1 on the bench's anvil; returns once its API answers."""
    env = {
        **os.environ,
        "AGENTL2_DEPLOYMENTS_DIR": str(deployments),
        "AGENTL2_SEQUENCER_POST_INTERVAL": "1",
        "PYTHONWARNINGS": "ignore",
    }
    command = [str(Path(sys.executable).with_name("ape")), "run", "sequencer"]
    command += ["--network", chain.provider.http_uri, "--chain-id", str(CHAIN_ID), "--port", str(api_port)]
    log = (deployments / "sequencer.log").open("w")  # a file: a pipe nobody reads would fill up
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sequencer exited: {(deployments / 'sequencer.log').read_text()}")
        try:
            if _Api(api_port).call("GET", "/v1/sequencer")[0] == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the sequencer's API did not come up")


@contextmanager
def _anvil() -> Iterator[str]:
    """A fresh anvil of the bench's own, as a node operator runs one: ape-foundry's would run with
    `--steps-tracing` (it records every EVM step, for ape's revert traces), which slows both paths
    and most the batches, whose data the inbox hashes byte by byte."""
    port = _free_port()
    command = [str(ROOT / "node_modules" / ".bin" / "anvil"), "--port", str(port), "--silent"]
    command += [
        "--accounts",
        "20",
        "--balance",
        "1000000",
        "--block-base-fee-per-gas",
        "0",
        "--gas-price",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    with _anvil() as url, networks.parse_network_choice(url):
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
        chain.provider.make_request("anvil_mine", [2 * params.slot_length * params.slots_per_epoch + 1])
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
        # The sequencer as its own process, found through a deployments file as an operator's is.
        record = registries.deployment(deployer)
        record.contracts.update(
            {"AgentUSD": str(token.address), "RollupFactory": str(factory.contract.address)}
        )
        deployments = Path(tempfile.mkdtemp(prefix="bench-deployments-"))
        record.network = "ethereum:custom"  # what ape calls a network given by its URL
        save_deployment(record, deployments)
        api_port = _free_port()
        with console.status("starting `ape run sequencer`"):
            sequencer = _start_sequencer(deployments, api_port)
        clients = threading.local()
        busy: list[int] = []  # refusals for a full backlog, retried (their wait is in the latency)

        def submit(record: bytes) -> None:
            if not hasattr(clients, "api"):
                clients.api = _Api(api_port)
            body = {"record": "0x" + record.hex()}
            code, answer = clients.api.call("POST", "/v1/transactions", body)
            while code == 503 and "retry" in answer["error"]:  # a backlog waits to be posted
                busy.append(1)
                time.sleep(0.01)
                code, answer = clients.api.call("POST", "/v1/transactions", body)
            if code != 200:
                raise RuntimeError(answer)

        try:
            with console.status(f"{args.payments:,} L2 payments from {args.threads} threads"):
                l2_time, l2_latencies = _run_threads(work, submit)
        finally:
            sequencer.send_signal(signal.SIGTERM)  # it posts what it confirmed, then exits
            sequencer.wait(timeout=120)
        l2_count = len(l2_latencies)
        if l2_count < sum(len(items) for items in work):
            log_tail = (deployments / "sequencer.log").read_text()[-3000:]
            raise SystemExit(f"payments were refused; the sequencer's log ends:\n{log_tail}")
        batches = inbox.batches()[1:]
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
            "busy_retries": len(busy),
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
        f"L1 gas per payment: {report['ratio_gas']:.1f} x less on the L2 ({len(batches)} batches, {len(busy)} busy retries); "
        f"p50 soft confirmation {report['l2']['latency_ms']['p50']:.1f} ms (goal < 50 ms)"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
