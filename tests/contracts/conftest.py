"""Fixtures of the payment contracts: AgentUSD (funded) and BatchSettler."""

from __future__ import annotations

import pytest

from offchain.chain.eip712 import Eip712Domain

USD = 10**6  # one AgentUSD, in 1e-6 units
ALICE_FUNDS = 1_000 * USD
BOB_FUNDS = 100 * USD


@pytest.fixture(scope="session")
def token(project, deployer, alice, bob):
    """AgentUSD administered by the deployer; alice holds 1,000 AUSD and bob 100."""
    contract = deployer.deploy(project.AgentUSD, deployer.address)
    contract.mint(alice, ALICE_FUNDS, sender=deployer)
    contract.mint(bob, BOB_FUNDS, sender=deployer)
    return contract


@pytest.fixture(scope="session")
def domain(token):
    """The token's EIP-712 domain, as clients read it (ERC-5267)."""
    return Eip712Domain.from_eip5267(token.eip712Domain())


@pytest.fixture(scope="session")
def settler(project, deployer):
    return deployer.deploy(project.BatchSettler)
