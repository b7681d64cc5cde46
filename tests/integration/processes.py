"""Our services as real processes (the console scripts of pyproject.toml), for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_facilitator(chain, key, token, db: Path, port: int) -> subprocess.Popen:
    return _launch(
        "agentl2-facilitator",
        port,
        AGENTL2_FACILITATOR_RPC_URL=chain.provider.http_uri,
        AGENTL2_FACILITATOR_PRIVATE_KEY=key,
        AGENTL2_FACILITATOR_ASSETS=token.address,
        AGENTL2_FACILITATOR_DB_PATH=str(db),
        AGENTL2_FACILITATOR_PORT=str(port),
    )


def start_service(
    chain, token, merchant, facilitator_url: str, port: int, price: int = 25_000, db: Path | None = None
) -> subprocess.Popen:
    """The paid weather service; `db` is its record of deliveries (a throw-away file if None)."""
    return _launch(
        "agentl2-paid-service",
        port,
        AGENTL2_SERVICE_RPC_URL=chain.provider.http_uri,
        AGENTL2_SERVICE_FACILITATOR_URL=facilitator_url,
        AGENTL2_SERVICE_ASSET=token.address,
        AGENTL2_SERVICE_PAY_TO=merchant.address,
        AGENTL2_SERVICE_PRICE=str(price),
        AGENTL2_SERVICE_PORT=str(port),
        AGENTL2_SERVICE_DB_PATH=str(db) if db else ":memory:",
    )


def _launch(script: str, port: int, **env: str) -> subprocess.Popen:
    """Starts a console script and waits until its /health answers."""
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name(script))],
        cwd=ROOT,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(f"{script} exited: {process.stderr.read().decode()}")
    process.kill()
    raise RuntimeError(f"{script} did not start on port {port}")


OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil's test account 1
# Anvil's test accounts 3 and 4 (2 is the watchtower's): the rotation test's other operators.
OTHER_OPERATORS = ("0x90F79bf6EB2c4f870365E785982E1f101E93b906", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65")
CHAIN_ID = 4444  # the rollup every process test runs


def wait_until(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


# The chain `rollup_on_anvil` sets up, made once per session with `ape run` as a user makes it:
# anvil's state (blocks and logs too) and the deployment files the scripts wrote.
_prepared: dict[str, object] = {}


@contextmanager
def rollup_on_anvil(deployments: Path, chain_id: int = CHAIN_ID) -> Iterator[str]:
    """A fresh anvil of its own with our contracts deployed (`ape run deploy`), rollup `chain_id`
    created and 100 AUSD minted to each operator, as a user sets it up; yields its URL. The first
    call runs the scripts; later ones load the state they left into their own new anvil."""
    from tests.integration.test_scripts import _ape_run

    port = free_port()
    anvil = subprocess.Popen(
        [str(ROOT / "node_modules" / ".bin" / "anvil"), "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        network = f"http://127.0.0.1:{port}"
        wait_until(lambda: _call(network, "eth_blockNumber", []) is not None, what="anvil")
        prepared = _prepared.get(str(chain_id))
        if prepared is None:
            for args in (
                ("deploy",),
                ("rollup", "new", "--chain-id", str(chain_id), "--min-stake", "100"),
                *(("faucet", "--to", address, "--amount", "100") for address in (OPERATOR, *OTHER_OPERATORS)),
            ):
                done = _ape_run(*args, "--network", network, deployments=deployments)
                assert done.returncode == 0, done.stderr + done.stdout
            files = {path.name: path.read_text() for path in deployments.glob("*.json")}
            _prepared[str(chain_id)] = (_call(network, "anvil_dumpState", []), files)
        else:
            state, files = prepared
            assert _call(network, "anvil_loadState", [state]) is True
            for name, text in files.items():
                (deployments / name).write_text(text)
        yield network
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)


class Service:
    """An `ape run` service whose output lines are collected as they come."""

    def __init__(self, chain_id: int, script: str, network: str, deployments: Path, *args: str, **env: str):
        environment = {
            **os.environ,
            "AGENTL2_DEPLOYMENTS_DIR": str(deployments),
            "AGENTL2_WATCHTOWER_POLL": "0.5",
            "PYTHONWARNINGS": "ignore",
            **env,
        }
        ape = Path(sys.executable).with_name("ape")
        self.process = subprocess.Popen(
            [str(ape), "run", script, "--network", network, "--chain-id", str(chain_id), *args],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")), daemon=True
        )
        self._reader.start()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def output(self) -> str:
        return "".join(self.lines)


def rpc(network: str, method: str, params: list) -> None:
    httpx.post(network, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10)


def _call(network: str, method: str, params: list) -> object:
    """A JSON-RPC call's result; None if the node does not answer (yet)."""
    try:
        answer = httpx.post(
            network, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30
        )
        return answer.json().get("result")
    except httpx.HTTPError:
        return None
