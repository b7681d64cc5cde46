"""`ape run rollup new | deposit | withdraw`: spin up a rollup, deposit into it, withdraw from it.

Against the deployments file of the connected network (`ape run deploy` first). On a local chain
the first test account sends; elsewhere name one with --account.

    ape run rollup new --chain-id 4242 --min-stake 100
    ape run rollup deposit --chain-id 4242 --to 0xL2ACCOUNT --amount 0.5            # ETH
    ape run rollup deposit --chain-id 4242 --to 0xL2ACCOUNT --amount 25 --token ausd
    ape run rollup withdraw --chain-id 4242 --l2-account 0xL2ACCOUNT --nonce 0      # prove and pay
"""

from __future__ import annotations

from decimal import Decimal

import click
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain.accounts import sender_or_default
from offchain.chain.contracts import contract_at
from offchain.chain.deployments import load_deployment
from offchain.errors import AgentL2Error
from offchain.rollup.derive import Derivation
from offchain.rollup.factory import RollupFactory
from offchain.rollup.params import RollupParams

AUSD = 10**6


def _factory() -> RollupFactory:
    return RollupFactory(contract_at("RollupFactory", load_deployment().address("RollupFactory")))


@click.group(short_help="Spin up a rollup, deposit into it, withdraw from it")
def cli():
    pass


@cli.command(cls=ConnectedProviderCommand, short_help="Spin up a rollup through the factory")
@account_option(prompt=False)
@click.option("--chain-id", type=click.IntRange(1, 2**64 - 1), required=True, help="The L2 chain id (new).")
@click.option("--min-stake", type=click.IntRange(1), default=100, show_default=True, help="Whole AUSD.")
@click.option(
    "--slot-length", type=click.IntRange(1), default=4, show_default=True, help="L1 blocks per slot."
)
@click.option("--challenge-window", type=click.IntRange(1), default=300, show_default=True, help="Seconds.")
@click.option("--exit-delay", type=click.IntRange(1), default=600, show_default=True, help="Seconds.")
def new(account, chain_id, min_stake, slot_length, challenge_window, exit_delay):
    try:
        creator = sender_or_default(account)
        params = RollupParams(
            chain_id=chain_id,
            stake_token=load_deployment().address("AgentUSD"),
            min_stake=min_stake * AUSD,
            slot_length=slot_length,
            challenge_window=challenge_window,
            exit_delay=exit_delay,
        )
        rollup = _factory().create(creator, params)
    except (AgentL2Error, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"rollup {rollup.chain_id}: inbox {rollup.inbox}, sequencer set {rollup.sequencer_set}, "
        f"dispute game {rollup.dispute_game}"
    )


@cli.command(cls=ConnectedProviderCommand, short_help="Deposit ETH or AUSD into a rollup")
@account_option(prompt=False)
@click.option("--chain-id", type=click.IntRange(1, 2**64 - 1), required=True)
@click.option("--to", "to", required=True, help="The L2 account credited.")
@click.option("--amount", type=Decimal, required=True, help="ETH, or whole AUSD with --token ausd.")
@click.option("--token", type=click.Choice(["eth", "ausd"]), default="eth", show_default=True)
def deposit(account, chain_id, to, amount, token):
    try:
        sender = sender_or_default(account)
        inbox = _factory().rollup(chain_id).inbox_client()
        if token == "eth":
            index = inbox.deposit_eth(sender, to, int(amount * 10**18))
        else:
            ausd = contract_at("AgentUSD", load_deployment().address("AgentUSD"))
            index = inbox.deposit_erc20(sender, ausd, to, int(amount * AUSD))
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"queued as entry {index}: credited on L2 when a batch carries it")


@cli.command(cls=ConnectedProviderCommand, short_help="Prove an L2 withdrawal and pay it on L1")
@account_option(prompt=False)
@click.option("--chain-id", type=click.IntRange(1, 2**64 - 1), required=True)
@click.option("--l2-account", required=True, help="The L2 account that withdrew.")
@click.option("--nonce", type=click.IntRange(0, 2**64 - 1), required=True, help="Its nonce when it withdrew.")
def withdraw(account, chain_id, l2_account, nonce):
    try:
        sender = sender_or_default(account)
        inbox = _factory().rollup(chain_id).inbox_client()
        final = inbox.count("finalizedCount")
        if final == 0:
            raise click.ClickException("no claim of this rollup is final yet")
        derivation = Derivation(inbox, chain_id)
        derivation.sync()
        index = final - 1
        if derivation.root(index) != inbox.claim(index).root:
            raise click.ClickException(
                f"the final claim of batch {index} is not the state derived from L1: report it, do not prove on it"
            )
        leaf, proof = derivation.withdrawal_proof(index, l2_account, nonce)
        inbox.finalize_withdrawal(sender, index, leaf, proof)
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"paid {leaf.amount} of {leaf.token} to {leaf.recipient} (proved against batch {index})")
