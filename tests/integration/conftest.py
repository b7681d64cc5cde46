"""x402 fixtures: AgentUSD and the BatchSettler on anvil, a facilitator and a paid service
served over real HTTP on loopback, each with its own SQLite file."""

from __future__ import annotations

import pytest

from offchain.chain.eip712 import Eip712Domain
from offchain.chain.rpc import connect
from offchain.serving import BackgroundServer
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app
from offchain.x402.server import FacilitatorClient, Price
from offchain.x402.store import PaymentStore

PRICE = 10_000  # 0.01 AUSD


@pytest.fixture(scope="session")
def token(project, deployer):
    return deployer.deploy(project.AgentUSD, deployer)


@pytest.fixture(scope="session")
def settler(project, deployer):
    return deployer.deploy(project.BatchSettler)


@pytest.fixture(scope="session")
def payer(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def merchant(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def facilitator_key(accounts):
    return accounts[9].private_key


@pytest.fixture
def w3(chain):
    return connect(chain.provider.http_uri)


@pytest.fixture
def funded(token, deployer, payer):
    """The payer holds 10 AUSD."""
    token.mint(payer, 10_000_000, sender=deployer)
    return payer


@pytest.fixture
def domain(token):
    return Eip712Domain.from_eip5267(token.eip712Domain())


@pytest.fixture
def price(domain, merchant):
    return Price(amount=PRICE, asset=domain, pay_to=merchant.address, description="weather forecast")


def make_facilitator(w3, key, token, db, settler=None, **options) -> Facilitator:
    facilitator = Facilitator.on_token(
        w3,
        key,
        PaymentStore(db),
        [token.address],
        settler=settler.address if settler else None,
        receipt_timeout=options.pop("receipt_timeout", 10.0),
        **options,
    )
    facilitator.start(reconcile_every=0.2)
    return facilitator


@pytest.fixture
def facilitator(w3, facilitator_key, token, tmp_path):
    facilitator = make_facilitator(w3, facilitator_key, token, tmp_path / "facilitator.sqlite")
    yield facilitator
    facilitator.stop()


@pytest.fixture
def facilitator_server(facilitator):
    with BackgroundServer(create_app(facilitator)) as server:
        yield server


@pytest.fixture
def service(facilitator_server, price):
    """The example weather service, paid through the facilitator above."""
    with BackgroundServer(create_service(FacilitatorClient(facilitator_server.url), price)) as server:
        yield server
