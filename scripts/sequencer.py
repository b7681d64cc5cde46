"""`ape run sequencer --chain-id 4242`: runs a sequencer of a rollup as a service.

It follows the sequencer set's schedule, accepts signed L2 transactions over HTTP while it leads
(docs/services.md, Sequencer API), answers each with a signed soft confirmation, and posts its
batches with their roots before its slot passes on. SIGTERM or Ctrl-C stops it after it has
posted what it confirmed (if it still leads). With `--join` it first registers an ERC-8004 agent
and stakes the rollup's minimum stake (held in AgentUSD by the account). On a local chain test
account `--test-account` (default 1) operates; elsewhere name one with --account.

Settings from the environment: AGENTL2_SEQUENCER_HOST, _PORT, _POST_INTERVAL, _POLL, _VIEW_TTL,
_CLOSE_BLOCKS.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import click
import uvicorn
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand, account_option
from pydantic_settings import BaseSettings, SettingsConfigDict

from offchain.chain.calls import transact, view
from offchain.chain.contracts import contract_at
from offchain.chain.deployments import load_deployment
from offchain.challenger.watchtower import Watchtower
from offchain.errors import AgentL2Error
from offchain.identity.registries import Erc8004
from offchain.rollup.dispute import DisputeGame
from offchain.rollup.factory import RollupFactory
from offchain.rollup.sequencer_set import SEED_MARGIN
from offchain.sequencer.api import create_app
from offchain.sequencer.core import Sequencer
from offchain.sequencer.faults import Fault
from offchain.sequencer.service import Schedule, SequencerService


class _Server(uvicorn.Server):
    """uvicorn re-raises a stop signal once it has shut down, which would kill the process before
    the service posts what it confirmed: here the signal only asks the server to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SequencerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTL2_SEQUENCER_")

    host: str = "127.0.0.1"
    port: int = 4030
    post_interval: float = 2.0
    """Seconds between batches while leading (at the slot's last block at the latest)."""
    poll: float = 0.2
    view_ttl: float = 0.5
    """Seconds a submission may rely on the last read of the L1 head (who leads); keep it far
    below the L1 block time."""
    close_blocks: int = 1
    """The last L1 blocks of a slot that admit nothing: the leader posts in them."""


def _join(operator, rollup) -> None:
    deployment = load_deployment()
    registries = Erc8004.from_deployment(deployment)
    sequencer_set = contract_at("SequencerSet", rollup.sequencer_set)
    stake = contract_at("AgentUSD", deployment.address("AgentUSD"))
    amount = int(view(sequencer_set, "minStake"))
    if int(view(stake, "balanceOf", operator.address)) < amount:
        raise click.ClickException(f"{operator.address} holds less than the minimum stake ({amount} units)")
    agent_id = registries.register(operator, "data:application/json,{}")
    transact(stake, "approve", sequencer_set.address, amount, sender=operator)
    transact(sequencer_set, "join", agent_id, amount, sender=operator, gas_margin=SEED_MARGIN)
    click.echo(f"joined the sequencer set as agent {agent_id} with {amount} units staked")


@click.command(cls=ConnectedProviderCommand, short_help="Run a rollup's sequencer service")
@account_option(prompt=False)
@click.option(
    "--chain-id", type=click.IntRange(1, 2**64 - 1), required=True, help="The rollup's L2 chain id."
)
@click.option("--test-account", type=click.IntRange(0, 19), default=1, show_default=True)
@click.option("--join", is_flag=True, help="Register an agent and stake the minimum first.")
@click.option("--port", type=int, default=None, help="Overrides AGENTL2_SEQUENCER_PORT.")
@click.option(
    "--fault",
    type=click.Choice([f.value for f in Fault]),
    default=None,
    help="Fault injection: claim the roots of this lie for every batch and defend it in the disputes.",
)
@click.option(
    "--silent-after",
    type=click.IntRange(0),
    default=None,
    help="With --fault: stop answering in its disputes after this many moves (never, by default).",
)
def cli(account, chain_id, test_account, join, port, fault, silent_after):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The API's event loop shares the GIL with the thread that executes and posts batches: a 1 ms
    # switch interval (Python's default is 5) hands it back sooner, so confirmations wait less.
    sys.setswitchinterval(0.001)
    settings = SequencerSettings()
    if port is not None:
        settings.port = port
    operator = account if account is not None else accounts.test_accounts[test_account]
    try:
        factory = RollupFactory(contract_at("RollupFactory", load_deployment().address("RollupFactory")))
        rollup = factory.rollup(chain_id)
        if join:
            _join(operator, rollup)
        core = Sequencer(
            operator,
            rollup.inbox_client(),
            chain_id,
            lambda: chain.blocks.head.timestamp,
            fault=Fault(fault) if fault else None,
        )
        defense = None
        if fault:  # the liar defends its story move by move, until it falls silent
            liar = Watchtower(
                operator,
                core.inbox,
                DisputeGame.at(rollup.dispute_game),
                chain_id,
                core.lies,
                challenge=False,
            )

            def defense() -> None:
                if silent_after is None or liar.moves < silent_after:
                    liar.step()

        service = SequencerService(
            core,
            Schedule(contract_at("SequencerSet", rollup.sequencer_set)),
            post_interval=settings.post_interval,
            poll=settings.poll,
            view_ttl=settings.view_ttl,
            defense=defense,
            close_blocks=settings.close_blocks,
        )
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"sequencer {operator.address} of rollup {chain_id} on http://{settings.host}:{settings.port}")
    server = _Server(
        uvicorn.Config(
            create_app(service),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            http="httptools",
            loop="uvloop",
        )
    )
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: setattr(server, "should_exit", True))
    service.start()
    try:
        server.run()
    finally:
        service.stop()
        click.echo("stopped; everything confirmed while leading is posted")
