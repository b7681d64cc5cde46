"""Fixtures shared by the contract, property and integration tests (on anvil via ape-foundry)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from offchain.identity.registries import Erc8004


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def alice(accounts):
    """Owns the agent under test."""
    return accounts[1]


@pytest.fixture(scope="session")
def bob(accounts):
    """A client of the agent."""
    return accounts[2]


@pytest.fixture(scope="session")
def carol(accounts):
    """Another client."""
    return accounts[3]


@pytest.fixture(scope="session")
def validator(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def operator(accounts):
    """Approved by alice for all her agents in tests that need it."""
    return accounts[5]


@pytest.fixture(scope="session")
def mallory(accounts):
    """Has no rights over anything."""
    return accounts[6]


@pytest.fixture(scope="session")
def registries(deployer):
    return Erc8004.deploy(deployer)


@pytest.fixture(scope="session")
def identity(registries):
    return registries.identity


@pytest.fixture(scope="session")
def reputation(registries):
    return registries.reputation


@pytest.fixture(scope="session")
def validation(registries):
    return registries.validation


@pytest.fixture
def agent_id(registries, alice):
    """A fresh agent owned by alice."""
    return registries.register(alice, "https://agents.example/alice.json")


def solidity_mapping_slot(key: int | str | bytes, slot: int) -> int:
    """Storage slot of `mapping[key]` for a Solidity mapping declared at `slot`."""
    return int.from_bytes(keccak(_word(key) + _word(slot)), "big")


def vyper_hashmap_slot(key: int | str | bytes, slot: int) -> int:
    """Storage slot of `hashmap[key]` for a Vyper 0.4 HashMap declared at `slot`."""
    return int.from_bytes(keccak(_word(slot) + _word(key)), "big")


def _word(value: int | str | bytes) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x")).rjust(32, b"\x00")
    if isinstance(value, bytes):
        return value.rjust(32, b"\x00")
    return value.to_bytes(32, "big")


def set_storage(chain, address, slot: int, value: int) -> None:
    chain.provider.set_storage(address, slot, value.to_bytes(32, "big"))
