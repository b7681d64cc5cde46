"""A rollup spun up by the factory on anvil, with one operator in its sequencer set."""

from __future__ import annotations

import pytest
from eth_account import Account

from offchain.hashing import keccak
from offchain.rollup.factory import RollupFactory
from offchain.rollup.inbox import Inbox
from offchain.rollup.params import RollupParams

USD = 10**6
STAKE = 1_000 * USD
CHAIN_ID = 4_242
L2_KEYS = [keccak(b"l2 user" + bytes([i])) for i in range(4)]
L2_ADDRS = [Account.from_key(k).address for k in L2_KEYS]


@pytest.fixture(scope="session")
def stake_token(project, deployer):
    return deployer.deploy(project.AgentUSD, deployer.address)


@pytest.fixture(scope="session")
def factory(project, deployer, identity):
    # A stand-in for the dispute game lets the inbox's tests call its hooks directly (removal,
    # dispute counts); test_dispute_game.py plays the real game on its own rollup.
    game = deployer.deploy(project.dispute_game_mock)
    return RollupFactory.deploy(deployer, identity.address, str(game.address))


@pytest.fixture(scope="session")
def params(stake_token):
    return RollupParams(
        chain_id=CHAIN_ID,
        stake_token=str(stake_token.address),
        min_stake=STAKE,
        slot_length=4,
        slots_per_epoch=64,
        exit_delay=600,
        challenge_window=300,
        force_inclusion_delay=600,
        escape_delay=1_800,
        max_timestamp_lag=3_600,
        proposer_bond=10**17,
    )


@pytest.fixture(scope="session")
def rollup(factory, deployer, params):
    return factory.create(deployer, params)


@pytest.fixture(scope="session")
def inbox(rollup) -> Inbox:
    return rollup.inbox_client()


@pytest.fixture(scope="session")
def game(project, rollup):
    return project.dispute_game_mock.at(rollup.dispute_game)


@pytest.fixture(scope="session")
def sequencer_set(project, rollup):
    return project.SequencerSet.at(rollup.sequencer_set)


@pytest.fixture(scope="session")
def sequencer(accounts, deployer, registries, stake_token, sequencer_set, chain):
    """An operator with a registered agent and the minimum stake, eligible to lead."""
    account = accounts[7]
    agent_id = registries.register(account, "data:application/json,{}")
    stake_token.mint(account, STAKE, sender=deployer)
    stake_token.approve(sequencer_set.address, STAKE, sender=account)
    sequencer_set.join(agent_id, STAKE, sender=account, gas_limit=1_000_000)  # see SEED_MARGIN
    chain.mine(2 * 4 * 64)  # eligible two epochs after joining
    assert sequencer_set.leaderOf(sequencer_set.currentSlot()) == account.address
    return account
