"""Which account sends: the one named with --account, else a funded test account on a local chain."""

from __future__ import annotations

from typing import Any

from ape import accounts, networks

from offchain.errors import ConfigError


def is_local() -> bool:
    return networks.provider.network.name == "local"


def sender_or_default(account: Any | None, index: int = 0) -> Any:
    """`account` if given; on a local chain, test account `index`; otherwise an error."""
    if account is not None:
        return account
    if is_local():
        return accounts.test_accounts[index]
    raise ConfigError("name the sending account with --account on a non-local network")
