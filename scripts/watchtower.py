"""`ape run watchtower --chain-id 4242`: watches a rollup's claims and wins its disputes.

Each round it derives the L2 from L1, disputes every wrong claim in its window with the
challenger bond, plays its games to the end, proposes the right roots after a win and withdraws
what it won (offchain/challenger/watchtower.py). SIGTERM or Ctrl-C stops it between rounds. On a
local chain test account `--test-account` (default 2) watches; elsewhere name one with --account.

Settings from the environment: AGENTL2_WATCHTOWER_POLL (seconds between rounds, 1).
"""

from __future__ import annotations

import logging
import signal
import threading

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand, account_option
from pydantic_settings import BaseSettings, SettingsConfigDict

from offchain.chain.contracts import contract_at
from offchain.chain.deployments import load_deployment
from offchain.challenger.watchtower import Watchtower
from offchain.errors import AgentL2Error
from offchain.rollup.dispute import DisputeGame
from offchain.rollup.factory import RollupFactory

log = logging.getLogger("agentl2.watchtower")


class WatchtowerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTL2_WATCHTOWER_")

    poll: float = 1.0


@click.command(cls=ConnectedProviderCommand, short_help="Watch a rollup's claims and dispute wrong ones")
@account_option(prompt=False)
@click.option(
    "--chain-id", type=click.IntRange(1, 2**64 - 1), required=True, help="The rollup's L2 chain id."
)
@click.option("--test-account", type=click.IntRange(0, 19), default=2, show_default=True)
def cli(account, chain_id, test_account):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = WatchtowerSettings()
    watcher = account if account is not None else accounts.test_accounts[test_account]
    try:
        factory = RollupFactory(contract_at("RollupFactory", load_deployment().address("RollupFactory")))
        rollup = factory.rollup(chain_id)
        watchtower = Watchtower(watcher, rollup.inbox_client(), DisputeGame.at(rollup.dispute_game), chain_id)
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    click.echo(f"watchtower {watcher.address} of rollup {chain_id}")
    while not stop.is_set():
        try:
            watchtower.step()
        except AgentL2Error as exc:  # a round that failed is retried; the watch goes on
            log.warning("round failed: %s", exc)
        stop.wait(settings.poll)
    click.echo("stopped")
