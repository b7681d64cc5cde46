"""`ape run deploy`: deploys our L1 contracts and records them in the deployments file.

The ERC-8004 registries, AgentUSD (the deployer holds its admin and minter roles), the
BatchSettler, the OneStepVerifier, and the RollupFactory with the implementations its rollups
clone, the DisputeGame among them (`ape run rollup new` spins one up). On a local chain the first test account deploys; elsewhere name one with --account.
"""

from __future__ import annotations

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context

from offchain.chain.accounts import sender_or_default
from offchain.chain.deployments import save_deployment
from offchain.errors import AgentL2Error
from offchain.identity.registries import Erc8004
from offchain.rollup.dispute import deploy_implementation
from offchain.rollup.factory import RollupFactory


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the Agent L2 contracts")
@ape_cli_context()
@account_option(prompt=False)
def cli(cli_ctx, account):
    try:
        deployer = sender_or_default(account)
    except AgentL2Error as exc:
        raise click.UsageError(str(exc)) from None
    registries = Erc8004.deploy(deployer)
    token = deployer.deploy(project.AgentUSD, deployer.address)
    settler = deployer.deploy(project.BatchSettler)
    game = deploy_implementation(deployer)
    factory = RollupFactory.deploy(deployer, str(registries.identity.address), str(game.address))
    record = registries.deployment(deployer)
    record.contracts.update(
        {
            "AgentUSD": str(token.address),
            "BatchSettler": str(settler.address),
            "OneStepVerifier": str(game.verifier()),
            "DisputeGame": str(game.address),
            "RollupFactory": str(factory.contract.address),
        }
    )
    path = save_deployment(record)
    for name, address in record.contracts.items():
        click.echo(f"{name:<20} {address}")
    click.echo(f"Recorded in {path}")
