"""Command-line entry points: `agentl2-facilitator` and `agentl2-paid-service`.

Both read their settings from the environment (prefixes AGENTL2_FACILITATOR_ and
AGENTL2_SERVICE_), and command-line options override them.
"""

from __future__ import annotations

import click
import uvicorn
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from web3 import Web3

from offchain.chain.eip712 import Eip712Domain
from offchain.chain.rpc import connect
from offchain.x402 import abi
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app
from offchain.x402.sequencer_settlement import SequencerSettlement
from offchain.x402.server import MAX_REQUEST_HEAD, FacilitatorClient, Price
from offchain.x402.settlement import Settlement
from offchain.x402.store import DeliveryStore, PaymentStore
from offchain.x402.token_settlement import TokenSettlement


class FacilitatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTL2_FACILITATOR_")

    rpc_url: str = "http://127.0.0.1:8545"
    private_key: SecretStr = SecretStr("")
    db_path: str = "var/facilitator.sqlite"
    assets: str = ""
    """Comma-separated token addresses to settle."""
    settler: str = ""
    """BatchSettler address; with batch_size > 0, settlements go out in batches."""
    batch_size: int = 0
    batch_wait: float = 0.2
    receipt_timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 4020
    l2_chain_id: int | None = None
    """An Agent L2 rollup to settle on as well (eip155:<this id>), through its sequencers."""
    sequencer_urls: str = ""
    """Comma-separated base URLs of the rollup's sequencer APIs (the leader is followed)."""
    l2_assets: str = ""
    """Comma-separated L1 token addresses whose L2 balances it settles (default: `assets`)."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTL2_SERVICE_")

    rpc_url: str = "http://127.0.0.1:8545"
    facilitator_url: str = "http://127.0.0.1:4020"
    asset: str = ""
    pay_to: str = ""
    price: int = 10_000
    db_path: str = "var/service.sqlite"
    """Its durable record of the payments it took and delivered."""
    host: str = "127.0.0.1"
    port: int = 4021


def _addresses(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


def build_facilitator(settings: FacilitatorSettings) -> Facilitator:
    if not settings.private_key.get_secret_value():
        raise click.UsageError("set AGENTL2_FACILITATOR_PRIVATE_KEY (the key that sends settlements)")
    assets = _addresses(settings.assets)
    if not assets:
        raise click.UsageError("set AGENTL2_FACILITATOR_ASSETS (token addresses to settle)")
    store = PaymentStore(settings.db_path)
    settlements: list[Settlement] = [
        TokenSettlement(
            connect(settings.rpc_url),
            settings.private_key.get_secret_value(),
            store,
            assets,
            receipt_timeout=settings.receipt_timeout,
            settler=settings.settler or None,
            batch_size=settings.batch_size,
            batch_wait=settings.batch_wait,
        )
    ]
    if settings.l2_chain_id is not None:
        urls = _addresses(settings.sequencer_urls)
        if not urls:
            raise click.UsageError("set AGENTL2_FACILITATOR_SEQUENCER_URLS to settle on the L2")
        l2_assets = _addresses(settings.l2_assets) or assets
        settlements.append(SequencerSettlement(store, settings.l2_chain_id, urls, l2_assets))
    return Facilitator(store, settlements, receipt_timeout=settings.receipt_timeout)


@click.command()
@click.option("--port", type=int, default=None, help="Overrides AGENTL2_FACILITATOR_PORT.")
@click.option("--db", "db_path", default=None, help="Overrides AGENTL2_FACILITATOR_DB_PATH.")
def facilitator_main(port: int | None, db_path: str | None) -> None:
    """Runs the x402 facilitator (POST /verify, POST /settle, GET /supported)."""
    settings = FacilitatorSettings()
    if port is not None:
        settings.port = port
    if db_path is not None:
        settings.db_path = db_path
    facilitator = build_facilitator(settings)
    facilitator.start()
    try:
        uvicorn.run(
            create_app(facilitator),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
        )
    finally:
        facilitator.stop()


@click.command()
@click.option("--port", type=int, default=None, help="Overrides AGENTL2_SERVICE_PORT.")
def service_main(port: int | None) -> None:
    """Runs the example paid weather service (GET /weather costs AGENTL2_SERVICE_PRICE)."""
    settings = ServiceSettings()
    if port is not None:
        settings.port = port
    if not settings.asset or not settings.pay_to:
        raise click.UsageError("set AGENTL2_SERVICE_ASSET and AGENTL2_SERVICE_PAY_TO")
    w3 = connect(settings.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(settings.asset), abi=abi.TOKEN_ABI)
    domain = Eip712Domain.from_eip5267(token.functions.eip712Domain().call())
    price = Price(amount=settings.price, asset=domain, pay_to=settings.pay_to, description="weather forecast")
    app = create_service(
        FacilitatorClient(settings.facilitator_url), price, deliveries=DeliveryStore(settings.db_path)
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
    )


@click.group()
def main() -> None:
    """Agent L2 x402 services."""


main.add_command(facilitator_main, "facilitator")
main.add_command(service_main, "paid-service")

if __name__ == "__main__":
    main()
