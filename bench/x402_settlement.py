"""x402 settlement on L1: gas per payment, alone and batched, and payments per second end to end.

On a fresh anvil chain (ape-foundry starts and stops it) this deploys AgentUSD and the
BatchSettler, then measures in one run:

- gas: gasUsed per payment of a single `transferWithAuthorization` (to a merchant that already
  holds tokens), and of batches of 10 and 100 authorizations through the BatchSettler;
  goal: at 100 per batch, at most 0.7 x the single payment;
- speed: payments per second of direct `transferWithAuthorization` calls from Python (sign, send,
  wait for the receipt: the baseline), of paid HTTP requests through our client, resource server
  and facilitator one after another, and of concurrent paid requests with the facilitator in
  batching mode. Ratios are against the baseline measured in the same run.

Run from the repository root:  python bench/x402_settlement.py [--payments 60]
Writes reports/bench/x402_settlement.json. It reports; it does not assert.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account
from rich.console import Console
from rich.table import Table
from web3 import Web3

from offchain.chain.eip712 import Eip712Domain
from offchain.chain.rpc import connect
from offchain.serving import BackgroundServer
from offchain.x402 import abi
from offchain.x402.client import X402Client
from offchain.x402.eip3009 import authorize_transfer
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app
from offchain.x402.server import FacilitatorClient, Price
from offchain.x402.store import PaymentStore
from offchain.x402.token_settlement import authorization_gas, batch_gas

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "x402_settlement.json"
PRICE = 10_000


def _signed(key: str, domain: Eip712Domain, to: str, now: int) -> tuple:
    auth, signature = authorize_transfer(key, domain, to, PRICE, valid_before=now + 3600)
    return (*auth.as_args(), signature)


def gas_single(token, sender, key: str, domain: Eip712Domain, merchant: str, n: int = 20) -> float:
    used = []
    for _ in range(n):
        args = _signed(key, domain, merchant, chain.blocks.head.timestamp)
        used.append(token.transferWithAuthorization(*args, sender=sender).gas_used)
    return sum(used) / n


def gas_batch(settler, token, sender, key: str, domain: Eip712Domain, merchant: str, size: int) -> float:
    """Gas per payment of one batch, each authorization with the gas the facilitator gives it
    (its own estimate plus a quarter) and the transaction the sum of what they need."""
    now = chain.blocks.head.timestamp
    signed = [_signed(key, domain, merchant, now) for _ in range(size)]
    limits = [
        authorization_gas(token.transferWithAuthorization.estimate_gas_cost(*args, sender=sender))
        for args in signed
    ]
    batch = [(*args[:-1], gas, args[-1]) for args, gas in zip(signed, limits, strict=True)]
    receipt = settler.settle(token.address, batch, sender=sender, gas_limit=batch_gas(limits))
    return receipt.gas_used / size


def rate_direct(
    w3: Web3, token_address: str, sender_key: str, key: str, domain, merchant: str, n: int
) -> float:
    """Baseline: transferWithAuthorization from Python with web3, one after another."""
    sender = Account.from_key(sender_key)
    token = w3.eth.contract(address=token_address, abi=abi.TOKEN_ABI)
    start = time.perf_counter()
    for _ in range(n):
        args = _signed(key, domain, merchant, w3.eth.get_block("latest")["timestamp"])
        tx = token.functions.transferWithAuthorization(*args).build_transaction(
            {
                "from": sender.address,
                "nonce": w3.eth.get_transaction_count(sender.address),
                "gas": 200_000,
                "gasPrice": w3.eth.gas_price,
            }
        )
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    return n / (time.perf_counter() - start)


def rate_http(
    w3: Web3, token_address: str, facilitator: Facilitator, price: Price, key: str, n: int, workers: int
):
    """Paid GETs through our client, the example service and the facilitator, over loopback HTTP."""
    with (
        BackgroundServer(create_app(facilitator)) as fac,
        BackgroundServer(create_service(FacilitatorClient(fac.url), price)) as service,
    ):
        client = X402Client(key, w3, max_amount=PRICE)
        client.domain(token_address)  # read once, outside the timing

        def pay(_: int) -> int:
            return client.get(f"{service.url}/weather").response.status_code

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            statuses = list(pool.map(pay, range(n)))
        elapsed = time.perf_counter() - start
    assert statuses.count(200) == n, statuses
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=60, help="payments per speed measurement")
    options = parser.parse_args()
    logger.set_level("WARNING")
    console = Console()
    with networks.parse_network_choice("ethereum:local:foundry"):
        deployer, merchant, relayer = (
            accounts.test_accounts[0],
            accounts.test_accounts[1],
            accounts.test_accounts[2],
        )
        payer = Account.create()
        token = deployer.deploy(project.AgentUSD, deployer)
        settler = deployer.deploy(project.BatchSettler)
        token.mint(payer.address, 10**12, sender=deployer)
        token.mint(merchant, 1, sender=deployer)  # the merchant already holds tokens, as a live merchant does
        domain = Eip712Domain.from_eip5267(token.eip712Domain())
        key = "0x" + bytes(payer.key).hex()

        single = gas_single(token, relayer, key, domain, merchant.address)
        batch10 = gas_batch(settler, token, relayer, key, domain, merchant.address, 10)
        batch100 = gas_batch(settler, token, relayer, key, domain, merchant.address, 100)

        w3 = connect(chain.provider.http_uri, timeout=60)
        price = Price(amount=PRICE, asset=domain, pay_to=merchant.address)
        n = options.payments
        baseline = rate_direct(w3, token.address, relayer.private_key, key, domain, merchant.address, n)
        with tempfile.TemporaryDirectory() as tmp:
            single_mode = Facilitator.on_token(
                w3, accounts.test_accounts[3].private_key, PaymentStore(f"{tmp}/a.db"), [token.address]
            )
            single_mode.start()
            sequential = rate_http(w3, token.address, single_mode, price, key, n, workers=1)
            concurrent = rate_http(w3, token.address, single_mode, price, key, n, workers=8)
            single_mode.stop()
            batching = Facilitator.on_token(
                w3,
                accounts.test_accounts[4].private_key,
                PaymentStore(f"{tmp}/b.db"),
                [token.address],
                settler=settler.address,
                batch_size=32,
                batch_wait=0.05,
            )
            batching.start()
            batched = rate_http(w3, token.address, batching, price, key, n, workers=8)
            batching.stop()

    gas_rows = [
        ("single transferWithAuthorization", single, 1.0),
        ("BatchSettler, 10 per batch", batch10, batch10 / single),
        ("BatchSettler, 100 per batch", batch100, batch100 / single),
    ]
    speed_rows = [
        ("direct transferWithAuthorization (baseline)", baseline, 1.0),
        ("paid HTTP, sequential", sequential, sequential / baseline),
        ("paid HTTP, 8 concurrent", concurrent, concurrent / baseline),
        ("paid HTTP, 8 concurrent, batching facilitator", batched, batched / baseline),
    ]
    table = Table(title="L1 gas per payment")
    for column in ("settlement", "gas / payment", "x single"):
        table.add_column(column, justify="left" if column == "settlement" else "right")
    for name, gas, ratio in gas_rows:
        table.add_row(name, f"{gas:,.0f}", f"{ratio:.3f}")
    console.print(table)
    table = Table(title=f"Payments per second ({n} payments each, anvil automine, loopback HTTP)")
    for column in ("path", "payments/s", "x baseline"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, rate, ratio in speed_rows:
        table.add_row(name, f"{rate:,.1f}", f"{ratio:.2f}")
    console.print(table)
    verdict = "met" if batch100 / single <= 0.7 else "NOT met"
    console.print(
        f"Goal (100 per batch <= 0.7 x single gas per payment): {batch100 / single:.3f} -> {verdict}"
    )

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "gas_per_payment": {name: round(gas) for name, gas, _ in gas_rows},
                "payments_per_second": {name: round(rate, 2) for name, rate, _ in speed_rows},
                "batch100_over_single": round(batch100 / single, 4),
                "payments": n,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
