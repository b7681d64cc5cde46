"""The deployments file: which of our contracts live where, per network.

`ape run deploy` writes `deployments/<ecosystem>_<network>.json`; scripts and the Python
package read it back and check that code is still there (a local chain forgets everything
when it stops).
"""

from __future__ import annotations

import json
from pathlib import Path

from ape import chain, networks
from pydantic import BaseModel, ValidationError

from offchain.errors import ConfigError
from offchain.settings import get_settings


class Deployment(BaseModel):
    """Our contracts on one network."""

    network: str
    chain_id: int
    block: int
    deployer: str
    contracts: dict[str, str]

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            raise ConfigError(f"{name} is not in the deployments of {self.network}") from None


def current_network() -> str:
    provider = networks.provider
    return f"{provider.network.ecosystem.name}:{provider.network.name}"


def deployment_path(network: str | None = None, folder: Path | None = None) -> Path:
    network = network or current_network()
    folder = folder or get_settings().deployments_dir
    return folder / (network.replace(":", "_") + ".json")


def save_deployment(deployment: Deployment, folder: Path | None = None) -> Path:
    path = deployment_path(deployment.network, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(deployment.model_dump_json(indent=2) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def load_deployment(
    network: str | None = None, folder: Path | None = None, check_code: bool = True
) -> Deployment:
    """Reads the deployments of `network` (default: the connected one) and checks them."""
    path = deployment_path(network, folder)
    if not path.exists():
        raise ConfigError(f"no deployments file at {path}: run `ape run deploy` on this network first")
    try:
        deployment = Deployment.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"deployments file {path} is malformed: {exc}") from None
    if check_code:
        if deployment.chain_id != chain.chain_id:
            raise ConfigError(
                f"{path} is for chain {deployment.chain_id}, connected to chain {chain.chain_id}"
            )
        for name, address in deployment.contracts.items():
            if not chain.provider.get_code(address):
                raise ConfigError(
                    f"{path} is stale: no code for {name} at {address} on this chain; run `ape run deploy`"
                )
    return deployment
