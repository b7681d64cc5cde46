"""Which account sends: the one named with --account, else a funded test account on a local chain."""

from __future__ import annotations

from typing import Any

from ape import accounts, chain, networks

from offchain.errors import ConfigError

# anvil's (and hardhat's) development chain id: its first accounts are ape's test accounts.
DEV_CHAIN_ID = 31337


def is_local() -> bool:
    """A local development chain: ape's local network, or any node on the dev chain id."""
    return networks.provider.network.name == "local" or chain.chain_id == DEV_CHAIN_ID


def sender_or_default(account: Any | None, index: int = 0) -> Any:
    """`account` if given; on a local chain, test account `index`; otherwise an error."""
    if account is not None:
        return account
    if is_local():
        return accounts.test_accounts[index]
    raise ConfigError("name the sending account with --account on a non-local network")
