"""`ape run demo`: the main job, as far as it goes today.

Deploys the ERC-8004 registries on the chosen network (a fresh anvil chain by default), registers
service and consumer agents from their registration files (carried on chain as data: URIs),
has consumers rate services, asks a validator to check one service, and prints each agent's
standing. Later issues grow this into the full rollup bootstrap of docs/DESIGN.
"""

from __future__ import annotations

import random

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand, ape_cli_context
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from offchain.chain.deployments import save_deployment
from offchain.identity.registration import RegistrationFile, Service
from offchain.identity.registries import Erc8004

SERVICE_KINDS = ("weather", "translate", "summarize", "price-feed", "geocode", "ocr")


def _service_file(kind: str, port: int) -> RegistrationFile:
    return RegistrationFile(
        name=f"{kind}-agent",
        description=f"Answers {kind} requests over HTTP, paid per request with x402.",
        image=f"http://127.0.0.1:{port}/avatar.png",
        services=[
            Service(name="web", endpoint=f"http://127.0.0.1:{port}/{kind}"),
            Service(
                name="A2A", endpoint=f"http://127.0.0.1:{port}/.well-known/agent-card.json", version="0.3.0"
            ),
        ],
        x402Support=True,
        supportedTrust=["reputation", "crypto-economic"],
    )


def _consumer_file(index: int) -> RegistrationFile:
    return RegistrationFile(
        name=f"consumer-{index}",
        description="Buys data from service agents and rates them.",
        supportedTrust=["reputation"],
    )


@click.command(cls=ConnectedProviderCommand, short_help="Run the Agent L2 demo")
@ape_cli_context()
@click.option("--services", default=3, show_default=True, type=click.IntRange(1, len(SERVICE_KINDS)))
@click.option("--consumers", default=3, show_default=True, type=click.IntRange(1, 4))
@click.option(
    "--ratings", default=4, show_default=True, type=click.IntRange(1, 50), help="Per consumer and service."
)
@click.option("--seed", default=7, show_default=True, type=int)
def cli(cli_ctx, services, consumers, ratings, seed):
    console = Console(width=110) if not Console().is_terminal else Console()
    rng = random.Random(seed)
    test = accounts.test_accounts
    founder, validator = test[0], test[1]
    service_owners = [test[2 + i] for i in range(services)]
    consumer_owners = [test[2 + services + i] for i in range(consumers)]

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Deploying the ERC-8004 registries", total=None)
        registries = Erc8004.deploy(founder)
        path = save_deployment(registries.deployment(founder))
        chain_id = registries.deployment(founder).chain_id
        registry = str(registries.identity.address)

        progress.update(task, description="Registering agents", total=services + consumers, completed=0)
        agents: list[tuple[int, str, str]] = []  # (agentId, name, role)
        for i, owner in enumerate(service_owners):
            file = _service_file(SERVICE_KINDS[i], 9100 + i)
            agent_id = registries.register(owner, file)
            registries.set_agent_uri(owner, agent_id, file.with_registration(agent_id, chain_id, registry))
            agents.append((agent_id, file.name, "service"))
            progress.advance(task)
        consumer_ids = []
        for i, owner in enumerate(consumer_owners):
            agent_id = registries.register(owner, _consumer_file(i))
            consumer_ids.append(agent_id)
            agents.append((agent_id, f"consumer-{i}", "consumer"))
            progress.advance(task)

        progress.update(
            task, description="Consumers rating services", total=services * consumers * ratings, completed=0
        )
        quality = {agent_id: rng.uniform(60, 98) for agent_id, _, role in agents if role == "service"}
        for consumer in consumer_owners:
            for agent_id, _, role in agents:
                if role != "service":
                    continue
                for _ in range(ratings):
                    score = max(0.0, min(100.0, rng.gauss(quality[agent_id], 6)))
                    # Mixed precision on purpose: whole points, or hundredths of a point.
                    decimals = rng.choice((0, 2))
                    registries.give_feedback(
                        consumer,
                        agent_id,
                        round(score * 10**decimals),
                        decimals,
                        tag1="quality",
                        endpoint=registries.registration_file(agent_id).services[0].endpoint,
                    )
                    progress.advance(task)

        progress.update(task, description="Validating the first service", total=1, completed=0)
        first_service = agents[0][0]
        request = registries.request_validation(
            service_owners[0], first_service, str(validator.address), f"ipfs://demo-audit-{seed}"
        )
        registries.respond_validation(validator, request, rng.randint(80, 100), tag="audit")
        progress.advance(task)

    raters = [str(a.address) for a in consumer_owners]
    table = Table(title="ERC-8004 agents on this chain")
    for column in ("agentId", "name", "role", "owner", "feedback", "mean rating", "validation"):
        table.add_column(
            column, justify="right" if column in ("agentId", "feedback", "mean rating") else "left"
        )
    for agent_id, name, role in agents:
        summary = registries.summary(agent_id, raters, tag1="quality")
        validations, average = registries.validation_summary(agent_id)
        table.add_row(
            str(agent_id),
            name,
            role,
            registries.owner_of(agent_id)[:10] + "…",
            str(summary.count),
            f"{summary.mean:.2f}" if summary.count else "-",
            f"{average}/100 ({validations})" if validations else "-",
        )
    console.print(table)
    console.print(f"Registries recorded in [bold]{path}[/bold]")
