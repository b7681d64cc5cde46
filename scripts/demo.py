"""`ape run demo`: the main job, as far as it goes today (steps 1 to 3 of docs' main job).

On the chosen network (a fresh anvil chain by default) this:
1. deploys our L1 contracts (ERC-8004 registries, AgentUSD, BatchSettler, BountyEscrow);
2. starts an x402 facilitator and one paid HTTP service per service agent, on loopback, and
   registers every agent under ERC-8004 with a registration file naming its real endpoint;
3. has consumer agents pay the services per request on L1 (x402 `exact`, EIP-3009) and rate
   them; the founder measures gas and latency per payment;
4. has a validator check one service;
5. has the founder post bounties (a sequencer slot paid per finalized batch, a watchtower task)
   that operator agents discover from the escrow's events, take, get paid for, and are rated on;
6. prints each agent's standing, the L1 payment figures and the bounties.
Batches are attested by a stand-in attester contract until the rollup exists (a later issue).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand, ape_cli_context
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from offchain.chain.deployments import save_deployment
from offchain.chain.eip712 import Eip712Domain
from offchain.chain.rpc import connect
from offchain.identity.registration import RegistrationFile, Service
from offchain.identity.registries import Erc8004
from offchain.market.escrow import BountyFeed, Escrow, Kind, ServiceTerms, TaskTerms
from offchain.serving import BackgroundServer
from offchain.x402.client import X402Client
from offchain.x402.example_service import create_service
from offchain.x402.facilitator import Facilitator
from offchain.x402.facilitator_app import create_app
from offchain.x402.server import FacilitatorClient, Price
from offchain.x402.store import PaymentStore

SERVICE_KINDS = ("weather", "translate", "summarize", "price-feed", "geocode", "ocr")
PRICE = 10_000  # 0.01 AUSD per request
USD = 10**6
DAY = 86_400


class Agent:
    """One agent of the demo: its identity, role, key, endpoint, and what it measured."""

    # (A plain class: ape loads scripts in a way that @dataclass cannot resolve.)
    def __init__(self, agent_id: int, name: str, role: str, account: object, endpoint: str = ""):
        self.agent_id, self.name, self.role, self.account, self.endpoint = (
            agent_id,
            name,
            role,
            account,
            endpoint,
        )
        self.latencies: list[float] = []
        self.gas: list[int] = []


def _file(name: str, description: str, endpoint: str = "", x402: bool = False) -> RegistrationFile:
    services = [Service(name="web", endpoint=endpoint)] if endpoint else []
    return RegistrationFile(
        name=name, description=description, services=services, x402Support=x402, supportedTrust=["reputation"]
    )


@click.command(cls=ConnectedProviderCommand, short_help="Run the Agent L2 demo")
@ape_cli_context()
@click.option("--services", default=3, show_default=True, type=click.IntRange(1, len(SERVICE_KINDS)))
@click.option("--consumers", default=3, show_default=True, type=click.IntRange(1, 6))
@click.option(
    "--payments", default=2, show_default=True, type=click.IntRange(1, 50), help="Per consumer and service."
)
@click.option("--seed", default=7, show_default=True, type=int)
def cli(cli_ctx, services, consumers, payments, seed):
    console = Console(width=120) if not Console().is_terminal else Console()
    rng = random.Random(seed)
    test = accounts.test_accounts
    founder, validator, relayer = test[0], test[1], test[2]
    service_owners = [test[3 + i] for i in range(services)]
    consumer_owners = [test[3 + services + i] for i in range(consumers)]
    sequencer_owner, watchtower_owner = test[3 + services + consumers], test[4 + services + consumers]
    w3 = connect(chain.provider.http_uri)
    servers: list[BackgroundServer] = []
    workdir = tempfile.TemporaryDirectory(prefix="agentl2-demo-")

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Deploying the L1 contracts", total=None)
        registries = Erc8004.deploy(founder)
        token = founder.deploy(project.AgentUSD, founder.address)
        settler = founder.deploy(project.BatchSettler)
        escrow = Escrow.deploy(founder, registries)
        attester = founder.deploy(project.work_attester_mock)  # stands in for the rollup's attestations
        record = registries.deployment(founder)
        record.contracts.update(
            {
                "AgentUSD": str(token.address),
                "BatchSettler": str(settler.address),
                "BountyEscrow": str(escrow.contract.address),
            }
        )
        deployment_path = save_deployment(record)
        domain = Eip712Domain.from_eip5267(token.eip712Domain())

        progress.update(task, description="Starting the facilitator and the paid services")
        facilitator = Facilitator.on_token(
            w3, relayer.private_key, PaymentStore(f"{workdir.name}/facilitator.sqlite"), [token.address]
        )
        facilitator.start()
        fac_server = BackgroundServer(create_app(facilitator)).start()
        servers.append(fac_server)

        progress.update(
            task, description="Registering agents (ERC-8004)", total=services + consumers + 3, completed=0
        )
        founder_agent = Agent(
            registries.register(founder, _file("founder", "Measures and bootstraps.")),
            "founder",
            "founder",
            founder,
        )
        progress.advance(task)
        agents: list[Agent] = [founder_agent]
        for i, owner in enumerate(service_owners):
            kind = SERVICE_KINDS[i]
            price = Price(amount=PRICE, asset=domain, pay_to=owner.address, description=f"{kind} answer")
            server = BackgroundServer(create_service(FacilitatorClient(fac_server.url), price, kind)).start()
            servers.append(server)
            endpoint = f"{server.url}/{kind}"
            agent_id = registries.register(
                owner, _file(f"{kind}-agent", f"Answers {kind} requests, paid with x402.", endpoint, True)
            )
            agents.append(Agent(agent_id, f"{kind}-agent", "service", owner, endpoint))
            progress.advance(task)
        for i, owner in enumerate(consumer_owners):
            agent_id = registries.register(owner, _file(f"consumer-{i}", "Buys answers and rates them."))
            agents.append(Agent(agent_id, f"consumer-{i}", "consumer", owner))
            token.mint(owner, 100 * USD, sender=founder)  # the faucet
            progress.advance(task)
        sequencer = Agent(
            registries.register(sequencer_owner, _file("sequencer-op", "Runs a sequencer.")),
            "sequencer-op",
            "operator",
            sequencer_owner,
        )
        watchtower = Agent(
            registries.register(watchtower_owner, _file("watchtower", "Watches roots.")),
            "watchtower",
            "watchtower",
            watchtower_owner,
        )
        agents += [sequencer, watchtower]
        progress.advance(task, 2)

        service_agents = [a for a in agents if a.role == "service"]
        consumer_agents = [a for a in agents if a.role == "consumer"]
        progress.update(
            task,
            description="Consumers paying services on L1 (x402)",
            total=len(consumer_agents) * len(service_agents) * payments,
            completed=0,
        )
        for consumer in consumer_agents:
            client = X402Client(consumer.account.private_key, w3, max_amount=PRICE)
            for service in service_agents:
                for _ in range(payments):
                    started = time.perf_counter()
                    paid = client.get(service.endpoint, params={"q": rng.choice(("hello", "Lisbon", "42"))})
                    service.latencies.append(time.perf_counter() - started)
                    if paid.settlement and paid.settlement.success:
                        service.gas.append(
                            w3.eth.get_transaction_receipt(paid.settlement.transaction)["gasUsed"]
                        )
                    progress.advance(task)

        progress.update(
            task,
            description="Consumers rating services",
            total=len(consumer_agents) * len(service_agents),
            completed=0,
        )
        quality = {s.agent_id: rng.uniform(70, 98) for s in service_agents}
        for consumer in consumer_agents:
            for service in service_agents:
                score = max(0.0, min(100.0, rng.gauss(quality[service.agent_id], 5)))
                registries.give_feedback(
                    consumer.account,
                    service.agent_id,
                    round(score * 100),
                    2,
                    tag1="quality",
                    endpoint=service.endpoint,
                )
                progress.advance(task)

        progress.update(task, description="A validator checks the first service", total=None)
        first = service_agents[0]
        request = registries.request_validation(
            first.account, first.agent_id, validator.address, f"{first.endpoint}?audit={seed}"
        )
        registries.respond_validation(validator, request, rng.randint(85, 100), tag="audit")

        progress.update(task, description="Founder posts bounties; operators take them")
        for owner in (founder, sequencer_owner, watchtower_owner):
            token.mint(owner, 100 * USD, sender=founder)
            token.approve(escrow.contract, 2**256 - 1, sender=owner)
        now = chain.pending_timestamp
        slot = escrow.create_service(
            founder,
            ServiceTerms(
                asset=token.address,
                amount=20 * USD,
                term_end=now + DAY,
                attester=attester.address,
                rate=USD,
                agents_only=True,
                spec_uri="sequencer slot: paid per finalized batch",
            ),
        )
        watch = escrow.create_task(
            founder,
            TaskTerms(
                asset=token.address,
                amount=10 * USD,
                deadline=now + DAY,
                arbiter=validator.address,
                review_window=DAY,
                stake=2 * USD,
                agents_only=True,
                spec_uri="watchtower: report on every posted root",
            ),
        )
        feed = BountyFeed(escrow)
        for bounty in feed.open():
            if bounty.kind == Kind.SERVICE:
                escrow.join(sequencer_owner, bounty.id, sequencer.agent_id)
            else:
                escrow.claim(watchtower_owner, bounty.id, watchtower.agent_id)
        attester.record(sequencer_owner, 7, sender=founder)  # 7 finalized batches, as the rollup will attest
        escrow.pay_out(founder, slot, sequencer_owner.address)
        escrow.submit(watchtower_owner, watch, "ipfs://watchtower-report-1", b"\x11" * 32)
        escrow.accept(founder, watch)
        escrow.rate_worker(founder, registries, watch, 90, tag2="watchtower")
        registries.give_feedback(founder, sequencer.agent_id, 95, tag1="bounty", tag2="sequencer")
        for owner in (sequencer_owner, watchtower_owner):
            escrow.withdraw(owner, token.address)

    for server in servers:
        server.stop()
    facilitator.stop()
    workdir.cleanup()

    raters = {a.role: [str(x.account.address) for x in agents if x.role == a.role] for a in agents}
    table = Table(title="ERC-8004 agents on this chain")
    for column in ("agentId", "name", "role", "feedback", "mean rating", "validation"):
        table.add_column(
            column, justify="right" if column in ("agentId", "feedback", "mean rating") else "left"
        )
    for agent in agents:
        trusted = raters["consumer"] if agent.role == "service" else [str(founder.address)]
        summary = registries.summary(agent.agent_id, trusted)
        validations, average = registries.validation_summary(agent.agent_id)
        table.add_row(
            str(agent.agent_id),
            agent.name,
            agent.role,
            str(summary.count),
            f"{summary.mean:.2f}" if summary.count else "-",
            f"{average}/100 ({validations})" if validations else "-",
        )
    console.print(table)

    table = Table(title="Payments on L1 (x402 exact, EIP-3009, one settlement per request)")
    for column in ("service", "paid requests", "gas / payment", "median latency", "merchant AUSD"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for service in service_agents:
        table.add_row(
            service.name,
            str(len(service.gas)),
            f"{statistics.mean(service.gas):,.0f}" if service.gas else "-",
            f"{statistics.median(service.latencies) * 1000:.0f} ms",
            f"{token.balanceOf(service.account) / USD:.2f}",
        )
    console.print(table)

    table = Table(title="Bounties (rebuilt from the escrow's events)")
    for column in ("id", "kind", "status", "funded AUSD", "paid AUSD", "taken by"):
        table.add_column(column, justify="right" if "AUSD" in column or column == "id" else "left")
    for bounty in feed.sync().values():
        taker = bounty.claimant or ", ".join(bounty.workers) or "-"
        who = {str(a.account.address): a.name for a in agents}.get(taker, taker[:10])
        table.add_row(
            str(bounty.id),
            bounty.kind.name.lower(),
            bounty.status.name.lower(),
            f"{bounty.funded / USD:.2f}",
            f"{bounty.paid / USD:.2f}",
            who,
        )
    console.print(table)
    console.print(f"Contracts recorded in [bold]{deployment_path}[/bold]")
