"""`ape run node --chain-id 4242 --data var/node-4242`: a replica node of a rollup as a service.

It derives the L2 from L1 alone into its LMDB store (offchain/node/replica.py) every
AGENTL2_NODE_POLL seconds, serves the read API (offchain/node/api.py) on AGENTL2_NODE_HOST:PORT,
and logs every claim it disagrees with. Restarted on the same folder it goes on where it
stopped; on an L1 reorganization under its store it stops with a clear error. SIGTERM or
Ctrl-C stops it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import click
import uvicorn
from ape.cli import ConnectedProviderCommand
from pydantic_settings import BaseSettings, SettingsConfigDict

from offchain.chain.contracts import contract_at
from offchain.chain.deployments import load_deployment
from offchain.errors import AgentL2Error
from offchain.node.api import create_app
from offchain.node.replica import ReorgError, ReplicaNode
from offchain.rollup.factory import RollupFactory

log = logging.getLogger("agentl2.node")


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTL2_NODE_")

    host: str = "127.0.0.1"
    port: int = 4040
    poll: float = 1.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the signal handlers below stop it
        yield


def _follow(
    node: ReplicaNode, lock: threading.Lock, stop: threading.Event, server: _Server, poll: float
) -> None:
    reported: set[tuple[int, bytes]] = set()
    while not stop.is_set():
        try:
            with lock:
                count = node.sync()
                wrong = node.disagreements()
            for index, claimed, derived in wrong:
                if (index, claimed) not in reported:
                    reported.add((index, claimed))
                    log.warning("claim %d: root 0x%s, derived 0x%s", index, claimed.hex(), derived.hex())
            log.debug("%d batches derived", count)
        except ReorgError as exc:
            log.error("%s", exc)
            server.should_exit = True
            return
        except AgentL2Error as exc:
            log.warning("sync failed: %s", exc)
        stop.wait(poll)


@click.command(cls=ConnectedProviderCommand, short_help="Run a replica node of a rollup")
@click.option(
    "--chain-id", type=click.IntRange(1, 2**64 - 1), required=True, help="The rollup's L2 chain id."
)
@click.option("--data", "data", type=click.Path(file_okay=False), required=True, help="The node's folder.")
@click.option("--port", type=int, default=None, help="Overrides AGENTL2_NODE_PORT.")
def cli(chain_id, data, port):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = NodeSettings()
    if port is not None:
        settings.port = port
    try:
        factory = RollupFactory(contract_at("RollupFactory", load_deployment().address("RollupFactory")))
        node = ReplicaNode(factory.rollup(chain_id).inbox_client(), chain_id, data)
    except AgentL2Error as exc:
        raise click.ClickException(str(exc)) from None
    lock, stop = threading.Lock(), threading.Event()
    server = _Server(
        uvicorn.Config(create_app(node, lock), host=settings.host, port=settings.port, log_level="warning")
    )
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: (stop.set(), setattr(server, "should_exit", True)))
    follower = threading.Thread(target=_follow, args=(node, lock, stop, server, settings.poll), daemon=True)
    follower.start()
    click.echo(f"node of rollup {chain_id} in {data} on http://{settings.host}:{settings.port}")
    try:
        server.run()
    finally:
        stop.set()
        follower.join(timeout=30)
        node.close()
        click.echo("stopped")
