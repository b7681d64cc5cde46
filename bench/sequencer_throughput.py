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

Both paths run at each client thread count (1, 2 and 4 by default) and each is judged at its
best: more threads help the sequencer, but slow the L1 path, whose node mines one payment at a
time. Printed: confirmation latency p50 / p95 / p99 and payments per second of each run, the
ratio of the best of each, the batches posted and L1 gas per L2 payment against the direct
payment's gas. Goals (issue 13): p50 soft confirmation under 50 ms; at least 10 x the L1 path's
payments per second.

Run from the repository root:  python bench/sequencer_throughput.py [--payments N] [--threads 1,2,4]
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


def _summary(latencies: list[float], seconds: float) -> dict:
    return {
        "payments": len(latencies),
        "seconds": seconds,
        "per_second": len(latencies) / seconds,
        "latency_ms": {
            q: 1000 * _percentile(latencies, p) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
    }


def _l2_work(
    threads: int, payments: int, first_nonce: int, inbox_address: str, merchant: str
) -> list[list[bytes]]:
    """Pre-signed transfers, each thread owning a set of users (their nonces in order)."""
    per_user = -(-payments // len(USERS))
    work: list[list[bytes]] = [[] for _ in range(threads)]
    for n in range(first_nonce, first_nonce + per_user):
        for k, key in enumerate(KEYS):
            fields = (USERS[k], merchant, ETH, 10**12, 10**9, n)
            digest = transfer_digest(Transfer(*fields, b"\0" * 65), CHAIN_ID, inbox_address)
            work[k % threads].append(encode(Transfer(*fields, sign(key, digest))))
    return work


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=8_000, help="L2 payments per thread count")
    parser.add_argument("--threads", default="1,2,4", help="client thread counts, each path at each")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
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

        # L1 first, on the fresh chain (the strongest baseline): the same thread counts paying
        # directly with pre-signed authorizations, each awaited.
        web3 = chain.provider.web3
        count = 400
        payers = [Account.create() for _ in range(count * len(thread_counts))]
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
        l1_gas_used: list[int] = []
        lock = threading.Lock()

        def pay(data: bytes, sender: str) -> None:
            txn = web3.eth.send_transaction(
                {"from": sender, "to": token.address, "data": data, "gas": 200_000}
            )
            receipt = web3.eth.wait_for_transaction_receipt(txn, poll_latency=0.005)
            with lock:
                l1_gas_used.append(receipt["gasUsed"])

        l1_runs: dict[int, dict] = {}
        for run, threads in enumerate(thread_counts):
            mine = calls[run * count : (run + 1) * count]
            senders = [accounts.test_accounts[10 + i].address for i in range(threads)]
            jobs = [[(data, senders[i]) for data in mine[i::threads]] for i in range(threads)]
            with console.status(f"{count:,} L1 payments from {threads} threads"):
                seconds, latencies = _run_threads(jobs, lambda job: pay(*job))
            l1_runs[threads] = _summary(latencies, seconds)

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

        l2_runs: dict[int, dict] = {}
        nonce = 0
        try:
            for threads in thread_counts:
                work = _l2_work(threads, args.payments, nonce, inbox.address, merchant.address)
                nonce += len(work[0]) * threads // len(USERS)
                with console.status(f"{args.payments:,} L2 payments from {threads} threads"):
                    seconds, latencies = _run_threads(work, submit)
                if len(latencies) < sum(len(items) for items in work):
                    log_tail = (deployments / "sequencer.log").read_text()[-3000:]
                    raise SystemExit(f"payments were refused; the sequencer's log ends:\n{log_tail}")
                l2_runs[threads] = _summary(latencies, seconds)
        finally:
            sequencer.send_signal(signal.SIGTERM)  # it posts what it confirmed, then exits
            sequencer.wait(timeout=120)
        l2_count = sum(run["payments"] for run in l2_runs.values())
        batches = inbox.batches()[1:]
        l1_gas = sum(web3.eth.get_transaction_receipt(b.txn_hash)["gasUsed"] for b in batches)

    direct_gas = statistics.mean(l1_gas_used)
    per_payment = l1_gas / l2_count
    best_l2 = max(l2_runs, key=lambda t: l2_runs[t]["per_second"])
    best_l1 = max(l1_runs, key=lambda t: l1_runs[t]["per_second"])
    report = {
        "l2": {
            "runs": l2_runs,
            "batches": len(batches),
            "busy_retries": len(busy),
            "l1_gas_per_payment": per_payment,
        },
        "l1": {"runs": l1_runs, "gas_per_payment": direct_gas},
        "best_threads": {"l2": best_l2, "l1": best_l1},
        "ratio_per_second": l2_runs[best_l2]["per_second"] / l1_runs[best_l1]["per_second"],
        "ratio_gas": direct_gas / per_payment,
    }
    table = Table(
        title="Payments: L2 through the sequencer process vs direct L1, at each client thread count"
    )
    for column in ("path", "threads", "payments", "per second", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, runs in (("L2 (soft confirmation)", l2_runs), ("L1 (mined)", l1_runs)):
        for threads, row in runs.items():
            lat = row["latency_ms"]
            table.add_row(
                name,
                str(threads),
                f"{row['payments']:,}",
                f"{row['per_second']:,.0f}",
                f"{lat['p50']:.1f}",
                f"{lat['p95']:.1f}",
                f"{lat['p99']:.1f}",
            )
    console.print(table)
    console.print(
        f"Best L2 ({best_l2} threads) / best L1 ({best_l1} threads) payments per second: "
        f"{report['ratio_per_second']:.1f} x (goal ≥ 10 x)\n"
        f"L1 gas per payment: {per_payment:,.0f} on the L2 ({len(batches)} batches, {len(busy)} busy retries) "
        f"against {direct_gas:,.0f} direct: {report['ratio_gas']:.1f} x less\n"
        f"p50 soft confirmation at the best L2 thread count: {l2_runs[best_l2]['latency_ms']['p50']:.1f} ms (goal < 50 ms)"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
