"""`ape run deploy`: deploys the ERC-8004 registries and records them in the deployments file."""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context

from offchain.chain.accounts import sender_or_default
from offchain.chain.deployments import save_deployment
from offchain.identity.registries import Erc8004


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the ERC-8004 registries")
@ape_cli_context()
@account_option(prompt=False)
def cli(cli_ctx, account):
    deployer = sender_or_default(account)
    registries = Erc8004.deploy(deployer)
    path = save_deployment(registries.deployment(deployer))
    for name, address in registries.deployment(deployer).contracts.items():
        cli_ctx.logger.success(f"{name} at {address}")
    cli_ctx.logger.success(f"Recorded in {path}")
