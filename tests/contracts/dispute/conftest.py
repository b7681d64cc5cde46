"""A rollup spun up by the factory with the real dispute game and verifier, one sequencer staked
in it, and batch 0 (a deposit to each L2 user) with its honest root claimed."""

from __future__ import annotations

import pytest
from eth_account import Account

from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block
from offchain.l2.codec import decode
from offchain.rollup.derive import Derivation
from offchain.rollup.dispute import DisputeGame, deploy_implementation
from offchain.rollup.factory import RollupFactory
from offchain.rollup.params import RollupParams

USD = 10**6
STAKE = 1_000 * USD
CHAIN_ID = 5_151
ETH = "0x0000000000000000000000000000000000000000"
KEYS = [keccak(b"game user" + bytes([i])) for i in range(4)]
USERS = [Account.from_key(k).address for k in KEYS]
ARITY = 4
CLOCK = 300
BOND = 10**17
SHARE_BPS = 5_000


@pytest.fixture(scope="session")
def stake(project, deployer):
    return deployer.deploy(project.AgentUSD, deployer.address)


@pytest.fixture(scope="session")
def implementation(deployer):
    return deploy_implementation(deployer, ARITY)


@pytest.fixture(scope="session")
def rollup(deployer, identity, stake, implementation):
    factory = RollupFactory.deploy(deployer, identity.address, str(implementation.address))
    params = RollupParams(
        chain_id=CHAIN_ID,
        stake_token=str(stake.address),
        min_stake=STAKE,
        slot_length=4,
        slots_per_epoch=64,
        challenge_window=600,
        exit_delay=600,
        dispute_clock=CLOCK,
        challenger_bond=BOND,
        proposer_bond=BOND,
        challenger_share_bps=SHARE_BPS,
    )
    return factory.create(deployer, params)


@pytest.fixture(scope="session")
def inbox(rollup):
    return rollup.inbox_client()


@pytest.fixture(scope="session")
def game(rollup) -> DisputeGame:
    return DisputeGame.at(rollup.dispute_game)


@pytest.fixture(scope="session")
def sequencer_set(project, rollup):
    return project.SequencerSet.at(rollup.sequencer_set)


@pytest.fixture(scope="session")
def sequencer(accounts, deployer, registries, stake, sequencer_set, chain):
    """The rollup's one sequencer (so the leader of every slot)."""
    account = accounts[8]
    agent_id = registries.register(account, "data:application/json,{}")
    stake.mint(account, STAKE, sender=deployer)
    stake.approve(sequencer_set.address, STAKE, sender=account)
    sequencer_set.join(agent_id, STAKE, sender=account, gas_limit=1_000_000)
    chain.mine(2 * 4 * 64)
    return account


@pytest.fixture(scope="session")
def challenger(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def first_batch(chain, inbox, sequencer, alice):
    """Batch 0: deposits of 1 ETH to each user, with its honest root claimed."""
    for user in USERS:
        inbox.deposit_eth(alice, user, 10**18)
    deposits = [decode(entry.record) for entry in inbox.pending_queue()]
    inbox.append_batch(sequencer, Batch((Block(chain.blocks.head.timestamp, tuple(deposits)),)))
    derivation = Derivation(inbox, CHAIN_ID)
    derivation.sync()
    inbox.propose_root(sequencer, 0, derivation.root(0))
