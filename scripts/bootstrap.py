"""`ape run bootstrap`: the main job. Agents pay each other on L1, find it too dear, spin up their
own rollup, hire its operators, pay on the L2, catch a cheater, withdraw, and report the costs
(offchain/agents/bootstrap.py tells the story; the report goes to --out)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, ape_cli_context
from rich.console import Console

from offchain.agents.bootstrap import Bootstrap, Options
from offchain.report.write import write
from offchain.sequencer.faults import Fault
from offchain.settings import get_settings


@click.command(cls=ConnectedProviderCommand, short_help="Agents bootstrap their own rollup")
@ape_cli_context()
@click.option(
    "--operators", default=2, show_default=True, type=click.IntRange(1, 4), help="Honest sequencers."
)
@click.option("--services", default=2, show_default=True, type=click.IntRange(1, 4))
@click.option("--consumers", default=3, show_default=True, type=click.IntRange(1, 6))
@click.option(
    "--payments",
    default=50,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Per consumer, per network.",
)
@click.option(
    "--fault",
    default=Fault.WRONG_ROOT.value,
    show_default=True,
    type=click.Choice([*(f.value for f in Fault), "none"]),
    help="How the malicious operator lies (none: no malicious operator).",
)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--window", default=20, show_default=True, type=click.IntRange(5), help="Challenge window, seconds."
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder [default: $AGENTL2_REPORTS_DIR/bootstrap, reports/bootstrap].",
)
def cli(cli_ctx, operators, services, consumers, payments, fault, seed, window, out):
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # The services share this process: a 1 ms switch interval (Python's default is 5) hands the
    # GIL to the HTTP servers' threads sooner, as `ape run sequencer` does.
    sys.setswitchinterval(0.001)
    console = Console()
    out = out or get_settings().reports_dir / "bootstrap"
    options = Options(
        operators=operators,
        services=services,
        consumers=consumers,
        payments=payments,
        fault=None if fault == "none" else Fault(fault),
        seed=seed,
        window=window,
    )
    with console.status("starting") as status:

        def say(phase: str, detail: str) -> None:
            console.log(f"[bold]{phase}[/bold]: {detail}")
            status.update(phase)

        report = Bootstrap(options, say).run()
    for path in write(report, out):
        console.log(f"wrote {path}")
    if report.conservation is not None and not report.conservation.holds:
        raise click.ClickException("the balances do not add up: see the report")
