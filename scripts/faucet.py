"""`ape run faucet --to ADDRESS --amount 100`: mints AgentUSD (whole dollars) from a minter."""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain.accounts import sender_or_default
from offchain.chain.calls import transact
from offchain.chain.contracts import contract_at
from offchain.chain.deployments import load_deployment
from offchain.errors import AgentL2Error


@click.command(cls=ConnectedProviderCommand, short_help="Mint AgentUSD to an address")
@account_option(prompt=False)
@click.option("--to", "to", required=True, help="Who receives the tokens.")
@click.option("--amount", type=click.IntRange(1, 10**9), default=100, show_default=True, help="Whole AUSD.")
def cli(account, to, amount):
    try:
        minter = sender_or_default(account)
        token = contract_at("AgentUSD", load_deployment().address("AgentUSD"))
        transact(token, "mint", to, amount * 10**6, sender=minter)
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{to} now holds {token.balanceOf(to) / 10**6:,.2f} AUSD")
